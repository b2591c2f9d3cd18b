"""Stories in the index: computed from what Chroma stores, written beside each article.

Every article's story id lives in its manifest record and, as the flat ``story_id`` key, in
the Chroma metadata of each of its chunks, so server mode and every process see the same
stories (and can filter chunks by story). The grouping (``index.stories``) reads only the
stored leads (each article's first chunk: its text and its vector; the second too where the
first is page furniture), so an index built before
stories existed, or grouped by older rules (``GROUPING_VERSION``), is regrouped on its next
run without re-embedding anything.

A run that writes or removes a few articles regroups only the stories that could change:
the connected components (``index.stories.components``) of the articles it wrote and of
every article published within the window of one it removed or replaced (the old lead's
neighbours), found by walking near leads outward. A story
never leaves its component, and the names' document frequencies are the ones stored with
the last full regroup (``KeyStats``), so the result is what a full regroup with those
frequencies gives. A full regroup runs when there is nothing to build on (a new index, a
crash, new rules) and counts the frequencies afresh when the index has grown or shrunk by
``STATS_DRIFT`` since.

Crash safety: the pass runs while the index is marked dirty, writes chunk metadata before
manifest records (the manifest says what is done), and finally records the index version it
grouped and the frequencies it used (``__stories__``). A run that finds that record stale
groups everything again with the stored frequencies: the same stories the interrupted pass
was writing, whatever part of them it wrote.
"""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from index.identity import chunk_id
from index.models import ArticleHit
from index.store import Store
from index.stories import (
    DAY,
    GROUPING_VERSION,
    MIN_COSINE,
    WINDOW_DAYS,
    Grouping,
    KeyStats,
    Report,
    furnished,
    group,
    headline_near,
    key_stats,
)

log = logging.getLogger(__name__)

STORIES_ID = "__stories__"
_GET = 1000  # records per Chroma get/update call


@dataclass
class StoryPass:
    """What one grouping pass did."""

    articles: int = 0  # articles regrouped (every indexed one on a full pass)
    stories: int = 0  # stories in the whole index afterwards
    digests: int = 0
    moved: int = 0  # articles whose story id (or digest flag) was written
    seconds: float = 0.0
    full: bool = True
    stats: KeyStats = field(default_factory=KeyStats)


@dataclass
class Touched:
    """What an index run changed: the articles it wrote, and the dates of the versions it
    removed or replaced. A written article's component is found from its own lead; a gone
    one's old neighbours lie within the window of its old date."""

    ids: set[str] = field(default_factory=set)
    dates: set[int] = field(default_factory=set)


@dataclass
class Grouped:
    """The ``__stories__`` record: which index version the stored stories are for, by which
    rules, and the names' frequencies they were weighed with."""

    version: int | None = None
    rules: int | None = None
    stats: KeyStats | None = None

    @property
    def current(self) -> bool:
        return self.version is not None and self.rules == GROUPING_VERSION


def grouped(store: Store) -> Grouped:
    got = store.articles.get(ids=[STORIES_ID], include=["metadatas", "documents"])
    if not got["ids"]:
        return Grouped()
    meta = got["metadatas"][0] or {}
    document = (got["documents"] or [None])[0]
    try:
        stats = KeyStats.from_json(document) if document else None
    except (ValueError, KeyError, TypeError):
        stats = None  # unreadable: counted afresh on the next full regroup
    rules = meta.get("rules")
    return Grouped(int(meta.get("version", -1)), int(rules) if rules else None, stats)


def grouped_version(store: Store) -> int | None:
    """The index version the stored stories were computed for by today's rules (None:
    never grouped, or by other rules)."""
    record = grouped(store)
    return record.version if record.current else None


def mark_grouped(store: Store, version: int, stats: KeyStats | None = None) -> None:
    stats = stats or KeyStats()
    store.articles.upsert(
        ids=[STORIES_ID],
        embeddings=[[0.0]],
        documents=[stats.to_json()],
        metadatas=[
            {"kind": "stories", "version": version, "rules": GROUPING_VERSION, "keys_n": stats.n}
        ],
    )


def load_reports(store: Store, manifest: Mapping[str, dict]) -> list[Report]:
    """Each article's lead as stored: its first chunk's text and vector (and, where that
    chunk is mostly page furniture, the second chunk's text and vector too)."""
    leads = _chunks(store, manifest, 0)
    nexts = _chunks(
        store,
        {
            aid: manifest[aid]
            for aid, (text, _) in leads.items()
            if int(manifest[aid].get("n_chunks", 0)) > 1 and furnished(text)
        },
        1,
    )
    reports = []
    for aid, (text, vector) in leads.items():
        meta = manifest[aid]
        body, vector = nexts.get(aid, ("", vector))
        reports.append(
            Report(
                article_id=aid,
                title=str(meta.get("title", "")),
                lead=text,
                published_ts=int(meta.get("published_ts", -1)),
                vector=vector,
                url=str(meta.get("url", "")),
                source=str(meta.get("source", "")),
                body=body,
            )
        )
    return reports


