"""`index.evaluate`: conversations beside single questions, and the multiple-choice pick."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from index.answer import Answerer
from index.engine import NewsQueryEngine
from index.evaluate import (
    answer_checks,
    best_choice,
    dangling,
    evaluate,
    gold_rank,
    load_questions,
    opens_with,
)
from index.models import Answer, ArticleHit, Citation
from index.settings import Settings

RAIL = "https://example.com/2022/06/10/rail-strike"

CONVERSATION = {
    "id": "conv-seed",
    "date": "2025-01-25",
    "turns": [
        {"question": "What did Pakistan and Azerbaijan agree about defence hardware?",
         "answer": "MOU", "gold_urls": ["https://nowhere.example/seed"]},
        {"question": "and what about agriculture?", "answer": "cotton",
         "gold_urls": ["https://nowhere.example/seed"]},
        {"question": "?!", "answer": "anything", "gold_urls": []},  # rejected as a question
    ],
}  # fmt: skip
SINGLE = {
    "id": "rail", "date": "2022-06-11", "question": "Why did rail workers in Britain walk out?",
    "answer": "pay and conditions", "gold_urls": [RAIL], "answerable": True,
    "choices": ["a heatwave", "pay and conditions", "a chip shortage"],
}  # fmt: skip


@pytest.fixture
def answerer(seeded: Settings, embedder) -> Answerer:
    return Answerer(seeded, embedder=embedder)


def test_conversations_are_scored_turn_by_turn_beside_single_questions(
    answerer: Answerer,
) -> None:
    result = evaluate(NewsQueryEngine(answerer), [CONVERSATION, SINGLE])
    # Single-question keys describe the single question alone.
    assert (result["n_answerable"], result["n_unanswerable"]) == (1, 0)
    assert result["accuracy"] == 1.0 and result["citation_precision"] == 1.0
    assert result["mc_accuracy"] == 1.0
    # Conversation keys: turn 1 right, follow-up 1 right (needs turn 1's topic), follow-up
    # 2 rejected as a question, which counts as refused.
    assert (result["n_conversations"], result["n_followups"]) == (1, 2)
    assert result["turn1_accuracy"] == 1.0
    assert result["followup_accuracy"] == 0.5
    assert result["followup_refusal_rate"] == 0.5
    assert result["turn1_citation_precision"] == 0.0  # the seed article is not a gold URL
    assert result["followup_citation_precision"] == 0.0
    # Lead accuracy: the expected answer in the reply's first sentence; never above accuracy.
    for lead, whole in [("lead_accuracy", "accuracy"), ("turn1_lead_accuracy", "turn1_accuracy"),
                        ("followup_lead_accuracy", "followup_accuracy")]:  # fmt: skip
        assert 0.0 <= result[lead] <= result[whole]
    rows = {row["id"]: row for row in result["details"]}
    assert rows["conv-seed#3"]["rejected"] and rows["conv-seed#3"]["refused"]
    assert rows["conv-seed#2"]["correct"] and "cotton" in rows["conv-seed#2"]["answer"].lower()
    # Every turn is timed: one single question plus three turns.
    assert 0 < result["p50_ms"] <= result["p95_ms"]
    assert len(result["details"]) == 4


def test_a_conversation_is_forgotten_after_scoring(answerer: Answerer) -> None:
    evaluate(NewsQueryEngine(answerer), [CONVERSATION])
    with answerer.history._connection() as conn:  # the eval's conversations leave no rows
        assert conn.execute("SELECT count(*) FROM turns").fetchone()[0] == 0


def test_conversation_records_load_and_bad_turns_are_named(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(CONVERSATION) + "\n" + json.dumps(SINGLE) + "\n")
    assert [("turns" in r) for r in load_questions(good)] == [True, False]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "turns": [{"answer": "no question"}]}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl#1: 'turns' must be"):
        load_questions(bad)


# choices, answer text, cited evidence, picked
MC_CASES: list[tuple[list[str], str, str, str]] = [
    # named word for word in the answer wins over a choice the evidence merely mentions
    (["Europe", "Asia"], "Europe will require USB-C [1]", "Asia and Europe", "Europe"),
    # not in the answer: named in the cited passages
    (["Squid Game", "Friends"], "The show returns [1]", "Squid Game season 2", "Squid Game"),
    # nowhere word for word: the choice whose words the evidence holds most
    (["Ban on military-style assault weapons", "Funding for schools"],
     "The deal left out an assault weapons ban", "", "Ban on military-style assault weapons"),
    # a refusal with no evidence: the first choice, a guess
    (["A", "B"], "", "", "A"),
]  # fmt: skip


@pytest.mark.parametrize(("choices", "answer", "evidence", "picked"), MC_CASES)
def test_best_choice(choices: list[str], answer: str, evidence: str, picked: str) -> None:
    assert best_choice(choices, answer, evidence) == picked


def cite(n: int) -> Citation:
    return Citation(n=n, title="t", source="s", published="", url="", quote="q")


# answer text, citation numbers listed -> markers pointing to nothing
DANGLING: list[tuple[str, list[int], list[int]]] = [
    ("It rose [1], then fell [2].", [1, 2], []),
    ("As Source 2 says [2] and [3].", [1, 2], [3]),
    ("No markers at all.", [], []),
    ("Twice [4] and again [4].", [1], [4, 4]),
]


@pytest.mark.parametrize(("text", "listed", "found"), DANGLING)
def test_dangling_markers(text: str, listed: list[int], found: list[int]) -> None:
    assert dangling(Answer(text=text, citations=[cite(n) for n in listed])) == found


def test_llm_fallbacks_are_counted_by_reason() -> None:
    answers = [
        Answer("A [1].", [cite(1)], mode="llm"),
        Answer("B [1].", [cite(1)], note="LLM unavailable (timed out after 60s); offline answer shown."),
        Answer("C [1].", [cite(1)], note="LLM unavailable (HTTP 500); offline answer shown."),
        Answer("D [1] [9].", [cite(1)], note="LLM unavailable (timed out after 60s); offline answer shown."),
        Answer("refused", refused=True),  # offline refusal: never went to the LLM
    ]  # fmt: skip
    checks = answer_checks(answers, llm=True)
    assert checks["dangling_markers"] == 1
    assert checks["llm_answers"] == 1 and checks["fallback_rate"] == 0.75
    assert checks["fallback_reasons"] == {"timed out after 60s": 2, "HTTP 500": 1}
    assert answer_checks(answers, llm=False) == {"dangling_markers": 1}


def _hit(url: str, *folded: str) -> ArticleHit:
    hit = ArticleHit(url, url, url, "x", "", 0)
    hit.reports = [ArticleHit(u, u, u, "y", "", 0) for u in folded]
    return hit


def test_gold_rank_counts_a_gold_report_folded_into_its_storys_slot() -> None:
    hits = [_hit("https://a/1"), _hit("https://b/lead", "https://b/gold"), _hit("https://c/1")]
    gold = {"https://b/gold"}
    assert gold_rank(hits, gold) == 1  # retrieved, shown in slot 2 as "+1 report"
    assert gold_rank(hits, gold, leads_only=True) is None
    assert gold_rank(hits, {"https://c/1"}, leads_only=True) == 2
    assert gold_rank(hits, {"https://elsewhere/x"}) is None


@pytest.mark.parametrize(
    ("expected", "opens"),
    [("Colorado Avalanche", True), ("Tampa Bay", False), ("avalanche won", True), ("", False)],
)
def test_lead_accuracy_reads_the_first_sentence_only(expected: str, opens: bool) -> None:
    answer = Answer(text="The Colorado Avalanche won. [1] They beat Tampa Bay. [2]")
    assert opens_with(expected, answer) is opens
