"""Faults, each provoked for real: a Chroma server stopped mid-session, LLM endpoint faults
test_llm.py does not cover, a broken or locked conversation store, `kill -9` of the bot
mid-answer, and a full disk while indexing.

Every wait has a deadline that only bounds a hung test; nothing asserts on speed.
"""

from __future__ import annotations

import builtins
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from chroma_run import ChromaRun, free_port
from conftest import (
    OTHER_ARTICLES,
    SEED,
    chroma_process_at,
    make_settings,
    newsdesk,
)
from fakes.openai_server import Error, FakeOpenAI, Hang, Reply
from fakes.telegram_server import FakeTelegram
from rich.console import Console
from test_cli import cli_env
from test_ingest import close_embedded
from test_llm import GOOD, QUESTION, collect, llm_settings

import bot.repl
from index.answer import Answerer
from index.embed import LocalEmbedder
from index.engine import build_chat_engine
from index.history import FILE_NAME, History
from index.ingest import index_paths
from index.settings import Settings
from index.store import Store, StoreError

HANG_GUARD = 30.0  # seconds: only catches a hang, not a slow answer
SEED_QUESTION = "What did Pakistan and Azerbaijan agree about defence hardware?"
SEED_QUOTE = "joint sale of defense hardware"


# --- Chroma server stopped mid-session --------------------------------------------------------


@pytest.fixture
def chroma_process(tmp_path: Path) -> Iterator[ChromaRun]:
    path = tmp_path / "chroma-server"
    path.mkdir()
    with chroma_process_at(path) as server:
        yield server


def scripted_input(steps: list[str | Callable[[], None]]) -> Callable[..., str]:
    """``input`` for the REPL: callables run (between questions), strings are typed, then EOF."""
    pending = list(steps)

    def fake_input(prompt: str = "") -> str:
        while pending:
            step = pending.pop(0)
            if callable(step):
                step()
            else:
                return step
        raise EOFError

    return fake_input


