"""Stories: the reports of one real-world event, grouped.

A feed carries most events several times: updates over the following days, other outlets'
versions, digests that mention it among others. Two reports are linked when, published at
most ``WINDOW_DAYS`` apart, their leads (the first chunk, whose vector the index already
stores) are about the same thing:

    cosine(lead vectors) + KEYS_WEIGHT * shared names/numbers >= LINK_SCORE

(and the cosine alone is at least ``MIN_COSINE``). "Shared" is the IDF-weighted share of the
smaller side's names and numbers that the other side also has: "Swiatek", "Gauff" and "6-1"
tell one final from another tennis story, while near-identical leads need no names at all.

Digests and roundups ("5 things to know", live updates, newsletters, "It's Wednesday's news")
are never members and never link two stories: each is a story of its own, flagged
``digest``. Stories are grown from links: near-certain ones (score >= ``STRONG_LINK``) join
two groups outright; otherwise two groups merge by average linkage when at least
``MIN_LINK_SHARE`` of their pairs (published within the window of each other) are linked, so
one report loosely linked to two events cannot glue them together.

Measured on the 30 hand-labelled dev stories over the full 3,974-article feed (pairs of
members; see ``index/story_eval.py`` and ``bench/story_bench.py``): precision 0.94, recall
0.74, 2% of mentions and 6% of near misses in their story; each half of the labelled stories
within 0.04 of that. Lower bars trade precision for recall (STRONG_LINK 0.98: 0.91 / 0.79).

Grouping is a pure function of the articles' leads, vectors and dates: the index recomputes
it after every change (seconds for 4k articles) and writes only the story ids that moved, so
a crash or a re-run converges to the same stories whatever order articles arrived in. A
story's id comes from its earliest report, so it stays put as later reports join.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

DAY = 86_400
WINDOW_DAYS = 5  # updates and other outlets' versions come within days; the labels allow ~7
MIN_COSINE = 0.6  # below this, leads are about different things whatever names they share
KEYS_WEIGHT = 0.5
LINK_SCORE = 0.95
MIN_LINK_SHARE = 0.3
STRONG_LINK = 1.05  # a link this strong (near-copies, same names) joins without the share test

# Digests name several events; a member has one main subject. Checked on the headline, the
# URL and the opening and closing of the text (newsletters sign off at the end).
_DIGEST_TITLE = re.compile(
    r"things to know|\b5 things\b|daily briefing|short list|onpolitics|live updates?\b"
    r"|\bupdates \||^the latest\b|it's \w+day's news|news from around our|50 states"
    r"|photos (of )?(the|this) week|week in (review|photos)|what you need to know today"
    r"|morning briefing|evening briefing|newsletter",
    re.IGNORECASE,
)
_DIGEST_TEXT = re.compile(
    r"the latest on the\b|5 things podcast|onpolitics readers|👋|newsletter writer at"
    r"|here's all the news you need|from usa today network and wire reports"
    r"|get '5 things' in your inbox|up to speed on the latest headlines"
    # business and media newsletters of several items; "a version of this story appeared in
    # <newsletter>" heads single-subject pieces, which stay members
    r"|(part of|first appeared in|appeared in the) [^.]{0,80}newsletter",
    re.IGNORECASE,
)
_DIGEST_URL = re.compile(r"/live-news/|/newsletters?/|newsletters\.", re.IGNORECASE)

_KEY = re.compile(r"\b(?:[A-Z][\w'’.-]*[a-z]\w*|[A-Z]{2,}|\d[\d,.:/-]*\d|\d)\b")
# Capitalised words that start sentences or name the outlet, the calendar or a role say
# nothing about which event a report is about.
_STOP_WORDS = """a an and as at but by for from he her his how i in it its new no of on or our she so
    that the their there these they this to up was we what when where which who why will with
    you your after before here more most now over than then today yesterday tomorrow cnn usa
    ap reuters news week update updates live video photos watch read opinion analysis
    president mr mrs ms dr gov sen rep
    monday tuesday wednesday thursday friday saturday sunday january february march april may
    june july august september october november december jan feb mar apr jun jul aug sep sept
    oct nov dec"""
_STOP = frozenset(_STOP_WORDS.split())


@dataclass
class Report:
    """What grouping reads of one article: its lead as indexed, and the lead's vector."""

    article_id: str
    title: str
    lead: str  # the first chunk's text
    published_ts: int  # -1 when unknown: such a report never joins another
    vector: np.ndarray  # unit-length embedding of the first chunk
    url: str = ""
    source: str = ""

    @property
    def digest(self) -> bool:
        return is_digest(self.title, self.lead, self.url)


