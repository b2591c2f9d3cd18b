"""Offline answering on the seed corpus: cited answers, refusals, follow-ups, dates."""

from __future__ import annotations

import json
from datetime import date

import pytest
from conftest import newsdesk

from index.answer import Answerer, QuestionError
from index.prompts import REFUSAL
from index.settings import Settings
from index.text import sentences

SEED_TITLE_WORD = "Azerbaijan"


@pytest.fixture
def answerer(seeded: Settings, embedder) -> Answerer:
    return Answerer(seeded, embedder=embedder)


def test_defence_question_cites_seed_article_with_date(answerer: Answerer) -> None:
    answer = answerer.ask("What did Pakistan and Azerbaijan agree about defence hardware?")
    assert not answer.refused
    assert "[1]" in answer.text
    first = answer.citations[0]
    assert first.n == 1 and SEED_TITLE_WORD in first.title
    assert first.published == "2025-01-24"
    assert "MOU" in answer.text
    assert first.quote and first.quote in answer.text  # quote is the sentence used


@pytest.mark.parametrize("spelling", ["defence", "defense"])
def test_the_readme_question_opens_with_the_defence_agreement(
    answerer: Answerer, spelling: str
) -> None:
    # The whole article is about Pakistan and Azerbaijan, so the sentences naming them must
    # not outrank the one that says what was agreed on defence; and either spelling matches.
    answer = answerer.ask(f"What did Pakistan and Azerbaijan agree on {spelling}?")
    first = answer.text.split("[1]")[0]
    assert "MOU" in first and "defense hardware" in first
    assert answer.citations[0].quote in first


def test_markers_are_compact_and_in_range(answerer: Answerer) -> None:
    answer = answerer.ask("Which sectors did Pakistan and Azerbaijan discuss cooperation in?")
    numbers = sorted({int(n) for n in __import__("re").findall(r"\[(\d+)\]", answer.text)})
    assert numbers == list(range(1, len(answer.citations) + 1))


def test_unrelated_question_is_refused_with_see_also(answerer: Answerer) -> None:
    answer = answerer.ask("Who won the 1998 FIFA World Cup final in Paris?")
    assert answer.refused
    assert answer.text.startswith(REFUSAL)
    assert answer.citations == []


def test_follow_up_uses_the_conversation(answerer: Answerer) -> None:
    first = answerer.ask("What did Pakistan and Azerbaijan agree about defence hardware?", "c1")
    follow = answerer.ask("and what about agriculture?", "c1")
    assert not follow.refused
    assert "cotton" in follow.text.lower()
    assert follow.text != first.text
    # Another conversation has no history: the bare follow-up has nothing to attach to.
    other = answerer.ask("and what about agriculture?", "c2")
    assert other.question == "and what about agriculture?"


def test_tell_me_more_about_a_citation(answerer: Answerer) -> None:
    answerer.ask("What did Pakistan and Azerbaijan agree about defence hardware?", "c3")
    more = answerer.ask("tell me more about [1]", "c3")
    assert not more.refused
    assert all(SEED_TITLE_WORD in c.title for c in more.citations)


def test_date_filter_excludes_other_periods(answerer: Answerer) -> None:
    hit = answerer.ask("What happened with rail workers in June 2022?")
    assert not hit.refused and "rail workers" in hit.text.lower()
    miss = answerer.ask("What happened with rail workers in March 2021?")
    assert miss.refused


def test_as_of_hides_later_articles(answerer: Answerer) -> None:
    answer = answerer.ask(
        "What did Pakistan and Azerbaijan agree about defence hardware?",
        as_of=date(2024, 12, 31),
    )
    assert answer.refused


@pytest.mark.parametrize("bad", ["", "   ", "?!", "x" * 5000])
def test_malformed_questions_get_a_message(answerer: Answerer, bad: str) -> None:
    with pytest.raises(QuestionError) as info:
        answerer.ask(bad)
    assert str(info.value)


def test_sentence_splitter_keeps_abbreviations() -> None:
    text = "Dr. Smith met the U.S. team on Friday. Prices rose 3.5% in May. Why? Nobody knows."
    assert sentences(text) == [
        "Dr. Smith met the U.S. team on Friday.",
        "Prices rose 3.5% in May.",
        "Why?",
        "Nobody knows.",
    ]


def test_ask_json_cli(seeded: Settings) -> None:
    env = {
        "NEWSDESK_DATA_DIR": str(seeded.data_dir),
        "PATH": "/usr/bin:/bin",
        "HOME": str(seeded.data_dir),
    }
    question = "What did Pakistan and Azerbaijan agree about defence?"
    proc = newsdesk("ask", question, "--json", env=env, cwd=seeded.data_dir, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) >= {"text", "refused", "citations"}
    assert data["refused"] is False
    assert {"n", "title", "source", "published", "url", "quote"} <= set(data["citations"][0])


