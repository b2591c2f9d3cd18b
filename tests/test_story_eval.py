"""Story figures of `newsdesk eval`: grouping against labelled stories, and per question."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_story_answer import quake_settings  # noqa: F401  (fixture)
from test_story_index import BAKE, DIGEST, QUAKE_A, QUAKE_B

from index.evaluate import evaluate, load_questions
from index.story_eval import score_grouping

LABELLED = [
    {
        "id": "s1",
        "members": ["https://a/1", "https://a/2", "https://a/3"],
        "mentions": ["https://digest/1"],
        "near_misses": ["https://a/old"],
    },
    {"id": "s2", "members": ["https://b/1", "https://b/2"], "mentions": [], "near_misses": []},
]

# clusters (url -> story) -> (pair precision, pair recall, mention joins, near-miss joins)
SCORE_CASES = [
    # perfect: 3 + 1 member pairs together, nothing else with them
    (
        {"https://a/1": "A", "https://a/2": "A", "https://a/3": "A", "https://b/1": "B",
         "https://b/2": "B", "https://digest/1": "D", "https://a/old": "O"},
        (1.0, 1.0, 0.0, 0.0),
    ),
    # the digest and the near miss join story A: 6 wrong pairs beside 4 right ones
    (
        {"https://a/1": "A", "https://a/2": "A", "https://a/3": "A", "https://b/1": "B",
         "https://b/2": "B", "https://digest/1": "A", "https://a/old": "A"},
        (0.4, 1.0, 1.0, 1.0),
    ),
    # everything apart: nothing wrong, nothing found
    (
        {u: u for u in ("https://a/1", "https://a/2", "https://a/3", "https://b/1", "https://b/2")},
        (0.0, 0.0, 0.0, 0.0),
    ),
    # two stories merged: 4 cross pairs wrong beside 2 right; a member is not indexed
    (
        {"https://a/1": "X", "https://a/2": "X", "https://b/1": "X", "https://b/2": "X"},
        (0.3333, 1.0, 0.0, 0.0),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("clusters", "expected"), SCORE_CASES)
def test_pair_scores(clusters: dict[str, str], expected: tuple) -> None:
    got = score_grouping(clusters, LABELLED)
    assert (
        got["story_pair_precision"],
        got["story_pair_recall"],
        got["story_mention_joins"],
        got["story_near_miss_joins"],
    ) == expected


def test_eval_reports_story_figures_beside_the_gold_url_ones(
    quake_settings,  # noqa: F811
    embedder,
    tmp_path: Path,
) -> None:
    from index.engine import build_query_engine

    rows = [
        {"id": "quake", "members": [QUAKE_A["url"], QUAKE_B["url"]],
         "mentions": [DIGEST["url"]], "near_misses": [BAKE["url"]]},
        # The gold is the first report; the answer may cite the other outlet's: same story.
        {"question": "How many people did the Ecuador earthquake kill?", "answer": "12",
         "gold_urls": [QUAKE_A["url"]], "answerable": True, "date": "2022-07-06"},
    ]  # fmt: skip
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    loaded = load_questions(path)
    assert len(loaded) == 2

    engine = build_query_engine(quake_settings, embedder=embedder)
    result = evaluate(engine, loaded)
    assert result["n_answerable"] == 1
    assert result["story_pair_precision"] == 1.0 and result["story_pair_recall"] == 1.0
    assert result["story_mention_joins"] == 0.0 and result["story_near_miss_joins"] == 0.0
    assert result["story_hit@1"] == 1.0 and result["story_hit@5"] == 1.0
    assert result["story_citation_precision"] >= result["citation_precision"]
    assert result["story_citation_precision"] == 1.0
