"""Stories in the index: computed from what Chroma stores, written beside each article.

Every article's story id lives in its manifest record and, as the flat ``story_id`` key, in
the Chroma metadata of each of its chunks, so server mode and every process see the same
stories (and can filter chunks by story). The grouping (``index.stories``) reads only the
stored leads (each article's first chunk: its text and its vector), so an index built before
stories existed gets them on its next run without re-embedding anything.

Crash safety: the pass runs while the index is marked dirty, writes chunk metadata before
manifest records (the manifest says what is done), and finally records the index version it
grouped (``__stories__``). A run that finds that version stale simply groups again; grouping
is deterministic, so whatever was already written stays and the rest is completed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from index.identity import chunk_id
from index.models import ArticleHit
from index.store import Store
from index.stories import Grouping, Report, group

log = logging.getLogger(__name__)

STORIES_ID = "__stories__"
_GET = 1000  # records per Chroma get/update call


@dataclass
class StoryPass:
    """What one grouping pass did."""

    articles: int = 0
    stories: int = 0
    digests: int = 0
    moved: int = 0  # articles whose story id (or digest flag) was written
    seconds: float = 0.0


def grouped_version(store: Store) -> int | None:
    """The index version the stored stories were computed for (None: never grouped)."""
    got = store.articles.get(ids=[STORIES_ID], include=["metadatas"])
    if not got["ids"]:
        return None
    return int((got["metadatas"][0] or {}).get("version", -1))


def mark_grouped(store: Store, version: int) -> None:
    store.articles.upsert(
        ids=[STORIES_ID], embeddings=[[0.0]], metadatas=[{"kind": "stories", "version": version}]
    )


def load_reports(store: Store, manifest: dict[str, dict]) -> list[Report]:
    """Each article's lead as stored: its first chunk's text and vector."""
    wanted = {chunk_id(aid, str(meta.get("hash", "")), 0): aid for aid, meta in manifest.items()}
    ids = list(wanted)
    reports = []
    for start in range(0, len(ids), _GET):
        got = store.chunks.get(ids=ids[start : start + _GET], include=["embeddings", "documents"])
        for cid, doc, vector in zip(got["ids"], got["documents"], got["embeddings"]):
            aid = wanted[cid]
            meta = manifest[aid]
            reports.append(
                Report(
                    article_id=aid,
                    title=str(meta.get("title", "")),
                    lead=doc or "",
                    published_ts=int(meta.get("published_ts", -1)),
                    vector=np.asarray(vector, dtype=np.float32),
                    url=str(meta.get("url", "")),
                    source=str(meta.get("source", "")),
                )
            )
    return reports


def assign_stories(store: Store, manifest: dict[str, dict] | None = None) -> StoryPass:
    """Group every indexed article and write the story ids that moved."""
    started = time.perf_counter()
    manifest = store.manifest() if manifest is None else manifest
    reports = load_reports(store, manifest)
    grouping = group(reports)
    moved = {
        aid: meta
        for aid, meta in manifest.items()
        if aid in grouping.story_of
        and (
            meta.get("story_id") != grouping.story_of[aid]
            or bool(meta.get("digest", False)) != (aid in grouping.digests)
        )
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
    return StoryPass(
        articles=len(reports),
        stories=len(set(grouping.story_of.values())),
        digests=len(grouping.digests),
        moved=len(moved),
        seconds=time.perf_counter() - started,
    )


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
    when the index moves on (another process may have indexed)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._version: int | None = None
        self._story_of: dict[str, str] = {}
        self._by_url: dict[str, str] = {}
        self._reports: dict[str, list[dict]] = {}
        self._lock = threading.Lock()

    def _load(self) -> None:
        version = self.store.state().version
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