@pytest.mark.server
def test_chroma_server_stopped_mid_session(
    tmp_path: Path,
    chroma_process: ChromaRun,
    embedder: LocalEmbedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(SEED, corpus / SEED.name)
    (corpus / "other.jsonl").write_text(OTHER_ARTICLES, encoding="utf-8")
    settings = make_settings(tmp_path, chroma_host="127.0.0.1", chroma_port=chroma_process.port)
    assert index_paths([corpus], settings, embedder=embedder).added == 4

    answerer = Answerer(settings, embedder=embedder)
    assert SEED_QUOTE in answerer.ask(SEED_QUESTION).text

    # The REPL, in this process, across a stop and a restart of the server.
    unavailable: list[str] = []

    def stop_and_check() -> None:
        chroma_process.stop()
        started = time.monotonic()
        with pytest.raises(StoreError) as caught:
            answerer.ask(SEED_QUESTION)
        assert time.monotonic() - started < HANG_GUARD
        unavailable.append(str(caught.value))
        with pytest.raises(StoreError, match="index unavailable"):  # a new client, too
            Store(settings)

    console = Console(record=True, width=200, highlight=False, soft_wrap=True)
    monkeypatch.setattr(
        bot.repl,
        "build_chat_engine",
        lambda s, conversation: build_chat_engine(s, conversation, embedder=embedder),
    )
    monkeypatch.setattr(
        builtins,
        "input",
        scripted_input(
            [
                SEED_QUESTION,
                stop_and_check,
                "Why did rail workers walk out?",
                "/help",
                chroma_process.start,
                "Why did rail workers walk out?",
            ]
        ),
    )
    bot.repl.run(settings, console=console, interactive=False)

    [message] = unavailable
    assert message.startswith("index unavailable") and "\n" not in message
    lines = [line for line in console.export_text().splitlines() if line.strip()]
    errors = [line for line in lines if "index unavailable" in line]
    assert len(errors) == 1 and errors[0].startswith("index unavailable"), lines
    assert not any("Traceback" in line or "went wrong" in line for line in lines)
    after = lines[lines.index(errors[0]) + 1 :]
    assert any("/sources" in line for line in after)  # /help still worked while down
    assert sum(SEED_QUOTE in line for line in lines) == 1
    assert any("walked out on Friday" in line for line in after)  # answered after restart

    # The same Answerer object recovers without a restart.
    assert SEED_QUOTE in answerer.ask(SEED_QUESTION).text


# --- LLM endpoint faults that test_llm.py leaves out --------------------------------------------


def refused_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"


@pytest.mark.parametrize(
    ("streaming", "faults", "note"),
    [
        # A server asking for a long wait must not hold the answer for that long.
        (False, [Error(429, headers={"retry-after": "100"})] * 2, "HTTP 429 after 1 retry"),
        (
            False,
            [Error(429, headers={"retry-after": "Wed, 21 Oct 2099 07:28:00 GMT"})] * 2,
            "HTTP 429",
        ),
        (True, [Error(429, headers={"retry-after": "100"})] * 2, "LLM unavailable"),
        (True, [Error(500)] * 2, "HTTP 500 after 1 retry"),
        (True, None, "connection refused"),
    ],
    ids=[
        "chat-429-retry-after",
        "chat-429-retry-date",
        "stream-429",
        "stream-500",
        "stream-refused",
    ],
)
def test_llm_faults_fall_back_in_bounded_time(
    tmp_path: Path,
    seeded: Settings,
    embedder: LocalEmbedder,
    fake_openai: FakeOpenAI,
    streaming: bool,
    faults: list | None,
    note: str,
) -> None:
    url = fake_openai.base_url if faults else refused_url()
    settings = llm_settings(tmp_path, seeded, url, llm_timeout=2)
    answerer = Answerer(settings, embedder=embedder)
    if faults:
        fake_openai.script(*faults, Reply(GOOD))
    started = time.monotonic()
    answer = collect(answerer, QUESTION)[-1] if streaming else answerer.ask(QUESTION)
    elapsed = time.monotonic() - started

    assert elapsed < HANG_GUARD
    assert answer.mode == "offline" and answer.citations and not answer.refused
    assert note in answer.note and "offline answer shown" in answer.note
    if faults:
        assert len(fake_openai.chat_requests) <= 2  # one retry at most, then the fallback


# --- broken or locked conversation store -------------------------------------------------------


def test_garbage_conversation_store_is_recreated(
    seeded: Settings, embedder: LocalEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    path = seeded.data_dir / FILE_NAME
    path.write_bytes(b"this is not a database \x00\xff" * 500)
    caplog.set_level("WARNING")
    answerer = Answerer(seeded, embedder=embedder)
    answer = answerer.ask(SEED_QUESTION, "tg:1")
    assert SEED_QUOTE in answer.text
    follow_up = answerer.ask("and what about energy?", "tg:1")  # history works again
    assert "energy" in follow_up.text.lower()

    assert any("unusable" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    assert list(seeded.data_dir.glob(f"{FILE_NAME}.broken-*"))
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM turns").fetchone()[0] == 2


def test_locked_conversation_store_still_answers(
    seeded: Settings, embedder: LocalEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    path = seeded.data_dir / FILE_NAME
    History(path).close()  # a valid store...
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("PRAGMA locking_mode = EXCLUSIVE")  # ...that another process holds
    locker.execute("BEGIN EXCLUSIVE")
    locker.execute(
        "INSERT INTO turns (conversation, question, standalone, answer, citations,"
        " refused, created) VALUES ('x', 'q', 'q', 'a', '[]', 0, 0)"
    )
    caplog.set_level("WARNING")
    try:
        history = History(path, busy_timeout_ms=200)
        answerer = Answerer(seeded, embedder=embedder, history=history)
        started = time.monotonic()
        answer = answerer.ask(SEED_QUESTION, "tg:2")
        assert time.monotonic() - started < HANG_GUARD
        assert SEED_QUOTE in answer.text and not answer.refused
        assert any("history" in r.getMessage() for r in caplog.records)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    # Released: the same Answerer stores the next turn again, and the file was kept.
    answerer.ask(SEED_QUESTION, "tg:2")
    assert len(history.turns("tg:2")) == 1  # the turn asked under the lock was dropped
    assert not list(seeded.data_dir.glob(f"{FILE_NAME}.broken-*"))


# --- kill -9 of the bot mid-answer ----------------------------------------------------------------

TOKEN = "123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"  # shaped like a BotFather token
TOKEN_SECRET = TOKEN.partition(":")[2]
API_KEY = "sk-test-SECRET123"
SECOND = "What did Pakistan and Azerbaijan agree about energy?"
WAIT = 90.0


class BotProcess:
    """`newsdesk telegram` in a subprocess, its output in a file."""

    def __init__(self, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "telegram"],
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_until(self, predicate: Callable[[], Any], what: str) -> Any:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if self.proc.poll() is not None:
                pytest.fail(
                    f"the bot exited ({self.proc.returncode}) waiting for {what}: "
                    f"{self.log.read_text(errors='replace')[-3000:]}"
                )
            time.sleep(0.05)
        pytest.fail(f"timed out waiting for {what}: {self.log.read_text(errors='replace')[-3000:]}")

    def kill(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


def polling_started(tg: FakeTelegram, before: int) -> Callable[[], bool]:
    return lambda: len(tg.calls_to("getUpdates")) > before


def integrity(path: Path) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def test_kill_9_mid_answer_corrupts_nothing(
    tmp_path: Path, seeded: Settings, fake_openai: FakeOpenAI
) -> None:
    chat = 4711
    with FakeTelegram(token=TOKEN) as tg:
        env = cli_env(
            seeded.data_dir,
            seeded.corpus_dir,
            TELEGRAM_BOT_TOKEN=TOKEN,
            NEWSDESK_TELEGRAM_API_URL=tg.url,
            OPENAI_API_KEY=API_KEY,
            OPENAI_BASE_URL=fake_openai.base_url,
            NEWSDESK_LLM_MODEL="fake-model",
            NEWSDESK_LLM_TIMEOUT="60",
            NEWSDESK_LOG_LEVEL="DEBUG",
            NEWSDESK_EMBED_THREADS="1",
        )
        logs = [tmp_path / "bot1.log", tmp_path / "bot2.log"]

        # First run: one full answer (a history write), then a second question whose LLM
        # call hangs: the bot is killed in the middle of answering it.
        fake_openai.script(Reply(GOOD), Hang())
        bot = BotProcess(env, tmp_path, logs[0])
        try:
            bot.wait_until(polling_started(tg, 0), "polling")
            tg.send_text(chat, chat, QUESTION)
            bot.wait_until(lambda: "Sources" in "".join(tg.texts(chat)), "the first answer")
            actions = len(tg.calls_to("sendChatAction"))
            tg.send_text(chat, chat, SECOND)  # not a follow-up: the hang is in the answer itself
            # Mid-answer: the answer's LLM call hangs, and a hung answer is never done before
            # TYPING_DELAY, so "typing…" shows as well.
            bot.wait_until(lambda: len(fake_openai.chat_requests) >= 2, "the hanging LLM call")
            assert fake_openai.chat_requests[1]["json"].get("stream") is True  # the answer's
            bot.wait_until(lambda: len(tg.calls_to("sendChatAction")) > actions, "typing")
            assert bot.kill() == -signal.SIGKILL
        finally:
            bot.stop()
        assert len(tg.messages(chat)) == 1  # the second answer never went out

        # Nothing is corrupted: both SQLite files check out, the store opens and counts.
        conversations = seeded.data_dir / FILE_NAME
        assert integrity(conversations) == "ok"
        assert integrity(seeded.chroma_dir / "chroma.sqlite3") == "ok"
        with History(conversations) as history:
            # The answered turn is there; the one killed mid-answer left nothing behind.
            assert [t.question for t in history.turns(f"tg:{chat}")] == [QUESTION]
        store = Store(seeded)
        assert store.stats()["articles"] == 4 and not store.state().dirty
        close_embedded(store)
        status = newsdesk("status", "--json", env=env, cwd=tmp_path, timeout=120)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["articles"] == 4

        # Restarted, the bot answers a new question.
        fake_openai.script(Reply(GOOD))
        polls = len(tg.calls_to("getUpdates"))
        bot = BotProcess(env, tmp_path, logs[1])
        try:
            # Polling starts after the start-up's drop of pending updates: nothing is lost.
            bot.wait_until(polling_started(tg, polls), "polling after the restart")
            tg.send_text(chat, chat, QUESTION)
            bot.wait_until(lambda: len(tg.messages(chat)) >= 2, "an answer after the restart")
            bot.wait_until(lambda: "Sources" in tg.texts(chat)[-1], "the final answer")
        finally:
            bot.stop()
        assert "defence hardware" in tg.texts(chat)[-1]

    # Neither the bot token nor the API key ever reached the logs (at DEBUG).
    for log in logs:
        text = log.read_text(errors="replace")
        assert text.strip(), f"{log.name} is empty: nothing was checked"
        assert TOKEN_SECRET not in text and API_KEY not in text, log.name


# --- disk full while indexing -------------------------------------------------------------------

# The CLI with a file size limit: writes past it fail (EFBIG) instead of killing the process.
LIMITED_CLI = """
import resource, signal, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
from bot.cli import main
sys.argv = ["newsdesk", *sys.argv[2:]]
main()
"""
FULL_ARTICLES = 40


def test_disk_full_while_indexing(
    tmp_path: Path, seeded: Settings, embedder: LocalEmbedder
) -> None:
    feed = tmp_path / "feed.jsonl"
    rows = [
        {
            "url": f"https://example.org/full/{i}",
            "title": f"Council story {i}",
            "source": "example.org",
            "published": "2022-05-01",
            "text": f"Story {i}: the regional council of district {i} debated budget line "
            f"{i * 13} and the harbour plan for hours. Members of district {i} voted on "
            f"amendment {i * 7} late in the evening.",
        }
        for i in range(FULL_ARTICLES)
    ]
    feed.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    store = Store(seeded)
    before = store.stats()
    close_embedded(store)  # the subprocess owns the store meanwhile
    biggest = max(p.stat().st_size for p in seeded.data_dir.rglob("*") if p.is_file())

    env = cli_env(seeded.data_dir, seeded.corpus_dir)
    proc = subprocess.run(
        [sys.executable, "-c", LIMITED_CLI, str(biggest + 300_000), "index", str(feed)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stderr.startswith("newsdesk: cannot write the index"), proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr

    # The previous index still answers.
    answer = Answerer(seeded, embedder=embedder).ask(SEED_QUESTION)
    assert SEED_QUOTE in answer.text and not answer.refused
    assert Store(seeded).stats()["articles"] == before["articles"]

    # A normal re-run repairs and converges, exactly.
    summary = index_paths([feed], seeded, embedder=embedder)
    assert (summary.failed, summary.removed) == (0, 0)
    assert summary.added + summary.updated + summary.unchanged == FULL_ARTICLES
    assert summary.added >= 1
    again = index_paths([feed], seeded, embedder=embedder)
    assert (again.added, again.updated, again.unchanged, again.chunks) == (0, 0, FULL_ARTICLES, 0)
    store = Store(seeded)
    stats = store.stats()
    assert stats["articles"] == before["articles"] + FULL_ARTICLES
    assert stats["chunks"] == before["chunks"] + FULL_ARTICLES  # one chunk each
    assert not store.state().dirty
    close_embedded(store)
