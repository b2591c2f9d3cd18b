"""Timelines: `newsdesk story`, /story in the REPL and Telegram."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from rich.console import Console
from test_story_answer import quake_settings  # noqa: F401  (fixture)
from test_story_index import QUAKE_A, QUAKE_B

from bot.render import print_timeline
from bot.telegram_format import format_timeline
from index.bm25 import Bm25Cache
from index.models import Citation
from index.store import Store
from index.story_store import StoryMap
from index.timeline import build_timeline, find_story


def _timeline(settings, ref: str, **kwargs):
    store = Store(settings)
    stories = StoryMap(store)
    keywords = Bm25Cache(settings, store).get()
    story = find_story(ref, stories)
    assert story is not None
    return build_timeline(
        store, stories, story, idf=keywords.idf(), boilerplate=keywords.boilerplate, **kwargs
    )


def test_reports_oldest_first_each_with_the_sentence_that_added_something(
    quake_settings,  # noqa: F811
) -> None:
    timeline = _timeline(quake_settings, QUAKE_B["url"])
    assert [e.url for e in timeline.entries] == [QUAKE_A["url"], QUAKE_B["url"]]
    assert [e.published for e in timeline.entries] == ["2022-07-04", "2022-07-05"]
    first, update = timeline.entries
    assert first.new.startswith("A magnitude 6.8 earthquake struck")
    assert "rose to 14" in update.new  # what the second report added
    assert timeline.title == QUAKE_A["title"]


def test_as_of_hides_later_reports(quake_settings) -> None:  # noqa: F811
    from datetime import date

    timeline = _timeline(quake_settings, QUAKE_A["url"], as_of=date(2022, 7, 4))
    assert [e.url for e in timeline.entries] == [QUAKE_A["url"]]


def test_find_story_by_source_number_story_id_article_id_or_url(
    quake_settings,  # noqa: F811
) -> None:
    store = Store(quake_settings)
    stories = StoryMap(store)
    by_url = {m["url"]: aid for aid, m in store.manifest().items()}
    story = stories.story_of(by_url[QUAKE_A["url"]])
    cited = [Citation(2, "t", "s", "", QUAKE_B["url"], "q", article_id=by_url[QUAKE_B["url"]])]
    assert find_story("2", stories, cited) == story
    assert find_story("[2]", stories, cited) == story
    assert find_story("3", stories, cited) is None
    assert find_story(story, stories) == story
    assert find_story(by_url[QUAKE_B["url"]], stories) == story
    assert find_story(QUAKE_A["url"] + "?utm_source=x", stories) == story
    assert find_story("nothing-like-this", stories) is None


def test_timeline_text_in_the_terminal_and_telegram(quake_settings) -> None:  # noqa: F811
    timeline = _timeline(quake_settings, QUAKE_A["url"])
    console = Console(record=True, width=300)
    print_timeline(console, timeline)
    text = console.export_text()
    assert (
        f"{QUAKE_A['title']} — story {timeline.story_id}, 2 reports, 2022-07-04 to 2022-07-05"
        in text
    )
    assert f"2022-07-05  news-b.example  {QUAKE_B['title']}" in text
    html = format_timeline(timeline)
    assert f'2022-07-05 · <a href="{QUAKE_B["url"]}">news-b.example</a>: ' in html
    assert "<i>" in html and "rose to 14" in html


def test_story_command(quake_settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # noqa: F811
    from typer.testing import CliRunner

    from bot.cli import app
    from index.settings import get_settings

    for var in list(os.environ):
        if var.startswith(("NEWSDESK_", "OPENAI_", "TELEGRAM_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("NEWSDESK_DATA_DIR", str(quake_settings.data_dir))
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        shown = runner.invoke(app, ["story", QUAKE_B["url"]], env={"COLUMNS": "300"})
        as_json = runner.invoke(app, ["story", QUAKE_A["url"], "--json"])
        missing = runner.invoke(app, ["story", "https://nowhere.example/x"])
        numbered = runner.invoke(app, ["story", "1"])
    finally:
        get_settings.cache_clear()
    assert shown.exit_code == 0, shown.output
    assert "2 reports, 2022-07-04 to 2022-07-05" in shown.stdout
    data = json.loads(as_json.stdout)
    assert [e["url"] for e in data["entries"]] == [QUAKE_A["url"], QUAKE_B["url"]]
    assert missing.exit_code == 1 and "no indexed story matches" in missing.output
    assert numbered.exit_code == 1 and "newsdesk chat" in numbered.output


# question -> is it answered from a story's timeline?
DEVELOPMENT_CASES = [
    ("How did the Ecuador earthquake develop?", True),
    ("How has the strike unfolded since Monday?", True),
    ("What happened next?", True),
    ("Give me a timeline of the Pelosi attack", True),
    ("How many people died in the Ecuador earthquake?", False),
    ("What did the next report say about the toll?", False),
]


@pytest.mark.parametrize(("question", "expected"), DEVELOPMENT_CASES)
def test_development_questions(question: str, expected: bool) -> None:
    from index.timeline import asks_development

    assert asks_development(question) is expected


def test_how_did_it_develop_and_what_happened_next_answer_from_the_timeline(
    quake_settings,  # noqa: F811
    embedder,
) -> None:
    from index.answer import Answerer

    answerer = Answerer(quake_settings, embedder=embedder)
    answer = answerer.ask("How did the Ecuador earthquake develop?", "c1")
    assert answer.mode == "timeline"
    assert [c.url for c in answer.citations] == [QUAKE_A["url"], QUAKE_B["url"]]
    assert answer.text.startswith("2022-07-04: A magnitude 6.8 earthquake struck")
    assert "2022-07-05: " in answer.text and "rose to 14" in answer.text and "[2]" in answer.text

    first = answerer.ask("How many people did the Ecuador earthquake in Manabi kill?", "c2")
    assert not first.refused
    later = answerer.ask("What happened next?", "c2")
    assert later.mode == "timeline"
    assert QUAKE_B["url"] in [c.url for c in later.citations]
    assert all(c.quote not in {f.quote for f in first.citations} for c in later.citations)


def test_repl_story_command(
    quake_settings,  # noqa: F811
    embedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import builtins

    import bot.repl
    from index.engine import build_chat_engine

    lines = [
        "How many people did the Ecuador earthquake in Manabi kill?",
        "/story 1",
        "/story 7",
        "/story",
    ]
    monkeypatch.setattr(builtins, "input", lambda prompt="": lines.pop(0) if lines else _eof())
    monkeypatch.setattr(
        bot.repl,
        "build_chat_engine",
        lambda s, conversation: build_chat_engine(s, conversation, embedder=embedder),
    )
    console = Console(record=True, width=300, highlight=False, soft_wrap=True)
    bot.repl.run(quake_settings, console=console, interactive=False)
    out = console.export_text()
    assert f"{QUAKE_A['title']} — story " in out and "2 reports, 2022-07-04 to 2022-07-05" in out
    assert f"2022-07-05  news-b.example  {QUAKE_B['title']}" in out
    assert "No story 7" in out and "Usage: /story N" in out
    assert not lines


def _eof() -> str:
    raise EOFError