def _chunks(
    store: Store, manifest: Mapping[str, dict], position: int
) -> dict[str, tuple[str, np.ndarray]]:
    """article id -> (text, vector) of its chunk at ``position``."""
    wanted = {
        chunk_id(aid, str(meta.get("hash", "")), position): aid for aid, meta in manifest.items()
    }
    ids = list(wanted)
    out = {}
    for start in range(0, len(ids), _GET):
        got = store.chunks.get(ids=ids[start : start + _GET], include=["embeddings", "documents"])
        for cid, doc, vector in zip(got["ids"], got["documents"], got["embeddings"]):
            out[wanted[cid]] = (doc or "", np.asarray(vector, dtype=np.float32))
    return out


def assign_stories(
    store: Store, manifest: dict[str, dict] | None = None, touched: Touched | None = None
) -> StoryPass:
    """Group the indexed articles and write the story ids that moved: only around
    ``touched`` when the stored stories are up to date, else all of them."""
    started = time.perf_counter()
    manifest = store.manifest() if manifest is None else manifest
    record = grouped(store)
    stats = record.stats if record.current else None
    if stats is not None and stats.stale(len(manifest)):
        stats = None
    full = touched is None or stats is None or record.version != store.state().version
    if full:
        reports = load_reports(store, manifest)
        if stats is None:
            stats = key_stats(reports)
    else:
        reports = _around(store, manifest, touched)
    grouping = group(reports, stats)
    moved = {
        aid: manifest[aid]
        for aid in grouping.story_of
        if manifest[aid].get("story_id") != grouping.story_of[aid]
        or bool(manifest[aid].get("digest", False)) != (aid in grouping.digests)
    }
    _write_chunk_stories(store, moved, grouping)
    store.put_articles(
        {
            aid: {
                **{k: v for k, v in meta.items() if k != "kind"},
                "story_id": grouping.story_of[aid],
                "digest": aid in grouping.digests,
            }
            for aid, meta in moved.items()
        }
    )
    story_of = {aid: str(meta.get("story_id") or aid) for aid, meta in manifest.items()}
    story_of.update(grouping.story_of)
    return StoryPass(
        articles=len(reports),
        stories=len(set(story_of.values())),
        digests=len(grouping.digests),
        moved=len(moved),
        seconds=time.perf_counter() - started,
        full=full,
        stats=stats,
    )


def _around(store: Store, manifest: Mapping[str, dict], touched: Touched) -> list[Report]:
    """The leads of every component that holds a touched article or an article published
    within the window of a touched date: found by walking near leads (and the headlines of
    blank pages, ``headline_near``) outward, a band of dates at a time, so only what lies
    near the changes is read."""
    window = WINDOW_DAYS * DAY
    dated = sorted(
        (int(meta.get("published_ts", -1)), aid)
        for aid, meta in manifest.items()
        if int(meta.get("published_ts", -1)) >= 0
    )
    times = [ts for ts, _ in dated]

    def band(centres: Iterable[int]) -> set[str]:
        out: set[str] = set()
        for lo, hi in _spans(sorted(centres), window):
            start, end = bisect_left(times, lo), bisect_right(times, hi)
            out.update(aid for _, aid in dated[start:end])
        return out

    loaded: dict[str, Report] = {}

    def load(ids: set[str]) -> None:
        missing = {aid: manifest[aid] for aid in ids if aid not in loaded and aid in manifest}
        loaded.update((r.article_id, r) for r in load_reports(store, missing))

    seeds = {aid for aid in touched.ids if aid in manifest} | band(
        ts for ts in touched.dates if ts >= 0
    )
    load(seeds)
    closure = {aid for aid in seeds if aid in loaded}
    frontier = [loaded[aid] for aid in closure if _walkable(loaded[aid]) or loaded[aid].blank]
    while frontier:
        candidates = band(r.published_ts for r in frontier) - closure
        load(candidates)
        others = [loaded[aid] for aid in sorted(candidates) if aid in loaded]
        if not others:
            break
        walkers = [f for f in frontier if _walkable(f)]
        found = np.zeros(len(others), dtype=bool)
        if walkers:
            near = np.stack([o.vector for o in others]) @ np.stack([f.vector for f in walkers]).T
            gap = np.abs(
                np.asarray([o.published_ts for o in others])[:, None]
                - np.asarray([f.published_ts for f in walkers])[None, :]
            )
            found = ((near >= MIN_COSINE) & (gap <= window)).any(axis=1)
        # the digest test reads text: only for the few leads that are near
        frontier = [
            o
            for o, hit in zip(others, found)
            if (hit and _walkable(o)) or any(headline_near(o, f) for f in frontier)
        ]
        closure.update(r.article_id for r in frontier)
    return [loaded[aid] for aid in sorted(closure)]


