"""Which newly indexed articles match which follows, and the alerts they make.

"Matches" means the same retrieval as a question: the article ranks in the top
``alert_top_k`` articles that hybrid retrieval finds for the topic, and its best passage's
cosine similarity to the topic reaches ``alert_min_score``. The cosine is the absolute part:
fused scores are normalised over each query's candidates, so they rank but cannot gate.

Retrieval costs tens of milliseconds per topic, too much for thousands of follows at every
cycle, so cheap checks pick the (topic, new article) pairs worth retrieving for:

1. dense: one matrix product of the topics' embeddings (embedded once, cached) by the new
   articles' chunk vectors (read back from Chroma, not re-embedded); a pair passes when the
   article's best chunk reaches ``alert_min_score``. This is the retrieval's own gate, so it
   drops nothing retrieval would have kept.
2. lexical: the topic shares a content term with the article (headline or text). Without
   one, the article has no BM25 score and no headline share for the topic, so it competes on
   half the fused score only. (Over the full feed at the default threshold it removed no
   pair: the dense check had already kept only articles that share words with the topic.)
3. roundups (digest articles) never alert, so they are no candidates.

Only topics with a pair left are retrieved for, with their cached embedding. Over the full
feed with 1,000 follows this is 1.08 -> 0.42 s per daily cycle against 5.9 s of embedding
that day's chunks, with the same matches (bench/alerts_bench.py).

One alert per story: a story id in the chunk metadata (when stories are indexed) or, without
one, a near-duplicate headline, counts as the same story; a story already alerted to a chat
is not alerted again. A follow gets at most one alert per cycle: its best-ranked new story.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from index.follow import CHECKED_MARK, Alert, Chat, Follow, FollowStore
from index.text import sentences, terms

log = logging.getLogger(__name__)

NEAR_DUPLICATE = 0.6  # headline term overlap (Jaccard) above which two reports are one story
MAX_SENTENCE_CHARS = 300
STORY_DAYS = 7  # a near-duplicate of a report alerted this recently is the same story
_GET = 200  # article ids per Chroma read


@dataclass
class Matched:
    """A new article that matches a topic."""

    article_id: str
    title: str
    url: str
    source: str
    published: str
    similarity: float  # best chunk's cosine to the topic
    rank: int  # among the topic's retrieved articles
    story: str  # story id, or the article id
    sentence: str


@dataclass
class MatchRun:
    """One cycle's matching: the matches, and how far each check narrowed the pairs."""

    matches: dict[str, list[Matched]] = field(default_factory=dict)  # topic -> best first
    pairs: int = 0  # (topic, new article) pairs
    dense_pairs: int = 0  # ... whose best chunk reaches the threshold
    lexical_pairs: int = 0  # ... of those, sharing a term with the topic
    retrieved: int = 0  # topics retrieved for
    prefilter_seconds: float = 0.0
    retrieval_seconds: float = 0.0


@dataclass
class NewChunks:
    """The stored chunks of a cycle's new articles, grouped by article."""

    vectors: np.ndarray  # (chunks, dim), in article order
    articles: list[str]  # article ids, each once
    starts: np.ndarray  # first chunk row of each article
    texts: list[str]  # per article: headline and chunk texts, for the lexical check
    stories: dict[str, str]  # article id -> story id, where the chunks carry one


@dataclass
class CheckReport:
    new_articles: int = 0
    topics: int = 0
    retrieved_topics: int = 0  # topics that passed the pre-checks
    queued: int = 0
    seconds: float = 0.0
    matches: dict[str, list[Matched]] = field(default_factory=dict)


class TopicVectors:
    """An embedder that embeds each topic once: the matcher's retrievals look the vector up
    instead of running the model again (a third of a retrieval's time)."""

    def __init__(self, embedder) -> None:
        self.inner = embedder
        self.name = embedder.name
        self._vectors: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            vectors = np.asarray(self.inner.embed(missing), dtype=np.float32)
            self._vectors.update(zip(missing, vectors))
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        return np.stack([self._vectors[t] for t in texts])

    def forget(self, keep: Iterable[str]) -> None:
        """Drop the vectors of all topics but these."""
        wanted = set(keep)
        self._vectors = {t: v for t, v in self._vectors.items() if t in wanted}


