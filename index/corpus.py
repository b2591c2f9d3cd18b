"""Reading news articles from files: Markdown, plain text, HTML, JSON and JSON Lines.

``iter_articles`` walks a file or a folder and yields one ``Article`` per article, or a
``LoadError`` for each file or record it cannot read; a bad input never stops the walk.
The helpers (dates, titles) are public because indexing and evaluation must agree with them
exactly; article identity (URLs, ids, hashes) lives in ``index.identity``.
"""

from __future__ import annotations

import calendar
import json
import os
import re
import warnings
from collections.abc import Iterator
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple
from urllib.parse import unquote, urlsplit

import frontmatter
from dateutil import parser as date_parser
from selectolax.lexbor import LexborHTMLParser, LexborNode

from index.identity import article_id, canonical_url, content_hash
from index.models import Article, LoadError, path_str

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".md", ".markdown", ".txt", ".html", ".htm", ".json", ".jsonl"}
)

_SNIFF_BYTES = 8192  # how much of a file decides "binary or text"
_TXT_TITLE_MAX = 150  # a longer first line is a sentence, not a headline
_US_TZ = {  # dateutil knows none of these names; RSS feeds use them a lot
    "UT": 0, "UTC": 0, "GMT": 0, "Z": 0, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5,
    "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
}  # fmt: skip
_TZINFOS = {name: hours * 3600 for name, hours in _US_TZ.items()}
_DATE_DEFAULT = datetime(2000, 1, 1)  # "June 2022" -> 2022-06-01, not today's day of month

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff]")  # all but \t and \n
_BINARY = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")  # controls that text files never use
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


class _Unreadable(Exception):
    """A whole file cannot be read; the message is the LoadError reason."""


class _Source(NamedTuple):
    display: str  # the path as given, for messages and Article.path
    relpath: str  # posix path relative to the indexed root, for ids
    max_chars: int


# --- walking ----------------------------------------------------------------------------------


def iter_articles(
    path: Path, *, max_file_bytes: int, max_article_chars: int
) -> Iterator[Article | LoadError]:
    """Yield the articles in ``path`` (a file or a folder), and a ``LoadError`` for each bad one.

    A folder is walked recursively in sorted order; hidden files and folders are skipped, and so
    are files of unsupported types, but a file named explicitly must be of a supported type.
    Articles without a URL get ids from their path relative to the indexed root: the folder
    itself, or a single file's parent folder.

    ``max_file_bytes`` applies to every file except JSON Lines: a ``.jsonl`` file is a collection
    streamed line by line, so the limit applies to each line (record) and a big feed is fine.
    ``max_article_chars`` applies to each article's text.
    """
    path = Path(path)
    if path.is_dir():
        files = _walk(path)
        relpaths = [file.relative_to(path).as_posix() for file in files]
    elif path.is_file():
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
            reason = f"unsupported file type {path.suffix.lower() or '(none)'!r} (use {kinds})"
            yield LoadError(path_str(path), reason)
            return
        files, relpaths = [path], [path.name]
    else:
        yield LoadError(path_str(path), "no such file or folder")
        return
    for file, relpath in zip(files, relpaths):
        yield from _read_file(
            file, _Source(path_str(file), relpath, max_article_chars), max_file_bytes
        )


def _walk(folder: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]  # .git, .venv, ...
        found += [
            Path(dirpath, name)
            for name in filenames
            if not name.startswith(".") and Path(name).suffix.lower() in SUPPORTED_SUFFIXES
        ]
    return sorted(found, key=lambda file: file.relative_to(folder).parts)


def _read_file(file: Path, src: _Source, max_file_bytes: int) -> Iterator[Article | LoadError]:
    suffix = file.suffix.lower()
    try:
        if suffix == ".jsonl":
            yield from _read_jsonl(file, src, max_file_bytes)
            return
        size = file.stat().st_size
        if size > max_file_bytes:
            raise _Unreadable(f"file is {_size(size)}, over the {_size(max_file_bytes)} limit")
        text = _decode(file.read_bytes())
        if suffix == ".json":
            yield from _read_json(text, src)
        elif suffix in (".html", ".htm"):
            yield _build(_parse_html(text), src, None)
        elif suffix == ".txt":
            yield _build(_parse_txt(text), src, None)
        else:
            yield _build(_parse_markdown(text), src, None)
    except _Unreadable as exc:
        yield LoadError(src.display, str(exc))
    except OSError as exc:
        yield LoadError(src.display, f"cannot read: {exc.strerror or exc}")