def _walkable(report: Report) -> bool:
    """A report that near pairs can join (digests, undated and blank reports stay alone)."""
    return report.joinable


def _spans(centres: list[int], radius: int) -> list[tuple[int, int]]:
    """Sorted ``centres`` +- ``radius``, overlapping spans merged."""
    spans: list[tuple[int, int]] = []
    for c in centres:
        if spans and c - radius <= spans[-1][1]:
            spans[-1] = (spans[-1][0], c + radius)
        else:
            spans.append((c - radius, c + radius))
    return spans


def _write_chunk_stories(store: Store, moved: dict[str, dict], grouping: Grouping) -> None:
    ids: list[str] = []
    metas: list[dict] = []
    for aid, meta in moved.items():
        for position in range(int(meta.get("n_chunks", 0))):
            ids.append(chunk_id(aid, str(meta.get("hash", "")), position))
            metas.append({"story_id": grouping.story_of[aid]})
    for start in range(0, len(ids), _GET):
        # ``update`` merges keys into each chunk's metadata; the rest stays as written.
        store.chunks.update(ids=ids[start : start + _GET], metadatas=metas[start : start + _GET])


class StoryMap:
    """article id -> story id and story id -> its reports, for one index version; reloaded
    when the index moves on (another process may have indexed).

    ``version`` says which index version is current (default: the store's, read on every
    lookup, ~2 ms each). A retriever passes its keyword index's version instead: that is
    read from the store at most once a second, and the stories then match the keyword
    index the question was searched with."""

    def __init__(self, store: Store, version: Callable[[], int] | None = None) -> None:
        self.store = store
        self._current = version or (lambda: store.state().version)
        self._version: int | None = None
        self._story_of: dict[str, str] = {}
        self._by_url: dict[str, str] = {}
        self._reports: dict[str, list[dict]] = {}
        self._digests: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def _load(self) -> None:
        version = self._current()
        if version == self._version:
            return
        with self._lock:
            manifest = self.store.manifest()
            story_of, reports = {}, {}
            for aid, meta in manifest.items():
                sid = str(meta.get("story_id") or aid)
                story_of[aid] = sid
                reports.setdefault(sid, []).append({"article_id": aid, **meta})
            for rows in reports.values():
                rows.sort(key=lambda m: (int(m.get("published_ts", -1)), m["article_id"]))
            self._by_url = {str(m.get("url")): aid for aid, m in manifest.items() if m.get("url")}
            self._digests = frozenset(aid for aid, m in manifest.items() if m.get("digest"))
            self._story_of, self._reports, self._version = story_of, reports, version

    def story_of(self, article_id: str) -> str:
        """The story an article belongs to (itself when ungrouped or unknown)."""
        self._load()
        return self._story_of.get(article_id, article_id)

    def lookup(self) -> Callable[[str], str]:
        """``story_of`` for many articles at once: the index version is read once, not per
        article (a read per candidate was a third of a retrieval's time, and over HTTP one
        round trip each)."""
        self._load()
        story_of = self._story_of
        return lambda article_id: story_of.get(article_id, article_id)

    def digests(self) -> frozenset[str]:
        """The articles that are roundups of several events ("5 things to know")."""
        self._load()
        return self._digests

    def story_of_url(self, url: str) -> str | None:
        """The story of the article at ``url`` (canonical form), None when not indexed."""
        self._load()
        aid = self._by_url.get(url)
        return self._story_of.get(aid) if aid else None

    def stories_by_url(self) -> dict[str, str]:
        """Canonical URL -> story id of every indexed article that has a URL."""
        self._load()
        return {url: self._story_of[aid] for url, aid in self._by_url.items()}

    def reports(self, story: str) -> list[dict]:
        """A story's reports, oldest first, as manifest records (with ``article_id``)."""
        self._load()
        return list(self._reports.get(story, []))


def one_per_story(ranked: list[ArticleHit], story_of: Callable[[str], str]) -> list[ArticleHit]:
    """One slot per story: its best-ranked report stands for it, and the story's other
    candidates ride along in ``reports`` (so k sources are k different events)."""
    first: dict[str, ArticleHit] = {}
    out = []
    for hit in ranked:
        hit.story_id = story_of(hit.article_id)
        lead = first.get(hit.story_id)
        if lead is None:
            first[hit.story_id] = hit
            out.append(hit)
        else:
            lead.reports.append(hit)
    return out
