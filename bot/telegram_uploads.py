"""Admins' corpus work from a chat: /reindex, and article files sent to the bot.

An upload is checked before anything is saved (supported type, size limit before and after
downloading, UTF-8 text, at most max_upload_records records, not a link out of the corpus
folder); then the admin gets a first reply at once, and a background job parses, saves
(atomically, under a safe name) and indexes it, editing that reply with its progress every
few seconds and finally with the summary. One indexing job at a time, off the event loop;
/reindex or another upload meanwhile is told how far the job has got.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from telegram import Document, Message

from bot.render import summary_line
from bot.telegram_delivery import Target, deliver, reply
from bot.telegram_format import escape
from index.corpus import SUPPORTED_SUFFIXES, iter_articles
from index.models import Article, IndexSummary, LoadError
from index.settings import Settings

if TYPE_CHECKING:
    from index.ingest import Progress

log = logging.getLogger("bot.telegram")

PROGRESS_EVERY = 5.0  # seconds between progress edits of an upload's status message
PARSE_AT_ONCE_BYTES = 200_000  # smaller uploads are parsed before the first reply


def safe_filename(name: str) -> str:
    """A plain file name for an upload: no folders, no leading dots, no odd characters."""
    base = PurePosixPath(name.replace("\\", "/")).name
    base = re.sub(r"[^\w.-]+", "_", base).strip("._")
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    stem = (stem.strip("._") or "upload")[:100]
    return f"{stem}.{suffix.lower()}" if suffix else stem


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
        self.job: Job | None = None  # the upload being indexed in the background
        self._tasks: set[asyncio.Task] = set()

    def cancel(self) -> None:
        """Stop a running index job at its next batch (the process is stopping)."""
        self.cancelled.set()

    def _indexing(self) -> asyncio.Lock:
        # Created lazily: it must belong to the running event loop.
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def reindex(self, progress: Progress | None = None) -> IndexSummary:
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
                progress=progress or JobProgress(None, self.cancelled),
            )
        _refresh_keyword_index(self.answerer)
        return cycle.summary or IndexSummary(errors=[cycle.skipped])

    def busy(self) -> str | None:
        """What the running upload job has done, for whoever asks meanwhile; None when idle."""
        job = self.job
        if job is None:
            return None
        if not job.total:
            return f"Already indexing {job.what}, reading it; try again when it is done."
        return (
            f"Already indexing {job.what}, {job.done:,} of {job.total:,} done; "
            "try again when it is done."
        )

    async def upload(self, message: Message, bot: Any) -> None:
        """Check an uploaded article file; reply at once, then save and index it in the
        background, editing that reply with progress and the summary."""
        busy = self.busy()
        if busy is not None:
            await reply(message, escape(busy))
            return
        received = await self._receive(message.document, bot)
        if isinstance(received, str):
            await reply(message, received)
            return
        name, data, records, articles = received
        job = self.job = Job(name, records)
        noun = "record" if records == 1 else "records"
        status = await reply(message, escape(f"Indexing {name} ({records:,} {noun})…"))
        run = self._run_upload(job, name, data, articles, message, status)
        task = asyncio.create_task(run)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _receive(
        self, document: Document, bot: Any
    ) -> tuple[str, bytes, int, list[Article] | None] | str:
        """The upload's safe name, bytes, record count and (when small enough to parse at
        once) its articles; or the reply that rejects it."""
        name = safe_filename(document.file_name or "upload")
        suffix = Path(name).suffix.lower()
        limit = self.settings.max_upload_bytes
        if suffix not in SUPPORTED_SUFFIXES:
            kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
            return escape(f"Rejected {name}: unsupported file type; send one of {kinds}.")
        if document.file_size and document.file_size > limit:  # checked before downloading
            return _too_big(name, document.file_size, limit)
        outside = _links_outside(self.settings.corpus_dir, name)
        if outside is not None:
            return escape(
                f"Rejected {name}: the corpus file of that name is a link to {outside}, outside "
                "the corpus folder; it was left alone (rename the upload, or replace the link "
                "on the server)."
            )
        tg_file = await bot.get_file(document.file_id)
        data = bytes(await tg_file.download_as_bytearray())
        if len(data) > limit:
            return _too_big(name, len(data), limit)
        problem = check_text(data)
        if problem is not None:
            return escape(f"Rejected {name}: {problem}")
        records = count_records(name, data)
        most = self.settings.max_upload_records
        if records > most:
            return escape(
                f"Rejected {name}: {records:,} records is over the limit of {most:,} per upload "
                "(NEWSDESK_MAX_UPLOAD_RECORDS); split the file."
            )
        articles = None
        if len(data) <= PARSE_AT_ONCE_BYTES:  # quick: a broken small file is refused at once
            checked = articles or await asyncio.to_thread(check_upload, self.settings, name, data)
            if isinstance(checked, str):
                return escape(f"Rejected {name}: {checked}")
            articles = checked
        return name, data, len(articles) if articles is not None else records, articles

    async def _run_upload(
        self,
        job: Job,
        name: str,
        data: bytes,
        articles: list[Article] | None,
        message: Message,
        status: int | None,
    ) -> None:
        bot = message.get_bot()
        target = Target.of(message)

        async def show(text: str) -> None:
            if status is None:
                await deliver(bot, target, escape(text))
            else:
                await deliver(bot, target, escape(text), edit_id=status)

        async def progress_edits() -> None:
            shown = ""
            while True:
                await asyncio.sleep(PROGRESS_EVERY)
                if job.total:
                    text = f"Indexing {name}: {job.done:,} of {job.total:,} articles done…"
                    if text != shown:
                        await show(text)
                        shown = text

        ticker = asyncio.create_task(progress_edits())
        try:
            checked = articles or await asyncio.to_thread(check_upload, self.settings, name, data)
            if isinstance(checked, str):
                text = f"Rejected {name}: {checked}"
            else:
                async with self._indexing():
                    replaced = await asyncio.to_thread(
                        save_upload, self.settings.corpus_dir, name, data
                    )
                summary = await self.reindex(progress=JobProgress(job, self.cancelled))
                text = upload_report(name, checked, replaced, summary)
        except IndexCancelled:
            return  # the bot is stopping; the next run finishes the index
        except Exception as exc:  # the admin hears of it; the traceback goes to the log
            log.error("indexing the upload %s failed", name, exc_info=exc)
            text = f"Indexing {name} failed: {' '.join(str(exc).split())[:300]}"
        finally:
            ticker.cancel()
            if self.job is job:
                self.job = None
        await show(text)


@dataclass
class Job:
    """An upload being indexed: what, and how far (articles to embed, once planned)."""

    what: str
    records: int
    total: int = 0
    done: int = 0


class IndexCancelled(Exception):
    """The bot is stopping: the index run ends at its next batch (a re-run resumes it)."""


class JobProgress:
    """index_paths' progress for a job: counts what is done, and stops when cancelled."""

    def __init__(self, job: Job | None, cancelled: threading.Event) -> None:
        self.job, self.cancelled = job, cancelled

    def start(self, articles: int) -> None:
        if self.job is not None:
            self.job.total = articles

    def advance(self, articles: int, chunks: int) -> None:
        if self.cancelled.is_set():
            raise IndexCancelled
        if self.job is not None:
            self.job.done += articles

    def stop(self) -> None:
        pass


