"""``fuse``: how dense and BM25 rankings of chunks become one ranking of articles.

Each case gives the chunks each search found and the articles expected, in order, with the
chunk ids of the passages each keeps. Scores follow from the rule in ``fuse``'s docstring:
0.5 x min-max dense + 0.5 x BM25 / best BM25 + 0.3 x the headline's share of the question,
times recency and source weights. No index is involved: ``fuse`` is pure.
"""

from __future__ import annotations

from datetime import date

import pytest

from index.models import Chunk, Query
from index.retrieve import day_ts, fuse, recency_weight

QUESTION = "flood warning"


def chunk(
    cid: str,
    score: float = 0.0,
    *,
    article: str | None = None,
    title: str = "",
    url: str = "",
    published: str = "",
    source: str = "example.com",
    doc_hash: str = "v1",
) -> Chunk:
    """Chunk ``cid`` of article ``cid[0]`` (``a1`` belongs to ``a``), as Chroma holds it."""
    aid = article or cid[0]
    meta = {
        "article_id": aid,
        "title": title or f"Story {aid}",  # "story" is not in the question
        "url": url or f"https://example.com/{aid}",
        "source": source,
        "published": published,
        "published_ts": day_ts(date.fromisoformat(published)) if published else -1,
        "doc_hash": doc_hash,
        "position": int(cid[1:] or 0),
    }
    return Chunk(cid, meta, f"text of {cid}", score)


# name: (dense chunks, keyword (chunk id, BM25), fetched chunks, options, expected)
CASES = {
    "dense alone: cosine order, min-max over the candidates": (
        [chunk("a1", 0.9), chunk("b1", 0.5), chunk("c1", 0.7)],
        [],
        [],
        {},
        [("a", ["a1"]), ("c", ["c1"]), ("b", ["b1"])],
    ),
    "BM25 reorders what dense found": (
        [chunk("a1", 0.9), chunk("b1", 0.8), chunk("c1", 0.1)],
        [("b1", 10.0), ("a1", 2.0)],  # a 0.5 + 0.1; b 0.4375 + 0.5; c 0
        [],
        {},
        [("b", ["b1"]), ("a", ["a1"]), ("c", ["c1"])],
    ),
    "a BM25-only article is read from fetched; its headline is about the question": (
        [chunk("a1", 0.9), chunk("b1", 0.5)],
        [("z1", 5.0)],  # z: 0.5 BM25 + 0.3 x 2/3 of its headline
        [chunk("z1", title="Flood warning issued")],
        {},
        [("z", ["z1"]), ("a", ["a1"]), ("b", ["b1"])],
    ),
    "a chunk gone from the store since BM25 indexed it is skipped": (
        [chunk("a1", 0.9)],
        [("g1", 9.0)],
        [],
        {},
        [("a", ["a1"])],
    ),
    "one version per article while it is being replaced: the first seen": (
        [chunk("a1", 0.9), chunk("a2", 0.8, doc_hash="v2"), chunk("b1", 0.1)],
        [("a3", 4.0)],
        [chunk("a3", doc_hash="v2")],
        {},
        [("a", ["a1"]), ("b", ["b1"])],
    ),
    "recency: a year-old article loses to one of the reference day": (
        [
            chunk("o1", 0.9, published="2021-06-10"),  # 0.5 x ~0.5
            chunk("n1", 0.85, published="2022-06-10"),  # 0.469 x 1
            chunk("u1", 0.1),  # no date: weight 1
        ],
        [],
        [],
        {"query": Query(QUESTION, reference=date(2022, 6, 10))},
        [("n", ["n1"]), ("o", ["o1"]), ("u", ["u1"])],
    ),
    "source weights scale an article's score": (
        [chunk("a1", 0.9, source="wire.example"), chunk("b1", 0.8), chunk("c1", 0.1)],
        [],
        [],
        {"source_weights": {"wire.example": 0.5}},  # a 0.25, b 0.4375
        [("b", ["b1"]), ("a", ["a1"]), ("c", ["c1"])],
    ),
    "k articles, at most three passages each, best passage first": (
        [
            *(chunk(cid, score) for cid, score in [("a1", 0.6), ("a2", 0.9), ("a3", 0.7)]),
            *(chunk(cid, score) for cid, score in [("a4", 0.8), ("b1", 0.5), ("c1", 0.1)]),
        ],
        [("a1", 40.0)],  # BM25 / 40 lifts a1 over a3 and a4 within its article
        [],
        {"k": 2},
        [("a", ["a1", "a2", "a4"]), ("b", ["b1"])],
    ),
    "a copy of a better-ranked article under its /index.html URL is dropped": (
        [
            chunk("a1", 0.9, url="https://example.com/a"),
            chunk("b1", 0.8, url="https://example.com/a/index.html"),
            chunk("c1", 0.1),
        ],
        [],
        [],
        {},
        [("a", ["a1"]), ("c", ["c1"])],
    ),
    "nothing found": ([], [], [], {}, []),
}


@pytest.mark.parametrize(
    ("dense", "keyword", "fetched", "options", "expected"), CASES.values(), ids=list(CASES)
)
def test_fuse(
    dense: list[Chunk],
    keyword: list[tuple[str, float]],
    fetched: list[Chunk],
    options: dict,
    expected: list[tuple[str, list[str]]],
) -> None:
    hits = fuse(
        options.get("query", Query(QUESTION)),
        dense,
        keyword,
        {c.chunk_id: c for c in fetched},
        idf={},
        k=options.get("k", 10),
        half_life_days=30.0,
        source_weights=options.get("source_weights"),
    )
    assert [(h.article_id, [p.chunk_id for p in h.passages]) for h in hits] == expected
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_fuse_records_each_articles_best_scores_and_ranks() -> None:
    [a, b] = fuse(
        Query(QUESTION),
        [chunk("a1", 0.9), chunk("a2", 0.7), chunk("b1", 0.5)],
        [("b1", 8.0), ("a2", 3.0), ("a1", 1.0)],
        {},
        idf={},
        k=5,
        half_life_days=30.0,
    )
    assert (a.dense, a.bm25, a.dense_rank, a.bm25_rank) == (0.9, 3.0, 0, 1)
    assert (b.dense, b.bm25, b.dense_rank, b.bm25_rank) == (0.5, 8.0, 1, 0)
    assert {p.chunk_id: (p.dense, p.bm25) for p in a.passages} == {
        "a1": (0.9, 1.0),
        "a2": (0.7, 3.0),
    }
    assert a.score == pytest.approx(0.5 * 1.0 + 0.5 * 3.0 / 8.0)


@pytest.mark.parametrize(
    ("age_days", "latest", "weight"),
    [(0, False, 1.0), (30, False, 0.75), (30, True, 0.6), (-5, False, 1.0), (None, False, 1.0)],
)
def test_recency_weight(age_days: int | None, latest: bool, weight: float) -> None:
    reference = date(2022, 6, 10)
    published = "" if age_days is None else date.fromordinal(reference.toordinal() - age_days)
    hit = fuse(
        Query(QUESTION),
        [chunk("a1", 0.5, published=str(published))],
        [],
        {},
        idf={},
        k=1,
        half_life_days=30.0,
    )[0]
    query = Query(QUESTION, reference=reference, recency=latest)
    assert recency_weight(hit, query, 30.0) == pytest.approx(weight)