def _decode(data: bytes) -> str:
    if not data.strip():
        raise _Unreadable("empty file")
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise _Unreadable("binary file, not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Unreadable(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None
    sample = text[:_SNIFF_BYTES]
    if len(_BINARY.findall(sample)) > len(sample) // 10:
        raise _Unreadable("binary file, not text")
    return text.removeprefix("\ufeff")  # utf-8-sig


def _size(n: int) -> str:
    for unit, scale in (("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


# --- JSON and JSON Lines ------------------------------------------------------------------------


def _read_json(text: str, src: _Source) -> Iterator[Article | LoadError]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        reason = f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        raise _Unreadable(reason) from None
    if isinstance(data, dict):
        yield _from_record(data, src, None)
    elif isinstance(data, list) and data:
        for n, record in enumerate(data, 1):
            yield _from_record(record, src, n)
    else:
        raise _Unreadable("JSON must be an object or a non-empty list of objects")


def _read_jsonl(file: Path, src: _Source, max_line_bytes: int) -> Iterator[Article | LoadError]:
    """Records are numbered by line (1-based), so an error points at the line to fix."""
    with file.open("rb") as stream:
        if b"\x00" in stream.read(_SNIFF_BYTES):
            raise _Unreadable("binary file, not text")
        stream.seek(0)
        records = 0
        for n, line in enumerate(_lines(stream, max_line_bytes), 1):
            where = f"{src.display}#{n}"
            if isinstance(line, int):
                reason = f"line is {_size(line)}, over the {_size(max_line_bytes)} limit"
                yield LoadError(where, reason)
                continue
            if not line.strip():
                continue
            records += 1
            try:
                record = json.loads(line.decode("utf-8").removeprefix("\ufeff"))
            except UnicodeDecodeError as exc:
                reason = f"not UTF-8 text (byte 0x{line[exc.start]:02x} at offset {exc.start})"
                yield LoadError(where, reason)
                continue
            except json.JSONDecodeError as exc:
                yield LoadError(where, f"malformed JSON: {exc.msg} (column {exc.colno})")
                continue
            yield _from_record(record, src, n)
        if not records:
            raise _Unreadable("empty file")


def _lines(stream: BinaryIO, limit: int) -> Iterator[bytes | int]:
    """The lines of ``stream``; an overlong line is skipped unread and comes as its size."""
    while line := stream.readline(limit + 1):
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        size = len(line)
        while not line.endswith(b"\n"):  # skip the rest of the line in bounded reads
            line = stream.readline(1 << 20)
            if not line:
                break
            size += len(line)
        yield size


def _from_record(record: object, src: _Source, n: int | None) -> Article | LoadError:
    if not isinstance(record, dict):
        kind = _JSON_TYPES.get(type(record).__name__, type(record).__name__)
        return LoadError(_where(src, n), f"record is a {kind}, not an object")
    text = next(
        (v for key in ("text", "body", "content") if isinstance(v := record.get(key), str)), ""
    )
    fields = {key: record.get(key) for key in ("title", "url", "source", "published", "authors")}
    return _build({**fields, "text": text}, src, n)


# --- Markdown, text, HTML -----------------------------------------------------------------------


def _parse_markdown(text: str) -> Fields:
    try:
        post = frontmatter.loads(text)
        meta = dict(post.metadata)
    except Exception as exc:  # YAML errors come in many types
        detail = (str(exc) or type(exc).__name__).splitlines()[0]
        raise _Unreadable(f"malformed front matter: {detail}") from None
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


def _parse_txt(text: str) -> Fields:
    first, _, rest = normalize_text(text).partition("\n")
    if len(first) <= _TXT_TITLE_MAX and rest.strip():
        return {"title": first, "text": rest}
    return {"text": text}  # the first line is prose: keep it, the title is derived


def _parse_html(html: str) -> Fields:
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


def _build(fields: Fields, src: _Source, record: int | None) -> Article | LoadError:
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


def _where(src: _Source, record: int | None) -> str:
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
