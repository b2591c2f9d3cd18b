"""Follows in the REPL: /follow, /following, /unfollow, /digest and /reindex, typed into the
real REPL loop; articles come from the local news site's feed."""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Iterator

import pytest
from fakes.news_site import NewsSite
from rich.console import Console
from test_follow import RATES, VOLCANO, VOLCANO_2

import bot.repl
from index.follow import REPL_CHAT, FollowStore
from index.settings import Settings

Line = str | Callable[[], None]  # a typed line, or something that happens between two lines


@pytest.fixture
def site() -> Iterator[NewsSite]:
    with NewsSite() as running:
        yield running


def run_repl(settings: Settings, embedder, monkeypatch, lines: list[Line]) -> list[str]:
    """The REPL's output for ``lines``, cut into one block per typed line."""
    from index.engine import build_chat_engine

    console = Console(record=True, width=300, highlight=False, soft_wrap=True)
    todo = list(lines)

    def typed(prompt: str = "") -> str:
        while todo and callable(todo[0]):
            todo.pop(0)()  # type: ignore[operator]
        if not todo:
            raise EOFError
        line = todo.pop(0)
        console.print(f"» {line}")
        return line  # type: ignore[return-value]

    monkeypatch.setattr(builtins, "input", typed)
    monkeypatch.setattr(
        bot.repl,
        "build_chat_engine",
        lambda s, conversation: build_chat_engine(s, conversation, embedder=embedder),
    )
    bot.repl.run(settings, console=console, interactive=False)
    assert not todo
    return console.export_text().split("» ")[1:]


def test_follow_reindex_alert_unfollow_and_digest(seeded, site, embedder, monkeypatch) -> None:
    settings = seeded.model_copy(
        update={
            "feeds": [site.url + "/feed.xml"],
            "fetch_host_delay": 0.0,
            "alert_min_score": 0.3,
        }
    )
    out = run_repl(
        settings,
        embedder,
        monkeypatch,
        [
            "/following",
            "/follow volcano eruption in Iceland",
            "/follow Volcano eruption in ICELAND",
            "/follow",
            "/following",
            lambda: (site.publish(VOLCANO), site.publish(RATES)),
            "/reindex",
            "/reindex",
            "/unfollow 3",
            "/unfollow 1",
            lambda: site.publish(VOLCANO_2),
            "/reindex",
            "/digest",
            "/digest",
            "/digest daily 08:00",
        ],
    )
    assert "You follow nothing yet" in out[0]
    assert "Following 1. volcano eruption in Iceland" in out[1]
    assert "You already follow" in out[2]
    assert "Say what to follow" in out[3]
    assert out[4].splitlines()[1] == "1. volcano eruption in Iceland"

    reindexed = out[5]
    assert "Re-indexed: added 2 ·" in reindexed
    alerts = [line for line in reindexed.splitlines() if line.startswith("🔔")]
    assert alerts == [f"🔔 New on volcano eruption in Iceland: {VOLCANO.title}"]
    assert f"[1] 127.0.0.1, 2022-06-10  {site.url}/news/volcano" in reindexed
    assert RATES.title not in reindexed  # matched nothing followed
    assert "unchanged" in out[6] and "No new articles on the topics you follow." in out[6]

    assert "There is no topic 3" in out[7]
    assert "Stopped following volcano eruption in Iceland." in out[8]
    assert "added 1 ·" in out[9] and "🔔" not in out[9]  # unfollowed: no alert

    digest = out[10]
    assert "Digest: the main stories since " in digest
    assert VOLCANO_2.title in digest and RATES.title in digest
    # Each item: "N. headline", its sentence ending in [N], then "[N] source, date  link".
    items = re.findall(
        r"^(\d+)\. (.+?)(?: · \d+ reports)?\n   .+ \[(\d+)\]\n   \[(\d+)\] (.+)$", digest, re.M
    )
    assert len(items) == digest.count("\n   [")  # every item has that shape
    assert all(n == a == b for n, _, a, b, _ in items)
    # The eruption's spread three days later is an update of its story: "· 2 reports".
    assert (VOLCANO_2.title, f"127.0.0.1, 2022-06-13  {site.url}/news/volcano-2") in [
        (title.split(" · ")[0], source) for _, title, _, _, source in items
    ]
    assert "No new stories since" in out[11]  # since the last digest
    assert "Daily digests are sent by the Telegram bot" in out[12]

    follows = FollowStore(settings)
    assert follows.follows(REPL_CHAT) == [] and follows.pending(REPL_CHAT) == []
