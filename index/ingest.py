"""Incremental, crash-safe indexing: read, chunk, embed, upsert, delete.

Order of writes for one batch of changed articles (so that a crash anywhere converges):
  1. mark the index dirty (``__state__``),
  2. upsert the new chunks (ids carry the content hash, so old and new never collide),
  3. upsert the manifest records with the new hash,
  4. delete the old version's chunks,
and at the end clear the dirty mark and bump the version. A run that finds the mark still
set repairs from the chunks themselves (``repair``) before doing anything else.

We write with ``collection.upsert`` and LlamaIndex's own node-to-metadata format instead of
``VectorStoreIndex.from_documents``/``ChromaVectorStore.add``: those ``add`` (duplicates on a
re-run) and the docstore stays empty with Chroma, so they cannot tell what is already there.
"""

from __future__ import annotations

import errno
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.utils import node_to_metadata_dict

from index import bm25, story_store
from index.chunk import Chunker
from index.corpus import iter_articles
from index.embed import Embedder, get_embedder
from index.errors import StoreError
from index.identity import chunk_id
from index.models import Article, IndexSummary, LoadError
from index.settings import Settings
from index.store import IndexState, Store

log = logging.getLogger(__name__)

BATCH_CHUNKS = 128  # chunks embedded and written together; bounds memory and lost work


class Progress:
    """What the indexer reports; the CLI draws a bar from it. Default: silent."""

    def start(self, articles: int) -> None: ...

    def advance(self, articles: int, chunks: int) -> None: ...

    def stop(self) -> None: ...


@dataclass
class Change:
    """An article to (re-)write: new, or changed since the index last saw it."""

    article: Article
    origin: str  # the path given to the run (resolved) that the article belongs to
    old_hash: str | None = None  # the indexed version's content hash; None for a new article


@dataclass
class Chunked:
    """A change with its chunks, embedded once the batch is full."""

    change: Change
    nodes: list[TextNode]


@dataclass
class _Plan:
    changed: list[Change] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    errors: list[LoadError] = field(default_factory=list)


@dataclass
class Unchanged:
    """An article a source still holds and that needs no work (a feed item not re-fetched)."""

    article_id: str


@dataclass
class Source:
    """Where articles come from, for one run. ``read`` gets the manifest (article id -> record)
    so a web source can skip what it already holds (``Unchanged``). A pruned source is a file
    or folder: what vanished from it is removed. A feed is not pruned: items scroll off it,
    and the articles stay."""

    origin: str
    read: Callable[[Mapping[str, dict]], Iterable[Article | LoadError | Unchanged]]
    prune: bool = True


def path_source(path: Path, settings: Settings) -> Source:
    """A file or folder; a missing one fails as a whole and removes nothing."""
    path = Path(path)

    def read(_manifest: Mapping[str, dict]) -> Iterable[Article | LoadError]:
        if not path.exists():
            return [LoadError(str(path), "no such file or folder")]
        return iter_articles(
            path,
            max_file_bytes=settings.max_file_bytes,
            max_article_chars=settings.max_article_chars,
        )

    return Source(str(path.resolve()), read, prune=path.exists())


def index_paths(
    paths: Sequence[Path],
    settings: Settings,
    *,
    rebuild: bool = False,
    progress: Progress | None = None,
    store: Store | None = None,
    embedder: Embedder | None = None,
    on_error: Callable[[LoadError], None] | None = None,
) -> IndexSummary:
    """Bring the index in line with ``paths`` (files or folders); returns what changed."""
    sources = [path_source(Path(path), settings) for path in paths]
    return index_sources(
        sources,
        settings,
        rebuild=rebuild,
        progress=progress,
        store=store,
        embedder=embedder,
        on_error=on_error,
    )


