"""Conflicts: reports of one story that disagree on what was asked are shown side by side,
offline and in LLM mode. Each case is a pair of reports this test writes, differing in one fact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_settings
from fakes.openai_server import FakeOpenAI, Reply

from index.answer import Answerer
from index.conflicts import value_in, value_kind
from index.embed import LocalEmbedder
from index.ingest import index_paths

# question -> the kind of value it asks for
KIND_CASES = [
    ("How many people died in the Ecuador earthquake?", "number"),
    ("What was the death toll of the quake?", "number"),
    ("When did the bridge reopen?", "date"),
    ("Where did the earthquake strike?", "place"),
    ("Who won the Mega Millions jackpot?", "name"),
    ("Why did the council close the bridge?", None),
]


@pytest.mark.parametrize(("question", "kind"), KIND_CASES)
def test_value_kind(question: str, kind: str | None) -> None:
    assert value_kind(question) == kind


# (sentence, kind, question) -> the value it gives
VALUE_CASES = [
    ("The quake, of magnitude 6.8, killed at least 12 people in 2022.", "number",
     "How many people did the magnitude 6.8 quake kill?", "12 people"),
    ("Officials said 1,400 homes were destroyed and 14 people died.", "number",
     "How many people died?", "14 people"),
    ("The bridge reopened on Tuesday after repairs.", "date", "When did the bridge reopen?",
     "Tuesday"),
    ("The bridge will reopen on July 12, officials said.", "date", "When will the bridge reopen?",
     "July 12"),
    ("The earthquake struck near Portoviejo on Monday.", "place", "Where did the earthquake strike?",
     "Portoviejo"),
    ("The winning ticket was bought by Maria Lopez of Des Plaines.", "name",
     "Who bought the winning ticket?", "Maria Lopez"),
]  # fmt: skip


@pytest.mark.parametrize(("sentence", "kind", "question", "value"), VALUE_CASES)
def test_value_in_sentence(sentence: str, kind: str, question: str, value: str) -> None:
    assert value_in(sentence, kind, question) == value


# (value, value, kind) -> could they disagree? (found as false alarms on the real feed)
COMPARABLE_CASES = [
    ("12 people", "14 people", "number", True),
    ("six months", "two", "number", False),  # "two-time Olympic gold medalist"
    ("60%", "Nine months", "number", False),
    ("20%", "130 school", "number", False),
    ("Tuesday", "Monday", "date", False),  # relative to each report's own day
    ("July 12", "July 14", "date", True),
]


@pytest.mark.parametrize(("a", "b", "kind", "expected"), COMPARABLE_CASES)
def test_only_values_of_the_same_kind_can_disagree(
    a: str, b: str, kind: str, expected: bool
) -> None:
    from index.conflicts import comparable

    assert comparable(a, b, kind) is expected


def report(source: str, day: int, toll_sentence: str, title: str) -> dict:
    return {
        "url": f"https://{source}/2022/07/0{day}/ecuador-quake",
        "title": title,
        "source": source,
        "published": f"2022-07-0{day}",
        "text": f"A magnitude 6.8 earthquake struck Ecuador's Manabi province on Monday, "
        f"toppling buildings in Portoviejo and Manta. {toll_sentence} President Guillermo Lasso "
        "declared a state of emergency in Manabi as rescue teams searched the rubble.",
    }


TITLE_A = "Magnitude 6.8 earthquake in Ecuador's Manabi province kills dozens of people"
TITLE_B = "Ecuador earthquake: Manabi province hit by magnitude 6.8 quake, many killed"
QUESTION = "How many people died in the Ecuador earthquake in Manabi?"

# (first report's toll sentence, second report's) -> do they conflict?
PAIR_CASES = [
    ("At least 12 people died in the quake.", "At least 14 people died in the quake.", True),
    ("At least 12 people died in the quake.", "At least 12 people died in the quake.", False),
    # an update that names the earlier figure does not contradict it
    ("At least 12 people died in the quake.", "The number of people who died rose from 12 to 14.", False),
]  # fmt: skip


@pytest.fixture(scope="module")
def pair_indexes(tmp_path_factory: pytest.TempPathFactory, embedder: LocalEmbedder) -> list:
    roots = []
    for n, (first, second, _) in enumerate(PAIR_CASES):
        root = tmp_path_factory.mktemp(f"pair{n}")
        feed = root / "feed.jsonl"
        rows = [report("cnn.com", 4, first, TITLE_A), report("usatoday.com", 4, second, TITLE_B)]
        feed.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        settings = make_settings(root)
        summary = index_paths([feed], settings, embedder=embedder)
        assert summary.added == 2 and summary.stories == 1  # one story: the same event
        roots.append(root)
    return roots


@pytest.mark.parametrize("case", range(len(PAIR_CASES)))
def test_offline_answer_says_where_reports_disagree(
    case: int, pair_indexes: list, embedder: LocalEmbedder
) -> None:
    conflict = PAIR_CASES[case][2]
    answer = Answerer(make_settings(pair_indexes[case]), embedder=embedder).ask(QUESTION)
    assert not answer.refused
    if not conflict:
        assert "Reports differ" not in answer.text and answer.conflicts == []
        return
    [found] = answer.conflicts
    assert found["kind"] == "number"
    assert {v["value"] for v in found["values"]} == {"12 people", "14 people"}
    by_source = {c.source: c.n for c in answer.citations}
    assert set(by_source) == {"cnn.com", "usatoday.com"}
    assert "Reports differ: " in answer.text
    assert f"says 12 people [{by_source['cnn.com']}]" in answer.text
    assert f"says 14 people [{by_source['usatoday.com']}]" in answer.text


def test_llm_mode_sees_both_reports_and_the_check_completes_its_answer(
    pair_indexes: list, embedder: LocalEmbedder, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    settings = make_settings(
        pair_indexes[0].parent / pair_indexes[0].name,
        openai_base_url=fake_openai.base_url,
        openai_api_key="sk-test",
        llm_model="fake-model",
        llm_timeout=5,
        llm_max_retries=0,
    )
    # The LLM gives one side only: the check adds the other.
    fake_openai.script(Reply("At least 12 people died in the quake in Manabi [1]."))
    answer = Answerer(settings, embedder=embedder).ask(QUESTION)
    [request] = fake_openai.chat_requests
    system, user = (m["content"] for m in request["json"]["messages"])
    assert "same story attribute" in system and "cite each side" in system
    assert user.count("<source ") == 2  # the story's second report is shown too
    assert user.count('story="') == 2
    assert answer.mode == "llm" and len(answer.conflicts) == 1
    assert "Reports differ: " in answer.text and len(answer.citations) == 2
