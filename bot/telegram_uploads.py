"""Admins' corpus work from a chat: /reindex, and article files sent to the bot.

An upload is checked before anything is saved (supported type, size limit before and after
downloading, UTF-8 text that parses into articles), written into the corpus folder atomically
under a safe name, then indexed. One indexing run at a time, off the event loop.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import threading
from pathlib import Path, PurePosixPath
from typing import Any

from telegram import Document

from bot.telegram_format import escape
from index.corpus import SUPPORTED_SUFFIXES, iter_articles
from index.models import Article, IndexSummary, LoadError
from index.settings import Settings


def safe_filename(name: str) -> str:
    """A plain file name for an upload: no folders, no leading dots, no odd characters."""
    base = PurePosixPath(name.replace("\\", "/")).name
    base = re.sub(r"[^\w.-]+", "_", base).strip("._")
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    stem = (stem.strip("._") or "upload")[:100]
    return f"{stem}.{suffix.lower()}" if suffix else stem


def summary_line(s: IndexSummary) -> str:
    return (
        f"added {s.added} · updated {s.updated} · unchanged {s.unchanged} · removed {s.removed}"
        f" · failed {s.failed} · {s.chunks} chunks in {s.seconds:.1f}s"
    )


def reindex_report(summary: IndexSummary) -> str:
    """The /reindex reply: the counts, then the first few problems."""
    text = f"<b>Re-indexed the corpus</b>\n{escape(summary_line(summary))}"
    if summary.errors:
        shown = "\n".join(f"• {escape(_short_error(e))}" for e in summary.errors[:5])
        more = len(summary.errors) - 5
        text += f"\n\nProblems:\n{shown}" + (f"\n… and {more} more" if more > 0 else "")
    return text


class Indexer:
    """Re-indexing and uploads for one bot, sharing the answerer's store and embedder."""

    def __init__(self, settings: Settings, answerer: Any) -> None:
        self.settings = settings
        self.answerer = answerer
        self._lock: asyncio.Lock | None = None
        self.cancelled = threading.Event()

    def cancel(self) -> None:
        """Stop a running index job at its next batch (the process is stopping)."""
        self.cancelled.set()

    def _indexing(self) -> asyncio.Lock:
        # Created lazily: it must belong to the running event loop.
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def reindex(self) -> IndexSummary:
        """The corpus folder and NEWSDESK_FEEDS, one run at a time, off the event loop."""
        from index.refresh import refresh

        settings = self.settings
        retriever = getattr(self.answerer, "retriever", None)
        async with self._indexing():
            cycle = await asyncio.to_thread(
                refresh,
                settings,
                targets=[settings.corpus_dir, *settings.feed_urls],
                store=getattr(retriever, "store", None),
                embedder=getattr(retriever, "embedder", None),
            )
        _refresh_keyword_index(self.answerer)
        return cycle.summary or IndexSummary(errors=[cycle.skipped])

    async def upload(self, document: Document, bot: Any) -> str:
        """Validate an uploaded article file, save it into the corpus, index; say what happened."""
        name = safe_filename(document.file_name or "upload")
        suffix = Path(name).suffix.lower()
        limit = self.settings.max_upload_bytes
        if suffix not in SUPPORTED_SUFFIXES:
            kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
            return escape(f"Rejected {name}: unsupported file type; send one of {kinds}.")
        if document.file_size and document.file_size > limit:  # checked before downloading
            return _too_big(name, document.file_size, limit)
        tg_file = await bot.get_file(document.file_id)
        data = bytes(await tg_file.download_as_bytearray())
        if len(data) > limit:
            return _too_big(name, len(data), limit)
        checked = await asyncio.to_thread(check_upload, self.settings, name, data)
        if isinstance(checked, str):
            return escape(f"Rejected {name}: {checked}")
        async with self._indexing():
            replaced = await asyncio.to_thread(save_upload, self.settings.corpus_dir, name, data)
        summary = await self.reindex()
        titles = ", ".join(f"“{a.title}”" for a in checked[:5])
        more = f" and {len(checked) - 5} more" if len(checked) > 5 else ""
        what = "Replaced" if replaced else "Added"
        count = f"{len(checked)} article{'s' * (len(checked) != 1)}"
        text = f"{what} {name} ({count}: {titles}{more}).\nIndex: {summary_line(summary)}"
        if summary.failed:
            text += "\nSome corpus files failed to load; /reindex lists them."
        return escape(text)


def check_upload(settings: Settings, name: str, data: bytes) -> list[Article] | str:
    """The articles in an upload, or why it is rejected: binary, not UTF-8, unparseable."""
    if b"\x00" in data[:8192]:
        return "binary file, not text."
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not UTF-8 text (bad byte at offset {exc.start})."
    with tempfile.TemporaryDirectory(prefix="newsdesk-upload-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        items = list(
            iter_articles(
                path,
                max_file_bytes=settings.max_upload_bytes,
                max_article_chars=settings.max_article_chars,
            )
        )
    errors = [item for item in items if isinstance(item, LoadError)]
    articles = [item for item in items if isinstance(item, Article)]
    if errors:
        shown = "; ".join(_upload_error(e) for e in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        return f"{shown}{more}."
    if not articles:
        return "no articles found in it."
    return articles


def save_upload(corpus_dir: Path, name: str, data: bytes) -> bool:
    """Write into the corpus folder atomically; True when it replaced a file."""
    corpus = corpus_dir.resolve()
    corpus.mkdir(parents=True, exist_ok=True)
    target = (corpus / name).resolve()
    if target.parent != corpus:  # safe_filename makes this impossible; belt and braces
        raise ValueError("upload path escapes the corpus folder")
    existed = target.exists()
    partial = corpus / f".{name}.{os.getpid()}.part"  # hidden: the indexer skips it
    partial.write_bytes(data)
    os.replace(partial, target)
    return existed


def _too_big(name: str, size: int, limit: int) -> str:
    return escape(f"Rejected {name}: {_size(size)} is over the {_size(limit)} limit.")


def _size(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 1_000_000 else f"{n / 1000:.0f} kB"


def _upload_error(error: LoadError) -> str:
    record = error.path.partition("#")[2]
    return f"record {record}: {error.reason}" if record else error.reason


def _short_error(error: str) -> str:
    # Paths of the server's corpus folder mean nothing in a chat: keep the file name.
    path, sep, reason = error.partition(": ")
    if path.startswith(("http://", "https://")):
        return error  # a feed or page: its URL is what the admin knows
    return f"{Path(path).name}: {reason}" if sep else error


def _refresh_keyword_index(answerer: Any) -> None:
    # Bm25Cache re-reads the store version at most once a second; after our own re-index we
    # know it moved, so make the next question check at once (else it may miss a new upload).
    cache = getattr(getattr(answerer, "retriever", None), "bm25", None)
    if cache is not None:
        cache.invalidate()
