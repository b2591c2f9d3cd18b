"""Shared fixtures: isolated settings, the real ONNX embedder, an indexed seed corpus, and a
real `chroma run` server on 127.0.0.1 for server-mode tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from chroma_run import ChromaRun
from fakes.fixtures import fake_openai, fake_telegram  # noqa: F401

from index.embed import LocalEmbedder
from index.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "realtimeqa"
SEED = REPO_ROOT / "corpus" / "000_pakistan-azerbaijan-joint-ministerial-commission.md"


def make_settings(tmp: Path, **overrides: object) -> Settings:
    """Settings that ignore the developer's .env and environment-specific paths."""
    values: dict = {
        "data_dir": tmp / "data",
        "corpus_dir": tmp / "corpus",
        "openai_api_key": None,
        "openai_base_url": None,
        "chroma_host": None,
        "telegram_bot_token": None,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture(scope="session")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "corpus").mkdir()
    shutil.copy(SEED, tmp_path / "corpus" / SEED.name)
    return make_settings(tmp_path)


@pytest.fixture(scope="session")
def seed_index_dir(tmp_path_factory: pytest.TempPathFactory, embedder: LocalEmbedder) -> Path:
    """A data dir with the seed article plus a few unrelated articles, indexed once."""
    from index.ingest import index_paths

    root = tmp_path_factory.mktemp("seed")
    corpus = root / "corpus"
    corpus.mkdir()
    shutil.copy(SEED, corpus / SEED.name)
    (corpus / "other.jsonl").write_text(OTHER_ARTICLES, encoding="utf-8")
    summary = index_paths([corpus], make_settings(root), embedder=embedder)
    assert summary.failed == 0 and summary.added == 4
    return root


@pytest.fixture
def seeded(tmp_path: Path, seed_index_dir: Path) -> Settings:
    """A private copy of the seed index, so tests may change it."""
    shutil.copytree(seed_index_dir, tmp_path, dirs_exist_ok=True)
    return make_settings(tmp_path)


OTHER_ARTICLES = "\n".join(
    [
        '{"url": "https://example.com/2022/06/10/rail-strike", "title": "Rail workers strike over pay", '
        '"source": "example.com", "published": "2022-06-10", "authors": ["A. Writer"], '
        '"text": "Rail workers across Britain walked out on Friday in a dispute over pay and conditions. '
        'The union said the strike would continue next week unless talks resume. Commuters faced long delays."}',
        '{"url": "https://example.com/2022/07/02/heatwave", "title": "Heatwave breaks records in Spain", '
        '"source": "example.com", "published": "2022-07-02", "authors": [], '
        '"text": "Temperatures in Seville reached 44 degrees Celsius on Saturday, a record for early July. '
        'Officials urged residents to stay indoors during the afternoon heat."}',
        '{"url": "https://example.com/2022/08/15/chip-plant", "title": "Chipmaker opens new plant in Arizona", '
        '"source": "example.com", "published": "2022-08-15", "authors": [], '
        '"text": "A semiconductor company opened a factory in Arizona on Monday that will employ 2,000 people. '
        'The plant will produce chips for cars and phones starting next year."}',
    ]
)


def newsdesk(
    *args: str,
    env: dict[str, str],
    cwd: Path,
    timeout: float = 180,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real `newsdesk` CLI in a subprocess (cwd away from the repo's .env)."""
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env=env,
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def chroma_process_at(folder: Path) -> ChromaRun:
    """A `chroma run` storing in ``folder/db`` and logging to ``folder/server.log``."""
    return ChromaRun(folder / "db", folder / "server.log", startup_timeout=60)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A real `chroma run` on 127.0.0.1 with its own data dir, for the whole session."""
    with chroma_process_at(tmp_path_factory.mktemp("chroma-server")) as server:
        yield server.host, server.port
