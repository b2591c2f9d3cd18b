"""Typed records that cross module boundaries: articles in, answers out."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Article:
    """One news article, as read from the corpus, before chunking."""

    id: str  # stable: from the canonical URL, else from the path (and record number)
    text: str
    title: str
    url: str = ""
    source: str = ""
    published: str = ""  # ISO date (YYYY-MM-DD) or "" when unknown
    published_ts: int = -1  # Unix seconds at 00:00 UTC of `published`; -1 when unknown
    authors: list[str] = field(default_factory=list)
    path: str = ""  # where it was read from (file, plus #record for JSON lines)
    hash: str = ""  # content hash: decides whether a re-index must re-embed it


@dataclass
class LoadError:
    """A file or record that could not be read; indexing goes on without it."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Citation:
    n: int
    title: str
    source: str
    published: str
    url: str
    quote: str
    article_id: str = ""


@dataclass
class Answer:
    """What the query layer returns; front ends format it themselves."""

    text: str  # with [n] markers that refer to `citations`
    citations: list[Citation] = field(default_factory=list)
    refused: bool = False
    see_also: list[Citation] = field(default_factory=list)  # near misses shown with a refusal
    mode: str = "offline"  # "offline" or "llm"
    note: str = ""  # e.g. "LLM unavailable, offline answer shown"
    question: str = ""  # the standalone question actually answered (after follow-up resolution)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class IndexSummary:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: int = 0
    chunks: int = 0  # chunks written in this run
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def path_str(path: Path) -> str:
    return path.as_posix()
