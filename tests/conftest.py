"""Shared fixtures: isolated settings, the real ONNX embedder, an indexed seed corpus, and a
real `chroma run` server on 127.0.0.1 for server-mode tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fakes.fixtures import fake_openai, fake_telegram  # noqa: F401

from index.embed import LocalEmbedder
from index.settings import REPO_ROOT, Settings

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ChromaProcess:
    """A `chroma run` of our own on a fixed port and path, stopped and restarted at will."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        chroma = Path(sys.executable).with_name("chroma")
        if not chroma.exists():
            pytest.fail("the `chroma` command is missing: install the project (`pip install -e .`)")
        log = (self.path / "server.log").open("ab")
        self.proc = subprocess.Popen(
            [
                *(str(chroma), "run", "--path", str(self.path / "db")),
                *("--host", "127.0.0.1", "--port", str(self.port)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 60
        while True:
            try:
                url = f"http://127.0.0.1:{self.port}/api/v2/heartbeat"
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log_text = (self.path / "server.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"chroma run did not start: {log_text}")
            time.sleep(0.1)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A real `chroma run` on 127.0.0.1 with its own data dir, for the whole session."""
    server = ChromaProcess(tmp_path_factory.mktemp("chroma-server"))
    server.start()
    try:
        yield "127.0.0.1", server.port
    finally:
        server.stop()