@dataclass
class Grouping:
    """Article id -> story id, and which articles are digests (each a story of its own)."""

    story_of: dict[str, str] = field(default_factory=dict)
    digests: set[str] = field(default_factory=set)

    def members(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for article_id, story in self.story_of.items():
            out.setdefault(story, []).append(article_id)
        return out


def is_digest(title: str, text: str, url: str = "") -> bool:
    """A roundup of several events (never a story's member)."""
    head, tail = text[:600], text[-400:]
    return bool(
        _DIGEST_TITLE.search(title)
        or _DIGEST_URL.search(url)
        or _DIGEST_TEXT.search(head)
        or _DIGEST_TEXT.search(tail)
    )


def keys(title: str, lead: str) -> set[str]:
    """Names and numbers of a headline and lead, lower-cased: what tells one event apart."""
    found = set()
    for match in _KEY.finditer(f"{title}\n{lead}"):
        token = match.group(0).strip(".,-:/").lower().replace("’", "'")
        token = token.removesuffix("'s")
        if token and token not in _STOP and not _is_year(token):
            found.add(token)
    return found


def _is_year(token: str) -> bool:
    return len(token) == 4 and token.isdigit() and token[:2] in ("19", "20")


def story_id(first_article_id: str) -> str:
    return "s" + hashlib.sha1(first_article_id.encode("utf-8")).hexdigest()[:11]


def group(reports: Sequence[Report]) -> Grouping:
    """Stories over ``reports``; deterministic, whatever their order."""
    order = sorted(
        range(len(reports)), key=lambda i: (reports[i].published_ts, reports[i].article_id)
    )
    items = [reports[i] for i in order]
    digests = {r.article_id for r in items if r.digest}
    key_sets = [keys(r.title, r.lead) for r in items]
    idf = _idf(key_sets)
    links = _links(items, key_sets, idf, digests)
    parent = _cluster(items, links)
    first: dict[int, int] = {}
    for i in range(len(items)):  # items are oldest first: a group's first index is its oldest
        first.setdefault(parent[i], i)
    story_of = {
        r.article_id: story_id(items[first[parent[i]]].article_id) for i, r in enumerate(items)
    }
    return Grouping(story_of=story_of, digests=digests)


def _idf(key_sets: Iterable[set[str]]) -> dict[str, float]:
    sets = list(key_sets)
    df = Counter(k for s in sets for k in s)
    n = max(len(sets), 1)
    return {k: math.log((n + 1) / (c + 0.5)) for k, c in df.items()}


def shared_keys(a: set[str], b: set[str], idf: dict[str, float]) -> float:
    """IDF-weighted share of the smaller key set that the other one has too."""
    if not a or not b:
        return 0.0
    both = sum(idf.get(k, 0.0) for k in a & b)
    smaller = min(sum(idf.get(k, 0.0) for k in a), sum(idf.get(k, 0.0) for k in b))
    return both / smaller if smaller > 0 else 0.0


def linked(cosine: float, shared: float) -> bool:
    """Two leads within the window report the same event."""
    return cosine >= MIN_COSINE and cosine + KEYS_WEIGHT * shared >= LINK_SCORE


def _links(
    items: list[Report], key_sets: list[set[str]], idf: dict[str, float], digests: set[str]
) -> dict[int, dict[int, float]]:
    """Linked pairs among reports published within the window (items are oldest first),
    each with its link score."""
    n = len(items)
    links: dict[int, dict[int, float]] = {i: {} for i in range(n)}
    if n == 0:
        return links
    ts = np.asarray([r.published_ts for r in items], dtype=np.int64)
    matrix = np.stack([np.asarray(r.vector, dtype=np.float32) for r in items])
    usable = np.asarray(
        [r.published_ts >= 0 and r.article_id not in digests for r in items], dtype=bool
    )
    window = WINDOW_DAYS * DAY
    end = 0
    for i in range(n):
        if not usable[i]:
            continue
        end = max(end, i + 1)
        while end < n and ts[end] - ts[i] <= window:
            end += 1
        if end <= i + 1:
            continue
        cosines = matrix[i + 1 : end] @ matrix[i]
        for offset in np.flatnonzero(cosines >= MIN_COSINE):
            j = i + 1 + int(offset)
            if not usable[j]:
                continue
            cos = float(cosines[offset])
            shared = shared_keys(key_sets[i], key_sets[j], idf)
            if linked(cos, shared):
                links[i][j] = links[j][i] = cos + KEYS_WEIGHT * shared
    return links


def _cluster(items: list[Report], links: dict[int, dict[int, float]]) -> list[int]:
    """Average linkage on the link graph: repeatedly merge the two groups whose reports are
    most often linked, as a share of their pairs published within the window of each other,
    while that share is at least ``MIN_LINK_SHARE`` (equal shares: the stronger links
    first, so near-copies pair up before looser follow-ups). One report linked to two
    events cannot glue them: most cross pairs of the two groups are unlinked."""
    window = WINDOW_DAYS * DAY
    ts = [r.published_ts for r in items]
    group_of = list(range(len(items)))
    members: dict[int, list[int]] = {i: [i] for i in range(len(items))}
    for i in range(len(items)):  # near-certain links join outright (oldest group keeps its id)
        for j, score in links[i].items():
            a, b = group_of[i], group_of[j]
            if score >= STRONG_LINK and a != b:
                a, b = min(a, b), max(a, b)
                for m in members.pop(b):
                    group_of[m] = a
                    members[a].append(m)

    def share(a: int, b: int) -> tuple[float, float]:
        joined = comparable = 0
        strength = 0.0
        for i in members[a]:
            for j in members[b]:
                if abs(ts[i] - ts[j]) <= window:
                    comparable += 1
                    if j in links[i]:
                        joined += 1
                        strength += links[i][j]
        return (joined / comparable if comparable else 0.0), strength / max(joined, 1)

    while True:
        pairs = {
            (min(group_of[i], group_of[j]), max(group_of[i], group_of[j]))
            for i in range(len(items))
            for j in links[i]
            if group_of[i] != group_of[j]
        }
        # Merge mutual best partners only (what one-merge-at-a-time linkage would do, in
        # rounds): a group's best partner is its most-linked one, then the strongest.
        best: dict[int, tuple[tuple[float, float], int]] = {}
        for a, b in pairs:
            score = share(a, b)
            if score[0] < MIN_LINK_SHARE:
                continue
            for one, other in ((a, b), (b, a)):
                if one not in best or (score, -other) > (best[one][0], -best[one][1]):
                    best[one] = (score, other)
        merged = [(a, b) for a, (_, b) in best.items() if a < b and best[b][1] == a]
        if not merged:
            return group_of
        for a, b in merged:
            for m in members.pop(b):
                group_of[m] = a
                members[a].append(m)
