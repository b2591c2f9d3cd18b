"""What a fetched URL holds: an RSS/Atom feed, a news sitemap, or an article page.

``parse_feed`` and ``parse_sitemap`` turn a body into ``FeedItem`` records (one per linked
article); ``extract_page`` turns an article page into fields for an ``Article`` with
trafilatura (text, title, date, author, site name). Each raises ``FeedError`` with a one-line
reason when the body is not what it should be.
"""

from __future__ import annotations

import html as html_lib
import re
import warnings
from dataclasses import dataclass, field

import feedparser
import trafilatura
from lxml import etree

from index.readers import normalize_text

MIN_PAGE_CHARS = 200  # less text than this from a page is a paywall or a teaser, not an article
FULL_TEXT_CHARS = 800  # a feed item carrying this much text needs no page fetch
MAX_CHILD_SITEMAPS = 20

_XML_START = re.compile(
    rb"^\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*<(rss|feed|rdf:RDF|urlset|sitemapindex)\b", re.S
)
_SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
_NEWS_NS = "{http://www.google.com/schemas/sitemap-news/0.9}"
_TAGS = re.compile(r"<[^>]+>")


class FeedError(Exception):
    """A body that is not a usable feed, sitemap or article; ``str()`` is the reason."""


@dataclass
class FeedItem:
    """One article a feed or sitemap links to."""

    url: str
    title: str = ""
    published: str = ""  # as the feed wrote it; parse_date reads it
    stamp: str = ""  # changes when the feed says the item changed (updated date, title)
    authors: list[str] = field(default_factory=list)
    text: str = ""  # the item's own text (content:encoded / atom content / summary)

    @property
    def full_text(self) -> bool:
        return len(self.text) >= FULL_TEXT_CHARS


def kind_of(content_type: str, body: bytes) -> str:
    """'feed', 'sitemap', 'html' or 'other', from the body's start and its content type."""
    match = _XML_START.match(body[:4096])
    if match:
        return "sitemap" if match[3] in (b"urlset", b"sitemapindex") else "feed"
    if "html" in content_type or body[:1024].lstrip().lower().startswith(
        (b"<!doctype html", b"<html")
    ):
        return "html"
    if any(word in content_type for word in ("rss", "atom", "xml")):
        return "feed"  # declared a feed but does not start like one: the parser says why
    return "other"


def parse_feed(body: bytes) -> list[FeedItem]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # feedparser's own transition notes
        parsed = feedparser.parse(body, sanitize_html=False)
    items = []
    for entry in parsed.entries:
        url = entry.get("link") or (
            entry.get("id") if str(entry.get("id", "")).startswith("http") else ""
        )
        if not url:
            continue
        contents = [c.get("value", "") for c in entry.get("content", [])]
        text = max([*contents, entry.get("summary", "")], key=len)
        title = _one_line(entry.get("title"))
        published = entry.get("published") or entry.get("updated") or ""
        items.append(
            FeedItem(
                url=url,
                title=title,
                published=published,
                stamp=f"{entry.get('updated') or published}|{title}",
                authors=[a.get("name", "") for a in entry.get("authors", []) if a.get("name")],
                text=_html_to_text(text),
            )
        )
    if parsed.bozo and not items:  # a feed with a small slip still gives its items
        raise FeedError(f"malformed XML: {_one_line(parsed.get('bozo_exception'))}")
    return items


def parse_sitemap(body: bytes) -> tuple[list[FeedItem], list[str]]:
    """(articles of a ``urlset``, child sitemaps of a ``sitemapindex``)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        raise FeedError(f"malformed XML: {_one_line(str(exc))}") from None
    if root.tag == f"{_SITEMAP_NS}sitemapindex":
        children = [loc.text.strip() for loc in root.iter(f"{_SITEMAP_NS}loc") if loc.text]
        return [], children[:MAX_CHILD_SITEMAPS]
    items = []
    for node in root.iter(f"{_SITEMAP_NS}url"):
        loc = node.findtext(f"{_SITEMAP_NS}loc", "").strip()
        if not loc:
            continue
        title = _one_line(node.findtext(f"{_NEWS_NS}news/{_NEWS_NS}title", ""))
        published = node.findtext(f"{_NEWS_NS}news/{_NEWS_NS}publication_date", "").strip()
        lastmod = node.findtext(f"{_SITEMAP_NS}lastmod", "").strip()
        items.append(FeedItem(loc, title, published or lastmod, f"{lastmod or published}|{title}"))
    return items, []


def extract_page(html: bytes, url: str) -> dict:
    """Fields of an article page: title, text, url (canonical if the page names one), source,
    published, authors. Raises ``FeedError`` when there is no article text."""
    doc = trafilatura.bare_extraction(
        html, url=url, with_metadata=True, include_comments=False, include_tables=False
    )
    text = normalize_text(getattr(doc, "text", "") or "") if doc is not None else ""
    if len(text) < MIN_PAGE_CHARS:
        raise FeedError("no article text on the page (paywall, teaser or not an article)")
    title = _one_line(doc.title)
    first, _, rest = text.partition("\n")
    if title and first.strip() == title and rest.strip():
        text = rest.strip()  # the page's <h1> repeats the title
    authors = [a.strip() for a in re.split(r";|\band\b", doc.author or "") if a.strip()]
    return {
        "title": title,
        "text": text.replace("\n", "\n\n"),  # trafilatura gives one paragraph per line
        "url": doc.url or url,
        "source": _one_line(doc.sitename),
        "published": doc.date or "",
        "authors": authors,
    }


def _html_to_text(value: str) -> str:
    if "<" not in value:
        return normalize_text(value)
    text = re.sub(r"(?i)</p\s*>|<br\s*/?>", "\n\n", value)
    return normalize_text(html_lib.unescape(_TAGS.sub("", text)))


def _one_line(value: object) -> str:
    return " ".join(str(value).split()) if value else ""