def index_sources(
    sources: Sequence[Source],
    settings: Settings,
    *,
    rebuild: bool = False,
    progress: Progress | None = None,
    store: Store | None = None,
    embedder: Embedder | None = None,
    on_error: Callable[[LoadError], None] | None = None,
) -> IndexSummary:
    """Bring the index in line with ``sources``; returns what changed."""
    started = time.perf_counter()
    progress = progress or Progress()
    store = store or Store(settings)
    embedder = embedder or get_embedder(settings)
    if rebuild:
        store.reset()
    store.check_embedder(embedder.name)
    state = store.state()
    if state.dirty:
        log.warning("the last index run did not finish; repairing from the stored chunks")
        repair(store)

    manifest = store.manifest()
    plan = _plan(sources, manifest, on_error)
    summary = IndexSummary(unchanged=plan.unchanged, failed=len(plan.errors))
    summary.errors = [str(e) for e in plan.errors]
    if not plan.changed and not plan.removed:
        if not state.embedder and store.chunks.count() == 0:
            store.set_state(IndexState(state.version, False, embedder.name, time.time()))
        elif manifest and (state.dirty or story_store.grouped_version(store) != state.version):
            # An index built before stories, or a run (maybe its grouping pass) interrupted.
            store.set_state(IndexState(state.version, True, embedder.name, state.updated_at))
            _finish(store, embedder, settings, summary, manifest=manifest)
        summary.seconds = time.perf_counter() - started
        return summary

    store.set_state(IndexState(state.version, True, embedder.name, state.updated_at))
    touched = _touched(plan, manifest)
    for article_id in plan.removed:
        store.chunks.delete(where={"article_id": article_id})
        store.delete_articles([article_id])
    summary.removed = len(plan.removed)

    progress.start(len(plan.changed))
    try:
        summary.chunks = _write(plan.changed, store, embedder, settings, progress)
    finally:
        progress.stop()
    summary.added = sum(1 for change in plan.changed if change.old_hash is None)
    summary.updated = len(plan.changed) - summary.added
    _finish(store, embedder, settings, summary, touched=touched)
    summary.seconds = time.perf_counter() - started
    return summary


def _touched(plan: _Plan, manifest: dict[str, dict]) -> story_store.Touched:
    """What this run changes, for regrouping only the stories around it: the articles it
    writes, and the dates of the versions it removes or replaces (whose leads are gone)."""
    touched = story_store.Touched(ids={change.article.id for change in plan.changed})
    for article_id in [*plan.removed, *touched.ids]:
        if article_id in manifest:
            touched.dates.add(int(manifest[article_id].get("published_ts", -1)))
    return touched


def _finish(
    store: Store,
    embedder: Embedder,
    settings: Settings,
    summary: IndexSummary,
    manifest: dict[str, dict] | None = None,
    touched: story_store.Touched | None = None,
) -> None:
    """Group into stories, then publish the new version (clearing the dirty mark)."""
    grouped = story_store.assign_stories(store, manifest, touched)
    summary.stories = grouped.stories
    summary.story_seconds = round(grouped.seconds, 3)
    version = store.next_version()
    story_store.mark_grouped(store, version, grouped.stats)
    store.set_state(IndexState(version, False, embedder.name, time.time()))
    # The keyword index is part of indexing: build it now so no question pays for it.
    # (Other processes sharing a Chroma server rebuild theirs when they see the version.)
    bm25.save(bm25.build(store, version), settings)


def _plan(
    sources: Sequence[Source],
    manifest: dict[str, dict],
    on_error: Callable[[LoadError], None] | None,
) -> _Plan:
    plan = _Plan()
    planned: set[str] = set()  # ids taken from an earlier source of this same run
    for source in sources:
        origin = source.origin
        seen: set[str] = set()
        failed_files: set[str] = set()
        for item in source.read(manifest):
            if isinstance(item, LoadError):
                plan.errors.append(item)
                failed_files.add(_file_key(item.path))
                if on_error:
                    on_error(item)
                continue
            if isinstance(item, Unchanged):
                if item.article_id not in seen and item.article_id not in planned:
                    plan.unchanged += 1
                seen.add(item.article_id)
                planned.add(item.article_id)
                continue
            if item.id in seen:
                continue  # same URL twice in one feed: the first copy wins
            seen.add(item.id)
            if item.id in planned:
                continue  # same article under two paths of one run: the first path wins
            planned.add(item.id)
            old = manifest.get(item.id)
            if old is not None and old.get("hash") == item.hash:
                plan.unchanged += 1
            else:
                plan.changed.append(Change(item, origin, old.get("hash") if old else None))
        if not source.prune:
            continue
        for article_id, meta in manifest.items():
            # Only what vanished from this same folder/file goes; a file that failed to
            # read this time keeps its articles (bad input loses nothing).
            if meta.get("origin") != origin or article_id in seen:
                continue
            if _file_key(str(meta.get("file", ""))) in failed_files:
                continue
            plan.removed.append(article_id)
    return plan


def _write(
    changed: list[Change],
    store: Store,
    embedder: Embedder,
    settings: Settings,
    progress: Progress,
) -> int:
    """Chunk and embed on this thread, write on another: Chroma I/O overlaps ONNX work."""
    chunker = Chunker(embedder, settings.chunk_tokens, settings.chunk_overlap)
    jobs: queue.Queue = queue.Queue(maxsize=2)
    failure: list[BaseException] = []

    def writer() -> None:
        while (job := jobs.get()) is not None:
            if failure:
                continue  # drain so the producer never blocks on a dead writer
            try:
                _commit(store, *job)
            except BaseException as exc:
                failure.append(exc)

    thread = threading.Thread(target=writer, name="newsdesk-writer", daemon=True)
    thread.start()
    total = 0
    try:
        for batch in _batches(changed, chunker):
            if failure:
                break
            nodes = [node for item in batch for node in item.nodes]
            vectors = embedder.embed([chunker.embed_text(n) for n in nodes])
            for node, vector in zip(nodes, vectors):
                node.embedding = vector.tolist()
            jobs.put((batch, nodes))
            total += len(nodes)
            progress.advance(len(batch), len(nodes))
    finally:
        jobs.put(None)
        thread.join()
    if failure:
        raise _write_error(failure[0]) from failure[0]
    return total


