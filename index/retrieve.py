"""Hybrid, time-aware retrieval: dense (Chroma) + BM25, fused per article.

Each retriever ranks chunks; chunks are grouped by article (what a reader sees as sources),
so one long article cannot crowd out the rest. Each article's best dense and BM25 scores are
normalised over the candidates and added, with how much of its headline is about the
question; the sum is weighted by recency relative to the reference date and by an optional
per-source preference. (Score fusion beat reciprocal rank fusion on the dev set over the full
3,964-article feed: MRR@10 0.73 vs 0.70, on both halves of the questions.) The weight is inert when
the reference date is far from every article (asking a 2022 archive in 2026) and decisive
when it is near (asking "as of" a day in that archive, or for the "latest" news).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime, timezone
from typing import Generic, TypeVar

import numpy as np

from index.bm25 import Bm25Cache, Bm25Index
from index.embed import Embedder, get_embedder
from index.identity import canonical_url
from index.models import ArticleHit, Chunk, Passage, Query
from index.settings import Settings
from index.store import Store, StoreError, empty_index
from index.story_store import StoryMap, one_per_story
from index.text import terms

OVERFETCH = 2  # unfiltered dense search fetches this many times k, then filters
IDS_LIMIT_EMBEDDED = 100_000  # chunk ids a dense search may be restricted to, in process
# ... and over HTTP to a Chroma server: at 45k chunks, 20k ids cost 25 ms and all 44k 40 ms
# against 150-190 ms for the same window as a ``where`` filter; far larger lists would not pay.
IDS_LIMIT_SERVER = 50_000
DENSE_WEIGHT = 0.5  # dense vs BM25 in the fused score; 0.4-0.5 was a plateau on dev data
TITLE_WEIGHT = 0.3  # headline share: a story's own headline is about the question, a digest's not
DAY = 86_400
V = TypeVar("V")
QUERY_VECTORS = 64  # recent question texts whose embeddings are kept
RECORDS_KEPT = 2000  # chunk records (text and metadata) kept between questions, ~3 MB


def day_ts(day: date, end_of_day: bool = False) -> int:
    ts = int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp())
    return ts + DAY - 1 if end_of_day else ts


class Retriever:
    def __init__(
        self, settings: Settings, store: Store | None = None, embedder: Embedder | None = None
    ) -> None:
        self.settings = settings
        self.store = store or Store(settings)
        self.embedder = embedder or get_embedder(settings)
        self.store.check_embedder(self.embedder.name)
        self.bm25 = Bm25Cache(settings, self.store)
        self.stories = StoryMap(self.store, version=lambda: self.bm25.get().version)
        self._vectors: _Recent[list[float]] = _Recent(QUERY_VECTORS)
        self._records: _Recent[tuple[dict, str]] = _Recent(RECORDS_KEPT)
        self._records_version: int | None = None

    # --- the two retrievers ----------------------------------------------------------------
    def dense(self, query: Query, k: int) -> list[Chunk]:
        """Top ``k`` chunks by embedding similarity within the query's dates."""
        return self._chunks(self._dense_ids(query, k))

    def _dense_ids(self, query: Query, k: int) -> list[tuple[str, float]]:
        """``dense``'s chunk ids and similarities, in order, without their text.

        Chroma's ``where`` search is slow on a large collection (130-200 ms vs 5 ms unfiltered
        at 45k chunks, here), so it is the last resort. A filter that keeps most chunks (an
        as-of date) searches unfiltered with room to spare and filters here; a selective one
        ("this week", a cited article) searches only the chunk ids it keeps (~20 ms), which the
        BM25 index lists with their dates."""
        where = _where(query)
        if where is None:
            return self._search(query.text, k)
        index = self.bm25.get()
        mask = self._mask(query, index)
        if mask is not None and not query.restrict_to and float(mask.mean()) >= 0.5:
            wide = self._search(query.text, k * OVERFETCH)
            known = self._lean_metadata(index, [cid for cid, _ in wide])
            kept = [(cid, score) for cid, score in wide if _keeps(query, known[cid])]
            if len(kept) >= k:
                return kept[:k]
        ids = [] if mask is None else [index.ids[i] for i in np.flatnonzero(mask)]
        if ids and len(ids) <= self._ids_limit() and self._index_current(index):
            return self._search(query.text, min(k, len(ids)), ids=ids)
        return self._search(query.text, k, where)

    def _lean_metadata(self, index: Bm25Index, ids: list[str]) -> dict[str, dict]:
        """What ``_keeps`` reads of each chunk (its article and date), from the BM25 index's
        lists (a chunk's id fixes its content and date), or from Chroma for a chunk the
        index does not list yet: fetching whole records costs ~0.1 ms each."""
        out: dict[str, dict] = {}
        rows = index.rows()
        for cid in ids:
            row = rows.get(cid)
            if row is not None:
                out[cid] = {
                    "article_id": index.article_ids[row],
                    "published_ts": int(index.published_ts[row]),
                }
        missing = [cid for cid in ids if cid not in out]
        if missing:
            got = self.store.chunks.get(ids=missing, include=["metadatas"])
            out.update((cid, meta or {}) for cid, meta in zip(got["ids"], got["metadatas"]))
        return {cid: out.get(cid, {}) for cid in ids}

    def _ids_limit(self) -> int:
        # Every id travels with the query, so over HTTP the list must stay moderate.
        return IDS_LIMIT_SERVER if self.settings.server_mode else IDS_LIMIT_EMBEDDED

    def _index_current(self, index: Bm25Index) -> bool:
        """The BM25 index lists the chunks Chroma holds: no index run is replacing them (its
        new chunks would be missing from the list, and its old ones about to go)."""
        state = self.store.state()
        return not state.dirty and state.version == index.version

    def _mask(self, query: Query, index: Bm25Index) -> np.ndarray | None:
        """Which chunks the query's dates and article restriction keep (None: all)."""
        start = day_ts(query.start) if query.start else None
        end = day_ts(query.end, end_of_day=True) if query.end else None
        mask = index.date_mask(start, end)
        if query.restrict_to:
            wanted = set(query.restrict_to)
            keep = np.asarray([a in wanted for a in index.article_ids], dtype=np.float32)
            mask = keep if mask is None else mask * keep
        return mask

    def _dense(
        self, text: str, k: int, where: dict | None = None, ids: list[str] | None = None
    ) -> list[Chunk]:
        return self._chunks(self._search(text, k, where, ids))

    def _search(
        self, text: str, k: int, where: dict | None = None, ids: list[str] | None = None
    ) -> list[tuple[str, float]]:
        # Straight to the collection, as LlamaIndex's ChromaVectorStore would query it (and
        # with its similarity, exp(-cosine distance)); index/engine.py wraps this retrieval
        # in LlamaIndex's interfaces (ArticleRetriever). Only ids and distances: records are
        # read once, for the chunks kept (``_chunks``).
        got = self.store.chunks.query(
            query_embeddings=[self._vector(text)],
            n_results=k,
            where=where,
            ids=ids,
            include=["distances"],
        )
        return [
            (chunk_id, math.exp(-distance))
            for chunk_id, distance in zip(got["ids"][0], got["distances"][0])
        ]

    def _vector(self, text: str) -> list[float]:
        """``text``'s embedding. One answer often searches with the same text more than once
        (a follow-up's previous articles, then all of them; a past period, then since), and
        each embedding costs 4-15 ms; the last ``QUERY_VECTORS`` texts' are kept."""
        vector = self._vectors.get(text)
        if vector is None:
            vector = self.embedder.embed([text])[0].tolist()
            self._vectors.put(text, vector)
        return vector

    def _chunks(self, scored: list[tuple[str, float]]) -> list[Chunk]:
        """The dense search's chunks with their text and metadata (one that an index run
        removed since the search is skipped)."""
        fetched = self._fetch([cid for cid, _ in scored])
        return [
            Chunk(cid, fetched[cid].metadata, fetched[cid].text, score)
            for cid, score in scored
            if cid in fetched
        ]

    def keyword(self, query: Query, k: int) -> list[tuple[str, float]]:
        index = self.bm25.get()
        return index.search(query.text, k, self._mask(query, index))

    # --- both, fused ------------------------------------------------------------------------
    def retrieve(self, query: Query, k: int | None = None) -> list[ArticleHit]:
        """Ranked articles; a store that cannot be reached raises ``StoreError`` (the next
        call tries again, so a restarted Chroma server is picked up without a restart)."""
        with _unavailable_as_store_error():
            hits = self._retrieve(query, k)
            if not hits and self.store.chunks.count() == 0:
                raise empty_index(self.settings)
            return hits

    def keyword_index(self) -> Bm25Index:
        """The current BM25 index (refreshed if the store moved on), for IDF and boilerplate."""
        with _unavailable_as_store_error():
            return self.bm25.get()

    def _retrieve(self, query: Query, k: int | None = None) -> list[ArticleHit]:
        n = self.settings.candidates
        scored = self._dense_ids(query, n)
        keyword = self.keyword(query, n)
        found = {cid for cid, _ in scored}
        # One read of the records of both searches' chunks (its cost is per record).
        fetched = self._fetch([*found, *(cid for cid, _ in keyword if cid not in found)])
        dense = [
            Chunk(cid, fetched[cid].metadata, fetched[cid].text, score)
            for cid, score in scored
            if cid in fetched
        ]
        ranked = fuse(
            query,
            dense,
            keyword,
            fetched,
            idf=self.bm25.get().idf(),
            k=len(dense) + len(keyword),  # all: a story's reports fold into one slot below
            half_life_days=self.settings.recency_half_life_days,
            source_weights=self.settings.source_weights,
        )
        hits = one_per_story(ranked, self.stories.lookup())[: k or self.settings.top_k]
        digests = self.stories.digests()
        for hit in hits:
            for h in (hit, *hit.reports):
                h.digest = h.article_id in digests
        return hits

    def _fetch(self, ids: list[str]) -> dict[str, Chunk]:
        """The records of chunks ``ids`` (one an index run removed is missing). Records
        read for recent questions are kept until the index version moves on: a chunk id
        fixes its text, and follow-ups and questions on the same days read the same chunks
        again (86% of the records the 40 conversations read, 20% over the 202 questions)."""
        if not ids:
            return {}
        version = self.bm25.get().version
        if version != self._records_version:
            self._records.clear()
            self._records_version = version
        kept = {cid: record for cid in ids if (record := self._records.get(cid)) is not None}
        missing = [cid for cid in ids if cid not in kept]
        if missing:
            got = self.store.chunks.get(ids=missing, include=["documents", "metadatas"])
            for cid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"]):
                kept[cid] = (meta or {}, doc or "")
                self._records.put(cid, kept[cid])
        return {cid: Chunk(cid, dict(meta), doc) for cid, (meta, doc) in kept.items()}


