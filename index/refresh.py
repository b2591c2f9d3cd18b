"""One indexing run over files, folders and URLs, and the fetch state that goes with it.

URLs (feeds, sitemaps, pages) go through one polite ``Fetcher`` for the run; its validators
are saved only once the run's articles are in the index, so an interrupted run fetches again
rather than trusting a 304 for pages it never indexed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from index.embed import Embedder
from index.ingest import Progress, index_sources, path_source
from index.models import IndexSummary, LoadError
from index.settings import Settings
from index.store import Store


def is_url(target: str | Path) -> bool:
    return isinstance(target, str) and urlsplit(target).scheme in ("http", "https")


def index_targets(
    targets: Sequence[str | Path],
    settings: Settings,
    *,
    rebuild: bool = False,
    progress: Progress | None = None,
    store: Store | None = None,
    embedder: Embedder | None = None,
    on_error: Callable[[LoadError], None] | None = None,
) -> IndexSummary:
    """Index files, folders and http(s) URLs together; returns what changed."""
    urls = [str(t) for t in targets if is_url(t)]
    sources = [path_source(Path(t), settings) for t in targets if not is_url(t)]
    fetcher = None
    if urls:
        from index.fetch import Fetcher  # feeds and trafilatura load only when URLs are given
        from index.web import web_source

        fetcher = Fetcher(settings)
        if rebuild:
            fetcher.cache.clear()  # validators of an index that no longer exists
        sources += [web_source(url, fetcher, settings.max_article_chars) for url in urls]
    try:
        summary = index_sources(
            sources,
            settings,
            rebuild=rebuild,
            progress=progress,
            store=store,
            embedder=embedder,
            on_error=on_error,
        )
        if fetcher is not None:
            fetcher.cache.commit()
        return summary
    finally:
        if fetcher is not None:
            fetcher.close()


@dataclass
class Cycle:
    """One watch cycle: what indexing did, or why it was skipped."""

    summary: IndexSummary | None = None
    skipped: str = ""  # e.g. another indexer holds the lease
    targets: list[str] = field(default_factory=list)


def watch_targets(settings: Settings) -> list[str | Path]:
    """The corpus folder (when it exists) and NEWSDESK_FEEDS."""
    targets: list[str | Path] = []
    if Path(settings.corpus_dir).is_dir():
        targets.append(settings.corpus_dir)
    return targets + list(settings.feed_urls)


def refresh(
    settings: Settings,
    *,
    targets: Sequence[str | Path] | None = None,
    store: Store | None = None,
    embedder: Embedder | None = None,
    on_error: Callable[[LoadError], None] | None = None,
    progress: Progress | None = None,
) -> Cycle:
    """Re-index ``targets`` (default: the corpus folder and the feeds) as the collection's
    only indexer; another indexer holding the lease makes this a skipped cycle."""
    from index.lease import IndexLease, LeaseBusy

    store = store or Store(settings)
    targets = list(targets) if targets is not None else watch_targets(settings)
    cycle = Cycle(targets=[str(t) for t in targets])
    if not targets:
        cycle.skipped = "nothing to watch: no corpus folder and no NEWSDESK_FEEDS"
        return cycle
    try:
        with IndexLease(store):
            cycle.summary = index_targets(
                targets,
                settings,
                store=store,
                embedder=embedder,
                on_error=on_error,
                progress=progress,
            )
    except LeaseBusy as exc:
        cycle.skipped = str(exc)
    return cycle
