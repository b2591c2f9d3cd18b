"""Stories: the reports of one real-world event, grouped.

A feed carries most events several times: updates over the following days, other outlets'
versions, digests that mention it among others. Grouping reads each article's lead (the
first chunk, whose vector the index already stores), its date and its names and numbers.

1. **Links.** Two reports published at most ``WINDOW_DAYS`` apart are linked when

       cosine(lead vectors) + KEYS_WEIGHT * shared names/numbers
           + TITLE_WEIGHT * shared headline words (same day only)
           - DAY_PENALTY * (days apart beyond FREE_DAYS)  >=  LINK_SCORE

   (and the cosine alone is at least ``MIN_COSINE``). "Shared" is the IDF-weighted share of
   the smaller side's names and numbers that the other side also has: "Swiatek", "Gauff"
   and "6-1" tell one final from another tennis story, while near-identical leads need no
   names at all. A name is a capitalised word inside a sentence (sentence-initial words and
   clock times are page furniture: "Watch", "Replay", "03:46"). Headline words (any case:
   a URL-slug title like "Queen elizabeth ii funeral" has no capitals) count the same way,
   but only between reports of the same day: that day's headlines of one event share
   their words ("student loan", "funeral"), while the next game or drawing of a saga,
   days later, shares them too. Updates more than
   ``FREE_DAYS`` later need a closer match the later they come: a trial's verdict joins its
   opening arguments eight days before, a separate game of the same series does not.
2. **Groups.** Near-certain links (score >= ``STRONG_LINK``) join outright; otherwise two
   groups merge by average linkage when at least ``MIN_LINK_SHARE`` of their pairs
   (published within the window of each other) are linked, so one report loosely linked to
   two events cannot glue them together.
3. **Stories.** Groups then merge by average linkage on the scores themselves (mean cosine
   of all their pairs + ``GROUP_KEYS_WEIGHT`` * their mean shared names >= ``GROUP_SCORE``,
   centres at most ``GROUP_DAYS`` apart): the several angles of one day's event (the
   flight, the reactions, the migrants' next stop) that no single pair of leads ties.

Digests and roundups ("5 things to know", live updates, newsletters, "It's Wednesday's news")
are never members and never link two stories: each is a story of its own, flagged
``digest``.

**Page furniture.** A lead that is mostly furniture (an ad survey where a video was, a
sign-up and consent box, a photo caption) says nothing about its event, yet such leads are
alike across pages: the second chunk stands in for it (its text and vector: the same
title header, the story's own words). A page with nothing but furniture (a *blank* page)
links to no report by its lead; its headline is all it has, so it joins the story of the
report, published within ``BLANK_DAYS``, that has the largest IDF-weighted share (at least
``BLANK_SHARE``) of its headline words: "Ford recall" joins "Ford recalls 2.9M vehicles..."
of the same day. No report joins a blank page's story through it.

Measured on the 30 hand-labelled dev stories over the full 3,974-article feed (pairs of
members; ``index/story_eval.py``, ``bench/story_bench.py``), parameters chosen on the odd
stories and checked on the even ones: precision 0.95, recall 0.87, 2% of mentions and 4% of
near misses in their story (odd half 0.96/0.88, even half 0.93/0.87; without the headline
words 0.95/0.81, odd half 0.96/0.76; before the group rules, 0.94/0.74 overall).

**Locality.** Every link and merge joins reports with lead cosine >= ``MIN_COSINE`` published
within ``WINDOW_DAYS``, or a blank page and a report sharing a headline word within
``BLANK_DAYS`` (``headline_near``): so a story never leaves its connected component of that
graph (``components``), and grouping a set of whole components gives exactly what grouping
the whole index gives them. The index regroups only the components around what changed
(``index/story_store.py``), with the names' document frequencies frozen in ``KeyStats`` (a
full regroup refreshes them once the index has grown or shrunk by ``STATS_DRIFT``). A
story's id comes from its earliest report, so it stays put as later reports join.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

DAY = 86_400
GROUPING_VERSION = 5  # bump when the rules change: the next index run regroups every lead
WINDOW_DAYS = 9  # the labels allow ~7 days of updates; later ones must match more closely
FREE_DAYS = 5  # within this, a link's date does not matter
DAY_PENALTY = 0.04  # per day beyond FREE_DAYS
MIN_COSINE = 0.6  # below this, leads are about different things whatever names they share
KEYS_WEIGHT = 0.5
TITLE_WEIGHT = 0.25  # per unit of shared headline words, for reports of one day
TITLE_DAYS = 0.5  # (dates are mostly whole days: this is "published the same day")
BLANK_SHARE = 0.6  # a blank page joins the story of a report with this share of its headline
BLANK_DAYS = 1.5  # published at most this far apart
LINK_SCORE = 0.95
MIN_LINK_SHARE = 0.3
STRONG_LINK = 1.05  # a link this strong (near-copies, same names) joins without the share test
GROUP_SCORE = 0.91
GROUP_KEYS_WEIGHT = 0.5
GROUP_DAYS = 5
STATS_DRIFT = 0.1

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

# Page furniture: lines about the page, not the event (ad surveys, sign-up and consent boxes,
# newsletter and podcast intros, shopping disclaimers, editor's notes, photo captions). Their
# names ("Privacy Policy", "Audio") tell no event apart, and a lead made of them says nothing.
_FURNITURE = re.compile(
    r"how relevant is this ad|video player was slow|ad froze"
    r"|you have shared|privacy policy|please tick here|as detailed here|would you like to receive"
    r"|\bsign(ing)? up\b|\bsubscri(be|ber|ption)|in your inbox|newsletter"
    r"|independently chosen|earn us a commission|hit play on the player|automatically generated"
    r"|^editor['’]s note|live coverage from|getty images",
    re.IGNORECASE,
)
_CAPTION = re.compile(
    r"^[A-Z][A-Z .,'’-]+ [-–] [A-Z]{3,9}\.? \d{1,2}:"
)  # "SCHWEDT, GERMANY - MAY 03:"

_TOKEN = re.compile(r"[A-Za-z0-9][\w'’.-]*\w|\w")
_NAME = re.compile(r"(?:[A-Z][\w'’.-]*[a-z]\w*|[A-Z]{2,}[\w'’.-]*)$")
_NUMBER = re.compile(r"\d[\d,.:/-]*\d|\d")
_SENTENCE_END = tuple('.!?"“”:—–|(')
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
# Headline words that name no event, and CNN's URL-slug tags ("intl", "vpx", ...)
_HEADLINE_STOP_WORDS = """is are be been has have had says said say after amid into about not all
    out off just than can could would should may might one two three first last year years day
    days here's what's intl vpx nr sot trnd scn cmd ovn contd hnk spt"""
_HEADLINE_STOP = frozenset(_HEADLINE_STOP_WORDS.split())
_TITLE_TAIL = re.compile(r" [|] | - (?:CNN|USA TODAY)\b| ?\.\.\.|…")  # "| CNN", "- CNN ..."


@dataclass
class Report:
    """What grouping reads of one article: its lead as indexed, and the lead's vector."""

    article_id: str
    title: str
    lead: str  # the first chunk's text
    published_ts: int  # -1 when unknown: such a report never joins another
    vector: np.ndarray  # unit-length embedding of the first chunk (of ``body``'s when set)
    url: str = ""
    source: str = ""
    body: str = ""  # the second chunk's text when the lead is mostly furniture (``furnished``)

    @cached_property
    def digest(self) -> bool:
        return is_digest(self.title, self.lead, self.url)

    @cached_property
    def keys(self) -> set[str]:
        if self.body:  # the lead is mostly furniture: its few lines of text and the next chunk
            return keys(self.title, f"{content(self.lead)}\n{self.body}")
        return keys(self.title, self.lead)

    @cached_property
    def words(self) -> set[str]:
        return headline_words(self.title)

    @cached_property
    def blank(self) -> bool:
        """Dated, not a digest, but its lead is page furniture only (an ad survey where a
        video was): its vector would join every page like it, its headline is all it has."""
        return (
            self.published_ts >= 0
            and not self.digest
            and bool(self.lead.strip())
            and not content(self.lead).strip()
            and not self.body
        )

    @cached_property
    def joinable(self) -> bool:
        """Near leads can join it: dated, not a digest, with some text about its event."""
        return self.published_ts >= 0 and not self.digest and not self.blank


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