class _Recent(Generic[V]):
    """The last ``size`` values put, by key (thread-safe: front ends answer in threads)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: str, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


# --- fusion --------------------------------------------------------------------------------------
def fuse(
    query: Query,
    dense: list[Chunk],
    keyword: list[tuple[str, float]],
    fetched: Mapping[str, Chunk],
    *,
    idf: Mapping[str, float],
    k: int,
    half_life_days: float,
    source_weights: Mapping[str, float] | None = None,
) -> list[ArticleHit]:
    """The top ``k`` articles from both rankings of chunks.

    ``dense`` holds chunks in cosine order; ``keyword`` (chunk id, BM25 score) in BM25
    order, with the text of chunks only BM25 found in ``fetched`` (a chunk missing there was
    re-indexed away since: skipped). Chunks are grouped by article; each article's best
    dense and BM25 scores are normalised over the candidates and added, with its headline's
    share of the question (IDF-weighted); the sum is weighted by recency and source.
    """
    hits: dict[str, ArticleHit] = {}
    passages: dict[str, tuple[Passage, ArticleHit]] = {}
    version: dict[str, str] = {}  # article id -> content hash its passages come from

    def add(chunk: Chunk) -> tuple[Passage, ArticleHit] | None:
        meta = chunk.metadata
        aid, doc_hash = str(meta.get("article_id", "")), str(meta.get("doc_hash", ""))
        # While an article is being replaced, its old and new chunks coexist for a moment
        # (new ones are written before old ones are deleted): show one version, not both.
        if version.setdefault(aid, doc_hash) != doc_hash:
            return None
        hit = hits.get(aid) or hits.setdefault(aid, _hit(aid, meta))
        passage = Passage(chunk.chunk_id, chunk.text, int(meta.get("position", 0)))
        hit.passages.append(passage)
        passages[chunk.chunk_id] = (passage, hit)
        return passage, hit

    rank = 0
    for chunk in dense:
        if (added := add(chunk)) is None:
            continue
        passage, hit = added
        passage.dense = chunk.score
        if hit.dense_rank is None:
            hit.dense_rank, rank = rank, rank + 1
        hit.dense = max(hit.dense, chunk.score)

    rank = 0
    for chunk_id, score in keyword:
        added = passages.get(chunk_id)
        if added is None and chunk_id in fetched:
            added = add(fetched[chunk_id])
        if added is None:
            continue
        passage, hit = added
        passage.bm25 = score
        if hit.bm25_rank is None:
            hit.bm25_rank, rank = rank, rank + 1
        hit.bm25 = max(hit.bm25, score)

    shares = title_shares(query.text, hits.values(), idf)
    dense_scores = [h.dense for h in hits.values() if h.dense_rank is not None]
    low, high = min(dense_scores, default=0.0), max(dense_scores, default=0.0)
    top_bm25 = max((h.bm25 for h in hits.values()), default=0.0)
    weights = source_weights or {}
    for hit in hits.values():
        # Min-max over the candidates: cosines of unrelated text are far from 0.
        if hit.dense_rank is None:
            dense_part = 0.0
        else:  # a single dense candidate (or a tie) counts fully
            dense_part = (hit.dense - low) / (high - low) if high > low else 1.0
        bm25_part = hit.bm25 / top_bm25 if top_bm25 > 0 else 0.0
        fused = (
            DENSE_WEIGHT * dense_part
            + (1 - DENSE_WEIGHT) * bm25_part
            + TITLE_WEIGHT * shares.get(hit.article_id, 0.0)
        )
        recency = recency_weight(hit, query, half_life_days)
        hit.score = fused * recency * weights.get(hit.source.lower(), 1.0)
        hit.passages.sort(key=lambda p: p.dense + p.bm25 / 40.0, reverse=True)
        del hit.passages[3:]  # one article contributes at most three passages
    ranked = sorted(hits.values(), key=lambda h: h.score, reverse=True)
    return _distinct(ranked)[:k]


def _hit(article_id: str, meta: dict) -> ArticleHit:
    return ArticleHit(
        article_id=article_id,
        title=str(meta.get("title", "")),
        url=str(meta.get("url", "")),
        source=str(meta.get("source", "")),
        published=str(meta.get("published", "")),
        published_ts=int(meta.get("published_ts", -1)),
    )


def title_shares(
    question: str, hits: Iterable[ArticleHit], idf: Mapping[str, float]
) -> dict[str, float]:
    """How much of each headline (IDF-weighted) is about the question. A story's own
    headline is mostly about it; a digest's ("5 things to know: ...") is not."""
    wanted = set(terms(question))
    shares = {}
    for hit in hits:
        title_terms = set(terms(hit.title))
        total = sum(idf.get(t, 4.0) for t in title_terms)
        if total > 0:
            shares[hit.article_id] = sum(idf.get(t, 4.0) for t in title_terms & wanted) / total
    return shares


