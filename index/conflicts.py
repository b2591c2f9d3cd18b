"""Conflicts: reports of one story that give different values for what was asked.

The question says what kind of value it wants (a number, a date, a place, a name). For each
cited story, every report among the candidates gives its best sentence for the question and
the value of that kind in it (the one nearest the question's words). Two reports conflict
when their values differ and neither report's text mentions the other's value anywhere: a
later report that says "the toll rose from 12 to 14" updates the first, it does not
contradict it. The answer then says so and cites both sides:
"Reports differ: news-a.example (2022-07-04) says 12 [1]; news-b.example (2022-07-05) says 14 [2]."
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from index.extract import score_sentences
from index.models import Answer, ArticleHit, citation_for
from index.qkind import Kind, question_kind
from index.text import terms

# The kind of value compared, for each question kind (``index.qkind`` reads it from the
# question, as it does for the offline answer): an age is a number too.
_VALUE_KINDS = {
    Kind.NUMBER: "number",
    Kind.AGE: "number",
    Kind.DATE: "date",
    Kind.PLACE: "place",
    Kind.PERSON: "name",
    Kind.NAME: "name",
}

_NUMBER_WORDS = (
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty thirty forty fifty hundred dozen dozens"
)
_NUMBER = re.compile(
    r"(?<![\w.])(\$?\d[\d,]*(?:\.\d+)?%?(?:\s(?:million|billion|trillion))?"
    rf"|(?:{'|'.join(_NUMBER_WORDS.split())}))(?![\w])",
    re.IGNORECASE,
)
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_DATE = re.compile(
    rf"\b(?:(?:{_MONTHS})\.?\s+\d{{1,2}}(?:,\s*\d{{4}})?|\d{{1,2}}\s+(?:{_MONTHS})"
    r"|(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday))\b"
)
_WEEKDAY = re.compile(r"Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday")
_NAME = re.compile(r"\b[A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*)*")
_PLACE = re.compile(r"\b(?:in|at|near|from)\s+((?:the\s+)?[A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*)*)")
_YEAR = re.compile(r"^(19|20)\d\d$")
_NOUN = re.compile(r"^[a-z]{3,}$")
_STOP_AFTER = frozenset(
    [
        "and",
        "but",
        "or",
        "the",
        "a",
        "an",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "from",
        "with",
        "by",
        "as",
        "was",
        "were",
        "is",
        "are",
    ]
)


MIN_COVERAGE = 0.4  # share of the question's (IDF-weighted) words a side's sentence must hold


@dataclass
class Side:
    """One report's value, with the sentence that gives it."""

    hit: ArticleHit
    sentence: str
    value: str


@dataclass
class Conflict:
    story_id: str
    kind: str  # "number", "date", "place" or "name"
    sides: list[Side]


def value_kind(question: str) -> str | None:
    """The kind of value the question asks for: "number", "date", "place", "name" or None."""
    return _VALUE_KINDS.get(question_kind(question))


def value_in(sentence: str, kind: str, question: str) -> str | None:
    """The value of ``kind`` the sentence gives: the candidate nearest the question's words
    (values the question itself names are not answers)."""
    asked = set(terms(question))
    asked_text = question.lower()
    candidates: list[tuple[int, str]] = []
    if kind == "number":
        for m in _NUMBER.finditer(sentence):
            raw = m.group(1)
            if _YEAR.match(raw) or raw.lower() in asked_text:
                continue
            candidates.append((m.start(), _with_noun(sentence, m.end(), raw)))
    elif kind == "date":
        candidates = [(m.start(), m.group(0)) for m in _DATE.finditer(sentence)]
    elif kind == "place":
        candidates = [(m.start(1), m.group(1)) for m in _PLACE.finditer(sentence)]
    else:
        candidates = [(m.start(), m.group(0)) for m in _NAME.finditer(sentence) if m.start() > 0]
    candidates = [(p, v) for p, v in candidates if not set(terms(v)) <= asked or kind == "number"]
    if not candidates:
        return None
    anchors = [m.start() for m in re.finditer(r"\w+", sentence) if set(terms(m.group(0))) & asked]
    if not anchors:
        return candidates[0][1]
    return min(candidates, key=lambda c: min(abs(c[0] - a) for a in anchors))[1]


def _with_noun(sentence: str, end: int, number: str) -> str:
    """``12`` -> ``12 people``: the word after a number says what it counts."""
    following = sentence[end:].split(maxsplit=1)
    word = following[0].strip(".,;:") if following else ""
    if _NOUN.match(word) and word not in _STOP_AFTER:
        return f"{number} {word}"
    return number


