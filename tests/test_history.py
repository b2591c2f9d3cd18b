"""Conversation history: order, bounds, persistence, and surviving broken or busy files."""

from __future__ import annotations

import logging
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from index.history import (
    FILE_NAME,
    MAX_ANSWER_CHARS,
    MAX_QUESTION_CHARS,
    SCHEMA_VERSION,
    History,
    Turn,
    open_history,
)
from index.models import Citation
from index.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent


def turn(i: int, citations: list[Citation] | None = None) -> Turn:
    return Turn(
        question=f"q{i}",
        standalone=f"standalone q{i}",
        answer=f"answer {i} [1]",
        citations=citations or [],
        refused=False,
        created=1_700_000_000.0 + i,
    )


def questions(turns: list[Turn]) -> list[str]:
    return [t.question for t in turns]


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "index.history" and r.levelno == logging.WARNING
    ]


def broken_files(db: Path) -> list[Path]:
    return sorted(p for p in db.parent.iterdir() if p.name.startswith(f"{db.name}.broken-"))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / FILE_NAME


# --- basics ------------------------------------------------------------------------------------


def test_add_and_turns_oldest_first(db: Path) -> None:
    with History(db) as history:
        for i in range(4):
            history.add("repl", turn(i))
        assert questions(history.turns("repl")) == ["q0", "q1", "q2", "q3"]
        assert questions(history.turns("repl", limit=2)) == ["q2", "q3"]
        assert history.turns("repl", limit=0) == []
        last = history.last("repl")
        assert last is not None and last.question == "q3"
        assert history.turns("tg:nobody") == []
        assert history.last("tg:nobody") is None


def test_bound_per_conversation(db: Path) -> None:
    with History(db, max_turns=3) as history:
        for i in range(7):
            history.add("tg:123", turn(i))
        history.add("tg:456", turn(100))
        assert questions(history.turns("tg:123")) == ["q4", "q5", "q6"]
        assert questions(history.turns("tg:456")) == ["q100"]
    with sqlite3.connect(db) as raw:
        rows = raw.execute("SELECT conversation, count(*) FROM turns GROUP BY 1").fetchall()
    assert dict(rows) == {"tg:123": 3, "tg:456": 1}


def test_long_texts_are_capped(db: Path) -> None:
    with History(db) as history:
        long = Turn("?" * 100_000, "s" * 100_000, "a" * 100_000, [], False, 1.0)
        history.add("repl", long)
        stored = history.last("repl")
    assert stored is not None
    assert len(stored.question) == len(stored.standalone) == MAX_QUESTION_CHARS
    assert len(stored.answer) == MAX_ANSWER_CHARS


def test_reset_is_per_conversation(db: Path) -> None:
    ids = ["repl", "tg:123", "tg:-100123:thread:7", "tg:-100123:thread:8"]
    with History(db) as history:
        for n, conversation in enumerate(ids):
            history.add(conversation, turn(n))
            history.add(conversation, turn(n + 10))
        history.reset("tg:-100123:thread:7")
        assert history.turns("tg:-100123:thread:7") == []
        assert history.last("tg:-100123:thread:7") is None
        for n, conversation in enumerate(ids):
            if conversation != "tg:-100123:thread:7":
                assert questions(history.turns(conversation)) == [f"q{n}", f"q{n + 10}"]
        history.add("tg:-100123:thread:7", turn(99))  # a reset conversation starts again
        assert questions(history.turns("tg:-100123:thread:7")) == ["q99"]


def test_survives_reopen(db: Path) -> None:
    with History(db) as history:
        history.add("repl", turn(1))
        history.add("tg:1", turn(2))
    with History(db) as history:
        assert questions(history.turns("repl")) == ["q1"]
        history.add("repl", turn(3))
    with History(db) as history:
        assert questions(history.turns("repl")) == ["q1", "q3"]
        assert questions(history.turns("tg:1")) == ["q2"]
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_citations_round_trip_exactly(db: Path) -> None:
    citations = [
        Citation(
            n=1,
            title='Zölle: "Einigung" in Brüssel',
            source="Reuters",
            published="2024-05-01",
            url="https://example.com/a?b=1&c=2",
            quote="Line one.\nLine two — with “quotes” and emoji 📰.",
            article_id="abc123",
        ),
        Citation(n=2, title="", source="", published="", url="", quote=""),
    ]
    original = Turn(
        question="what happened?",
        standalone="what happened in Brussels on tariffs?",
        answer="They agreed [1], reportedly [2].",
        citations=citations,
        refused=True,
        created=1_714_567_890.123456,
    )
    with History(db) as history:
        history.add("tg:-100123:thread:7", original)
    with History(db) as history:
        assert history.last("tg:-100123:thread:7") == original


