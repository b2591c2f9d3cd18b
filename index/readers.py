"""Per-format readers: the text of one file (or one JSON record) as an ``Article``.

Markdown (YAML front matter), plain text (a short first line is the headline), HTML (meta
tags, JSON-LD, the main text without page furniture) and JSON (an object or a list of
them). Each format gives the same fields -- title, text, url, source, published, authors --
and ``build`` turns them into an ``Article`` the same way for every format: normalised text,
a canonical URL, a parsed date, a derived title when there is none, the id and hash from
``index.identity``. ``normalize_text``, ``derive_title`` and ``parse_date`` are public because
web pages and feeds must be read the same way.
"""

from __future__ import annotations

import calendar
import json
import re
import warnings
from collections.abc import Iterator
from datetime import date, datetime, timezone
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

import frontmatter
from dateutil import parser as date_parser
from selectolax.lexbor import LexborHTMLParser, LexborNode

from index.identity import article_id, canonical_url, content_hash
from index.models import Article, LoadError

_TXT_TITLE_MAX = 150  # a longer first line is a sentence, not a headline
_US_TZ = {  # dateutil knows none of these names; RSS feeds use them a lot
    "UT": 0, "UTC": 0, "GMT": 0, "Z": 0, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5,
    "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
}  # fmt: skip
_TZINFOS = {name: hours * 3600 for name, hours in _US_TZ.items()}
_DATE_DEFAULT = datetime(2000, 1, 1)  # "June 2022" -> 2022-06-01, not today's day of month

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff]")  # all but \t and \n
_BLANK_RUNS = re.compile(r"\n{3,}")
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")

_DROP_TAGS = [  # page furniture, not article text
    "script", "style", "nav", "header", "footer", "aside", "form", "noscript", "template",
    "iframe", "svg", "button",
]  # fmt: skip
_BLOCK_TAGS = frozenset({  # each starts a new paragraph
    "p", "div", "section", "article", "main", "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul",
    "ol", "dl", "dt", "dd", "blockquote", "pre", "table", "tr", "figure", "figcaption", "hr",
})  # fmt: skip
_DATE_SELECTORS = [
    'meta[property="article:published_time" i]',
    'meta[property="og:published_time" i]',
    'meta[name="article:published_time" i]',
    'meta[itemprop="datePublished" i]',
    'meta[name="date" i]',
    'meta[name="pubdate" i]',
    'meta[name="publishdate" i]',
    'meta[name="dc.date" i]',
]

_JSON_TYPES = {"list": "list", "str": "string", "int": "number", "float": "number"}
_JSON_TYPES |= {"bool": "boolean", "NoneType": "null"}

Fields = dict[str, Any]


class Unreadable(Exception):
    """A whole file cannot be read; the message is the LoadError reason."""


class Source(NamedTuple):
    display: str  # the path as given, for messages and Article.path
    relpath: str  # posix path relative to the indexed root, for ids
    max_chars: int


def read_text(suffix: str, text: str, src: Source) -> Iterator[Article | LoadError]:
    """The articles in one decoded file of type ``suffix`` (JSON Lines is streamed by
    ``index.corpus`` and comes here record by record, through ``from_record``)."""
    if suffix == ".json":
        yield from read_json(text, src)
    elif suffix in (".html", ".htm"):
        yield build(parse_html(text), src, None)
    elif suffix == ".txt":
        yield build(parse_txt(text), src, None)
    else:
        yield build(parse_markdown(text), src, None)


# --- JSON ----------------------------------------------------------------------------------------


def read_json(text: str, src: Source) -> Iterator[Article | LoadError]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        reason = f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        raise Unreadable(reason) from None
    if isinstance(data, dict):
        yield from_record(data, src, None)
    elif isinstance(data, list) and data:
        for n, record in enumerate(data, 1):
            yield from_record(record, src, n)
    else:
        raise Unreadable("JSON must be an object or a non-empty list of objects")


def from_record(record: object, src: Source, n: int | None) -> Article | LoadError:
    if not isinstance(record, dict):
        kind = _JSON_TYPES.get(type(record).__name__, type(record).__name__)
        return LoadError(_where(src, n), f"record is a {kind}, not an object")
    text = next(
        (v for key in ("text", "body", "content") if isinstance(v := record.get(key), str)), ""
    )
    fields = {key: record.get(key) for key in ("title", "url", "source", "published", "authors")}
    return build({**fields, "text": text}, src, n)


# --- Markdown, text, HTML -----------------------------------------------------------------------


