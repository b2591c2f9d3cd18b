"""Follows, alerts and digests end to end: the real PTB Application polls the fake Bot API,
articles come from the local news site's feed, and the schedule is driven by calling the
jobs' work with a controllable clock (no sleeping for intervals)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from fakes.news_site import NewsSite, SiteArticle
from fakes.telegram_server import FakeTelegram
from test_telegram import TOKEN, bot_settings, replies, run_bot, settle

from bot.telegram_follow import FollowBot, due
from index.answer import Answerer
from index.follow import REPL_CHAT
from index.settings import Settings

USER = 4242
ADMIN = 7

VOLCANO = SiteArticle(
    "volcano",
    "Volcano erupts in Iceland, lava reaches the coast",
    "2022-06-10",
    [
        "A volcano erupted on the Reykjanes peninsula in Iceland on Friday, sending lava "
        "toward the coast and forcing the evacuation of the fishing town of Grindavik.",
        "Scientists said the volcanic eruption could last for weeks. Lava fountains rose "
        "fifty metres into the air and ash clouds closed two airports for a day.",
    ],
)
RATES = SiteArticle(
    "rates",
    "Central bank raises interest rates to fight inflation",
    "2022-06-11",
    [
        "The central bank raised its main interest rate by half a percentage point on "
        "Thursday, the biggest increase in twenty years, to fight rising inflation.",
        "Mortgage rates will rise as a result, economists said, and borrowing for businesses "
        "will become more expensive over the coming months.",
    ],
)
CHESS = SiteArticle(
    "chess",
    "Teenager wins the world chess championship",
    "2022-06-12",
    [
        "A seventeen-year-old chess player won the world chess championship on Sunday after "
        "a tense final game that lasted more than six hours.",
        "The new chess champion said she had trained for the title match since she was ten.",
    ],
)
FOOTBALL = SiteArticle(
    "cup-final",
    "Underdogs win the football cup final on penalties",
    "2022-06-14",
    [
        "The underdogs won the football cup final on penalties on Saturday after a goalless "
        "draw, lifting the trophy for the first time in the club's history.",
        "Their goalkeeper saved two penalties in the shootout in front of 80,000 fans.",
    ],
)
VOLCANO_2 = SiteArticle(
    "volcano-2",
    "Second fissure opens as Iceland volcano eruption spreads",
    "2022-06-13",
    [
        "A second fissure opened near the erupting volcano in Iceland on Monday, and lava "
        "flowed toward a geothermal power plant on the Reykjanes peninsula.",
        "Emergency crews built earth walls to slow the lava from the volcanic eruption.",
    ],
)

# The same report again under another URL, as syndication and updates give it: a
# near-duplicate headline makes it the same story (until stories are indexed).
VOLCANO_COPY = SiteArticle(
    "volcano-copy",
    "Volcano erupts in Iceland as lava reaches the coast",
    "2022-06-10",
    [
        "A volcano erupted in Iceland on Friday and lava reached the coast near the town of "
        "Grindavik, which was evacuated overnight.",
        "The eruption on the Reykjanes peninsula could go on for weeks, scientists said.",
    ],
)


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def site() -> Iterator[NewsSite]:
    with NewsSite() as running:
        yield running


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram(token=TOKEN) as fake:
        yield fake


def follow_settings(seeded: Settings, tg: FakeTelegram, site: NewsSite, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "feeds": [site.url + "/feed.xml"],
        "fetch_host_delay": 0.0,
        "telegram_admins": [ADMIN],
        "alert_min_score": 0.3,
        "timezone": "Europe/Berlin",
    }
    values.update(extra)
    return bot_settings(seeded, tg, **values)


def follower(app: Any) -> FollowBot:
    return app.bot_data["newsdesk_follow"]


async def say(tg: FakeTelegram, app: Any, text: str, user: int = USER) -> None:
    tg.send_text(chat_id=user, user_id=user, text=text)
    await settle(tg, app)


def test_follow_new_article_alert_and_reindex_checks_at_once(tg, site, seeded, embedder) -> None:
    settings = follow_settings(seeded, tg, site)

    async def scenario(app: Any) -> None:
        await say(tg, app, "/follow volcano eruption in Iceland")
        await say(tg, app, "/following")
        texts = tg.texts(USER)
        assert "Following 1. volcano eruption in Iceland" in texts[0]
        assert texts[1].splitlines()[1] == "1. volcano eruption in Iceland"

        site.publish(VOLCANO)
        site.publish(RATES)
        await say(tg, app, "/reindex", user=ADMIN)  # the admin's re-index checks follows too
        assert "added 2" in tg.texts(ADMIN)[-1]
        messages = await replies(tg, USER, 3)
        alert = messages[2]
        assert alert["text"].startswith("🔔 New on volcano eruption in Iceland")
        assert VOLCANO.title in alert["text"]
        assert "Grindavik" in alert["text"] or "eruption" in alert["text"]
        assert "[1] 127.0.0.1, 2022-06-10" in alert["text"]
        links = [e["url"] for e in alert.get("entities", []) if e["type"] == "text_link"]
        assert links == [f"{site.url}/news/volcano"]
        await asyncio.sleep(0.2)
        assert len(tg.messages(USER)) == 3  # the rate rise matched nothing followed

        # One alert per story: a near-duplicate report of it, indexed later, alerts nobody.
        site.publish(VOLCANO_COPY)
        await follower(app).cycle(app.bot, reindex=True)
        await asyncio.sleep(0.2)
        assert len(tg.messages(USER)) == 3

    run_bot(tg, settings, Answerer(settings, embedder=embedder), scenario)


def test_hourly_cap_merges_extra_alerts(tg, site, seeded, embedder) -> None:
    settings = follow_settings(seeded, tg, site, alert_hourly_cap=2)
    clock = Clock(1_700_000_000.0)

    async def scenario(app: Any) -> None:
        bot = follower(app)
        bot.clock = clock
        topics = ["volcano eruption", "interest rates and inflation", "chess championship"]
        for topic in [*topics, "football cup final"]:
            await say(tg, app, f"/follow {topic}")
        for article in (VOLCANO, RATES, CHESS):
            site.publish(article)
        await bot.cycle(app.bot, reindex=True)
        alerts = tg.texts(USER)[4:]
        assert len(alerts) == 2  # the cap: one alert, then the other two merged
        assert alerts[0].startswith("🔔 New on")
        assert alerts[1].startswith("🔔 2 more new articles on your follows")
        assert sum(t in alerts[1] for t in (VOLCANO.title, RATES.title, CHESS.title)) == 2

        site.publish(FOOTBALL)
        clock.now += 600  # ten minutes later: the hour is used up, the alert waits
        await bot.cycle(app.bot, reindex=True)
        assert len(tg.texts(USER)) == 6
        clock.now += 3600  # an hour later it goes out
        await bot.check(app.bot)
        assert len(tg.texts(USER)) == 7 and FOOTBALL.title in tg.texts(USER)[-1]

    run_bot(tg, settings, Answerer(settings, embedder=embedder), scenario)


def test_unfollow_and_403_stop_alerts(tg, site, seeded, embedder) -> None:
    settings = follow_settings(seeded, tg, site)
    other = 5151

    async def scenario(app: Any) -> None:
        bot = follower(app)
        await say(tg, app, "/follow volcano eruption")
        await say(tg, app, "/follow chess championship", user=other)
        await say(tg, app, "/unfollow 1")
        assert tg.texts(USER)[-1] == "Stopped following volcano eruption."
        await say(tg, app, "/unfollow 9")
        assert "no topic 9" in tg.texts(USER)[-1]

        tg.fail_next("sendMessage", status=403)  # the other user blocked the bot
        site.publish(VOLCANO)
        site.publish(CHESS)
        await bot.cycle(app.bot, reindex=True)
        assert len(tg.texts(USER)) == 3  # nothing after /unfollow
        assert len(tg.texts(other)) == 1  # the alert was refused with 403
        assert bot.follows.follows() == []  # ... and the blocked chat's follows are gone
        sends = len(tg.calls_to("sendMessage"))
        site.publish(VOLCANO_2)
        await bot.cycle(app.bot, reindex=True)
        assert len(tg.calls_to("sendMessage")) == sends

    run_bot(tg, settings, Answerer(settings, embedder=embedder), scenario)


def test_alerts_respect_the_allowlist(tg, site, seeded, embedder) -> None:
    settings = follow_settings(seeded, tg, site, telegram_allowed_users=[USER, 999])

    async def scenario(app: Any) -> None:
        bot = follower(app)
        await say(tg, app, "/follow volcano eruption")
        bot.bot.access.allowed_users.discard(USER)  # removed from the allowlist since
        site.publish(VOLCANO)
        await bot.cycle(app.bot, reindex=True)
        assert len(tg.texts(USER)) == 1

    run_bot(tg, settings, Answerer(settings, embedder=embedder), scenario)


def test_digest_on_demand_and_daily_with_a_clock(tg, site, seeded, embedder) -> None:
    settings = follow_settings(seeded, tg, site)
    clock = Clock(time.time())

    async def scenario(app: Any) -> None:
        bot = follower(app)
        bot.clock = clock
        site.publish(VOLCANO)
        site.publish(VOLCANO_COPY)
        site.publish(RATES)
        await bot.cycle(app.bot, reindex=True)
        clock.now = time.time() + 60  # articles are stamped with the wall clock when indexed
        await say(tg, app, "/digest")
        digest = tg.texts(USER)[-1]
        assert digest.startswith("Digest: the main stories since ")
        items = digest.split("\n\n")[1:]
        # The seed articles were indexed today too; the two volcano reports are one story;
        # newest first.
        assert 2 <= len(items) <= settings.digest_items
        ours = [item for item in items if "Volcano erupts" in item or RATES.title in item]
        assert len(ours) == 2 and RATES.title in ours[0]
        assert "2 reports" in ours[1]
        assert all(item.count("[") >= 2 for item in items)  # sentence [n] and [n] source line
        await say(tg, app, "/digest")
        assert tg.texts(USER)[-1].startswith("No new stories since")

        # Daily at 08:30 Berlin; the clock jumps to chosen days (summer time: UTC+2).
        await say(tg, app, "/digest daily 08:30")
        assert tg.texts(USER)[-1] == "Daily digest at 08:30 (Europe/Berlin)."
        sent = len(tg.texts(USER))
        day = datetime(2030, 6, 1, 6, 0, tzinfo=timezone.utc).timestamp()  # 08:00 Berlin
        clock.now = day + 20 * 60  # 08:20: not yet
        await bot.send_due_digests(app.bot)
        assert len(tg.texts(USER)) == sent
        clock.now = day + 31 * 60  # 08:31: due
        await bot.send_due_digests(app.bot)
        assert len(tg.texts(USER)) == sent + 1
        assert tg.texts(USER)[-1].startswith(("Digest:", "No new stories"))
        clock.now = day + 45 * 60  # sent already today
        await bot.send_due_digests(app.bot)
        assert len(tg.texts(USER)) == sent + 1
        clock.now = day + 86_400 + 31 * 60  # the next day
        await bot.send_due_digests(app.bot)
        assert len(tg.texts(USER)) == sent + 2
        await say(tg, app, "/digest off")
        clock.now = day + 2 * 86_400 + 31 * 60
        await bot.send_due_digests(app.bot)
        assert len(tg.texts(USER)) == sent + 3  # the "/digest off" reply, no digest

    run_bot(tg, settings, Answerer(settings, embedder=embedder), scenario)


# (daily time, last sent, now) -> due?  Times are UTC; the zone is UTC here.
DUE = [
    ("07:30", None, "2026-06-01T07:29", False),
    ("07:30", None, "2026-06-01T07:31", True),
    ("07:30", "2026-06-01T07:31", "2026-06-01T07:50", False),
    ("07:30", "2026-05-31T07:31", "2026-06-01T07:35", True),
    ("07:30", None, "2026-06-01T10:00", False),  # long past (bot was down): no late digest
    ("23:59", None, "2026-06-02T00:10", True),  # across midnight
]


@pytest.mark.parametrize(("daily", "last", "now", "expected"), DUE)
def test_due(daily: str, last: str | None, now: str, expected: bool) -> None:
    from zoneinfo import ZoneInfo

    def ts(text: str) -> float:
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()

    assert due(daily, ts(last) if last else None, ts(now), ZoneInfo("UTC")) is expected


def test_the_bot_schedules_the_watch_cycle_and_digests(tg, site, seeded, embedder) -> None:
    settings = follow_settings(seeded, tg, site, watch_interval=600)

    async def scenario(app: Any) -> None:
        jobs = {job.name: job for job in app.job_queue.jobs()}
        assert set(jobs) == {"on_cycle_job", "on_digest_job"}
        cycle = jobs["on_cycle_job"].job.trigger.interval.total_seconds()
        assert cycle == 600 and jobs["on_digest_job"].job.trigger.interval.total_seconds() == 60

    run_bot(tg, settings, Answerer(settings, embedder=embedder), scenario)


def test_the_bot_leaves_the_repl_chats_alerts_to_the_repl(tg, site, seeded, embedder) -> None:
    settings = follow_settings(seeded, tg, site)

    async def scenario(app: Any) -> None:
        bot = follower(app)
        bot.follows.add(REPL_CHAT, 0, "volcano eruption in Iceland")  # typed in the REPL
        await say(tg, app, "/follow volcano eruption in Iceland")
        site.publish(VOLCANO)
        await bot.cycle(app.bot, reindex=True)
        assert tg.texts(USER)[-1].startswith("🔔 New on volcano eruption in Iceland")
        sent_to = {call["chat_id"] for call in tg.calls_to("sendMessage")}
        assert sent_to == {USER}
        [waiting] = bot.follows.pending()  # for the REPL to print after its next /reindex
        assert waiting.chat == REPL_CHAT and waiting.title == VOLCANO.title

    run_bot(tg, settings, Answerer(settings, embedder=embedder), scenario)
