"""One indexing run over files, folders and URLs, and the fetch state that goes with it.

URLs (feeds, sitemaps, pages) go through one polite ``Fetcher`` for the run; its validators
are saved only once the run's articles are in the index, so an interrupted run fetches again
rather than trusting a 304 for pages it never indexed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