def _write_error(exc: BaseException) -> BaseException:
    """A full disk or a dead server mid-write is one line for the user; the index keeps its
    dirty mark, so the next run repairs it and the articles already written stay usable."""
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return exc
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    disk_words = ("full", "disk i/o", "failed to apply logs", "readonly", "read-only")
    if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or any(
        word in text.lower() for word in disk_words
    ):
        return StoreError(
            f"cannot write the index: disk full or not writable ({text}); free space and re-run"
        )
    return StoreError(f"cannot write the index: {type(exc).__name__}: {text}; re-run to resume")


def _batches(changed: Iterable[Change], chunker: Chunker) -> Iterable[list[Chunked]]:
    batch: list[Chunked] = []
    size = 0
    for change in changed:
        nodes = chunker.nodes(change.article, change.origin)
        batch.append(Chunked(change, nodes))
        size += len(nodes)
        if size >= BATCH_CHUNKS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _commit(store: Store, batch: list[Chunked], nodes: list[TextNode]) -> None:
    """Steps 2-4 of the write order for one batch."""
    for start in range(0, len(nodes), 1000):
        part = nodes[start : start + 1000]
        store.chunks.upsert(
            ids=[n.node_id for n in part],
            embeddings=[n.embedding for n in part],
            documents=[n.text for n in part],
            metadatas=[_chroma_metadata(n) for n in part],
        )
    store.put_articles(
        {
            item.change.article.id: _manifest_record(
                item.change.article, item.change.origin, len(item.nodes)
            )
            for item in batch
        }
    )
    for item in batch:
        article, old_hash = item.change.article, item.change.old_hash
        if old_hash is not None and old_hash != article.hash:
            store.chunks.delete(
                where={"$and": [{"article_id": article.id}, {"doc_hash": old_hash}]}
            )


def _chroma_metadata(node: TextNode) -> dict:
    # LlamaIndex's own format, so ChromaVectorStore and its retrievers read these chunks.
    meta = node_to_metadata_dict(node, remove_text=True, flat_metadata=True)
    return {k: ("" if v is None else v) for k, v in meta.items()}


def _file_key(path: str) -> str:
    """The file an article or error came from, absolute: `corpus` and `/abs/corpus` agree."""
    return str(Path(path.split("#", 1)[0]).resolve())


def _manifest_record(article: Article, origin: str, n_chunks: int) -> dict:
    return {
        "hash": article.hash,
        "n_chunks": n_chunks,
        "origin": origin,
        "file": _file_key(article.path),
        "title": article.title,
        "url": article.url,
        "source": article.source,
        "published": article.published,
        "published_ts": article.published_ts,
        "indexed_at": time.time(),
    }


def repair(store: Store) -> dict[str, int]:
    """Make chunks and manifest agree after an interrupted run.

    Chunks are the truth: a manifest entry is kept only if all of its hash's chunks exist;
    chunks that no manifest entry accounts for are deleted. Whatever was dropped is simply
    seen as new or changed by the run that follows, and re-embedded.
    """
    manifest = store.manifest()
    present: dict[tuple[str, str], set[str]] = {}
    stray: list[str] = []
    for cid, article_id, doc_hash in store.chunk_keys():
        meta = manifest.get(article_id)
        if meta is None or meta.get("hash") != doc_hash:
            stray.append(cid)
        else:
            present.setdefault((article_id, doc_hash), set()).add(cid)
    incomplete = []
    for article_id, meta in manifest.items():
        want = {chunk_id(article_id, meta["hash"], i) for i in range(int(meta["n_chunks"]))}
        if present.get((article_id, meta["hash"]), set()) != want:
            incomplete.append(article_id)
            stray.extend(present.get((article_id, meta["hash"]), set()))
    for start in range(0, len(stray), 1000):
        store.chunks.delete(ids=stray[start : start + 1000])
    store.delete_articles(incomplete)
    state = store.state()
    store.set_state(IndexState(store.next_version(), False, state.embedder, state.updated_at))
    return {"stray_chunks": len(stray), "incomplete_articles": len(incomplete)}
