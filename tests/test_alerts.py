"""The follow matcher's pre-checks change nothing: it finds exactly what the definition of a
match finds by retrieving for every topic (the article ranks in the topic's top
``alert_top_k`` and its best chunk's cosine reaches ``alert_min_score``), while retrieving
for fewer topics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from test_follow import CHESS, FOOTBALL, RATES, VOLCANO, VOLCANO_2

from index.alerts import FollowMatcher
from index.identity import article_id, canonical_url
from index.ingest import index_paths
from index.models import Query
from index.retrieve import Retriever
from index.settings import Settings

TOPICS = [
    "volcano eruption in Iceland",
    "interest rates and inflation",
    "chess championship",
    "football cup final",
    "rail strike over pay",  # only an old article is about it
    "Mars rover finds water",  # nothing is
    "semiconductor factory",
    "heatwave in Spain",
]


def test_the_pre_checks_find_what_retrieving_for_every_topic_finds(
    seeded: Settings, embedder, tmp_path: Path
) -> None:
    settings = seeded.model_copy(update={"alert_min_score": 0.35, "alert_top_k": 2})
    new_file = tmp_path / "new.jsonl"
    articles = [VOLCANO, VOLCANO_2, RATES, CHESS, FOOTBALL]
    rows = [
        {"url": f"https://news.example/{a.slug}", "title": a.title, "source": "news.example",
         "published": a.published, "text": "\n\n".join(a.paragraphs)}
        for a in articles
    ]  # fmt: skip
    new_file.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    assert index_paths([new_file], settings, embedder=embedder).added == len(articles)
    retriever = Retriever(settings, embedder=embedder)
    new = {article_id(canonical_url(r["url"]), "", None) for r in rows}
    assert new <= set(retriever.store.manifest())

    run = FollowMatcher(settings, retriever).match(TOPICS, new)

    got = {(t, m.article_id, m.rank) for t, ms in run.matches.items() for m in ms}
    assert got == by_definition(settings, retriever, new)
    assert {t for t, _, _ in got} >= {TOPICS[0], TOPICS[1], TOPICS[2]}
    assert run.retrieved < len(TOPICS)  # the pre-checks spared some retrievals
    volcano = article_id(canonical_url(rows[0]["url"]), "", None)
    assert any(a == volcano for t, a, _ in got if t == TOPICS[0])

    # A roundup never alerts, so it is no candidate at all.
    spared = FollowMatcher(settings, retriever).match(TOPICS, new, never=[volcano])
    assert all(m.article_id != volcano for ms in spared.matches.values() for m in ms)


def by_definition(settings: Settings, retriever: Retriever, new: set[str]) -> set:
    """Retrieve for every topic; keep the new articles whose best chunk is close enough."""
    got = retriever.store.chunks.get(include=["embeddings", "metadatas"])
    vectors = np.asarray(got["embeddings"], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    owners = [m["article_id"] for m in got["metadatas"]]
    out = set()
    for topic in TOPICS:
        q = np.asarray(retriever.embedder.embed([topic])[0], dtype=np.float32)
        sims = vectors @ (q / np.linalg.norm(q))
        hits = retriever.retrieve(Query(text=topic), k=settings.alert_top_k)
        for rank, hit in enumerate(hits):
            best = max(s for s, o in zip(sims, owners) if o == hit.article_id)
            if hit.article_id in new and best >= settings.alert_min_score:
                out.add((topic, hit.article_id, rank))
    return out
