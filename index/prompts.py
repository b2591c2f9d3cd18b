"""Prompt templates live in ``prompts/*.txt`` and are loaded by name.

Sentinels that code and tests share are constants here.
"""

from __future__ import annotations

from functools import cache

from index.settings import REPO_ROOT

PROMPTS_DIR = REPO_ROOT / "prompts"

#: The exact phrase an answer starts with when the articles do not answer the question.
REFUSAL = "The indexed articles don't answer this."


@cache
def load_prompt(name: str) -> str:
    """Read ``prompts/<name>.txt``; a missing prompt is a programming error, so it raises."""
    path = PROMPTS_DIR / f"{name}.txt"
    return path.read_text(encoding="utf-8")