_SMALL_NUMBERS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
)
_WORD_VALUES = {w: str(i) for i, w in enumerate(_SMALL_NUMBERS.split())}


def _key(value: str, kind: str) -> str:
    if kind == "number":
        first = value.split()[0].replace(",", "").lower()
        return _WORD_VALUES.get(first, first)
    return " ".join(terms(value))


def _unit(value: str) -> str:
    """What a number counts: the word after it, or its sign ("12 people", "60%", "$4.1")."""
    parts = value.split()
    if len(parts) > 1:
        return " ".join(terms(parts[1])) or parts[1].lower()
    return "%" if value.endswith("%") else "$" if value.startswith("$") else ""


def comparable(a: str, b: str, kind: str) -> bool:
    """Values that say the same kind of thing: numbers of the same unit ("12 people" and
    "14 people", not "six months" and "two"), calendar dates (not "Monday" and "Tuesday",
    which two reports written on different days mean differently)."""
    if kind == "number":
        return _unit(a) == _unit(b)
    if kind == "date":
        return not _WEEKDAY.fullmatch(a) and not _WEEKDAY.fullmatch(b)
    return True


def find_conflicts(
    question: str,
    hits: list[ArticleHit],
    idf: dict[str, float],
    text_of: Callable[[ArticleHit], str],
    *,
    boilerplate: frozenset[str] = frozenset(),
    stories: int = 2,
) -> list[Conflict]:
    """Conflicts within the first ``stories`` stories of ``hits`` (each with its reports)."""
    kind = value_kind(question)
    if kind is None:
        return []
    found = []
    for hit in hits[:stories]:
        sides = []
        for report in [hit, *hit.reports]:
            evidence = score_sentences(question, [report], idf, boilerplate=boilerplate)
            for ev in evidence[:2]:
                if ev.coverage < MIN_COVERAGE:
                    break  # a sentence about something else: its numbers answer nothing
                value = value_in(ev.sentence, kind, question)
                if value:
                    sides.append(Side(report, ev.sentence, value))
                    break
        conflict = _disagreeing(sides, kind, text_of)
        if conflict:
            found.append(Conflict(hit.story_id or hit.article_id, kind, conflict))
    return found


def _disagreeing(sides: list[Side], kind: str, text_of: Callable[[ArticleHit], str]) -> list[Side]:
    """The first side and the first that disagrees with it, if any."""
    if len(sides) < 2:
        return []
    first = sides[0]
    first_text = text_of(first.hit).lower()
    for other in sides[1:]:
        if _key(other.value, kind) == _key(first.value, kind):
            continue
        if not comparable(first.value, other.value, kind):
            continue
        # Either report naming the other's value: an update or a detail, not a disagreement.
        if _mentions(first_text, other.value, kind) or _mentions(
            text_of(other.hit).lower(), first.value, kind
        ):
            continue
        return [first, other]
    return []


def _mentions(text: str, value: str, kind: str) -> bool:
    key = _key(value, kind)
    if kind == "number":
        return re.search(rf"(?<![\d.,]){re.escape(key)}(?![\d])", text.replace(",", "")) is not None
    return key in " ".join(terms(text))


def state_conflicts(answer: Answer, conflicts: list[Conflict]) -> Answer:
    """Say where the cited story's reports disagree, citing both sides, unless the answer
    already cites both (an LLM told to do so may have)."""
    for conflict in conflicts:
        cited = {c.article_id: c for c in answer.citations}
        if all(side.hit.article_id in cited for side in conflict.sides) and len(cited) > 1:
            continue
        if not any(c.story_id == conflict.story_id for c in answer.citations):
            continue  # the answer does not rest on this story
        parts = []
        for side in conflict.sides:
            citation = cited.get(side.hit.article_id)
            if citation is None:
                citation = citation_for(len(answer.citations) + 1, side.hit, side.sentence)
                answer.citations.append(citation)
            when = f" ({side.hit.published})" if side.hit.published else ""
            parts.append(
                f"{side.hit.source or 'one report'}{when} says {side.value} [{citation.n}]"
            )
        answer.text = f"{answer.text.rstrip()} Reports differ: {'; '.join(parts)}."
        answer.conflicts.append(
            {
                "story_id": conflict.story_id,
                "kind": conflict.kind,
                "values": [
                    {"value": s.value, "url": s.hit.url, "source": s.hit.source}
                    for s in conflict.sides
                ],
            }
        )
    return answer