def test_repl_through_stdin(seeded: Settings) -> None:
    env = {
        "NEWSDESK_DATA_DIR": str(seeded.data_dir),
        "PATH": "/usr/bin:/bin",
        "HOME": str(seeded.data_dir),
    }
    script = "\n".join(
        [
            "What did Pakistan and Azerbaijan agree about defence hardware?",
            "and what about agriculture?",
            "/sources",
            "/reset",
            "/help",
            "/nonsense",
            "",
            "/quit",
        ]
    )
    proc = newsdesk("chat", env=env, cwd=seeded.data_dir, input=script, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "MOU" in out and "cotton" in out.lower()
    assert "Sources" in out and "2025-01-24" in out
    assert "Conversation forgotten." in out
    assert "Unknown command /nonsense" in out
    assert "Traceback" not in out + proc.stderr


def test_follow_up_context_stays_bounded(answerer: Answerer) -> None:
    from index.followup import CONTEXT_CHARS

    answerer.ask("What did Pakistan and Azerbaijan agree about defence hardware?", "long")
    for topic in ["energy", "agriculture", "health", "trade", "investment", "cotton", "gas"]:
        answer = answerer.ask(f"and what about {topic}?", "long")
        assert len(answer.question) <= len(f"and what about {topic}?") + 1 + CONTEXT_CHARS


def test_pronoun_in_a_full_question_is_not_a_follow_up(answerer: Answerer) -> None:
    answerer.ask("What did Pakistan and Azerbaijan agree about defence hardware?", "p1")
    question = "Which workers walked out this week in a dispute over their pay and conditions?"
    assert answerer.ask(question, "p1").question == question


@pytest.mark.parametrize(
    ("reference", "year", "refused"),
    [
        (date(2026, 11, 28), 2026, True),  # the seed article (Jan 2025) cannot report 2026
        (date(2026, 11, 28), 2025, False),
        (date(2024, 6, 1), 2026, False),  # a future year asks about plans: no rule
    ],
)
def test_a_named_year_needs_articles_from_that_year_on(
    seeded: Settings, embedder, reference: date, year: int, refused: bool
) -> None:
    settings = seeded.model_copy(update={"reference_date": reference})
    answerer = Answerer(settings, embedder=embedder)
    answer = answerer.ask(
        f"What did Pakistan and Azerbaijan agree about defence hardware in the {year} talks?"
    )
    assert answer.refused is refused
    if refused:
        assert answer.see_also and SEED_TITLE_WORD in answer.see_also[0].title


def test_counts_are_not_years() -> None:
    from index.answer import _named_year

    ref = date(2026, 1, 1)
    assert _named_year("Why did 2000 homes lose power?", ref) is None
    assert _named_year("Did it cost $2,025 or 1,999 votes?", ref) is None
    assert _named_year("Compare 2019 and the 2024 budgets", ref) == 2024
    assert _named_year("What did the 2022 midterms show?", ref) == 2022
    assert _named_year("Who will host the 2030 World Cup?", ref) is None


def test_the_top_article_is_read_whole_up_to_its_leading_chunks(tmp_path, embedder) -> None:
    """When no kept passage answers a typed question, the top article is read whole: its
    leading chunks and those retrieval kept. A live page's long tail is not read (scoring
    ~275 sentences cost ~100 ms a question on the full feed)."""
    from conftest import make_settings

    from index.answer import WHOLE_LEADING
    from index.ingest import index_paths

    filler = " ".join(
        f"Crews at the harbour in Lowick checked the sea wall again on update {i}, and the "
        f"council posted road closures for the coastal route once more."
        for i in range(6)
    )
    body = ["Marta Vell, the lighthouse keeper of Lowick, was 81 when she retired."]
    body += [f"Update {i}. {filler}" for i in range(60)]
    article = {"url": "https://example.com/2022/03/02/lowick-live", "title": "Lowick storm: live",
               "source": "example.com", "published": "2022-03-02", "text": "\n\n".join(body)}  # fmt: skip
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "live.jsonl").write_text(json.dumps(article) + "\n", encoding="utf-8")
    settings = make_settings(tmp_path)
    assert index_paths([corpus], settings, embedder=embedder).added == 1
    answerer = Answerer(settings, embedder=embedder)

    hit = answerer.retriever.retrieve(answerer.resolve("Lowick sea wall road closures").query)[0]
    whole = answerer._whole(hit)
    positions = sorted(p.position for p in whole.passages)
    n_chunks = answerer.retriever.store.chunks.count()
    assert n_chunks > WHOLE_LEADING + len(hit.passages)  # the page is longer than what is read
    assert positions[:WHOLE_LEADING] == list(range(WHOLE_LEADING))
    assert set(positions) == set(range(WHOLE_LEADING)) | {p.position for p in hit.passages}