def content(text: str) -> str:
    """``text`` without its lines of page furniture."""
    return "\n".join(
        line
        for line in text.splitlines()
        if not _FURNITURE.search(line) and not _CAPTION.match(line.strip())
    )


def furnished(lead: str) -> bool:
    """Most of this lead is page furniture: its vector says little about the event, and the
    next chunk (same title header, the story's own text) reads better."""
    return len(content(lead).strip()) < 0.5 * len(lead.strip())


def keys(title: str, lead: str) -> set[str]:
    """Names and numbers of a headline and lead, lower-cased: what tells one event apart.
    A capitalised word counts inside a sentence only: at its start it may be any word."""
    found = set()
    for line in f"{title}\n{lead}".splitlines():
        for match in _TOKEN.finditer(line):
            token = match.group(0).strip(".,-:/").replace("’", "'")
            key = token.lower().removesuffix("'s")
            if not key or key in _STOP or _is_year(key):
                continue
            if _NUMBER.fullmatch(token):
                if ":" not in token:  # clock times and video lengths name no event
                    found.add(key)
            elif _NAME.match(token) and not _starts_sentence(line[: match.start()]):
                found.add(key)
    return found


def headline_words(title: str) -> set[str]:
    """The headline's words (any case: a URL-slug title such as "Queen elizabeth ii funeral"
    has no capitals to find names by), without the outlet's suffix, stop words and slug tags;
    marked "~" so they never count as names."""
    head = _TITLE_TAIL.split(title)[0]
    found = set()
    for match in _TOKEN.finditer(head):
        word = match.group(0).lower().replace("’", "'").removesuffix("'s").strip(".-'")
        if len(word) < 2 or word in _STOP or word in _HEADLINE_STOP or _is_year(word):
            continue
        if len(word) > 4 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]  # "recalls" and "recall" are one word
        found.add("~" + word)
    return found