class FollowMatcher:
    """Matches topics against new articles with one retriever (and its embedder and store)."""

    def __init__(self, settings, retriever) -> None:
        self.settings = settings
        self.topics = TopicVectors(retriever.embedder)
        # The same retriever (its BM25 index and story map are shared, not rebuilt) reading
        # the topics' cached vectors; answering keeps the plain embedder.
        self.retriever = copy.copy(retriever)
        self.retriever.embedder = self.topics
        self._terms: dict[str, set[str]] = {}

    def topic_vectors(self, topics: list[str]) -> np.ndarray:
        return self.topics.embed(topics)

    def new_chunks(self, article_ids: list[str]) -> NewChunks:
        """Stored chunk embeddings of these articles, grouped by article."""
        rows: dict[str, list[tuple[list[float], str]]] = {}
        titles: dict[str, str] = {}
        stories: dict[str, str] = {}
        chunks = self.retriever.store.chunks
        for start in range(0, len(article_ids), _GET):
            got = chunks.get(
                where={"article_id": {"$in": article_ids[start : start + _GET]}},
                include=["embeddings", "metadatas", "documents"],
            )
            for vector, meta, doc in zip(got["embeddings"], got["metadatas"], got["documents"]):
                meta = meta or {}
                aid = str(meta.get("article_id", ""))
                rows.setdefault(aid, []).append((vector, doc or ""))
                titles.setdefault(aid, str(meta.get("title", "")))
                if meta.get("story_id"):
                    stories.setdefault(aid, str(meta["story_id"]))
        articles = sorted(rows)
        if not articles:
            return NewChunks(np.zeros((0, 1), np.float32), [], np.zeros(0, int), [], {})
        vectors, texts, starts = [], [], []
        for aid in articles:
            starts.append(len(vectors))
            vectors.extend(np.asarray(v, dtype=np.float32) for v, _ in rows[aid])
            texts.append(" ".join([titles[aid], *(doc for _, doc in rows[aid])]))
        return NewChunks(np.stack(vectors), articles, np.asarray(starts), texts, stories)

    def topic_terms(self, topic: str) -> set[str]:
        if topic not in self._terms:
            self._terms[topic] = set(terms(topic))
        return self._terms[topic]

    def match(
        self,
        topics: list[str],
        new_ids: Iterable[str],
        reference: date | None = None,
        *,
        as_of: date | None = None,
        never: Iterable[str] = (),
    ) -> MatchRun:
        """Which new articles match which topics. ``as_of`` hides later articles (replaying
        an archive day by day); articles in ``never`` cannot alert (roundups)."""
        from index.models import Query

        run = MatchRun()
        started = time.perf_counter()
        new = sorted(set(new_ids) - set(never))
        topics = sorted(set(topics))
        if not topics or not new:
            return run
        self.topics.forget(topics)  # unfollowed topics leave the cache
        chunks = self.new_chunks(new)
        if not chunks.articles:
            return run
        sims = _unit(self.topic_vectors(topics)) @ _unit(chunks.vectors).T  # (topics, chunks)
        best = np.maximum.reduceat(sims, chunks.starts, axis=1)  # (topics, articles)
        threshold = self.settings.alert_min_score
        rows, cols = np.nonzero(best >= threshold)
        run.pairs, run.dense_pairs = best.size, len(rows)
        article_terms: dict[int, set[str]] = {}
        candidates: set[int] = set()
        for row, col in zip(rows.tolist(), cols.tolist()):
            if col not in article_terms:
                article_terms[col] = set(terms(chunks.texts[col]))
            if self.topic_terms(topics[row]) & article_terms[col]:
                run.lexical_pairs += 1
                candidates.add(row)
        run.prefilter_seconds = time.perf_counter() - started
        column = {aid: n for n, aid in enumerate(chunks.articles)}
        for row in sorted(candidates):
            topic = topics[row]
            run.retrieved += 1
            hits = self.retriever.retrieve(
                Query(text=topic, end=as_of, reference=reference or as_of),
                k=self.settings.alert_top_k,
            )
            found = []
            for rank, hit in enumerate(hits):
                col = column.get(hit.article_id)
                if col is None or best[row, col] < threshold:
                    continue  # not new, or not close enough to the topic
                found.append(
                    Matched(
                        hit.article_id, hit.title, hit.url, hit.source, hit.published,
                        float(best[row, col]), rank, chunks.stories.get(hit.article_id, hit.article_id),
                        best_sentence(topic, [p.text for p in hit.passages]),
                    )
                )  # fmt: skip
            if found:
                run.matches[topic] = found
        run.retrieval_seconds = time.perf_counter() - started - run.prefilter_seconds
        return run


