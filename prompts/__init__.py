"""The LLM prompt templates, one ``.txt`` file per prompt.

A package so that the templates ship inside the wheel as package data; read them with
``index.prompts.load_prompt(name)``, which finds them wherever newsdesk is installed.
"""