def _starts_sentence(before: str) -> bool:
    before = before.rstrip()
    return not before or before.endswith(_SENTENCE_END) or before.endswith("(CNN)")


def _is_year(token: str) -> bool:
    return len(token) == 4 and token.isdigit() and token[:2] in ("19", "20")


def story_id(first_article_id: str) -> str:
    return "s" + hashlib.sha1(first_article_id.encode("utf-8")).hexdigest()[:11]


@dataclass
class KeyStats:
    """How many leads have each name or number: what makes a shared name rare (IDF). Kept
    with the stories so that regrouping a few components weighs names as a full regroup
    with the same statistics would."""

    n: int = 0
    df: dict[str, int] = field(default_factory=dict)  # keys of two or more leads

    @classmethod
    def of(cls, key_sets: Iterable[set[str]]) -> KeyStats:
        sets = list(key_sets)
        counts = Counter(k for s in sets for k in s)
        return cls(len(sets), {k: c for k, c in counts.items() if c > 1})

    def idf(self) -> Callable[[str], float]:
        n, df = max(self.n, 1), self.df
        rare = math.log((n + 1) / 1.5)  # a key of one lead (or a lead added since)
        return lambda key: math.log((n + 1) / (df[key] + 0.5)) if key in df else rare

    def stale(self, articles: int) -> bool:
        """The index has grown or shrunk enough since these were counted to count again."""
        return abs(articles - self.n) > STATS_DRIFT * max(self.n, 1)

    def to_json(self) -> str:
        return json.dumps({"n": self.n, "df": self.df}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> KeyStats:
        data = json.loads(text)
        return cls(int(data["n"]), {str(k): int(v) for k, v in data["df"].items()})


def shared_keys(a: set[str], b: set[str], idf: Callable[[str], float]) -> float:
    """IDF-weighted share of the smaller key set that the other one has too."""
    if not a or not b:
        return 0.0
    both = sum(idf(k) for k in a & b)
    smaller = min(sum(idf(k) for k in a), sum(idf(k) for k in b))
    return both / smaller if smaller > 0 else 0.0


def link_score(cosine: float, shared: float, days: float, title: float = 0.0) -> float:
    return (
        cosine
        + KEYS_WEIGHT * shared
        + (TITLE_WEIGHT * title if days <= TITLE_DAYS else 0.0)
        - DAY_PENALTY * max(0.0, days - FREE_DAYS)
    )


def linked(cosine: float, shared: float, days: float = 0.0, title: float = 0.0) -> bool:
    """Two leads within the window report the same event."""
    return cosine >= MIN_COSINE and link_score(cosine, shared, days, title) >= LINK_SCORE


def key_stats(reports: Iterable[Report]) -> KeyStats:
    """The document frequencies of these reports' names, numbers and headline words."""
    return KeyStats.of(r.keys | r.words for r in reports)


def group(reports: Sequence[Report], stats: KeyStats | None = None) -> Grouping:
    """Stories over ``reports`` (names weighed by ``stats``, else by these reports' own
    counts); deterministic, whatever their order."""
    items = sorted(reports, key=lambda r: (r.published_ts, r.article_id))
    digests = {r.article_id for r in items if r.digest}
    key_sets, word_sets = [r.keys for r in items], [r.words for r in items]
    idf = (stats or key_stats(items)).idf()
    near = _near_pairs(items)
    links: dict[int, dict[int, float]] = {i: {} for i in range(len(items))}
    for i, j, cos in near:
        days = (items[j].published_ts - items[i].published_ts) / DAY
        shared = shared_keys(key_sets[i], key_sets[j], idf)
        title = shared_keys(word_sets[i], word_sets[j], idf)
        score = link_score(cos, shared, days, title)
        if score >= LINK_SCORE:
            links[i][j] = links[j][i] = score
    parent = _cluster(items, links)
    parent = _merge_groups(items, key_sets, idf, near, parent)
    for i, j in _blank_joins(items, idf):
        parent[i] = parent[j]
    first: dict[int, int] = {}
    for i in range(len(items)):  # items are oldest first: a group's first index is its oldest
        first.setdefault(parent[i], i)
    story_of = {
        r.article_id: story_id(items[first[parent[i]]].article_id) for i, r in enumerate(items)
    }
    return Grouping(story_of=story_of, digests=digests)


def components(reports: Sequence[Report]) -> list[list[str]]:
    """Article ids in groups that no story crosses: connected by near pairs (lead cosine >=
    ``MIN_COSINE``, within ``WINDOW_DAYS``; reports that are not ``joinable`` stay alone)."""
    items = sorted(reports, key=lambda r: (r.published_ts, r.article_id))
    parent = list(range(len(items)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    edges = [(i, j) for i, j, _ in _near_pairs(items)]
    for i, r in enumerate(items):  # whatever the names' weights, a blank page's headline
        if r.blank:  # shares a word with the report whose story it joins
            edges += [(i, j) for j in _blank_candidates(items, i)]
    for i, j in edges:
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    out: dict[int, list[str]] = {}
    for i, r in enumerate(items):
        out.setdefault(root(i), []).append(r.article_id)
    return list(out.values())


def headline_near(a: Report, b: Report) -> bool:
    """One of the two is a blank page that the other's story could take in by headline."""
    if abs(a.published_ts - b.published_ts) > BLANK_DAYS * DAY or not a.words & b.words:
        return False  # (cheap tests first: the blank test reads text)
    return a.blank != b.blank and (a.joinable or b.joinable)


def _blank_candidates(items: list[Report], i: int) -> list[int]:
    ts = [r.published_ts for r in items]
    lo = bisect_left(ts, ts[i] - BLANK_DAYS * DAY)
    hi = bisect_right(ts, ts[i] + BLANK_DAYS * DAY)
    return [j for j in range(lo, hi) if headline_near(items[i], items[j])]


def _blank_joins(items: list[Report], idf: Callable[[str], float]) -> list[tuple[int, int]]:
    """(blank page, report) pairs: each blank page joins the report, published within
    ``BLANK_DAYS``, that has the largest IDF-weighted share (at least ``BLANK_SHARE``) of
    its headline words (ties: the earlier report). It joins no other page's story to it."""
    out = []
    for i, r in enumerate(items):
        if not r.blank or not r.words:
            continue
        total = sum(idf(w) for w in r.words)
        best = max(
            (
                (sum(idf(w) for w in r.words & items[j].words) / total, -j)
                for j in _blank_candidates(items, i)
            ),
            default=(0.0, 0),
        )
        if best[0] >= BLANK_SHARE:
            out.append((i, -best[1]))
    return out


def _near_pairs(items: list[Report]) -> list[tuple[int, int, float]]:
    """(i, j, cosine) of reports published within the window whose leads are near, i < j
    (items are oldest first): every pair that a link or a merge could use."""
    n = len(items)
    if n == 0:
        return []
    ts = np.asarray([r.published_ts for r in items], dtype=np.int64)
    matrix = np.stack([np.asarray(r.vector, dtype=np.float32) for r in items])
    usable = np.asarray([r.joinable for r in items], dtype=bool)
    window = WINDOW_DAYS * DAY
    pairs = []
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
            if usable[j]:
                pairs.append((i, j, float(cosines[offset])))
    return pairs


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
                _absorb(min(a, b), max(a, b), group_of, members)

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

    def linked(a: int, b: int) -> tuple[float, float] | None:
        value = share(a, b)
        return value if value[0] >= MIN_LINK_SHARE else None

    edges = [(i, j) for i in range(len(items)) for j in links[i]]
    return _merge_rounds(linked, edges, group_of, members)


def _merge_groups(
    items: list[Report],
    key_sets: list[set[str]],
    idf: Callable[[str], float],
    near: list[tuple[int, int, float]],
    group_of: list[int],
) -> list[int]:
    """Average linkage on the scores: merge two groups (joined by a near pair, centres at
    most ``GROUP_DAYS`` apart) whose mean pair cosine is at least ``MIN_COSINE`` and whose
    mean cosine + ``GROUP_KEYS_WEIGHT`` * mean shared names reaches ``GROUP_SCORE``."""
    matrix = np.stack([np.asarray(r.vector, dtype=np.float32) for r in items]) if items else None
    ts = np.asarray([r.published_ts for r in items], dtype=np.float64)
    members: dict[int, list[int]] = {}
    for i, g in enumerate(group_of):
        members.setdefault(g, []).append(i)
    shared: dict[tuple[int, int], float] = {}

    def pair_keys(i: int, j: int) -> float:
        pair = (i, j) if i < j else (j, i)
        if pair not in shared:
            shared[pair] = shared_keys(key_sets[i], key_sets[j], idf)
        return shared[pair]

    def score(a: int, b: int) -> float | None:
        ma, mb = members[a], members[b]
        if abs(ts[ma].mean() - ts[mb].mean()) > GROUP_DAYS * DAY:
            return None
        cos = float(matrix[ma].sum(0) @ matrix[mb].sum(0)) / (len(ma) * len(mb))
        if cos < MIN_COSINE:
            return None
        keys_mean = sum(pair_keys(i, j) for i in ma for j in mb) / (len(ma) * len(mb))
        value = cos + GROUP_KEYS_WEIGHT * keys_mean
        return value if value >= GROUP_SCORE else None

    return _merge_rounds(score, [(i, j) for i, j, _ in near], group_of, members)


def _merge_rounds(
    score: Callable[[int, int], Any],
    edges: list[tuple[int, int]],
    group_of: list[int],
    members: dict[int, list[int]],
) -> list[int]:
    """Merge groups in rounds until none is left to merge: each round scores every pair of
    groups an edge joins (``score`` None: not mergeable) and merges the mutual best pairs
    into the older group (``group_of`` and ``members`` are updated in place)."""
    while True:
        pairs = {
            (min(group_of[i], group_of[j]), max(group_of[i], group_of[j]))
            for i, j in edges
            if group_of[i] != group_of[j]
        }
        scores = {pair: value for pair in pairs if (value := score(*pair)) is not None}
        merged = _mutual_best(scores)
        if not merged:
            return group_of
        for a, b in merged:
            _absorb(a, b, group_of, members)


def _absorb(a: int, b: int, group_of: list[int], members: dict[int, list[int]]) -> None:
    """Group ``b``'s members join group ``a``."""
    for m in members.pop(b):
        group_of[m] = a
        members[a].append(m)


def _mutual_best(scores: dict[tuple[int, int], Any]) -> list[tuple[int, int]]:
    """Pairs (a < b) each of whose groups scores the other highest (ties: the older
    partner): what one-merge-at-a-time linkage would do, in rounds."""
    best: dict[int, tuple[Any, int]] = {}
    for (a, b), value in scores.items():
        for one, other in ((a, b), (b, a)):
            if one not in best or (value, -other) > (best[one][0], -best[one][1]):
                best[one] = (value, other)
    return [(a, b) for a, (_, b) in best.items() if a < b and best[b][1] == a]