def parse_markdown(text: str) -> Fields:
    try:
        post = frontmatter.loads(text)
        meta = dict(post.metadata)
    except Exception as exc:  # YAML errors come in many types
        detail = (str(exc) or type(exc).__name__).splitlines()[0]
        raise Unreadable(f"malformed front matter: {detail}") from None
    body, title = post.content, _one_line(meta.get("title"))
    heading = re.match(r"\s*#[ \t]+(.+?)[ \t#]*(?:\n|$)", body)
    if heading and (not title or _one_line(heading[1]) == title):
        title, body = _one_line(heading[1]), body[heading.end() :]
    return {
        "title": title,
        "text": body,
        "url": meta.get("url") or meta.get("link"),
        "source": meta.get("source"),
        "published": meta.get("published", meta.get("date")),
        "authors": meta.get("authors", meta.get("author")),
    }


def parse_txt(text: str) -> Fields:
    first, _, rest = normalize_text(text).partition("\n")
    if len(first) <= _TXT_TITLE_MAX and rest.strip():
        return {"title": first, "text": rest}
    return {"text": text}  # the first line is prose: keep it, the title is derived


def parse_html(html: str) -> Fields:
    tree = LexborHTMLParser(html)
    ld = _json_ld(tree)

    def meta(selector: str) -> str:
        node = tree.css_first(selector)
        return _one_line(node.attributes.get("content") if node else None)

    urls = [meta('meta[property="og:url" i]')]
    if (link := tree.css_first('link[rel~="canonical" i]')) is not None:
        urls.insert(0, _one_line(link.attributes.get("href")))
    dates = [meta(selector) for selector in _DATE_SELECTORS] + [ld.get("datePublished")]
    dates += [node.attributes.get("datetime") for node in tree.css("time[datetime]")]
    title = meta('meta[property="og:title" i]') or _one_line(ld.get("headline"))
    for selector in ("title", "h1"):
        if not title and (node := tree.css_first(selector)) is not None:
            title = _one_line(node.text())

    tree.strip_tags(_DROP_TAGS)
    containers = tree.css("article") or tree.css("main") or [tree.body]
    main = max(containers, key=lambda node: len(node.text()) if node else 0)
    text = _html_text(main)
    heading, _, rest = text.partition("\n\n")
    if rest and heading == title:  # the page's <h1> repeats the title
        text = rest
    return {
        "title": title,
        "text": text,
        "url": next((u for u in urls if u.startswith(("http://", "https://"))), ""),
        "source": meta('meta[property="og:site_name" i]'),
        "published": next((d for d in dates if parse_date(d)[0]), ""),
        "authors": meta('meta[name="author" i]') or ld.get("author"),
    }


def _json_ld(tree: LexborHTMLParser) -> dict:
    """The first JSON-LD object that describes an article (has a headline or a date)."""
    for node in tree.css('script[type="application/ld+json" i]'):
        try:
            data = json.loads(node.text())
        except ValueError:
            continue
        items = data if isinstance(data, list) else [data]
        for item in list(items):  # {"@graph": [...]} nests the objects
            if isinstance(item, dict) and isinstance(item.get("@graph"), list):
                items += item["@graph"]
        for item in items:
            if isinstance(item, dict) and ("headline" in item or "datePublished" in item):
                return item
    return {}


def _html_text(root: LexborNode | None) -> str:
    """Text of ``root`` with one paragraph per block element, paragraphs split by blank lines."""
    paragraphs: list[str] = []
    words: list[str] = []

    def flush() -> None:
        lines = (line.strip() for line in "".join(words).split("\n"))
        if paragraph := "\n".join(line for line in lines if line):
            paragraphs.append(paragraph)
        words.clear()

    stack: list[LexborNode | None] = [root]  # None marks the end of a block element
    while stack:  # iterative: deeply nested HTML must not hit the recursion limit
        node = stack.pop()
        if node is None or node.tag in _BLOCK_TAGS:
            flush()
        if node is None or node.is_comment_node:
            continue
        if node.is_text_node:
            words.append(re.sub(r"\s+", " ", node.text_content or ""))
        elif node.tag == "br":
            words.append("\n")
        else:
            if node.tag in _BLOCK_TAGS:
                stack.append(None)
            stack.extend(reversed(list(node.iter(include_text=True))))
    flush()
    return "\n\n".join(paragraphs)


# --- building an Article ------------------------------------------------------------------------


