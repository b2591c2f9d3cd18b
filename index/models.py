"""Typed records that cross module boundaries: articles in, retrieved passages, answers out."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

from index.prompts import REFUSAL


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


# --- retrieval ---------------------------------------------------------------------------------
@dataclass
class Query:
    """What retrieval searches for: the question's words and the dates it is limited to."""

    text: str
    start: date | None = None  # published on or after
    end: date | None = None  # published on or before (as-of dates end up here too)
    reference: date | None = None  # "today" for recency
    recency: bool = False  # the question asks for the latest news
    restrict_to: list[str] | None = None  # article ids (follow-ups about a cited article)


@dataclass
class Chunk:
    """One stored chunk as a search found it: its Chroma metadata (article id, title, dates,
    position) and text, with its cosine similarity when the dense search found it."""

    chunk_id: str
    metadata: dict
    text: str
    score: float = 0.0


@dataclass
class Passage:
    chunk_id: str
    text: str
    position: int
    dense: float = 0.0  # cosine similarity to the query (0 when only BM25 found it)
    bm25: float = 0.0


@dataclass
class ArticleHit:
    """One retrieved article with its best passages: what a reader sees as a source."""

    article_id: str
    title: str
    url: str
    source: str
    published: str
    published_ts: int
    score: float = 0.0
    dense: float = 0.0  # best chunk's cosine similarity
    bm25: float = 0.0  # best chunk's BM25 score
    dense_rank: int | None = None
    bm25_rank: int | None = None
    passages: list[Passage] = field(default_factory=list)
    story_id: str = ""  # the story this report belongs to (its own id when alone)
    # Other reports of the same story among the candidates, best first: the story holds one
    # slot in the ranking, and an answer may cite whichever report supports a sentence best.
    reports: list[ArticleHit] = field(default_factory=list)
    digest: bool = False  # a roundup of several events ("5 things to know"), not a report


@dataclass
class Resolved:
    """A question made ready to answer: standalone wording, time scope and retrieved articles."""

    question: str  # as asked
    standalone: str  # what retrieval and the answer use
    query: Query
    hits: list[ArticleHit]
    context: str = ""  # a follow-up's earlier question: its topic, weighted lower
    already_said: frozenset[str] = frozenset()  # quotes the previous answer used
    focus: str = ""  # what the sentences must answer: the new question itself
    as_of: date | None = None
    kind: str | None = None  # an index.qkind.Kind carried over by an elliptic follow-up
    latest: str | None = None  # a "what's the latest [on X]?" question: its topic
    offline_because: str = ""  # in LLM mode, why this turn is answered offline anyway


# --- answers -------------------------------------------------------------------------------------
@dataclass
class OtherReport:
    """Another outlet's (or a later) report of the story a citation comes from."""

    source: str
    url: str
    published: str
    title: str = ""


@dataclass
class Citation:
    n: int
    title: str
    source: str
    published: str
    url: str
    quote: str
    article_id: str = ""
    story_id: str = ""  # the story the cited report belongs to
    also: list[OtherReport] = field(default_factory=list)  # the story's other reports, oldest first

    def __post_init__(self) -> None:
        # Read back from JSON (conversation history), the reports are plain dicts.
        self.also = [OtherReport(**r) if isinstance(r, dict) else r for r in self.also]


@dataclass
class Answer:
    """What the query layer returns; front ends format it themselves."""

    text: str  # with [n] markers that refer to `citations`
    citations: list[Citation] = field(default_factory=list)
    refused: bool = False
    see_also: list[Citation] = field(default_factory=list)  # near misses shown with a refusal
    mode: str = "offline"  # "offline", "llm", "timeline" (a story's reports) or "latest"
    note: str = ""  # e.g. "LLM unavailable, offline answer shown"
    question: str = ""  # the standalone question actually answered (after follow-up resolution)
    # Where reports of one cited story disagree on what was asked: story_id, kind, and each
    # side's value, url and source (the text says so and cites both).
    conflicts: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def citation_for(n: int, hit: ArticleHit, quote: str) -> Citation:
    """Citation ``[n]`` of ``hit``, quoting the sentence that supports it."""
    return Citation(
        n=n,
        title=hit.title,
        source=hit.source,
        published=hit.published,
        url=hit.url,
        quote=quote,
        article_id=hit.article_id,
        story_id=hit.story_id,
    )


def refusal(hits: list[ArticleHit], *, question: str = "", mode: str = "offline") -> Answer:
    """The refusal answer, with the best three articles as near misses to look at."""
    see_also = [citation_for(i + 1, hit, "") for i, hit in enumerate(hits[:3])]
    return Answer(text=REFUSAL, refused=True, see_also=see_also, mode=mode, question=question)


# --- indexing ------------------------------------------------------------------------------------
@dataclass
class IndexSummary:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: int = 0
    chunks: int = 0  # chunks written in this run
    seconds: float = 0.0
    stories: int = 0  # stories after this run (0: no grouping pass was needed)
    story_seconds: float = 0.0  # of `seconds`, spent grouping articles into stories
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def path_str(path: Path) -> str:
    return path.as_posix()
