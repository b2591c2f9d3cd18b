"""Settings: every field described, mirrored in .env.example, conventional names honoured."""

from __future__ import annotations

import re

import pytest
from conftest import REPO_ROOT
from pydantic import AliasChoices

from index.settings import Settings


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


# Where things live: (environment, working folder) -> data dir and corpus dir. Relative
# paths are relative to the working folder; the index's default is one per user.
WHERE = [
    ({}, "/home/u/.local/share/newsdesk", "{cwd}/corpus"),
    ({"XDG_DATA_HOME": "/xdg"}, "/xdg/newsdesk", "{cwd}/corpus"),
    ({"NEWSDESK_DATA_DIR": "idx"}, "{cwd}/idx", "{cwd}/corpus"),
    ({"NEWSDESK_DATA_DIR": "~/idx", "XDG_DATA_HOME": "/xdg"}, "/home/u/idx", "{cwd}/corpus"),
    ({"NEWSDESK_CORPUS_DIR": "/srv/feeds"}, "/home/u/.local/share/newsdesk", "/srv/feeds"),
    ({"NEWSDESK_CORPUS_DIR": "~/news"}, "/home/u/.local/share/newsdesk", "/home/u/news"),
]


@pytest.mark.parametrize(("env", "data_dir", "corpus_dir"), WHERE)
def test_where_things_live(
    env: dict[str, str], data_dir: str, corpus_dir: str, tmp_path, monkeypatch
) -> None:
    for var in ("XDG_DATA_HOME", "NEWSDESK_DATA_DIR", "NEWSDESK_CORPUS_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", "/home/u")
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    monkeypatch.chdir(tmp_path)
    s = Settings(_env_file=None)
    assert str(s.data_dir) == data_dir.format(cwd=tmp_path)
    assert str(s.corpus_dir) == corpus_dir.format(cwd=tmp_path)
    monkeypatch.chdir("/")  # fixed when read: a later change of folder moves nothing
    assert str(s.data_dir) == data_dir.format(cwd=tmp_path)


def test_env_example_and_readme_state_the_same_defaults() -> None:
    example = (REPO_ROOT / ".env.example").read_text()
    readme = (REPO_ROOT / "README.md").read_text()
    assert "# NEWSDESK_DATA_DIR=~/.local/share/newsdesk\n" in example
    assert "# NEWSDESK_CORPUS_DIR=corpus\n" in example
    assert "~/.local/share/newsdesk" in readme and "$XDG_DATA_HOME/newsdesk" in readme