def recency_weight(hit: ArticleHit, query: Query, half_life_days: float) -> float:
    """1 for an article of the reference day, falling towards 0.5 (0.2 when the question
    asks for the latest news) as it ages; 1 when either date is unknown."""
    if query.reference is None or hit.published_ts < 0:
        return 1.0
    age = (day_ts(query.reference) - hit.published_ts) / DAY
    decay = math.exp(-math.log(2) * max(age, 0.0) / half_life_days)
    strength = 0.8 if query.recency else 0.5
    return (1.0 - strength) + strength * decay


def _distinct(ranked: list[ArticleHit]) -> list[ArticleHit]:
    """Drop copies of a better-ranked article: the same page under a second URL
    (``/slug`` and ``/slug/index.html``), or the same text re-published by the same source
    under another URL (one of its passages is word for word a passage already shown). A
    headline alone is not enough: recurring headlines ("Live updates") head different texts."""
    seen: set[tuple[str, ...]] = set()
    out = []
    for hit in ranked:
        keys = {("url", canonical_url(hit.url))} if hit.url else set()
        keys |= {("text", hit.source, " ".join(p.text.split())) for p in hit.passages}
        if keys & seen:
            continue
        seen |= keys
        out.append(hit)
    return out


@contextmanager
def _unavailable_as_store_error() -> Iterator[None]:
    try:
        yield
    except StoreError:
        raise
    except Exception as exc:
        if not _is_unavailable(exc):
            raise
        raise StoreError(f"index unavailable: {_describe(exc)}") from exc


