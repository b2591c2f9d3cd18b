"""Stories where answers are shown: one slot per story, who else reported it, per front end."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from conftest import make_settings
from rich.console import Console
from test_story_index import BAKE, DIGEST, QUAKE_A, QUAKE_B, write

from bot.render import other_reports, print_answer
from bot.telegram_format import format_answer
from index.embed import LocalEmbedder
from index.ingest import index_paths
from index.models import Answer, ArticleHit, Citation, OtherReport
from index.story_store import one_per_story


def _citation(*also: tuple[str, str]) -> Citation:
    return Citation(
        n=1,
        title="Loretta Lynn dies at 90",
        source="cnn.com",
        published="2022-10-05",
        url="https://cnn.com/lynn",
        quote="Loretta Lynn died.",
        also=[OtherReport(source, url, "2022-10-05") for source, url in also],
    )


# other reports (source, url) -> what the REPL shows after the date
REPORT_CASES = [
    ((), ""),
    ((("usatoday.com", "https://usatoday.com/a"),), " (+1 report: usatoday.com)"),
    (
        (("usatoday.com", "https://u/a"), ("theweek.co.uk", "https://w/b")),
        " (+2 reports: usatoday.com, theweek.co.uk)",
    ),
    (
        (("usatoday.com", "https://u/a"), ("usatoday.com", "https://u/b"), ("theweek.co.uk", "w")),
        " (+3 reports: usatoday.com, theweek.co.uk, …)",
    ),
    (
        (("usatoday.com", "u1"), ("theweek.co.uk", "w"), ("cnn.com", "c2"), ("cnn.com", "c3")),
        " (+4 reports: usatoday.com, theweek.co.uk, …)",
    ),
]


@pytest.mark.parametrize(("also", "expected"), REPORT_CASES)
def test_other_reports_note(also: tuple, expected: str) -> None:
    assert other_reports(_citation(*also)) == expected


def test_repl_and_telegram_show_who_else_reported() -> None:
    answer = Answer(
        text="Loretta Lynn died at 90 [1].",
        citations=[
            _citation(
                ("usatoday.com", "https://usatoday.com/lynn"),
                ("theweek.co.uk", "https://theweek.co.uk/lynn"),
                ("usatoday.com", "https://usatoday.com/lynn-2"),
            )
        ],
    )
    console = Console(record=True, width=200)
    print_answer(console, answer)
    assert (
        "[1] Loretta Lynn dies at 90 — cnn.com, 2022-10-05 "
        "(+3 reports: usatoday.com, theweek.co.uk, …)"
    ) in console.export_text()
    html = format_answer(answer)
    assert (
        '— cnn.com, 2022-10-05 (+3 reports: <a href="https://usatoday.com/lynn">usatoday.com</a>, '
        '<a href="https://theweek.co.uk/lynn">theweek.co.uk</a>, …)'
    ) in html


def _hit(aid: str, score: float) -> ArticleHit:
    return ArticleHit(aid, aid, f"https://x/{aid}", "x", "2022-07-01", 0, score=score)


def test_one_slot_per_story_keeps_the_best_report_and_carries_the_rest() -> None:
    story = {"a1": "A", "a2": "A", "b1": "B", "a3": "A", "c1": "C"}
    ranked = [_hit(a, s) for a, s in (("a1", 5), ("a2", 4), ("b1", 3), ("a3", 2), ("c1", 1))]
    kept = one_per_story(ranked, story.__getitem__)
    assert [h.article_id for h in kept] == ["a1", "b1", "c1"]
    assert [h.article_id for h in kept[0].reports] == ["a2", "a3"]
    assert [h.story_id for h in kept] == ["A", "B", "C"]


@pytest.fixture
def quake_settings(tmp_path: Path, embedder: LocalEmbedder):
    feed = write(tmp_path / "feed.jsonl", QUAKE_A, QUAKE_B, BAKE, DIGEST)
    settings = make_settings(tmp_path)
    index_paths([feed], settings, embedder=embedder)
    return settings


def test_retrieval_gives_a_story_one_slot_and_citations_name_the_other_reports(
    quake_settings, embedder: LocalEmbedder
) -> None:
    from index.answer import Answerer

    answerer = Answerer(quake_settings, embedder=embedder)
    resolved, answer = answerer.respond("How many people did the Ecuador earthquake kill?")
    urls = [h.url for h in resolved.hits]
    assert urls.count(QUAKE_A["url"]) + urls.count(QUAKE_B["url"]) == 1
    top = resolved.hits[0]
    assert top.url in (QUAKE_A["url"], QUAKE_B["url"])
    assert [r.url for r in top.reports] == list({QUAKE_A["url"], QUAKE_B["url"]} - {top.url})
    # The roundup that also reports the toll is retrieved, flagged, and not what is cited.
    flagged = {h.url: h.digest for h in resolved.hits}
    assert flagged.get(DIGEST["url"]) is True and flagged[top.url] is False
    assert not answer.refused
    assert DIGEST["url"] not in [c.url for c in answer.citations]
    cited = answer.citations[0]
    assert cited.story_id == top.story_id
    assert {cited.url, *(r.url for r in cited.also)} == {QUAKE_A["url"], QUAKE_B["url"]}
    data = answer.to_dict()
    assert data["citations"][0]["also"][0]["url"] in (QUAKE_A["url"], QUAKE_B["url"])
    # Asked as of the first day, the later report is not shown as another report.
    _, early = answerer.respond("How many people did the Ecuador earthquake kill?", as_of=_d(4))
    assert all(r.url != QUAKE_B["url"] for c in early.citations for r in c.also)


def _d(day: int):
    from datetime import date

    return date(2022, 7, day)


def _read_hit(aid: str, title: str, text: str, *, digest: bool = False) -> ArticleHit:
    from index.models import Passage

    hit = ArticleHit(aid, title, f"https://news.test/{aid}", "news.test", "2022-07-25", 0)
    hit.passages = [Passage(f"{aid}#0", text, 0, 0.5)]
    hit.digest = digest
    return hit


def test_digests_take_no_reading_slot_and_the_top_storys_reports_are_read() -> None:
    from index.extract import ARTICLES_READ, REPORTS_READ, reading_order

    roundup = _read_hit("d", "5 things to know for July 25", "Fires, floods.", digest=True)
    lead = _read_hit("a", "Oak Fire grows", "The Oak Fire grew.")
    lead.reports = [_read_hit(f"r{i}", "Oak Fire", "It grew.") for i in range(REPORTS_READ + 2)]
    others = [_read_hit(f"o{i}", f"Other event {i}", "Something else.") for i in range(3)]
    order = reading_order([roundup, lead, *others])
    read = [(rank, hit.article_id) for rank, hit in order]
    # The digest ranked first is read, but does not count as one of the stories read.
    stories = [aid for _, aid in read if not aid.startswith("r") and aid != "d"]
    assert stories == ["a", *[f"o{i}" for i in range(ARTICLES_READ - 1)]]
    assert (read[0][1], read[0][0]) == ("d", 0)
    # The reports of the top slot only: the digest was the top slot and has none.
    assert not any(aid.startswith("r") for _, aid in read)
    order = reading_order([lead, *others])
    reports = [(rank, hit.article_id) for rank, hit in order if hit.article_id.startswith("r")]
    assert reports == [(0, f"r{i}") for i in range(REPORTS_READ)]


def test_a_roundups_sentence_yields_to_the_report_it_summarises_but_still_counts() -> None:
    from index.extract import pick, score_sentences

    question = "Which national park did the wildfire force thousands to flee near?"
    words = "A raging wildfire forced thousands of people to flee near Yosemite National Park."
    roundup = _read_hit("d", "5 things to know for July 25", words, digest=True)
    report = _read_hit(
        "a", "Oak Fire", "The wildfire forced thousands to flee, near Yosemite National Park."
    )
    evidence = score_sentences(question, [roundup, report], {})
    assert pick(evidence)[0].hit is report  # the digest words it better, the report is cited
    alone = score_sentences(question, [roundup], {})
    plain = score_sentences(question, [replace(roundup, digest=False)], {})
    assert alone[0].score < plain[0].score
    # The demotion orders sentences; it is no reason to refuse.
    assert alone[0].confidence == pytest.approx(plain[0].confidence)
