"""Settings: every field described, mirrored in .env.example, conventional names honoured."""

from __future__ import annotations

import re

import pytest
from pydantic import AliasChoices

from index.settings import REPO_ROOT, Settings


def env_name(name: str, field) -> str:
    if isinstance(field.validation_alias, AliasChoices):
        return field.validation_alias.choices[0]
    return f"NEWSDESK_{name.upper()}"


def test_every_field_is_described() -> None:
    missing = [n for n, f in Settings.model_fields.items() if not (f.description or "").strip()]
    assert missing == []


def test_env_example_mirrors_settings_field_by_field() -> None:
    text = (REPO_ROOT / ".env.example").read_text()
    listed = re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE)
    expected = [env_name(n, f) for n, f in Settings.model_fields.items()]
    assert listed == expected


def test_conventional_names_and_id_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    monkeypatch.setenv("NEWSDESK_TELEGRAM_ADMINS", "1, 2,3")
    monkeypatch.setenv("NEWSDESK_CHROMA_HOST", "db.internal")
    s = Settings(_env_file=None)
    assert s.llm_enabled and s.server_mode
    assert s.telegram_admins == [1, 2, 3]
    assert s.telegram_bot_token is not None
    assert "123:abc" not in repr(s)  # secrets never print


def test_offline_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "NEWSDESK_CHROMA_HOST"):
        monkeypatch.delenv(var, raising=False)
    s = Settings(_env_file=None)
    assert not s.llm_enabled and not s.server_mode and s.embedder == "local"
