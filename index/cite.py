"""Checked citations for LLM answers: every [n] must point at a source that says so.

The LLM's text is split into sentences. Each sentence is a claim: its content terms and its
numbers. A claim is looked for in the sources it cites, one sentence (or, failing that, two
adjacent ones) at a time; a marker survives only if some source sentence holds at least
``SUPPORT_THRESHOLD`` of the claim's terms and every number in it. Then:

* markers naming no source (``[9]`` of five) are removed;
* a sentence whose valid markers are all unsupported is dropped: the claim never reaches
  the user;
* a sentence with no (valid) marker is kept if some source supports it, and cites that one;
  a short connective with no content terms ("In short,") is kept as it is;
* the surviving markers are renumbered 1..m in order of first use, as offline answers are,
  and each citation quotes the source sentence that supports the first claim citing it.

API: ``check_citations`` returns an ``Answer`` (mode "llm"), a refusal ``Answer`` when the
LLM used the refusal phrase, and raises ``Unsupported`` when no supported claim is left,
so the caller can fall back to the offline answer.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from itertools import pairwise

from index.models import Answer, ArticleHit, citation_for, refusal
from index.prompts import REFUSAL
from index.text import sentences, terms

#: Share of a claim's content terms a source sentence must contain for the citation to stand.
#: 0.5 keeps fair paraphrases ("agreed to speed up signing an MOU on defence hardware") and
#: drops claims that merely share the topic words of an article.
SUPPORT_THRESHOLD = 0.5
MIN_CLAIM_TERMS = 3  # content words a claim needs before support is even measured
MIN_PREFIX = 4  # stems sharing this many leading letters may match (sign ~ signatur)

_MARKER = re.compile(r"\[\s*(\d{1,3}(?:\s*,\s*\d{1,3})*)\s*\]")
_LEADING_MARKERS = re.compile(r"^(?:\s*\[\s*\d{1,3}(?:\s*,\s*\d{1,3})*\s*\])+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_DASHES = re.compile(r"[-‐‑–—/]")  # "Pakistan-Azerbaijan" must match "Pakistan and Azerbaijan"
# Words about the sources rather than the news ("the article reports") are not claims.
_META = frozenset(terms("article articles source sources report reported reports indexed"))


class Unsupported(ValueError):
    """Nothing in the LLM's text is supported by the sources: show the offline answer instead."""


@dataclass
class Support:
    score: float  # share of the claim's terms found (0 when a number does not match)
    quote: str  # the source sentence(s) that support it


@dataclass
class _Unit:
    text: str
    terms: set[str]
    numbers: set[str]


@dataclass
class _Source:
    sentences: list[_Unit]
    pairs: list[_Unit]  # adjacent sentences: a claim may merge two
    context_terms: set[str]  # the published date, which the LLM is told and may cite
    context_numbers: set[str]


def check_citations(text: str, hits: list[ArticleHit]) -> Answer:
    """The LLM's ``text`` with only supported claims and markers, renumbered 1..m.

    ``hits`` are the sources in the order the LLM saw them (source id n is ``hits[n - 1]``).
    Raises ``Unsupported`` when no supported claim remains.
    """
    if is_refusal(text):
        return refusal(hits, mode="llm")
    sources = [_source(hit) for hit in hits]
    kept: list[tuple[str, list[int]]] = []  # (sentence without markers, 0-based source indexes)
    quotes: dict[int, str] = {}
    seen: set[str] = set()
    for sentence, cited in _claims(text):
        if not sentence or sentence.lower() in seen:
            continue
        claim_terms, claim_numbers = _claim(sentence)
        if not claim_terms and not claim_numbers:
            kept.append((sentence, []))  # a connective: nothing to check, nothing to cite
            continue
        valid = [i for i in dict.fromkeys(cited) if 0 <= i < len(hits)]
        # Out-of-range markers cite nothing: such a sentence is treated as uncited.
        candidates = valid or range(len(hits))
        scored = [(i, _support(claim_terms, claim_numbers, sources[i])) for i in candidates]
        supported = [(i, s) for i, s in scored if s.score >= SUPPORT_THRESHOLD]
        if not valid:  # uncited: cite the one source that supports it best
            supported = sorted(supported, key=lambda pair: -pair[1].score)[:1]
        if not supported:
            continue  # an unsupported claim is dropped
        seen.add(sentence.lower())
        kept.append((sentence, [i for i, _ in supported]))
        for i, s in supported:
            quotes.setdefault(i, s.quote)  # the claim that first cites a source supplies its quote

    if not any(cited for _, cited in kept):
        raise Unsupported("no claim in the LLM answer is supported by the sources")
    numbers: dict[int, int] = {}  # source index -> compact number, by first use
    parts = []
    for sentence, cited in kept:
        for i in cited:
            numbers.setdefault(i, len(numbers) + 1)
        markers = "".join(f"[{numbers[i]}]" for i in cited)
        parts.append(f"{sentence} {markers}" if markers else sentence)
    citations = [citation_for(n, hits[i], strip_markers(quotes[i])) for i, n in numbers.items()]
    return Answer(text=" ".join(parts), citations=citations, mode="llm")


def is_refusal(text: str) -> bool:
    """The LLM's text is (or starts with) the refusal phrase, give or take quotes and case."""
    cleaned = text.strip().lstrip("\"'“‘*_ ").replace("’", "'").lower()
    return cleaned.startswith(REFUSAL.rstrip(".").lower())


