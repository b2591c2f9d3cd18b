"""Following topics and digests in Telegram: /follow, /following, /unfollow, /digest, and the
schedule that re-indexes, sends alerts and daily digests (PTB's JobQueue).

Every cycle (NEWSDESK_WATCH_INTERVAL) re-indexes the corpus folder and the feeds (unless
another indexer holds the lease: then it only checks), queues alerts for new articles that
match follows, and sends what is queued. A minute ticker sends daily digests that are due.
Both take the time from ``clock`` so tests drive them with a controllable clock.

Sending respects the allowlists (a follower no longer allowed gets nothing), a per-chat cap
of alert messages per hour (when more are due, the last allowed message merges the rest),
and stops for good when Telegram says the bot was blocked or removed (403).
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from telegram import LinkPreviewOptions, Message, Update
from telegram.constants import ParseMode
from telegram.error import Forbidden, TelegramError
from telegram.ext import Application, CommandHandler, ContextTypes, filters

from bot.telegram_format import escape
from index.alerts import FollowMatcher, check_follows
from index.digest import DigestItem, chat_digest
from index.follow import REPL_CHAT, Alert, Chat, FollowError, FollowStore
from index.settings import Settings

log = logging.getLogger("bot.telegram")

Context = ContextTypes.DEFAULT_TYPE
HOUR = 3600
# Daily digests: one ticker reads the due times from SQLite every minute rather than one
# run_daily job per chat, so the file stays the only schedule (no jobs to rebuild at start
# or to replace on each /digest daily), and a digest whose time passed while the bot was
# restarting still goes out within the hour (``due``), where a run_daily job would skip it.
DIGEST_TICK = 60  # seconds between checks for due daily digests
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def chat_of(message: Message) -> Chat:
    thread = message.message_thread_id if message.is_topic_message else None
    return Chat(message.chat_id, thread or 0)


class FollowBot:
    """Follow and digest commands plus the schedule, beside ``NewsdeskBot``."""

    def __init__(self, settings: Settings, bot: Any, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.bot = bot  # NewsdeskBot: access, turn order, replies, the indexer and answerer
        self.clock = clock
        self.follows = FollowStore(settings)
        self.zone = ZoneInfo(settings.timezone)
        self._matcher: FollowMatcher | None = None
        self._cycle_lock: asyncio.Lock | None = None

    # --- wiring --------------------------------------------------------------------------------
    def register(self, app: Application) -> None:
        new = filters.UpdateType.MESSAGE
        for name, callback in [
            ("follow", self.on_follow),
            ("following", self.on_following),
            ("unfollow", self.on_unfollow),
            ("digest", self.on_digest),
        ]:
            app.add_handler(CommandHandler(name, callback, filters=new))
        if app.job_queue is not None:
            interval = self.settings.watch_interval
            app.job_queue.run_repeating(self.on_cycle_job, interval=interval, first=interval)
            app.job_queue.run_repeating(self.on_digest_job, interval=DIGEST_TICK, first=DIGEST_TICK)
        self.bot.after_reindex = self.after_reindex

    # --- commands ------------------------------------------------------------------------------
    async def on_follow(self, update: Update, context: Context) -> None:
        """/follow TOPIC: alert this chat to new articles about TOPIC."""
        message = update.effective_message
        topic = " ".join(context.args or [])

        async def follow() -> str:
            try:
                made = await asyncio.to_thread(
                    self.follows.add, chat_of(message), update.effective_user.id, topic
                )
            except FollowError as exc:
                return escape(str(exc))
            n = len(self.follows.follows(chat_of(message)))
            return (
                f"Following {n}. <b>{escape(made.topic)}</b>: I will tell you when new articles "
                "about it are indexed. /following lists your topics."
            )

        await self.bot.respond(update, context, follow)

    async def on_following(self, update: Update, context: Context) -> None:
        """/following: the topics this chat follows, numbered for /unfollow."""
        chat = chat_of(update.effective_message)

        async def listing() -> str:
            follows = await asyncio.to_thread(self.follows.follows, chat)
            if not follows:
                return "You follow nothing yet. Try /follow Artemis moon rocket launch"
            lines = [f"{n}. {escape(f.topic)}" for n, f in enumerate(follows, 1)]
            return "<b>You follow</b>\n" + "\n".join(lines) + "\n\n/unfollow N stops one."

        await self.bot.respond(update, context, listing)

    async def on_unfollow(self, update: Update, context: Context) -> None:
        """/unfollow N: stop following topic N of /following."""
        chat = chat_of(update.effective_message)
        arg = (context.args or [""])[0]

        async def unfollow() -> str:
            if not arg.isdigit():
                return "Say which: /unfollow N, with N from /following."
            removed = await asyncio.to_thread(self.follows.remove, chat, int(arg))
            if removed is None:
                return f"There is no topic {escape(arg)}; /following lists them."
            return f"Stopped following <b>{escape(removed.topic)}</b>."

        await self.bot.respond(update, context, unfollow)

    async def on_digest(self, update: Update, context: Context) -> None:
        """/digest [daily HH:MM | off]: the main stories now, or a daily digest."""
        message = update.effective_message
        chat, user = chat_of(message), update.effective_user.id
        args = [a.lower() for a in context.args or []]

        async def digest() -> str:
            if args == ["off"]:
                await asyncio.to_thread(self.follows.set_daily, chat, user, None)
                return "Daily digest off."
            if len(args) == 2 and args[0] == "daily" and _HHMM.match(args[1]):
                hh, mm = (int(x) for x in args[1].split(":"))
                daily = f"{hh:02d}:{mm:02d}"
                await asyncio.to_thread(self.follows.set_daily, chat, user, daily)
                return f"Daily digest at {daily} ({escape(self.settings.timezone)})."
            if args:
                return "Use /digest, /digest daily HH:MM (e.g. 07:30) or /digest off."
            return await self.digest_text(chat, user)

        await self.bot.respond(update, context, digest)

    # --- the schedule -------------------------------------------------------------------------
    async def on_cycle_job(self, context: Context) -> None:
        """JobQueue: re-index the corpus folder and the feeds, then alert followers."""
        await self.cycle(context.bot, reindex=True)

    async def on_digest_job(self, context: Context) -> None:
        """JobQueue: send the daily digests that are due."""
        await self.send_due_digests(context.bot)

    async def after_reindex(self, bot: Any) -> None:
        """After an admin's /reindex: check the follows at once."""
        await self.cycle(bot, reindex=False)

    async def cycle(self, bot: Any, *, reindex: bool) -> None:
        if self._cycle_lock is None:
            self._cycle_lock = asyncio.Lock()
        async with self._cycle_lock:
            if reindex:
                summary = await self.bot.indexer.reindex()
                if summary.errors:
                    log.warning(
                        "re-index: %d problem(s), first: %s", len(summary.errors), summary.errors[0]
                    )
            await self.check(bot)

    async def check(self, bot: Any) -> None:
        """Queue alerts for new articles, then send what the hourly caps allow."""
        store = self.bot.store()
        matcher = self.matcher()
        if self.follows.follows():
            manifest = await asyncio.to_thread(store.manifest)
            report = await asyncio.to_thread(check_follows, self.follows, matcher, manifest)
            if report.new_articles:
                log.info(
                    "follows: %d new article(s), %d topic(s), %d alert(s) queued in %.2f s",
                    report.new_articles, report.topics, report.queued, report.seconds,
                )  # fmt: skip
        await self.send_alerts(bot)

    def matcher(self) -> FollowMatcher:
        if self._matcher is None:
            retriever = getattr(self.bot.answerer, "retriever", None)
            if retriever is None:
                from index.retrieve import Retriever

                retriever = Retriever(self.settings, store=self.bot.store())
            self._matcher = FollowMatcher(self.settings, retriever)
        return self._matcher

    async def send_alerts(self, bot: Any) -> None:
        by_chat: dict[Chat, list[Alert]] = {}
        for alert in await asyncio.to_thread(self.follows.pending):
            if alert.chat != REPL_CHAT:  # the REPL prints its own alerts
                by_chat.setdefault(alert.chat, []).append(alert)
        for chat, alerts in by_chat.items():
            if not self.bot.access.allowed(alerts[0].user_id, chat.chat_id):
                continue  # off the allowlist now: nothing is sent (the follows stay)
            now = self.clock()
            used = self.follows.messages_since(chat, now - HOUR)
            slots = self.settings.alert_hourly_cap - used
            if slots <= 0:
                continue  # they wait until the hour has room, then go out merged
            singles = alerts if len(alerts) <= slots else alerts[: slots - 1]
            messages = [([a], alert_text(a)) for a in singles]
            if len(alerts) > len(singles):
                rest = alerts[len(singles) :]
                messages.append((rest, merged_text(rest)))
            for i, (batch, text) in enumerate(messages):
                if not await self._send(bot, chat, text):
                    break
                self.follows.mark_sent([a.id for a in batch], now + i * 1e-3)

    async def _send(self, bot: Any, chat: Chat, text: str) -> bool:
        """One message; False (and the chat forgotten on 403) when it cannot be sent."""
        try:
            await bot.send_message(
                chat.chat_id,
                text,
                parse_mode=ParseMode.HTML,
                message_thread_id=chat.thread_id or None,
                link_preview_options=NO_PREVIEW,
            )
            return True
        except Forbidden as exc:
            log.info("chat %s blocked the bot (%s): its follows and digests end", chat.chat_id, exc)
            await asyncio.to_thread(self.follows.forget_chat, chat.chat_id)
        except TelegramError as exc:
            log.warning("could not send to chat %s: %s (will retry)", chat.chat_id, exc)
        return False

    # --- digests ------------------------------------------------------------------------------
    async def digest_text(self, chat: Chat, user_id: int) -> str:
        """The digest since the chat's last one (or 24 h), and remember that it was sent."""
        items, since = await asyncio.to_thread(
            chat_digest, self.follows, self.bot.store(), chat, user_id, self.clock(),
            self.settings.digest_items,
        )  # fmt: skip
        return digest_text(items, since, self.zone)

    async def send_due_digests(self, bot: Any) -> None:
        now = self.clock()
        for plan in await asyncio.to_thread(self.follows.daily_plans):
            if not self.bot.access.allowed(plan.user_id, plan.chat.chat_id):
                continue
            if plan.daily and due(plan.daily, plan.last, now, self.zone):
                text = await self.digest_text(plan.chat, plan.user_id)
                if not await self._send(bot, plan.chat, text):
                    continue