def test_see_also_round_trips_beside_citations(db: Path) -> None:
    # "tell me more about [2]" after a refusal needs the near misses it listed.
    near = [Citation(n=i, title=f"t{i}", source="", published="", url="", quote="",
                     article_id=f"a{i}") for i in (1, 2)]  # fmt: skip
    refused = Turn("q", "q", "refused", [], refused=True, created=1.0, see_also=near)
    with History(db) as history:
        history.add("c", refused)
        history.add("d", turn(1, near[:1]))
        assert history.last("c") == refused
        assert history.last("d").see_also == [] and history.last("d").citations == near[:1]


def test_open_history_uses_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", history_turns=2)
    with open_history(settings) as history:
        for i in range(3):
            history.add("repl", turn(i))
        assert questions(history.turns("repl")) == ["q1", "q2"]
    assert (tmp_path / "data" / FILE_NAME).is_file()


def test_closed_history_does_not_raise(db: Path) -> None:
    history = History(db)
    history.close()
    history.add("repl", turn(1))
    assert history.turns("repl") == []
    assert history.last("repl") is None
    history.close()


# --- broken files ------------------------------------------------------------------------------


def test_garbage_file_is_moved_aside_and_recreated(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    garbage = b"this is not a database\x00\xff" * 500
    db.write_bytes(garbage)
    with caplog.at_level(logging.WARNING, logger="index.history"), History(db) as history:
        history.add("repl", turn(1))
        assert questions(history.turns("repl")) == ["q1"]
    assert any("moved it to" in message for message in warnings(caplog))
    [aside] = broken_files(db)
    assert aside.read_bytes() == garbage
    with History(db) as history:  # the new file is a good one
        assert questions(history.turns("repl")) == ["q1"]
    assert broken_files(db) == [aside]


def test_malformed_file_is_moved_aside(db: Path, caplog: pytest.LogCaptureFixture) -> None:
    with History(db, max_turns=1000) as history:
        for i in range(300):
            history.add(f"tg:{i % 7}", turn(i))
    page_size = 4096
    data = bytearray(db.read_bytes())
    assert len(data) > 4 * page_size
    data[page_size : len(data) - page_size] = b"\xa5" * (len(data) - 2 * page_size)
    db.write_bytes(bytes(data))  # header page intact, b-tree pages overwritten
    with caplog.at_level(logging.WARNING, logger="index.history"), History(db) as history:
        assert warnings(caplog)
        assert broken_files(db)
        history.add("repl", turn(1))
        assert questions(history.turns("repl")) == ["q1"]
        assert history.turns("tg:0") == []


@pytest.mark.parametrize(
    "setup",
    [
        "PRAGMA user_version = 99; CREATE TABLE turns (conversation TEXT)",
        f"PRAGMA user_version = {SCHEMA_VERSION}; CREATE TABLE turns (conversation TEXT, x)",
        f"PRAGMA user_version = {SCHEMA_VERSION}",  # no table at all
        "CREATE TABLE someone_elses (x)",  # unversioned, not ours
    ],
)
def test_unusable_schema_is_moved_aside(
    db: Path, setup: str, caplog: pytest.LogCaptureFixture
) -> None:
    with sqlite3.connect(db) as raw:
        raw.executescript(setup)
    raw.close()
    with caplog.at_level(logging.WARNING, logger="index.history"), History(db) as history:
        history.add("repl", turn(1))
        assert questions(history.turns("repl")) == ["q1"]
    assert any("moved it to" in message for message in warnings(caplog))
    assert len(broken_files(db)) == 1


# --- locks and concurrency ---------------------------------------------------------------------


def test_locked_database_drops_the_write_then_recovers(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    history = History(db, busy_timeout_ms=50)
    history.add("repl", turn(1))
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with caplog.at_level(logging.WARNING, logger="index.history"):
            history.add("repl", turn(2))  # must not raise
            history.reset("repl")  # nor this
        assert len(warnings(caplog)) == 2
        assert questions(history.turns("repl")) == ["q1"]  # WAL: reads go on
    finally:
        other.rollback()
        other.close()
    history.add("repl", turn(3))
    assert questions(history.turns("repl")) == ["q1", "q3"]
    history.close()


def test_locked_while_opening_then_recovers(db: Path, caplog: pytest.LogCaptureFixture) -> None:
    other = sqlite3.connect(db, isolation_level=None)  # a brand-new file, held exclusively
    other.execute("BEGIN EXCLUSIVE")
    try:
        with caplog.at_level(logging.WARNING, logger="index.history"):
            history = History(db, busy_timeout_ms=50)  # must not raise
            history.add("repl", turn(1))
            assert history.turns("repl") == []
        assert warnings(caplog)
        assert broken_files(db) == []  # busy is not broken
    finally:
        other.rollback()
        other.close()
    history.add("repl", turn(2))
    assert questions(history.turns("repl")) == ["q2"]
    history.close()


def test_concurrent_writers_from_threads(db: Path, caplog: pytest.LogCaptureFixture) -> None:
    shared = History(db, max_turns=1000)
    own = [History(db, max_turns=1000) for _ in range(3)]  # separate connections, same file
    per_thread = 40
    errors: list[BaseException] = []

    def work(history: History, conversation: str) -> None:
        try:
            for i in range(per_thread):
                history.add(conversation, turn(i))
                history.turns(conversation, limit=3)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    jobs = [(shared, f"tg:{n}") for n in range(5)] + [(h, f"own:{n}") for n, h in enumerate(own)]
    jobs.append((shared, "repl"))
    jobs.append((own[0], "repl"))  # two writers in one conversation
    with caplog.at_level(logging.WARNING, logger="index.history"):
        threads = [threading.Thread(target=work, args=job) for job in jobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert warnings(caplog) == []
    expected = [f"q{i}" for i in range(per_thread)]
    for _, conversation in jobs:
        if conversation != "repl":
            assert questions(shared.turns(conversation)) == expected
    both = questions(shared.turns("repl"))
    assert sorted(both) == sorted(expected * 2)
    for history in [shared, *own]:
        history.close()


_WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[2])
    from index.history import History, Turn
    from index.models import Citation

    history = History(sys.argv[1], max_turns=5)
    i = 0
    while True:
        cites = [Citation(n, f"t{i}", "s", "2024-01-01", f"u{i}", f"quote {i} " * 300, f"id{i}")
                 for n in range(1, i % 4 + 2)]
        history.add(f"tg:{i % 3}", Turn(f"q{i}", f"s{i}", f"a{i} " * 2000, cites, i % 2 == 1, i))
        if i % 5 == 0:
            history.reset(f"tg:{(i + 1) % 3}")
        print(i, flush=True)
        i += 1
    """
)


@pytest.mark.parametrize("writes_before_kill", [1, 37, 150])
def test_sigkill_mid_write_leaves_consistent_file(db: Path, writes_before_kill: int) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(db), str(REPO_ROOT)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        for _ in range(writes_before_kill):
            assert child.stdout.readline(), "writer died"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL

    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()
    with History(db, max_turns=5) as history:
        newest = -1
        for c in range(3):
            turns = history.turns(f"tg:{c}")
            assert len(turns) <= 5
            for t in turns:  # every stored turn is whole
                i = int(t.created)
                newest = max(newest, i)
                assert i % 3 == c
                assert (t.question, t.standalone, t.refused) == (f"q{i}", f"s{i}", i % 2 == 1)
                assert t.answer == f"a{i} " * 2000
                assert [x.n for x in t.citations] == list(range(1, i % 4 + 2))
                assert all(x.quote == f"quote {i} " * 300 for x in t.citations)
                assert all(
                    (x.title, x.url, x.article_id) == (f"t{i}", f"u{i}", f"id{i}")
                    for x in t.citations
                )
            assert [int(t.created) for t in turns] == sorted(int(t.created) for t in turns)
        assert newest >= writes_before_kill - 1  # acknowledged writes are kept
        history.add("repl", turn(1))  # and it is writable
        assert questions(history.turns("repl")) == ["q1"]
