"""Follows, alert queues and digest schedules of chats, in one SQLite file next to the history.

A chat is a Telegram chat (and forum thread, 0 for none); the REPL uses chat 0. Every write
is one short transaction in WAL mode, so the bot and a separate ``watch`` process can share
the file, and a crash between queueing an alert and sending it loses nothing: alerts are
queued first and marked sent one by one.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from index.settings import Settings

FILE_NAME = "follows.sqlite3"
MAX_TOPIC_CHARS = 200
CHECKED_MARK = "alerts_checked_until"  # indexed_at of the newest article already checked

_SCHEMA = """
CREATE TABLE IF NOT EXISTS follows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id INTEGER NOT NULL, thread_id INTEGER NOT NULL, user_id INTEGER NOT NULL,
    topic TEXT NOT NULL, created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS follows_by_chat ON follows (chat_id, thread_id, id);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id INTEGER NOT NULL, thread_id INTEGER NOT NULL, user_id INTEGER NOT NULL,
    follow_id INTEGER NOT NULL, topic TEXT NOT NULL,
    article_id TEXT NOT NULL, story TEXT NOT NULL,
    title TEXT NOT NULL, url TEXT NOT NULL, source TEXT NOT NULL, published TEXT NOT NULL,
    sentence TEXT NOT NULL, queued REAL NOT NULL, sent REAL
);
CREATE INDEX IF NOT EXISTS alerts_by_chat ON alerts (chat_id, thread_id, sent);
CREATE TABLE IF NOT EXISTS digests (
    chat_id INTEGER NOT NULL, thread_id INTEGER NOT NULL, user_id INTEGER NOT NULL,
    daily TEXT, last REAL, PRIMARY KEY (chat_id, thread_id)
);
CREATE TABLE IF NOT EXISTS marks (name TEXT PRIMARY KEY, value REAL NOT NULL);
"""


class FollowError(ValueError):
    """A follow that cannot be saved; ``str()`` tells the user why."""


@dataclass(frozen=True)
class Chat:
    chat_id: int
    thread_id: int = 0


REPL_CHAT = Chat(0)  # Telegram has no chat 0: the bot never sends it anything


@dataclass
class Follow:
    id: int
    chat: Chat
    user_id: int
    topic: str
    created: float


@dataclass
class Alert:
    """One article for one follow, queued until it is sent."""

    chat: Chat
    user_id: int
    follow_id: int
    topic: str
    article_id: str
    story: str  # the story id, or the article id when no story is known
    title: str
    url: str
    source: str
    published: str
    sentence: str
    id: int = 0
    queued: float = 0.0


@dataclass
class DigestPlan:
    chat: Chat
    user_id: int
    daily: str | None  # "HH:MM" in the configured time zone, None when off
    last: float | None  # when the last digest was sent


class FollowStore:
    def __init__(self, settings: Settings, path: Path | None = None) -> None:
        self.path = path or settings.data_dir / FILE_NAME
        self.max_follows = settings.max_follows
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._db.commit()

    def close(self) -> None:
        self._db.close()

    def _run(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock, self._db:
            return self._db.execute(sql, args).fetchall()

    # --- follows ---------------------------------------------------------------------------
    def add(self, chat: Chat, user_id: int, topic: str) -> Follow:
        topic = " ".join(topic.split())
        if not topic:
            raise FollowError("Say what to follow, e.g. /follow Artemis moon rocket launch")
        if len(topic) > MAX_TOPIC_CHARS:
            raise FollowError(f"That topic is too long: at most {MAX_TOPIC_CHARS} characters.")
        current = self.follows(chat)
        if any(f.topic.lower() == topic.lower() for f in current):
            raise FollowError(f"You already follow “{topic}”.")
        if len(current) >= self.max_follows:
            raise FollowError(
                f"You follow {len(current)} topics, the most allowed: /unfollow one first."
            )
        now = time.time()
        with self._lock, self._db:
            cursor = self._db.execute(
                "INSERT INTO follows (chat_id, thread_id, user_id, topic, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (chat.chat_id, chat.thread_id, user_id, topic, now),
            )
            # The first follow starts the checks from now (indexed_at is wall-clock time):
            # the first cycle then reads only new articles, not the whole index.
            self._db.execute("INSERT OR IGNORE INTO marks VALUES (?, ?)", (CHECKED_MARK, now))
        return Follow(int(cursor.lastrowid or 0), chat, user_id, topic, now)

    def follows(self, chat: Chat | None = None) -> list[Follow]:
        """A chat's follows in the order they were made (``/unfollow N`` counts in it)."""
        sql = "SELECT id, chat_id, thread_id, user_id, topic, created FROM follows"
        rows = (
            self._run(
                sql + " WHERE chat_id = ? AND thread_id = ? ORDER BY id",
                (chat.chat_id, chat.thread_id),
            )
            if chat
            else self._run(sql + " ORDER BY id")
        )
        return [Follow(r[0], Chat(r[1], r[2]), r[3], r[4], r[5]) for r in rows]

    def remove(self, chat: Chat, n: int) -> Follow | None:
        """Remove the chat's ``n``-th follow (1-based) and its unsent alerts."""
        current = self.follows(chat)
        if not 1 <= n <= len(current):
            return None
        follow = current[n - 1]
        with self._lock, self._db:
            self._db.execute("DELETE FROM follows WHERE id = ?", (follow.id,))
            self._db.execute(
                "DELETE FROM alerts WHERE follow_id = ? AND sent IS NULL", (follow.id,)
            )
        return follow

    def forget_chat(self, chat_id: int) -> None:
        """The bot was blocked or removed: no follows, alerts or digests for the chat."""
        with self._lock, self._db:
            self._db.execute("DELETE FROM follows WHERE chat_id = ?", (chat_id,))
            self._db.execute("DELETE FROM alerts WHERE chat_id = ? AND sent IS NULL", (chat_id,))
            self._db.execute("DELETE FROM digests WHERE chat_id = ?", (chat_id,))

    # --- alerts ----------------------------------------------------------------------------
    def queue(self, alerts: list[Alert]) -> None:
        now = time.time()
        with self._lock, self._db:
            self._db.executemany(
                "INSERT INTO alerts (chat_id, thread_id, user_id, follow_id, topic, article_id,"
                " story, title, url, source, published, sentence, queued)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (a.chat.chat_id, a.chat.thread_id, a.user_id, a.follow_id, a.topic,
                     a.article_id, a.story, a.title, a.url, a.source, a.published, a.sentence, now)
                    for a in alerts
                ],
            )  # fmt: skip

    def pending(self, chat: Chat | None = None) -> list[Alert]:
        """Queued, unsent alerts (of one chat, or all) whose follow still exists, oldest first."""
        where = " AND a.chat_id = ? AND a.thread_id = ?" if chat else ""
        rows = self._run(
            "SELECT a.chat_id, a.thread_id, a.user_id, a.follow_id, a.topic, a.article_id,"
            " a.story, a.title, a.url, a.source, a.published, a.sentence, a.id, a.queued"
            " FROM alerts a JOIN follows f ON f.id = a.follow_id"
            f" WHERE a.sent IS NULL{where} ORDER BY a.id",
            (chat.chat_id, chat.thread_id) if chat else (),
        )
        return [Alert(Chat(r[0], r[1]), *r[2:]) for r in rows]

    def mark_sent(self, ids: list[int], when: float) -> None:
        with self._lock, self._db:
            self._db.executemany(
                "UPDATE alerts SET sent = ? WHERE id = ?", [(when, i) for i in ids]
            )

    def messages_since(self, chat: Chat, since: float) -> int:
        """Alert messages sent to the chat since ``since`` (a merged message counts once)."""
        rows = self._run(
            "SELECT COUNT(DISTINCT sent) FROM alerts"
            " WHERE chat_id = ? AND thread_id = ? AND sent >= ?",
            (chat.chat_id, chat.thread_id, since),
        )
        return int(rows[0][0])

    def known_stories(self, chat: Chat) -> set[str]:
        """Stories (and articles) already alerted or queued for the chat."""
        rows = self._run(
            "SELECT story, article_id FROM alerts WHERE chat_id = ? AND thread_id = ?",
            (chat.chat_id, chat.thread_id),
        )
        return {key for row in rows for key in row}

    def recent_titles(self, chat: Chat, since: float) -> list[str]:
        """Headlines alerted (or queued) to the chat since ``since``: near-duplicates of
        these are the same story."""
        rows = self._run(
            "SELECT title FROM alerts WHERE chat_id = ? AND thread_id = ? AND queued >= ?",
            (chat.chat_id, chat.thread_id, since),
        )
        return [row[0] for row in rows]

    # --- digests ---------------------------------------------------------------------------
    def digest_plan(self, chat: Chat) -> DigestPlan:
        rows = self._run(
            "SELECT user_id, daily, last FROM digests WHERE chat_id = ? AND thread_id = ?",
            (chat.chat_id, chat.thread_id),
        )
        return DigestPlan(chat, *rows[0]) if rows else DigestPlan(chat, 0, None, None)

    def set_daily(self, chat: Chat, user_id: int, daily: str | None) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO digests (chat_id, thread_id, user_id, daily, last) VALUES (?, ?, ?, ?, NULL)"
                " ON CONFLICT (chat_id, thread_id) DO UPDATE SET daily = excluded.daily,"
                " user_id = excluded.user_id",
                (chat.chat_id, chat.thread_id, user_id, daily),
            )

    def set_last_digest(self, chat: Chat, user_id: int, when: float) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO digests (chat_id, thread_id, user_id, daily, last) VALUES (?, ?, ?, NULL, ?)"
                " ON CONFLICT (chat_id, thread_id) DO UPDATE SET last = excluded.last",
                (chat.chat_id, chat.thread_id, user_id, when),
            )

    def daily_plans(self) -> list[DigestPlan]:
        rows = self._run(
            "SELECT chat_id, thread_id, user_id, daily, last FROM digests WHERE daily IS NOT NULL"
        )
        return [DigestPlan(Chat(r[0], r[1]), r[2], r[3], r[4]) for r in rows]

    # --- marks -----------------------------------------------------------------------------
    def mark(self, name: str, default: float = 0.0) -> float:
        rows = self._run("SELECT value FROM marks WHERE name = ?", (name,))
        return float(rows[0][0]) if rows else default

    def set_mark(self, name: str, value: float) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO marks VALUES (?, ?)", (name, value))