def _support(claim_terms: set[str], claim_numbers: set[str], source: _Source) -> Support:
    """The best support one sentence of ``source`` gives the claim; two adjacent sentences
    only when no single one is enough (so the quote stays one sentence when it can)."""
    best = _best(claim_terms, claim_numbers, source, source.sentences)
    if best.score < SUPPORT_THRESHOLD:
        pair = _best(claim_terms, claim_numbers, source, source.pairs)
        if pair.score > best.score:
            best = pair
    return best


def _best(
    claim_terms: set[str], claim_numbers: set[str], source: _Source, units: list[_Unit]
) -> Support:
    best = Support(0.0, "")
    # A bare number ("2.") or a two-word fragment says too little to be checked: one shared
    # word would "support" it. Such claims are never supported, so they never reach the user.
    if len(claim_terms) < MIN_CLAIM_TERMS:
        return best
    for unit in units:
        if not claim_numbers <= unit.numbers | source.context_numbers:
            continue  # a number the source does not state: no support, however many words match
        pool = unit.terms | source.context_terms
        found = sum(1 for t in claim_terms if _matches(t, pool))
        score = found / len(claim_terms) if claim_terms else 1.0
        if score > best.score:
            best = Support(score, unit.text)
    return best


# --- parsing -------------------------------------------------------------------------------------
def _claims(text: str) -> list[tuple[str, list[int]]]:
    """(sentence without markers, cited source indexes) for each sentence of the LLM's text."""
    pieces: list[list] = []
    for piece in sentences(text):
        # "Claim. [1] Next claim." splits before "[1]": the marker belongs to the claim before.
        lead = _LEADING_MARKERS.match(piece)
        if lead and pieces:
            pieces[-1][1] += _marker_numbers(lead.group(0))
            piece = piece[lead.end() :]
        pieces.append([piece, _marker_numbers(piece)])
    return [(_strip_markers(piece), cited) for piece, cited in pieces]


def _marker_numbers(text: str) -> list[int]:
    return [int(n) - 1 for m in _MARKER.finditer(text) for n in m.group(1).split(",")]


def strip_markers(text: str) -> str:
    """``text`` without [n] markers: article text quoted in an answer must not bring its own
    ("...salinity. [9] [10]"), which would read as citations the answer does not list."""
    text = _MARKER.sub("", text)
    text = re.sub(r"\s+([.,;:!?])", r"\1", text)  # "claim [1]." left "claim ."
    return " ".join(text.split())


_strip_markers = strip_markers


def only_listed_markers(answer: Answer) -> Answer:
    """Drop every [n] in the answer's text that names no citation it lists (the last line of
    defence for offline, LLM and fallback answers alike)."""
    listed = {c.n for c in answer.citations}

    def keep(match: re.Match[str]) -> str:
        numbers = [n.strip() for n in match.group(1).split(",")]
        kept = [n for n in numbers if int(n) in listed]
        return f"[{', '.join(kept)}]" if kept else ""

    text = _MARKER.sub(keep, answer.text)
    if text != answer.text:
        answer.text = " ".join(re.sub(r"\s+([.,;:!?])", r"\1", text).split())
    return answer


def _claim(sentence: str) -> tuple[set[str], set[str]]:
    return _terms(sentence) - _META, _numbers(sentence)


def _terms(text: str) -> set[str]:
    return set(terms(_DASHES.sub(" ", text)))


def _numbers(text: str) -> set[str]:
    """Numbers as written, normalised: "2,000" -> "2000", "01" -> "1"."""
    out = set()
    for raw in _NUMBER.findall(text):
        number = raw.replace(",", "")
        out.add(number.lstrip("0") or "0")
    return out


def _matches(term: str, pool: set[str]) -> bool:
    """Exact stem, or a near one: stems differing only after a shared prefix of at least
    MIN_PREFIX letters and by at most one letter of the shorter (defenc/defens, sign/signatur)."""
    if term in pool:
        return True
    if len(term) < MIN_PREFIX or term.isdigit():
        return False
    for other in pool:
        shorter = min(len(term), len(other))
        if shorter < MIN_PREFIX or other[:MIN_PREFIX] != term[:MIN_PREFIX]:
            continue
        common = MIN_PREFIX
        while common < shorter and term[common] == other[common]:
            common += 1
        if common >= shorter - 1:
            return True
    return False


# --- sources -------------------------------------------------------------------------------------
def _source(hit: ArticleHit) -> _Source:
    singles: list[_Unit] = []
    pairs: list[_Unit] = []
    seen: set[str] = set()
    for passage in hit.passages:
        found = [s for s in sentences(passage.text) if s.lower() not in seen]
        seen.update(s.lower() for s in found)
        units = [_Unit(s, _terms(s), _numbers(s)) for s in found]
        singles += units
        pairs += [
            _Unit(f"{a.text} {b.text}", a.terms | b.terms, a.numbers | b.numbers)
            for a, b in pairwise(units)
        ]
    context = _date_words(hit.published)
    return _Source(singles, pairs, _terms(context), _numbers(context))


def _date_words(published: str) -> str:
    """ "2025-01-24" -> "published 2025-01-24 January 24 2025": the ways a claim may cite it."""
    match = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", published or "")
    if not match:
        return ""
    year, month, day = (int(g) for g in match.groups())
    if not 1 <= month <= 12:
        return ""
    return f"published {published} {calendar.month_name[month]} {day} {year}"
