"""Reading news articles from files: walking folders, size limits, decoding bytes to text.

``iter_articles`` walks a file or a folder and yields one ``Article`` per article, or a
``LoadError`` for each file or record it cannot read; a bad input never stops the walk.
The formats themselves (Markdown, text, HTML, JSON) are read by ``index.readers``; article
identity (canonical URLs, ids, hashes) is ``index.identity``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from index.models import Article, LoadError, path_str
from index.readers import Source, Unreadable, from_record, read_text

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".md", ".markdown", ".txt", ".html", ".htm", ".json", ".jsonl"}
)

_SNIFF_BYTES = 8192  # how much of a file decides "binary or text"
_BINARY = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")  # controls that text files never use


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
            file, Source(path_str(file), relpath, max_article_chars), max_file_bytes
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


def _read_file(file: Path, src: Source, max_file_bytes: int) -> Iterator[Article | LoadError]:
    suffix = file.suffix.lower()
    try:
        if suffix == ".jsonl":
            yield from _read_jsonl(file, src, max_file_bytes)
            return
        size = file.stat().st_size
        if size > max_file_bytes:
            raise Unreadable(f"file is {_size(size)}, over the {_size(max_file_bytes)} limit")
        yield from read_text(suffix, _decode(file.read_bytes()), src)
    except Unreadable as exc:
        yield LoadError(src.display, str(exc))
    except OSError as exc:
        yield LoadError(src.display, f"cannot read: {exc.strerror or exc}")


def _decode(data: bytes) -> str:
    if not data.strip():
        raise Unreadable("empty file")
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise Unreadable("binary file, not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Unreadable(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None
    sample = text[:_SNIFF_BYTES]
    if len(_BINARY.findall(sample)) > len(sample) // 10:
        raise Unreadable("binary file, not text")
    return text.removeprefix("\ufeff")  # utf-8-sig


def _size(n: int) -> str:
    for unit, scale in (("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


def _read_jsonl(file: Path, src: Source, max_line_bytes: int) -> Iterator[Article | LoadError]:
    """Records are numbered by line (1-based), so an error points at the line to fix."""
    with file.open("rb") as stream:
        if b"\x00" in stream.read(_SNIFF_BYTES):
            raise Unreadable("binary file, not text")
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
            yield from_record(record, src, n)
        if not records:
            raise Unreadable("empty file")


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
