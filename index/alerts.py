"""Which newly indexed articles match which follows, and the alerts they make.

"Matches" means the same retrieval as a question: the article ranks in the top
``alert_top_k`` articles that hybrid retrieval finds for the topic, and its best passage's
cosine similarity to the topic reaches ``alert_min_score``. The cosine is the absolute part:
fused scores are normalised over each query's candidates, so they rank but cannot gate.

Retrieval costs tens of milliseconds per topic, too much for thousands of follows at every
cycle, so a vectorised pre-check runs first: every topic's embedding (cached) against the
chunk vectors of the new articles (read back from Chroma, not re-embedded). Only topics with
a new chunk at or above the threshold are retrieved for; since the gate is that same cosine,
the pre-check drops nothing retrieval would have kept.

One alert per story: a story id in the chunk metadata (when stories are indexed) or, without
one, a near-duplicate headline, counts as the same story; a story already alerted to a chat
is not alerted again. A follow gets at most one alert per cycle: its best-ranked new story.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from index.follow import Alert, Chat, Follow, FollowStore
from index.text import sentences, terms

log = logging.getLogger(__name__)

CHECKED_MARK = "alerts_checked_until"  # indexed_at of the newest article already checked
NEAR_DUPLICATE = 0.6  # headline term overlap (Jaccard) above which two reports are one story
MAX_SENTENCE_CHARS = 300
STORY_DAYS = 7  # a near-duplicate of a report alerted this recently is the same story


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
class CheckReport:
    new_articles: int = 0
    topics: int = 0
    retrieved_topics: int = 0  # topics that passed the vector pre-check
    queued: int = 0
    seconds: float = 0.0
    matches: dict[str, list[Matched]] = field(default_factory=dict)


class FollowMatcher:
    """Matches topics against new articles with one retriever (and its embedder and store)."""

    def __init__(self, settings, retriever) -> None:
        self.settings = settings
        self.retriever = retriever
        self._topics: dict[str, np.ndarray] = {}

    def topic_vectors(self, topics: list[str]) -> np.ndarray:
        missing = [t for t in topics if t not in self._topics]
        if missing:
            vectors = self.retriever.embedder.embed(missing)
            self._topics.update(zip(missing, np.asarray(vectors, dtype=np.float32)))
        return np.stack([self._topics[t] for t in topics]) if topics else np.zeros((0, 1))

    def chunk_vectors(self, article_ids: list[str]) -> tuple[np.ndarray, list[dict]]:
        """Stored chunk embeddings of these articles, and their metadata."""
        vectors, metas = [], []
        chunks = self.retriever.store.chunks
        for start in range(0, len(article_ids), 200):
            part = article_ids[start : start + 200]
            got = chunks.get(
                where={"article_id": {"$in": part}}, include=["embeddings", "metadatas"]
            )
            if len(got["ids"]):
                vectors.append(np.asarray(got["embeddings"], dtype=np.float32))
                metas.extend(m or {} for m in got["metadatas"])
        if not vectors:
            return np.zeros((0, 1), dtype=np.float32), []
        return np.concatenate(vectors), metas

    def match(
        self,
        topics: list[str],
        new_ids: Iterable[str],
        reference: date | None = None,
        *,
        as_of: date | None = None,
    ) -> tuple[dict[str, list[Matched]], int]:
        """topic -> new articles that match it (best first); and how many topics were
        retrieved for after the pre-check. ``as_of`` hides later articles (replaying an
        archive day by day)."""
        from index.models import Query

        new = set(new_ids)
        topics = sorted(set(topics))
        if not topics or not new:
            return {}, 0
        chunks, metas = self.chunk_vectors(sorted(new))
        if not metas:
            return {}, 0
        sims = _unit(self.topic_vectors(topics)) @ _unit(chunks).T  # (topics, chunks)
        owners = [str(m.get("article_id", "")) for m in metas]
        threshold = self.settings.alert_min_score
        out: dict[str, list[Matched]] = {}
        retrieved = 0
        for row, topic in enumerate(topics):
            if float(sims[row].max()) < threshold:
                continue
            best: dict[str, float] = {}
            for owner, sim in zip(owners, sims[row].tolist()):
                best[owner] = max(best.get(owner, -1.0), sim)
            retrieved += 1
            hits = self.retriever.retrieve(
                Query(text=topic, end=as_of, reference=reference or as_of),
                k=self.settings.alert_top_k,
            )
            found = []
            for rank, hit in enumerate(hits):
                if best.get(hit.article_id, -1.0) < threshold:
                    continue  # not new, or not close enough to the topic
                story = _story_of(hit.article_id, metas)
                found.append(
                    Matched(
                        hit.article_id, hit.title, hit.url, hit.source, hit.published,
                        best[hit.article_id], rank, story, best_sentence(topic, [p.text for p in hit.passages]),
                    )
                )  # fmt: skip
            if found:
                out[topic] = found
        return out, retrieved


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
        matches, report.retrieved_topics = matcher.match([f.topic for f in every], fresh, reference)
        report.matches = matches
        alerts = alerts_for(follows, every, matches, fresh)
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


def _story_of(article_id: str, metas: list[dict]) -> str:
    for meta in metas:
        if meta.get("article_id") == article_id and meta.get("story_id"):
            return str(meta["story_id"])
    return article_id


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)