def upload_report(name: str, checked: list[Article], replaced: bool, summary: IndexSummary) -> str:
    titles = ", ".join(f"“{a.title}”" for a in checked[:5])
    more = f" and {len(checked) - 5:,} more" if len(checked) > 5 else ""
    what = "Replaced" if replaced else "Added"
    count = f"{len(checked):,} article{'s' * (len(checked) != 1)}"
    text = f"{what} {name} ({count}: {titles}{more}).\nIndex: {summary_line(summary)}"
    if summary.failed:
        text += "\nSome corpus files failed to load; /reindex lists them."
    return text


def check_text(data: bytes) -> str | None:
    """Why ``data`` is not an article file at all (binary, not UTF-8), or None."""
    if b"\x00" in data[:8192]:
        return "binary file, not text."
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not UTF-8 text (bad byte at offset {exc.start})."
    return None


def count_records(name: str, data: bytes) -> int:
    """Records in an upload, counted without parsing them: JSON Lines by line, a JSON
    array by element (0 when it does not parse: the full check says why), else one."""
    suffix = Path(name).suffix.lower()
    if suffix == ".jsonl":
        return sum(1 for line in data.splitlines() if line.strip())
    if suffix == ".json":
        try:
            value = json.loads(data)
        except ValueError:
            return 0
        return len(value) if isinstance(value, list) else 1
    return 1


def _links_outside(corpus_dir: Path, name: str) -> Path | None:
    """Where the corpus file ``name`` links to when that is outside the corpus folder."""
    corpus = corpus_dir.resolve()
    path = corpus / name
    if not path.is_symlink():
        return None
    target = path.resolve()
    return None if target.is_relative_to(corpus) else target


def check_upload(settings: Settings, name: str, data: bytes) -> list[Article] | str:
    """The articles in an upload, or why it is rejected: binary, not UTF-8, unparseable."""
    problem = check_text(data)
    if problem is not None:
        return problem
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
