"""``NewsdeskBot``: the Telegram handlers, thin on purpose, and what the commands say.

Updates are handled concurrently across chats; one lock per conversation keeps each chat's
answers in order. Blocking work (retrieval, indexing, file checks) runs in worker threads so
the event loop keeps serving other chats. Who may ask and what is addressed to the bot is in
``bot.telegram_access``; sending in ``bot.telegram_delivery``; uploads and re-indexing in
``bot.telegram_uploads``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from telegram import BotCommand, Message, Update
from telegram.error import Forbidden, TelegramError
from telegram.ext import Application, CommandHandler, ContextTypes, MessageHandler, filters

from bot.telegram_access import (
    Access,
    addressed,
    conversation_id,
    is_private,
    question_in,
)
from bot.telegram_delivery import Target, Typing, answer_question, forbidden, has_llm, reply
from bot.telegram_format import escape, format_timeline, source_line
from bot.telegram_uploads import Indexer, reindex_report
from index.corpus import SUPPORTED_SUFFIXES
from index.models import Citation
from index.settings import Settings

if TYPE_CHECKING:
    from index.engine import NewsChatEngine

# One logger for the whole front end, as before it was split into modules.
log = logging.getLogger("bot.telegram")

SOURCES_SHOWN = 10
FOLLOW_HELP = (
    "/follow TOPIC – alert me to new articles about TOPIC\n/following – what you follow\n"
    "/unfollow N – stop following topic N\n/digest – the main stories since your last digest\n"
    "/digest daily HH:MM – a digest every day; /digest off – stop it"
)

ADMINS_ONLY = "Sorry, admins only: ask an admin to add articles or re-index."
TEXT_PLEASE = "Send me a question as text, please."
SOMETHING_WRONG = "Sorry, something went wrong while handling that. Please try again."
UNKNOWN_COMMAND = "I don't know that command; /help lists what I can do."
FORGOTTEN = "Done: I forgot this conversation. Ask me anything."

COMMANDS = [
    BotCommand("help", "What I know and how to ask"),
    BotCommand("sources", "The newest indexed articles"),
    BotCommand("story", "How the story of source [N] unfolded"),
    BotCommand("reset", "Forget this conversation"),
    BotCommand("status", "Index and answer mode"),
    BotCommand("follow", "Alert me to new articles on a topic"),
    BotCommand("following", "The topics I follow for you"),
    BotCommand("unfollow", "Stop following a topic"),
    BotCommand("digest", "The main stories since your last digest"),
    BotCommand("reindex", "Re-index the corpus and feeds (admins)"),
    BotCommand("start", "Introduction"),
]

Context = ContextTypes.DEFAULT_TYPE
MakeText = Callable[[], Awaitable[str]]


class NewsdeskBot:
    """Handlers and their state: the chat engine, access lists, per-conversation locks."""

    def __init__(self, settings: Settings, engine: NewsChatEngine) -> None:
        self.settings = settings
        self.engine = engine
        self.answerer = engine.answerer  # its store and embedder serve /status and indexing
        self.access = Access(settings)
        self.indexer = Indexer(settings, self.answerer)
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._store: Any = None
        self.after_reindex: Callable[[Any], Awaitable[None]] | None = None  # alerts, at once

    # --- wiring --------------------------------------------------------------------------------
    def register(self, app: Application) -> None:
        new = filters.UpdateType.MESSAGE  # edits of old messages are not new questions
        for name, callback in [
            ("start", self.on_help),
            ("help", self.on_help),
            ("reset", self.on_reset),
            ("sources", self.on_sources),
            ("story", self.on_story),
            ("status", self.on_status),
            ("reindex", self.on_reindex),
        ]:
            app.add_handler(CommandHandler(name, callback, filters=new))
        app.add_handler(MessageHandler(new & filters.COMMAND, self.on_unknown_command))
        app.add_handler(MessageHandler(new & filters.Document.ALL, self.on_document))
        app.add_handler(MessageHandler(new & filters.TEXT, self.on_text))
        app.add_handler(MessageHandler(new & ~filters.StatusUpdate.ALL, self.on_other))
        app.add_error_handler(self.on_error)

    async def post_init(self, app: Application) -> None:
        """At start: publish the command list and say who may use the bot."""
        await app.bot.set_my_commands(COMMANDS)
        access = self.access
        if access.open:
            text = "OPEN to everyone (set NEWSDESK_TELEGRAM_ALLOWED_USERS/_CHATS to restrict)"
        else:
            text = (
                f"restricted to {len(access.allowed_users)} user(s) and "
                f"{len(access.allowed_chats)} chat(s) (plus admins)"
            )
        log.info(
            "Telegram bot @%s started; access %s; %d admin(s); answers: %s",
            app.bot.username,
            text,
            len(access.admins),
            "LLM" if has_llm(self.answerer) else "offline",
        )

    # --- handlers ------------------------------------------------------------------------------
    async def on_text(self, update: Update, context: Context) -> None:
        """A question: any text in private chats, mentions and replies to the bot in groups."""
        message = update.effective_message
        question = question_in(message, context.bot)
        if question is None or not await self.access.admit(update):
            return
        async with self.turn(message):
            chat = self.engine.for_conversation(conversation_id(message))
            await answer_question(chat, context.bot, Target.of(message), question)

    async def on_help(self, update: Update, context: Context) -> None:
        """/start and /help: what the bot knows and how to ask."""
        await self.respond(update, context, lambda: self.help_text(context.bot))

    async def on_reset(self, update: Update, context: Context) -> None:
        """/reset: forget this conversation."""

        async def forget() -> str:
            chat = self.engine.for_conversation(conversation_id(update.effective_message))
            await asyncio.to_thread(chat.reset)
            return FORGOTTEN

        await self.respond(update, context, forget)

    async def on_sources(self, update: Update, context: Context) -> None:
        """/sources: the newest indexed articles."""
        await self.respond(update, context, self.sources_text)

    async def on_story(self, update: Update, context: Context) -> None:
        """/story N: the reports of source [N]'s story, oldest first, with what each added."""
        await self.respond(update, context, lambda: self.story_text(update, context.args or []))

    async def on_status(self, update: Update, context: Context) -> None:
        """/status: index size, dates, answer mode and access."""
        await self.respond(update, context, lambda: self.status_text(update))

    async def on_reindex(self, update: Update, context: Context) -> None:
        """/reindex (admins): bring the index in line with the corpus folder."""

        async def reindex() -> str:
            busy = self.indexer.busy()
            if busy is not None:
                return escape(busy)
            return reindex_report(await self.indexer.reindex())

        await self.respond(update, context, reindex, admins_only=True)
        if self.after_reindex is not None and self.access.is_admin(update):
            await self.after_reindex(context.bot)

    async def on_document(self, update: Update, context: Context) -> None:
        """A file: admins add articles to the corpus this way (indexed in the background)."""
        message = update.effective_message
        if not addressed(message, context.bot) or not await self.access.admit(update):
            return
        async with self.turn(message):
            if not self.access.is_admin(update):
                await reply(message, escape(ADMINS_ONLY))
                return
            await self.indexer.upload(message, context.bot)

    async def on_other(self, update: Update, context: Context) -> None:
        """Stickers, photos, voice...: ask for text."""
        if addressed(update.effective_message, context.bot):
            await self.respond(update, context, escape(TEXT_PLEASE))

    async def on_unknown_command(self, update: Update, context: Context) -> None:
        """An unknown /command in a private chat: point at /help."""
        if is_private(update.effective_message):
            await self.respond(update, context, escape(UNKNOWN_COMMAND))

    async def on_error(self, update: object, context: Context) -> None:
        """Log the failure with its traceback; tell the user, without internals."""
        watch = context.application.bot_data.get("poll_watch")
        polling = update is None and context.job is None  # not an update's, not a job's
        if polling and isinstance(context.error, TelegramError) and watch is not None:
            # Polling trouble (run_polling reports it here): PTB retries by itself; the
            # watch logs one line per episode and gives up on a revoked token.
            watch.on_error(context.error)
            return
        if isinstance(context.error, Forbidden):  # blocked by the user, or out of the group
            chat = update.effective_chat if isinstance(update, Update) else None
            forbidden(chat.id if chat else 0, context.error)
            return
        log.error("error while handling an update", exc_info=context.error)
        if not isinstance(update, Update) or update.effective_chat is None:
            return
        message = update.effective_message
        thread = message.message_thread_id if message and message.is_topic_message else None
        try:
            await context.bot.send_message(
                update.effective_chat.id, SOMETHING_WRONG, message_thread_id=thread
            )
        except Forbidden as exc:
            forbidden(update.effective_chat.id, exc)
        except TelegramError as exc:
            log.warning("could not report the error to the chat: %s", exc)

    # --- the shape every command shares --------------------------------------------------------
    async def respond(
        self, update: Update, context: Context, text: str | MakeText, *, admins_only: bool = False
    ) -> None:
        """Admit the sender; in the conversation's turn, reply with ``text`` or what it makes.

        ``admins_only`` work is refused to others and shows "typing…" while it runs.
        """
        if not await self.access.admit(update):
            return
        message = update.effective_message
        async with self.turn(message):
            if admins_only and not self.access.is_admin(update):
                made = escape(ADMINS_ONLY)
            elif isinstance(text, str):
                made = text
            elif admins_only:
                async with Typing(context.bot, Target.of(message)):
                    made = await text()
            else:
                made = await text()
            await reply(message, made)

    @contextlib.asynccontextmanager
    async def turn(self, message: Message) -> AsyncIterator[None]:
        """One conversation at a time: a chat's messages are answered in the order they came.

        asyncio.Lock wakes waiters first-come first-served, and PTB starts update tasks in
        update order, so the lock (taken before any other await) preserves the order.
        """
        key = conversation_id(message)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            yield

    # --- commands' content ---------------------------------------------------------------------
    def store(self) -> Any:
        """The answerer's store when it has one (shares its Chroma client), else our own."""
        if self._store is None:
            retriever = getattr(self.answerer, "retriever", None)
            store = getattr(retriever, "store", None)
            if store is None:
                from index.store import Store

                store = Store(self.settings)
            self._store = store
        return self._store

    async def help_text(self, bot: Any) -> str:
        stats = await asyncio.to_thread(lambda: self.store().stats())
        n = stats["articles"]
        if n:
            span = f" published {stats['first_published']} to {stats['last_published']}"
            knows = f"I answer questions about {n} indexed news article{'s' * (n != 1)}"
            knows += (span if stats["first_published"] else "") + ", citing them as [1], [2]…"
        else:
            knows = "No articles are indexed yet, so I cannot answer questions for now."
        handle = f"@{bot.username}" if bot.username else "me"
        lines = [
            escape(knows),
            "",
            "Ask in plain words; follow-up questions work too. In groups, mention "
            f"{escape(handle)} or reply to one of my messages.",
            "",
            "/sources – the newest articles\n/story N – how the story of source [N] unfolded\n"
            "/reset – forget this conversation\n"
            "/status – index status\n" + FOLLOW_HELP,
        ]
        if self.access.admins:
            kinds = " ".join(sorted(SUPPORTED_SUFFIXES))
            lines.append(f"Admins: /reindex, or send a file ({escape(kinds)}) to add articles.")
        return "\n".join(lines)

    async def sources_text(self) -> str:
        manifest = await asyncio.to_thread(lambda: self.store().manifest())
        if not manifest:
            return "No articles are indexed yet."
        newest = sorted(
            manifest.items(),
            key=lambda kv: (str(kv[1].get("published") or ""), kv[1].get("indexed_at") or 0),
            reverse=True,
        )[:SOURCES_SHOWN]
        lines = [
            source_line(
                Citation(
                    n=i,
                    title=str(meta.get("title") or ""),
                    source=str(meta.get("source") or ""),
                    published=str(meta.get("published") or ""),
                    url=str(meta.get("url") or ""),
                    quote="",
                    article_id=article_id,
                )
            )
            for i, (article_id, meta) in enumerate(newest, 1)
        ]
        return f"<b>Newest of {len(manifest)} indexed articles</b>\n" + "\n".join(lines)

    async def story_text(self, update: Update, args: list[str]) -> str:
        if not args:
            return "Usage: /story N – the story of source [N] of my last answer."

        def build() -> str:
            from index.timeline import find_story, story_timeline

            last = self.answerer.history.last(conversation_id(update.effective_message))
            cited = (last.citations if last else []) or []
            retriever = self.answerer.retriever
            story = find_story(args[0], retriever.stories, cited)
            if story is None:
                return escape(f"No story {args[0]}: ask a question, then /story N for source [N].")
            return format_timeline(story_timeline(retriever, story))

        return await asyncio.to_thread(build)

    async def status_text(self, update: Update) -> str:
        stats = await asyncio.to_thread(lambda: self.store().stats())
        mode = (
            f"LLM ({self.settings.llm_model})" if has_llm(self.answerer) else "offline (extractive)"
        )
        rows = [
            ("articles", stats["articles"]),
            ("chunks", stats["chunks"]),
            ("published", f"{stats['first_published'] or '?'} to {stats['last_published'] or '?'}"),
            ("last indexed", stats["last_indexed"] or "never"),
            ("answers", mode),
            ("access", "open to everyone" if self.access.open else "allowlist"),
            ("you", "admin" if self.access.is_admin(update) else "user"),
        ]
        return "<b>Status</b>\n" + "\n".join(f"{k}: {escape(str(v))}" for k, v in rows)
