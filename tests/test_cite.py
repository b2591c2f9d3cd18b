"""Checked citations: only claims a cited source supports reach the user, numbered 1..m."""

from __future__ import annotations

import pytest

from index.cite import SUPPORT_THRESHOLD, Unsupported, check_citations, is_refusal
from index.prompts import REFUSAL
from index.retrieve import ArticleHit, Passage

DEFENCE = (
    "Both parties agreed to accelerate the signature of a MOU for the production and joint "
    "sale of defense hardware, promoting the collaboration of the defense industry."
)
SESSION = (
    "The session, held from January 23 to 24, 2025 in Islamabad, concluded with important "
    "debates on key areas of mutual interest."
)
STRIKE = "Rail workers across Britain walked out on Friday in a dispute over pay and conditions."
HEAT = "Temperatures in Seville reached 44 degrees Celsius on Saturday, a record for early July."


def hit(n: int, title: str, published: str, *texts: str) -> ArticleHit:
    passages = [Passage(f"a{n}:{i}", text, i) for i, text in enumerate(texts)]
    return ArticleHit(
        f"a{n}", title, f"https://example.com/{n}", "example.com", published, 0, passages=passages
    )


@pytest.fixture
def hits() -> list[ArticleHit]:
    return [
        hit(1, "Pakistan and Azerbaijan deepen cooperation", "2025-01-24", f"{DEFENCE} {SESSION}"),
        hit(
            2,
            "Rail workers strike over pay",
            "2022-06-10",
            f"{STRIKE} Commuters faced long delays.",
        ),
        hit(3, "Heatwave breaks records in Spain", "2022-07-02", HEAT),
    ]


def test_supported_claim_keeps_its_marker_and_quotes_the_supporting_sentence(hits) -> None:
    answer = check_citations(
        "Pakistan and Azerbaijan agreed to speed up signing an MOU on jointly producing "
        "defence hardware [1].",
        hits,
    )
    assert answer.mode == "llm" and not answer.refused
    assert answer.text.endswith("hardware. [1]")
    [citation] = answer.citations
    assert citation.n == 1 and citation.article_id == "a1"
    assert citation.quote == DEFENCE
    assert citation.published == "2025-01-24"


def test_out_of_range_marker_is_removed(hits) -> None:
    answer = check_citations(
        "Rail workers walked out over pay [2][9]. It was hot in Seville [1, 9].", hits
    )
    assert "[9]" not in answer.text
    assert "Rail workers walked out over pay. [1]" in answer.text
    # "[1, 9]" cited a source that exists but says nothing of Seville: that claim goes.
    assert "Seville" not in answer.text
    assert [c.article_id for c in answer.citations] == ["a2"]


def test_sentence_with_only_out_of_range_markers_is_treated_as_uncited(hits) -> None:
    answer = check_citations("Temperatures in Seville reached 44 degrees [7].", hits)
    assert answer.text == "Temperatures in Seville reached 44 degrees. [1]"
    assert answer.citations[0].article_id == "a3"


def test_numbering_is_compact_by_first_use(hits) -> None:
    answer = check_citations(
        "Seville reached a record 44 degrees Celsius [3]. Rail workers walked out over pay [2]. "
        "Rail workers across Britain walked out on Friday [2].",
        hits,
    )
    assert answer.text.count("[1]") == 1 and answer.text.count("[2]") == 2
    assert "[3]" not in answer.text
    assert [(c.n, c.article_id) for c in answer.citations] == [(1, "a3"), (2, "a2")]


def test_only_source_three_becomes_one(hits) -> None:
    answer = check_citations("Seville saw 44 degrees Celsius, a record for early July [3].", hits)
    assert answer.text.endswith("[1]")
    assert [(c.n, c.title) for c in answer.citations] == [(1, "Heatwave breaks records in Spain")]
    assert answer.citations[0].quote == HEAT


def test_unsupported_claims_are_dropped(hits) -> None:
    answer = check_citations(
        "Rail workers walked out over pay [2]. "
        "The strike cost the economy 5 billion pounds [2]. "  # nothing like it in the source
        "Pakistan and Azerbaijan agreed to build a nuclear power plant in Baku [1].",
        hits,
    )
    assert answer.text == "Rail workers walked out over pay. [1]"
    assert [c.article_id for c in answer.citations] == ["a2"]


def test_numbers_must_match(hits) -> None:
    kept = check_citations("Seville reached 44 degrees Celsius [3].", hits)
    assert kept.citations
    with pytest.raises(Unsupported):
        check_citations("Seville reached 47 degrees Celsius [3].", hits)


def test_published_date_may_be_cited(hits) -> None:
    answer = check_citations(
        "On January 24, 2025, Pakistan and Azerbaijan agreed to accelerate an MOU on defense "
        "hardware [1].",
        hits,
    )
    assert answer.citations[0].quote == DEFENCE


def test_uncited_supported_sentence_gets_a_marker(hits) -> None:
    answer = check_citations(
        "The joint commission session was held in Islamabad on January 23 to 24, 2025.", hits
    )
    assert answer.text.endswith("2025. [1]")
    assert answer.citations[0].article_id == "a1"
    assert answer.citations[0].quote == SESSION


def test_uncited_unsupported_sentence_is_dropped_and_connectives_kept(hits) -> None:
    answer = check_citations(
        "In short: Rail workers walked out over pay [2]. Trains will run normally tomorrow.",
        hits,
    )
    assert answer.text == "In short: Rail workers walked out over pay. [1]"


def test_marker_after_the_full_stop_belongs_to_the_sentence_before(hits) -> None:
    answer = check_citations(
        "Rail workers walked out over pay. [2] Seville hit 44 degrees. [3]", hits
    )
    assert answer.text == "Rail workers walked out over pay. [1] Seville hit 44 degrees. [2]"


def test_nothing_supported_raises(hits) -> None:
    with pytest.raises(Unsupported):
        check_citations("The moon is made of cheese [1]. Cheese is popular [2].", hits)


@pytest.mark.parametrize(
    "text",
    [REFUSAL, f"  {REFUSAL}  ", "The indexed articles don’t answer this", f'"{REFUSAL}" Sorry.'],
)
def test_refusal_phrase_gives_a_refusal(hits, text: str) -> None:
    assert is_refusal(text)
    answer = check_citations(text, hits)
    assert answer.refused and answer.text == REFUSAL and answer.mode == "llm"
    assert [c.article_id for c in answer.see_also] == ["a1", "a2", "a3"]
    assert answer.citations == []


def test_threshold_is_a_fraction() -> None:
    assert 0 < SUPPORT_THRESHOLD <= 1