def due(daily: str, last: float | None, now: float, zone: ZoneInfo) -> bool:
    """Today's HH:MM (in ``zone``) has passed and no digest was sent since then."""
    hh, mm = (int(x) for x in daily.split(":"))
    local = datetime.fromtimestamp(now, zone)
    slot = local.replace(hour=hh, minute=mm, second=0, microsecond=0)
    if slot > local:
        slot -= timedelta(days=1)
    if (local - slot) > timedelta(hours=1):
        return False  # long past (the bot was down): wait for the next slot, no late digest
    return last is None or last < slot.timestamp()


# --- message texts ----------------------------------------------------------------------------


def _link(title: str, url: str) -> str:
    text = escape(title or "(untitled)")
    if url.startswith(("http://", "https://")):
        return f'<a href="{html.escape(url, quote=True)}">{text}</a>'
    return text


def alert_text(alert: Alert) -> str:
    """Headline (linked), one sentence with its [1], then [1] source, date."""
    details = ", ".join(escape(p) for p in (alert.source, alert.published) if p)
    sentence = escape(alert.sentence) + " [1]" if alert.sentence else ""
    return "\n".join(
        part
        for part in (
            f"🔔 New on <b>{escape(alert.topic)}</b>",
            _link(alert.title, alert.url),
            sentence,
            f"[1] {details}" if details else "",
        )
        if part
    )


def merged_text(alerts: list[Alert]) -> str:
    lines = [
        f"{n}. {_link(a.title, a.url)} — "
        + ", ".join(escape(p) for p in (a.source, a.published) if p)
        + f" (<i>{escape(a.topic)}</i>)"
        for n, a in enumerate(alerts, 1)
    ]
    return f"🔔 <b>{len(alerts)} more new articles on your follows</b>\n" + "\n".join(lines)


def digest_text(items: list[DigestItem], since: float, zone: ZoneInfo) -> str:
    start = datetime.fromtimestamp(since, zone).strftime("%Y-%m-%d %H:%M")
    if not items:
        return f"No new stories since {start}."
    lines = [f"<b>Digest: the main stories since {start}</b>"]
    for n, item in enumerate(items, 1):
        details = ", ".join(escape(p) for p in (item.source, item.published) if p)
        reports = f" · {item.reports} reports" if item.reports > 1 else ""
        lines.append(
            f"{n}. {_link(item.title, item.url)}\n{escape(item.sentence)} [{n}]\n"
            f"[{n}] {details}{reports}"
        )
    return "\n\n".join(lines)
