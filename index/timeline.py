"""A story's timeline: its reports oldest first, each with the sentence that added something.

For each report, the sentence chosen is the one among its opening sentences whose content
words were least said by the earlier reports (its share of new, IDF-weighted terms), so
the first report gives the event and each later one its update ("the toll rose to 14",
"a suspect was charged"). Page furniture (sentences found in many articles) is skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from index.bm25 import sentence_key
from index.identity import canonical_url
from index.models import Answer, Citation
from index.retrieve import Retriever, day_ts
from index.store import Store
from index.story_store import StoryMap
from index.text import sentences, terms

OPENING_SENTENCES = 8  # what a report adds is in its lead, not its background paragraphs
MIN_TERMS = 5  # shorter "sentences" are datelines, bylines and captions
DEFAULT_IDF = 4.0


@dataclass
class Entry:
    """One report of a story, and what it added."""

    article_id: str
    published: str
    source: str
    title: str
    url: str
    new: str  # the sentence that added most that earlier reports had not said


@dataclass
class Timeline:
    story_id: str
    entries: list[Entry] = field(default_factory=list)

    @property
    def title(self) -> str:
        return self.entries[0].title if self.entries else ""


def build_timeline(
    store: Store,
    stories: StoryMap,
    story_id: str,
    *,
    idf: dict[str, float] | None = None,
    boilerplate: frozenset[str] = frozenset(),
    as_of: date | None = None,
) -> Timeline:
    """``story_id``'s reports oldest first (none after ``as_of``)."""
    idf = idf or {}
    latest = day_ts(as_of, end_of_day=True) if as_of else None
    seen: set[str] = set()
    timeline = Timeline(story_id)
    for report in stories.reports(story_id):
        if latest is not None and int(report.get("published_ts", -1)) > latest:
            continue
        text = store.article_text(report["article_id"])
        new = _newest(text, seen, idf, boilerplate)
        seen |= set(terms(f"{report.get('title', '')} {text}"))
        timeline.entries.append(
            Entry(
                article_id=report["article_id"],
                published=str(report.get("published", "")),
                source=str(report.get("source", "")),
                title=str(report.get("title", "")),
                url=str(report.get("url", "")),
                new=new,
            )
        )
    return timeline


def story_timeline(retriever: Retriever, story_id: str, *, as_of: date | None = None) -> Timeline:
    """``build_timeline`` over the retriever's own index, with its keyword statistics (so
    "what is new" in each report is judged as the answers judge it)."""
    keywords = retriever.keyword_index()
    return build_timeline(
        retriever.store,
        retriever.stories,
        story_id,
        idf=keywords.idf(),
        boilerplate=keywords.boilerplate,
        as_of=as_of,
    )


def _newest(text: str, seen: set[str], idf: dict[str, float], boilerplate: frozenset[str]) -> str:
    best, best_share = "", -1.0
    candidates = [
        s
        for s in sentences(text)
        if sentence_key(s) not in boilerplate and len(set(terms(s))) >= MIN_TERMS
    ][:OPENING_SENTENCES]
    for sentence in candidates:
        words = set(terms(sentence))
        total = sum(idf.get(t, DEFAULT_IDF) for t in words)
        share = sum(idf.get(t, DEFAULT_IDF) for t in words - seen) / total if total else 0.0
        if share > best_share + 1e-9:  # ties: the earlier sentence
            best, best_share = sentence, share
    return best


def find_story(ref: str, stories: StoryMap, cited: list[Citation] | None = None) -> str | None:
    """The story ``ref`` names: ``N`` (source [N] of the last answer, from ``cited``), a
    story id, an article id or an article's URL. None when nothing indexed matches."""
    ref = ref.strip().strip("[]")
    if ref.isdigit():
        match = [c for c in cited or [] if c.n == int(ref) and c.article_id]
        return (match[0].story_id or stories.story_of(match[0].article_id)) if match else None
    if "://" in ref:
        return stories.story_of_url(canonical_url(ref))
    if stories.reports(ref):
        return ref
    story = stories.story_of(ref)
    return story if stories.reports(story) else None


_DEVELOPMENT = re.compile(
    r"\bhow (did|has|have|is|was) .{0,80}\b(develop|unfold|evolve|progress|go on)\w*"
    r"|\bwhat happened (next|after|since|then|later)\b|\bwhat (has|have) happened since\b"
    r"|\btimeline\b|\bhow did it (end|go)\b|\bany (updates|developments)\b",
    re.IGNORECASE,
)
_NEXT = re.compile(r"\b(next|after|since|then|later|updates?)\b", re.IGNORECASE)
TIMELINE_ENTRIES = 5  # reports an answer walks through; `newsdesk story` shows them all


def asks_development(question: str) -> bool:
    """ "How did X develop?", "what happened next?": answered from a story's timeline."""
    return bool(_DEVELOPMENT.search(question))


def timeline_answer(
    timeline: Timeline, question: str, already_said: frozenset[str] = frozenset()
) -> Answer | None:
    """The story told oldest first, each step cited to the report that added it. After an
    answer ("what happened next?"), only what came after the reports already quoted."""
    entries = [e for e in timeline.entries if e.new]
    if _NEXT.search(question) and already_said:
        said = [i for i, e in enumerate(entries) if e.new in already_said]
        if said:
            entries = entries[said[-1] + 1 :]
    if not entries:
        return None
    entries = entries[:TIMELINE_ENTRIES]
    citations = []
    parts = []
    for n, entry in enumerate(entries, 1):
        citations.append(
            Citation(n, entry.title, entry.source, entry.published, entry.url, entry.new,
                     article_id=entry.article_id, story_id=timeline.story_id)
        )  # fmt: skip
        when = f"{entry.published}: " if entry.published else ""
        parts.append(f"{when}{entry.new} [{n}]")
    return Answer(text=" ".join(parts), citations=citations, question=question)