def check_follows(
    follows: FollowStore, matcher: FollowMatcher, manifest: dict[str, dict]
) -> CheckReport:
    """Queue alerts for articles indexed since the last check; move the check mark on."""
    started = time.perf_counter()
    report = CheckReport()
    since = follows.mark(CHECKED_MARK)
    fresh = {
        aid: meta for aid, meta in manifest.items() if float(meta.get("indexed_at", 0)) > since
    }
    every = follows.follows()
    report.new_articles, report.topics = len(fresh), len({f.topic for f in every})
    if fresh and every:
        newest = max((str(m.get("published") or "") for m in fresh.values()), default="")
        reference = date.fromisoformat(newest) if newest else None
        roundups = [aid for aid, meta in fresh.items() if meta.get("digest")]
        run = matcher.match([f.topic for f in every], fresh, reference, never=roundups)
        report.matches, report.retrieved_topics = run.matches, run.retrieved
        alerts = alerts_for(follows, every, run.matches, fresh)
        follows.queue(alerts)
        report.queued = len(alerts)
    if fresh:
        follows.set_mark(CHECKED_MARK, max(float(m.get("indexed_at", 0)) for m in fresh.values()))
    report.seconds = time.perf_counter() - started
    return report


def alerts_for(
    follows: FollowStore,
    every: list[Follow],
    matches: dict[str, list[Matched]],
    fresh: dict[str, dict],
) -> list[Alert]:
    """At most one alert per follow and cycle (its best-ranked new story), one per chat and
    story ever; only articles indexed after the follow was made. (On the labelled stories,
    alerting every matching report of a cycle sent 3 alerts for one story on its first day,
    2 of them digests and previews that mention it.)"""
    out: list[Alert] = []
    seen: dict[Chat, tuple[set[str], list[str]]] = {}
    for follow in every:
        if follow.chat not in seen:
            known = follows.known_stories(follow.chat)
            titles = follows.recent_titles(follow.chat, time.time() - STORY_DAYS * 86_400)
            seen[follow.chat] = (known, titles)
        known, titles = seen[follow.chat]
        for m in matches.get(follow.topic, []):
            meta = fresh[m.article_id]
            if float(meta.get("indexed_at", 0)) <= follow.created:
                continue
            if meta.get("digest"):
                continue  # a roundup of several events is no report on the topic
            if m.story in known or m.article_id in known:
                continue
            if any(near_duplicate(m.title, t) for t in titles):
                continue
            known |= {m.story, m.article_id}
            titles.append(m.title)
            out.append(
                Alert(
                    follow.chat, follow.user_id, follow.id, follow.topic, m.article_id, m.story,
                    m.title, m.url, m.source, m.published, m.sentence,
                )
            )  # fmt: skip
            break  # the follow's best new story this cycle; the rest are more of the same news
    return out


def near_duplicate(a: str, b: str) -> bool:
    """Two headlines that share most of their terms report the same thing."""
    ta, tb = set(terms(a)), set(terms(b))
    return bool(ta and tb) and len(ta & tb) / len(ta | tb) >= NEAR_DUPLICATE


def best_sentence(topic: str, passages: list[str]) -> str:
    """The sentence of the passages that says most about the topic (the first on a tie)."""
    wanted = set(terms(topic))
    best, best_score = "", -1.0
    for passage in passages:
        for sentence in sentences(passage):
            score = len(wanted & set(terms(sentence)))
            if score > best_score and len(sentence) > 20:
                best, best_score = sentence, score
    best = " ".join(best.split())
    if len(best) > MAX_SENTENCE_CHARS:
        best = best[:MAX_SENTENCE_CHARS].rsplit(" ", 1)[0] + "…"
    return best


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)
