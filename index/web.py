"""Articles from the web: a URL given to ``newsdesk index`` (or listed in NEWSDESK_FEEDS) is a
feed, a news sitemap or an article page, and becomes a ``Source`` for the indexer.

An article's identity is the canonical URL of the link that names it (the feed item's link,
or the URL given), so a story met again in the next run of the feed is the same article.
A feed item seen before is not fetched again while the feed says the same about it (its
updated date and title, the "stamp"); when the stamp changes the page is fetched with its
validators, and a 304 leaves it as it is. Items that carry their full text need no fetch.

What a response does, by case (each failure is one line with the URL, and the rest goes on):

    feed 304 Not Modified         -> nothing to do for this feed
    feed / sitemap, 200           -> each item: skipped if known and unchanged, else indexed
    sitemap index                 -> its child sitemaps (up to 20), the same way
    article page, 200             -> one article (trafilatura: text, title, date, author)
    page 304 Not Modified         -> unchanged
    4xx / 5xx                     -> "HTTP 404 Not Found"
    timeout / redirect loop       -> "timed out after 20 s" / "too many redirects"
    body over the size limit      -> "response is over the 5,000,000-byte limit"
    not HTML, not a feed          -> "not an article page or a feed (application/pdf)"
    malformed feed XML            -> "malformed XML: ..."
    page without article text     -> "no article text on the page (paywall, ...)"
    robots.txt disallow           -> "disallowed by robots.txt"
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from urllib.parse import urljoin, urlsplit

from index.feeds import FeedError, FeedItem, extract_page, kind_of, parse_feed, parse_sitemap
from index.fetch import Fetcher, FetchError, Page
from index.identity import article_id, canonical_url, content_hash
from index.ingest import Source, Unchanged
from index.models import Article, LoadError
from index.readers import derive_title, normalize_text, parse_date

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, "
    "text/html;q=0.8, */*;q=0.5"
)
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
FETCH_WORKERS = 8  # pages of different hosts in parallel; each host still gets at most 2


WebItem = Article | LoadError | Unchanged


def web_items(
    url: str, fetcher: Fetcher, manifest: Mapping[str, dict], max_chars: int
) -> Iterator[WebItem]:
    """The articles behind ``url`` (feed, sitemap or page), a ``LoadError`` per failure."""
    reader = _Reader(fetcher, manifest, max_chars)
    yield from reader.read(url, depth=0)


class _Reader:
    def __init__(self, fetcher: Fetcher, manifest: Mapping[str, dict], max_chars: int) -> None:
        self.fetcher = fetcher
        self.manifest = manifest
        self.max_chars = max_chars

    def read(self, url: str, depth: int) -> Iterator[WebItem]:
        key = canonical_url(url)
        aid = article_id(key, "", None)
        # A page already indexed may answer 304; a feed always may, its items are in the index.
        known = self.fetcher.cache.get(key) if (aid in self.manifest or depth == 0) else None
        try:
            page = self.fetcher.get(url, known, accept=FEED_ACCEPT)
        except FetchError as exc:
            yield LoadError(url, str(exc))
            return
        if page.not_modified:
            self.fetcher.remember(key, page)
            if aid in self.manifest:
                yield Unchanged(aid)
            return
        kind = kind_of(page.content_type, page.body)
        failed = 0
        try:
            if kind == "feed":
                items = self._items(parse_feed(page.body))
            elif kind == "sitemap":
                found, children = parse_sitemap(page.body)
                items = self._items(found)
                if depth == 0:
                    for child in children:
                        items = chain(items, self.read(urljoin(page.final_url, child), depth + 1))
            elif kind == "html":
                items = iter([self._article(page, FeedItem(url))])
            else:
                yield LoadError(url, f"not an article page or a feed ({_ctype(page)})")
                return
            for item in items:
                failed += isinstance(item, LoadError)
                yield item
        except FeedError as exc:
            yield LoadError(url, str(exc))
            return
        if not failed:  # else a 304 next time would hide the items that failed: ask again
            self.fetcher.remember(key, page)

    def _items(self, items: list[FeedItem]) -> Iterator[WebItem]:
        to_fetch: list[FeedItem] = []
        for item in items:
            key = canonical_url(item.url)
            aid = article_id(key, "", None)
            known = self.fetcher.cache.get(key)
            if aid in self.manifest and known and known.stamp == item.stamp:
                yield Unchanged(aid)
            elif item.full_text:
                self.fetcher.remember(key, None, item.stamp)
                yield build_article(
                    {"title": item.title, "text": item.text, "url": item.url,
                     "published": item.published, "authors": item.authors},
                    item.url, self.max_chars,
                )  # fmt: skip
            else:
                to_fetch.append(item)
        with ThreadPoolExecutor(FETCH_WORKERS, thread_name_prefix="newsdesk-fetch") as pool:
            yield from pool.map(self._fetch_item, to_fetch)

    def _fetch_item(self, item: FeedItem) -> WebItem:
        key = canonical_url(item.url)
        aid = article_id(key, "", None)
        known = self.fetcher.cache.get(key) if aid in self.manifest else None
        try:
            page = self.fetcher.get(item.url, known, accept=PAGE_ACCEPT)
        except FetchError as exc:
            return LoadError(item.url, str(exc))
        if page.not_modified:
            self.fetcher.remember(key, page, item.stamp)
            return Unchanged(aid)
        if kind_of(page.content_type, page.body) != "html":
            return LoadError(item.url, f"not an article page ({_ctype(page)})")
        try:
            article = self._article(page, item)
        except FeedError as exc:
            return LoadError(item.url, str(exc))
        if isinstance(article, Article):
            self.fetcher.remember(key, page, item.stamp)
        return article

    def _article(self, page: Page, item: FeedItem) -> Article | LoadError:
        fields = extract_page(page.body, page.final_url)
        # The feed's own title, date and authors are the publisher's; the page's fill gaps.
        fields["title"] = item.title or fields["title"]
        fields["published"] = item.published or fields["published"]
        fields["authors"] = item.authors or fields["authors"]
        fields["url"] = page.url  # identity: the link we were given, not where it redirected
        return build_article(fields, page.url, self.max_chars)


def build_article(fields: dict, where: str, max_chars: int) -> Article | LoadError:
    """An ``Article`` from fetched fields, with the same identity rules as files."""
    text = normalize_text(fields.get("text") or "")
    if not text:
        return LoadError(where, "no article text")
    if len(text) > max_chars:
        return LoadError(
            where, f"article text is {len(text):,} characters, over the {max_chars:,} limit"
        )
    url = canonical_url(fields.get("url") or "")
    published, published_ts = parse_date(fields.get("published"))
    host = (urlsplit(url).hostname or "").removeprefix("www.")
    article = Article(
        id=article_id(url, where, None),
        text=text,
        title=" ".join((fields.get("title") or "").split()) or derive_title(text, url),
        url=url,
        source=host or fields.get("source") or "",
        published=published,
        published_ts=published_ts,
        authors=[a for a in fields.get("authors") or [] if a],
        path=where,
    )
    article.hash = content_hash(article)
    return article


def _ctype(page: Page) -> str:
    return page.content_type.split(";")[0].strip() or "no content type"


def web_source(url: str, fetcher: Fetcher, max_chars: int) -> Source:
    """``url`` as a source for ``index_sources``; never pruned (feeds scroll)."""
    return Source(
        canonical_url(url), lambda manifest: web_items(url, fetcher, manifest, max_chars), False
    )