def _is_unavailable(exc: BaseException) -> bool:
    """Connection-level failures of the Chroma client (server down, refused, timed out)."""
    import httpx

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (httpx.TransportError, ConnectionError, TimeoutError)):
            return True
        text = f"{type(seen).__name__} {seen}".lower()
        if "connect" in text or "could not reach" in text or "timed out" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _describe(exc: BaseException) -> str:
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {message}"[:200]


def _keeps(query: Query, meta: dict) -> bool:
    """The same test as ``_where``, applied to a chunk's metadata in Python."""
    ts = int(meta.get("published_ts", -1))
    if query.start and ts < day_ts(query.start):
        return False
    if query.end and (ts < 0 or ts > day_ts(query.end, True)):
        return False
    return not (query.restrict_to and meta.get("article_id") not in query.restrict_to)


def _where(query: Query) -> dict | None:
    """The query's dates and article restriction as a Chroma ``where`` filter (None: all)."""
    parts: list[dict] = []
    if query.start:
        parts.append({"published_ts": {"$gte": day_ts(query.start)}})
    if query.end:
        parts.append({"published_ts": {"$lte": day_ts(query.end, True)}})
    if query.restrict_to:
        parts.append({"article_id": {"$in": list(query.restrict_to)}})
    if len(parts) > 1:
        return {"$and": parts}
    return parts[0] if parts else None
