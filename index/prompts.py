"""Prompt templates live in ``prompts/*.txt`` and are loaded by name, as LlamaIndex
``PromptTemplate``s (``{name}`` fields; ``template.format(name=...)`` fills them).

They are package data of the ``prompts`` package, read through ``importlib.resources``, so
an installed wheel finds them as well as a source checkout does. Sentinels that code and
tests share are constants here.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llama_index.core.prompts import PromptTemplate

#: The exact phrase an answer starts with when the articles do not answer the question.
REFUSAL = "The indexed articles don't answer this."


@cache
def load_prompt(name: str) -> PromptTemplate:
    """``prompts/<name>.txt`` as a template; a missing prompt is a programming error, so it
    raises."""
    from llama_index.core.prompts import PromptTemplate  # only LLM answers need LlamaIndex here

    return PromptTemplate(files("prompts").joinpath(f"{name}.txt").read_text(encoding="utf-8"))