def build(fields: Fields, src: Source, record: int | None) -> Article | LoadError:
    where = _where(src, record)
    text = normalize_text(fields.get("text") if isinstance(fields.get("text"), str) else "")
    if not text:
        return LoadError(where, "no article text")
    if len(text) > src.max_chars:
        return LoadError(
            where, f"article text is {len(text):,} characters, over the {src.max_chars:,} limit"
        )
    url = canonical_url(_one_line(fields.get("url")))
    published, published_ts = parse_date(fields.get("published"))
    article = Article(
        id=article_id(url, src.relpath, record),
        text=text,
        title=_one_line(fields.get("title")) or derive_title(text, url),
        url=url,
        source=_one_line(fields.get("source")) or _domain(url),
        published=published,
        published_ts=published_ts,
        authors=_authors(fields.get("authors")),
        path=where,
    )
    article.hash = content_hash(article)
    return article


def _where(src: Source, record: int | None) -> str:
    return src.display if record is None else f"{src.display}#{record}"


def _one_line(value: object) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


def _authors(value: object) -> list[str]:
    items = value if isinstance(value, list) else [value]
    names = [item.get("name") if isinstance(item, dict) else item for item in items]  # JSON-LD
    return [name for name in map(_one_line, names) if name]


def _domain(url: str) -> str:
    host = urlsplit(url).hostname or ""
    return host.removeprefix("www.")


# --- public helpers -----------------------------------------------------------------------------


def normalize_text(text: str) -> str:
    """Strip, use ``\\n`` newlines, drop control characters, keep at most one blank line."""
    # The `in` tests skip regexes that would not change anything: 40 MB feeds must read fast.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    if " \n" in text or "\t\n" in text:
        text = "\n".join(line.rstrip(" \t") for line in text.split("\n"))
    if "\n\n\n" in text:
        text = _BLANK_RUNS.sub("\n\n", text)
    return text.strip()


def derive_title(text: str, url: str = "") -> str:
    """A title for an article without one: the URL slug when it has words, else the opening.

    ``.../2022/06/12/media/squid-game-season-2/index.html`` gives "Squid game season 2"; the
    opening sentence is cut to 12 words or 100 characters, with an ellipsis when cut.
    """
    for segment in reversed(urlsplit(url).path.split("/")):
        stem = re.sub(r"\.[A-Za-z0-9]{1,5}$", "", unquote(segment))  # index.html, x.cnn
        words = [word for word in re.split(r"[-_+\s]+", stem) if word]
        if sum(word.isalpha() for word in words) >= 2:
            slug = " ".join(words)
            return slug[:1].upper() + slug[1:]
    first = normalize_text(text).split("\n", 1)[0]
    sentence = re.split(r"(?<=[.!?])\s", first, maxsplit=1)[0].strip().rstrip(".")
    words = sentence.split()
    title = " ".join(words[:12])
    if len(title) > 100:
        title = title[:100].rsplit(" ", 1)[0]
    if title != " ".join(words):
        title += "…"
    return title or "(untitled)"


def parse_date(value: object) -> tuple[str, int]:
    """``(YYYY-MM-DD, Unix seconds at 00:00 UTC that day)``, or ``("", -1)`` when unknown.

    Takes ISO dates and datetimes, RFC 2822, "June 12, 2022", "12 June 2022", Unix seconds
    (int or digits) and ``date``/``datetime`` objects (as YAML front matter gives them).
    Times with a zone are converted to UTC first, so the date is the UTC date.
    """
    day: date | None = None
    try:
        if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) >= 9:
            value = int(value.strip())  # Unix seconds as text; 8 digits would be 20220612
        if isinstance(value, int) and 1000 <= value <= 9999:
            value = date(value, 1, 1)  # a bare year, as YAML `published: 2022` gives it
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = value / 1000 if value > 1e11 else value  # milliseconds
            day = datetime.fromtimestamp(seconds, tz=timezone.utc).date()
        elif isinstance(value, datetime):
            day = (value.astimezone(timezone.utc) if value.tzinfo else value).date()
        elif isinstance(value, date):
            day = value
        elif isinstance(value, str) and re.search(r"\d{4}", value):  # a year: not "May"
            text = value.strip()
            if _ISO_DAY.fullmatch(text):
                day = date.fromisoformat(text)  # fast path: most feeds
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # unknown zone names: keep the local date
                    parsed = date_parser.parse(text, default=_DATE_DEFAULT, tzinfos=_TZINFOS)
                return parse_date(parsed)
    except (ValueError, TypeError, OverflowError, OSError):
        return "", -1
    if day is None or not 1800 <= day.year <= 2200:
        return "", -1
    return day.isoformat(), calendar.timegm(day.timetuple())
