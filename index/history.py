"""Conversation history in one SQLite file, shared by the REPL and the bot workers.

Each conversation ("repl", "tg:123", "tg:-100123:thread:7") keeps its newest ``max_turns``
turns. The file is opened in WAL mode with a busy timeout and every write is one short
transaction, so several processes can share it and a crash (even ``kill -9``) mid-write
leaves it consistent. History must never break the chat: a locked database drops the write,
a failed read returns nothing (both with a warning), and a corrupt file or unusable schema
is moved aside to ``<name>.broken-<timestamp>`` and recreated.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .models import Citation
from .settings import Settings

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
FILE_NAME = "conversations.sqlite3"
MAX_QUESTION_CHARS = 4_000
MAX_ANSWER_CHARS = 20_000
MAX_CITATIONS = 50
MAX_CITATION_FIELD_CHARS = 4_000  # per string field of a citation (the quote, mostly)

_SCHEMA = """
CREATE TABLE turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation TEXT NOT NULL,
    question TEXT NOT NULL,
    standalone TEXT NOT NULL,
    answer TEXT NOT NULL,
    citations TEXT NOT NULL,  -- JSON list of Citation fields (+ "see_also": true for near misses)
    refused INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX turns_by_conversation ON turns (conversation, id);
"""
_INSERT = (
    "INSERT INTO turns (conversation, question, standalone, answer, citations, refused, created)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_TRIM = (  # everything but the newest N turns of one conversation
    "DELETE FROM turns WHERE conversation = ? AND id <= "
    "(SELECT id FROM turns WHERE conversation = ? ORDER BY id DESC LIMIT 1 OFFSET ?)"
)
_SELECT = (  # newest first; the caller reverses
    "SELECT question, standalone, answer, citations, refused, created FROM turns"
    " WHERE conversation = ? ORDER BY id DESC LIMIT ?"
)
_COLUMNS = ("question", "standalone", "answer", "citations", "refused", "created")
_CITATION_FIELDS = {f.name for f in fields(Citation)}
_CORRUPTION_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB (primary result codes)


@dataclass
class Turn:
    question: str  # as the user asked it
    standalone: str  # after follow-up resolution: what was retrieved for
    answer: str  # answer text with [n] markers
    citations: list[Citation] = field(default_factory=list)
    refused: bool = False
    created: float = field(default_factory=time.time)  # unix time
    see_also: list[Citation] = field(default_factory=list)  # listed beside a refusal


class _Unusable(Exception):
    """The file is a database, but not one this module can use."""


def _is_corruption(exc: BaseException) -> bool:
    if isinstance(exc, _Unusable):
        return True
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in _CORRUPTION_CODES
    message = str(exc).lower()
    return "not a database" in message or "malformed" in message


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]


def _encode_citations(citations: list[Citation], see_also: list[Citation]) -> str:
    """One JSON list; near misses carry ``"see_also": true`` (so "tell me more about [2]"
    works after a refusal), which older rows simply lack."""
    listed = [(c, False) for c in citations] + [(c, True) for c in see_also]
    clipped = [
        {
            **{
                key: _clip(value, MAX_CITATION_FIELD_CHARS) if isinstance(value, str) else value
                for key, value in asdict(citation).items()
            },
            **({"see_also": True} if near_miss else {}),
        }
        for citation, near_miss in listed[:MAX_CITATIONS]
    ]
    return json.dumps(clipped, ensure_ascii=False)


def _decode_citations(text: str) -> tuple[list[Citation], list[Citation]]:
    cited: list[Citation] = []
    see_also: list[Citation] = []
    for item in json.loads(text):
        citation = Citation(**{k: v for k, v in item.items() if k in _CITATION_FIELDS})
        (see_also if item.get("see_also") else cited).append(citation)
    return cited, see_also


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


class History:
    """Per-conversation turns; one connection per object, safe to share between threads."""

    def __init__(self, path: Path, max_turns: int = 10, busy_timeout_ms: int = 5000) -> None:
        self.path = Path(path)
        self.max_turns = max(1, max_turns)
        self.busy_timeout_ms = max(0, busy_timeout_ms)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        with self._lock:
            self._connection()

    # --- public API ----------------------------------------------------------------------------

    def add(self, conversation_id: str, turn: Turn) -> None:
        """Store a turn and drop the conversation's turns beyond ``max_turns``."""
        row = (
            conversation_id,
            _clip(turn.question, MAX_QUESTION_CHARS),
            _clip(turn.standalone, MAX_QUESTION_CHARS),
            _clip(turn.answer, MAX_ANSWER_CHARS),
            _encode_citations(turn.citations, turn.see_also),
            int(turn.refused),
            float(turn.created),
        )
        trim = (conversation_id, conversation_id, self.max_turns)
        self._write("add", conversation_id, (_INSERT, row), (_TRIM, trim))

    def turns(self, conversation_id: str, limit: int | None = None) -> list[Turn]:
        """The newest ``limit`` turns (all kept ones when None), oldest first."""
        if limit is not None and limit <= 0:
            return []
        with self._lock:
            conn = self._connection()
            if conn is None:
                log.warning(
                    "conversation history unavailable; no turns read for %r", conversation_id
                )
                return []
            try:
                rows = conn.execute(
                    _SELECT, (conversation_id, -1 if limit is None else limit)
                ).fetchall()
                turns = []
                for q, s, a, c, r, t in rows:
                    cited, see_also = _decode_citations(c)
                    turns.append(Turn(q, s, a, cited, bool(r), float(t), see_also))
            except (sqlite3.Error, ValueError, TypeError, AttributeError) as exc:
                self._failed("read", conversation_id, exc)
                return []
        turns.reverse()
        return turns

    def last(self, conversation_id: str) -> Turn | None:
        turns = self.turns(conversation_id, limit=1)
        return turns[0] if turns else None

    def reset(self, conversation_id: str) -> None:
        """Forget one conversation; the others are untouched."""
        self._write(
            "reset",
            conversation_id,
            ("DELETE FROM turns WHERE conversation = ?", (conversation_id,)),
        )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- internals -----------------------------------------------------------------------------

    def _write(self, what: str, conversation_id: str, *statements: tuple[str, tuple]) -> None:
        """Run the statements in one short transaction; on failure, warn and drop the write."""
        with self._lock:
            conn = self._connection()
            if conn is None:
                log.warning(
                    "conversation history unavailable; %s dropped for %r", what, conversation_id
                )
                return
            try:
                with conn:  # commits, or rolls back on error
                    conn.execute("BEGIN IMMEDIATE")  # take the write lock now (waits busy_timeout)
                    for sql, params in statements:
                        conn.execute(sql, params)
            except sqlite3.Error as exc:
                self._failed(what, conversation_id, exc)

    def _failed(self, what: str, conversation_id: str, exc: BaseException) -> None:
        log.warning(
            "conversation history %s failed for %r, going on without it: %s",
            what,
            conversation_id,
            exc,
        )
        if _is_corruption(exc) and self._conn is not None:
            # Reopen next time: that checks the file and moves it aside if it is broken.
            self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection | None:
        """The open connection, opening (and if need be recreating) the file first."""
        if self._conn is None and not self._closed:
            try:
                self._conn = self._open()
            except (sqlite3.Error, _Unusable, OSError) as exc:
                log.warning("cannot open conversation history %s (will retry): %s", self.path, exc)
        return self._conn

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        inode = _inode(self.path)
        try:
            return self._connect()
        except (sqlite3.DatabaseError, _Unusable) as exc:
            if not _is_corruption(exc):
                raise  # locked, unreadable, ...: not the file's fault, so keep it
            self._move_aside(inode, exc)
        return self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout_ms / 1000,
            isolation_level=None,  # autocommit; writes use explicit BEGIN IMMEDIATE
            check_same_thread=False,  # shared between threads, guarded by self._lock
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # in WAL mode: safe against crashes
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise _Unusable(f"integrity check failed: {check}")
            self._ensure_schema(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _ensure_schema(conn: sqlite3.Connection) -> None:
        if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                # Re-read under the write lock: another process may have just created it.
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
                if version == 0 and tables:
                    raise _Unusable("unversioned database that is not ours")
                if version == 0:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise _Unusable(f"schema version {version}, expected {SCHEMA_VERSION}")
        columns = {row[1] for row in conn.execute("PRAGMA table_info(turns)")}
        missing = [c for c in ("conversation", *_COLUMNS) if c not in columns]
        if missing:
            raise _Unusable(f"table turns lacks {', '.join(missing)}")

    def _move_aside(self, inode: int | None, reason: BaseException) -> None:
        """Rename the broken file (with its -wal/-shm) so a fresh one can be created."""
        if _inode(self.path) != inode:
            return  # another process already replaced it
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.path.with_name(f"{self.path.name}.broken-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = self.path.with_name(f"{self.path.name}.broken-{stamp}-{n}")
        log.warning(
            "conversation history %s is unusable (%s); moved it to %s and starting afresh",
            self.path,
            reason,
            target.name,
        )
        os.replace(self.path, target)
        for suffix in ("-wal", "-shm"):  # a stale WAL must not be replayed into the new file
            side = Path(f"{self.path}{suffix}")
            if side.exists():
                os.replace(side, Path(f"{target}{suffix}"))


def open_history(settings: Settings) -> History:
    """The shared history file in ``settings.data_dir``, keeping ``history_turns`` per chat."""
    return History(settings.data_dir / FILE_NAME, max_turns=settings.history_turns)
