"""A story's timeline: its reports oldest first, each with the sentence that added something.

For each report, the sentence chosen is the one among its opening sentences whose content
words were least said by the earlier reports (its share of new, IDF-weighted terms), so
the first report gives the event and each later one its update ("the toll rose to 14",
"a suspect was charged"). Page furniture (sentences found in many articles) is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from index.bm25 import sentence_key
from index.identity import canonical_url
from index.models import Citation
from index.retrieve import day_ts
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
