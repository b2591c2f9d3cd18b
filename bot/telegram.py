"""The Telegram front end: python-telegram-bot v22 on top of ``index.answer.Answerer``.

Private chats: any text is a question. Groups: only messages that mention the bot or reply to
one of its messages. Each chat (and forum thread) is one conversation, so follow-ups work.
Updates are handled concurrently across chats; one lock per conversation keeps each chat's
answers in order. Blocking work (retrieval, indexing, file checks) runs in worker threads so
the event loop keeps serving other chats.

    build_application(settings, answerer=None) -> Application   # what run() and tests use
    run(settings, webhook_url=None, listen=None, port=None)     # `newsdesk telegram`
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import logging
import os
import re
import tempfile
import warnings
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from telegram import (
    BotCommand,
    LinkPreviewOptions,
    Message,
    MessageEntity,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatAction, ChatType, ParseMode
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.telegram_format import (
    MAX_MESSAGE,
    escape,
    format_answer,
    html_to_plain,
    source_line,
    split_message,
)
from index.answer import QuestionError
from index.corpus import SUPPORTED_SUFFIXES, iter_articles
from index.models import Answer, Article, Citation, IndexSummary, LoadError
from index.settings import Settings

log = logging.getLogger(__name__)

TOKEN_PATTERN = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{20,}$")
SECRET_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # what Telegram accepts as secret_token

RATE_LIMIT_RETRIES = 3  # AIORateLimiter retries a RetryAfter this often before raising
FINAL_ATTEMPTS = 5  # then the final answer waits out RetryAfter itself this often
TYPING_EVERY = 4.0  # Telegram shows "typing" for ~5 s; renew a bit before it lapses
EDIT_EVERY_PRIVATE = 1.0  # seconds between streaming edits in a private chat
EDIT_EVERY_GROUP = 3.0  # groups have a 20 messages/minute flood limit
PREVIEW_CHARS = 4000  # a streaming preview longer than this is cut (the final text is split)
SOURCES_SHOWN = 10

NOT_ALLOWED = "Sorry, this bot is private. Ask its owner for access."
ADMINS_ONLY = "Sorry, admins only: ask an admin to add articles or re-index."
TEXT_PLEASE = "Send me a question as text, please."
SOMETHING_WRONG = "Sorry, something went wrong while handling that. Please try again."
UNKNOWN_COMMAND = "I don't know that command; /help lists what I can do."
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)  # a big card for source 1 is just noise

COMMANDS = [
    BotCommand("help", "What I know and how to ask"),
    BotCommand("sources", "The newest indexed articles"),
    BotCommand("reset", "Forget this conversation"),
    BotCommand("status", "Index and answer mode"),
    BotCommand("reindex", "Re-index the corpus (admins)"),
    BotCommand("start", "Introduction"),
]


class TelegramConfigError(RuntimeError):
    """The bot cannot start as configured; the message is one line for the user."""


# --- configuration ---------------------------------------------------------------------------


def check_token(settings: Settings) -> str:
    """The bot token, or a TelegramConfigError that never quotes it."""
    secret = settings.telegram_bot_token
    token = secret.get_secret_value().strip() if secret is not None else ""
    if not token:
        raise TelegramConfigError(
            "TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather and put its token "
            "in TELEGRAM_BOT_TOKEN (environment or .env)"
        )
    if not TOKEN_PATTERN.fullmatch(token):
        raise TelegramConfigError(
            "TELEGRAM_BOT_TOKEN is malformed: expected <bot id>:<secret> "
            "(digits, a colon, then 20+ letters, digits, '_' or '-') as @BotFather gives it"
        )
    return token


def webhook_options(
    settings: Settings,
    webhook_url: str,
    listen: str | None = None,
    port: int | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``run_webhook``/``start_webhook``, validated."""
    parts = urlsplit(webhook_url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise TelegramConfigError(f"--webhook-url must be an https:// URL, not {webhook_url!r}")
    secret = settings.telegram_webhook_secret
    secret_token = secret.get_secret_value() if secret is not None else None
    if secret_token is not None and not SECRET_PATTERN.fullmatch(secret_token):
        raise TelegramConfigError(
            "NEWSDESK_TELEGRAM_WEBHOOK_SECRET must be 1-256 letters, digits, '_' or '-'"
        )
    return {
        "listen": listen or settings.telegram_webhook_listen,
        "port": port or settings.telegram_webhook_port,
        "url_path": parts.path.strip("/"),  # our own path, never the token
        "webhook_url": webhook_url,
        "secret_token": secret_token,
        "drop_pending_updates": settings.telegram_drop_pending_updates,
        "allowed_updates": Update.ALL_TYPES,
    }


# --- logging ---------------------------------------------------------------------------------


class TokenRedactingFilter(logging.Filter):
    """Replaces the bot token (and its secret half) in a record's message and traceback."""

    def __init__(self, token: str) -> None:
        super().__init__()
        secret = token.partition(":")[2]
        self.secrets = [s for s in (token, secret) if len(s) >= 8]

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[REDACTED]")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler to report
            return True
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def install_log_redaction(token: str) -> Callable[[], None]:
    """Keep the token out of every log record; returns a function that undoes it.

    httpx logs each request URL (which contains the token) at INFO, so it is raised to
    WARNING; the filter then covers anything else: it sits on the root handlers and in the
    record factory, so handlers added later (and library loggers) are covered too.
    """
    redactor = TokenRedactingFilter(token)
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(redactor)
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redactor.filter(record)
        return record

    logging.setLogRecordFactory(factory)

    def uninstall() -> None:
        if logging.getLogRecordFactory() is factory:
            logging.setLogRecordFactory(previous)
        for handler in handlers:
            handler.removeFilter(redactor)

    return uninstall


# --- small helpers ---------------------------------------------------------------------------


def conversation_id(message: Message) -> str:
    """One conversation per chat, and per thread in forum supergroups."""
    if message.is_topic_message and message.message_thread_id:
        return f"tg:{message.chat.id}:thread:{message.message_thread_id}"
    return f"tg:{message.chat.id}"


def safe_filename(name: str) -> str:
    """A plain file name for an upload: no folders, no leading dots, no odd characters."""
    base = PurePosixPath(name.replace("\\", "/")).name
    base = re.sub(r"[^\w.-]+", "_", base).strip("._")
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    stem = (stem.strip("._") or "upload")[:100]
    return f"{stem}.{suffix.lower()}" if suffix else stem


def retry_seconds(exc: RetryAfter) -> float:
    # PTB 22 gives an int (deprecated) or a timedelta, depending on PTB_TIMEDELTA.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


def _size(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 1_000_000 else f"{n / 1000:.0f} kB"


def summary_line(s: IndexSummary) -> str:
    return (
        f"added {s.added} · updated {s.updated} · unchanged {s.unchanged} · removed {s.removed}"
        f" · failed {s.failed} · {s.chunks} chunks in {s.seconds:.1f}s"
    )


@dataclass
class _Target:
    """Where replies go: the chat, its forum thread, and the message being answered."""

    chat_id: int
    thread_id: int | None
    reply_to: int | None
    private: bool

    @classmethod
    def of(cls, message: Message) -> _Target:
        return cls(
            chat_id=message.chat.id,
            thread_id=message.message_thread_id if message.is_topic_message else None,
            reply_to=message.message_id,
            private=message.chat.type == ChatType.PRIVATE,
        )


class _Typing:
    """Shows "typing…" from start() until stop(), renewed every few seconds."""

    def __init__(self, bot: Any, target: _Target) -> None:
        self.bot, self.target = bot, target
        self._stopped = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> _Typing:
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            try:
                await self.bot.send_chat_action(
                    self.target.chat_id, ChatAction.TYPING, message_thread_id=self.target.thread_id
                )
            except TelegramError as exc:  # liveness is best effort
                log.debug("typing action failed: %s", exc)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), TYPING_EVERY)
                return

    async def stop(self) -> None:
        """Stop renewing; waits for an action in flight so it cannot land after the text."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopped.set()
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(task, 2.0)


# --- the bot ---------------------------------------------------------------------------------


class NewsdeskBot:
    """Handlers and their state: the answerer, access lists, per-conversation locks."""

    def __init__(self, settings: Settings, answerer: Any) -> None:
        self.settings = settings
        self.answerer = answerer
        self.admins = set(settings.telegram_admins)
        self.allowed_users = set(settings.telegram_allowed_users)
        self.allowed_chats = set(settings.telegram_allowed_chats)
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._index_lock: asyncio.Lock | None = None
        self._refused: set[int] = set()
        self._store: Any = None

    # --- wiring --------------------------------------------------------------------------------
    def register(self, app: Application) -> None:
        new = filters.UpdateType.MESSAGE  # edits of old messages are not new questions
        for name, callback in [
            ("start", self.on_help),
            ("help", self.on_help),
            ("reset", self.on_reset),
            ("sources", self.on_sources),
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
        if self.allowed_users or self.allowed_chats:
            access = (
                f"restricted to {len(self.allowed_users)} user(s) and "
                f"{len(self.allowed_chats)} chat(s) (plus admins)"
            )
        else:
            access = "OPEN to everyone (set NEWSDESK_TELEGRAM_ALLOWED_USERS/_CHATS to restrict)"
        log.info(
            "Telegram bot @%s started; access %s; %d admin(s); answers: %s",
            app.bot.username,
            access,
            len(self.admins),
            "LLM" if getattr(self.answerer, "llm", None) is not None else "offline",
        )

    # --- handlers ------------------------------------------------------------------------------
    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A question: any text in private chats, mentions and replies to the bot in groups."""
        message = update.effective_message
        question = self.question_in(message, context.bot)
        if question is None or not await self.admit(update, context):
            return
        async with self.turn(message):
            await self.answer(message, context.bot, question)

    async def on_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/start and /help: what the bot knows and how to ask."""
        if not await self.admit(update, context):
            return
        async with self.turn(update.effective_message):
            await self.reply(update.effective_message, await self.help_text(context.bot))

    async def on_reset(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/reset: forget this conversation."""
        if not await self.admit(update, context):
            return
        message = update.effective_message
        async with self.turn(message):
            await asyncio.to_thread(self.answerer.reset, conversation_id(message))
            await self.reply(message, "Done: I forgot this conversation. Ask me anything.")

    async def on_sources(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/sources: the newest indexed articles."""
        if not await self.admit(update, context):
            return
        async with self.turn(update.effective_message):
            await self.reply(update.effective_message, await self.sources_text())

    async def on_status(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/status: index size, dates, answer mode and access."""
        if not await self.admit(update, context):
            return
        async with self.turn(update.effective_message):
            await self.reply(update.effective_message, await self.status_text(update))

    async def on_reindex(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/reindex (admins): bring the index in line with the corpus folder."""
        if not await self.admit(update, context):
            return
        message = update.effective_message
        async with self.turn(message):
            if not self.is_admin(update):
                await self.reply(message, escape(ADMINS_ONLY))
                return
            typing = _Typing(context.bot, _Target.of(message)).start()
            try:
                summary = await self.reindex()
            finally:
                await typing.stop()
            await self.reply(message, self.reindex_text(summary))

    async def on_document(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A file: admins add articles to the corpus this way."""
        message = update.effective_message
        if not self.addressed(message, context.bot) or not await self.admit(update, context):
            return
        async with self.turn(message):
            if not self.is_admin(update):
                await self.reply(message, escape(ADMINS_ONLY))
                return
            typing = _Typing(context.bot, _Target.of(message)).start()
            try:
                text = await self.upload(message, context.bot)
            finally:
                await typing.stop()
            await self.reply(message, text)

    async def on_other(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Stickers, photos, voice...: ask for text."""
        message = update.effective_message
        if not self.addressed(message, context.bot) or not await self.admit(update, context):
            return
        async with self.turn(message):
            await self.reply(message, escape(TEXT_PLEASE))

    async def on_unknown_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """An unknown /command in a private chat: point at /help."""
        message = update.effective_message
        if message.chat.type != ChatType.PRIVATE or not await self.admit(update, context):
            return
        async with self.turn(message):
            await self.reply(message, escape(UNKNOWN_COMMAND))

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log the failure with its traceback; tell the user, without internals."""
        if update is None and isinstance(context.error, NetworkError):
            # Polling hiccups (timeouts, 502s): PTB retries by itself; no traceback spam.
            log.warning("Telegram unreachable for a moment: %s", context.error)
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
        except TelegramError as exc:
            log.warning("could not report the error to the chat: %s", exc)

    # --- access and addressing -----------------------------------------------------------------
    def is_admin(self, update: Update) -> bool:
        user = update.effective_user
        return user is not None and user.id in self.admins

    def allowed(self, user_id: int | None, chat_id: int | None) -> bool:
        if not (self.allowed_users or self.allowed_chats):
            return True  # no allowlist: open (the startup log says so)
        return (
            user_id in self.admins or user_id in self.allowed_users or chat_id in self.allowed_chats
        )

    async def admit(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
        """Allowed users pass; anyone else gets one polite refusal, then silence."""
        user, chat = update.effective_user, update.effective_chat
        if user is None or chat is None:
            return False
        if self.allowed(user.id, chat.id):
            return True
        if user.id not in self._refused:
            self._refused.add(user.id)
            log.info("refused user %s in chat %s (not on the allowlist)", user.id, chat.id)
            await self.reply(update.effective_message, escape(NOT_ALLOWED))
        return False

    def addressed(self, message: Message, bot: Any) -> bool:
        """Private chats always; in groups, a reply to the bot or a mention in the caption."""
        if message.chat.type == ChatType.PRIVATE:
            return True
        return self._replies_to_bot(message, bot) or self._mentions(message, bot, caption=True)

    def question_in(self, message: Message, bot: Any) -> str | None:
        """The question in a message, or None when the message is not for the bot."""
        text = message.text or ""
        if message.chat.type == ChatType.PRIVATE:
            return text
        if not (self._mentions(message, bot) or self._replies_to_bot(message, bot)):
            return None
        for entity, value in message.parse_entities([MessageEntity.TEXT_MENTION]).items():
            if entity.user and entity.user.id == bot.id:
                text = text.replace(value, " ", 1)
        if bot.username:
            # "@bot, what ..." / "hey @bot: what ...": the punctuation goes with the mention.
            text = re.sub(rf"(?<!\w)@{re.escape(bot.username)}\b[,:;]?", " ", text, flags=re.I)
        return " ".join(text.split()).strip(" ,:;")

    @staticmethod
    def _replies_to_bot(message: Message, bot: Any) -> bool:
        replied = message.reply_to_message
        return bool(replied and replied.from_user and replied.from_user.id == bot.id)

    @staticmethod
    def _mentions(message: Message, bot: Any, caption: bool = False) -> bool:
        kinds = [MessageEntity.MENTION, MessageEntity.TEXT_MENTION]
        entities = (
            message.parse_caption_entities(kinds) if caption else message.parse_entities(kinds)
        )
        handle = f"@{bot.username}".lower()
        return any(
            (e.type == MessageEntity.MENTION and value.lower() == handle)
            or (e.type == MessageEntity.TEXT_MENTION and e.user is not None and e.user.id == bot.id)
            for e, value in entities.items()
        )

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

    # --- answering -----------------------------------------------------------------------------
    async def answer(self, message: Message, bot: Any, question: str) -> None:
        """Typing, then the answer: streamed by editing one message when an LLM streams."""
        target = _Target.of(message)
        conversation = conversation_id(message)
        typing = _Typing(bot, target).start()
        preview_id: int | None = None
        try:
            if getattr(self.answerer, "llm", None) is not None:
                answer, preview_id = await self._stream(bot, target, question, conversation, typing)
            else:
                answer = await asyncio.to_thread(self.answerer.ask, question, conversation)
        except QuestionError as exc:
            await typing.stop()
            await self.deliver(bot, target, escape(str(exc)))
            return
        finally:
            await typing.stop()
        await self.deliver(bot, target, format_answer(answer), edit_id=preview_id)

    async def _stream(
        self, bot: Any, target: _Target, question: str, conversation: str, typing: _Typing
    ) -> tuple[Answer, int | None]:
        """Consume the answerer's deltas, editing a plain-text preview now and then."""
        loop = asyncio.get_running_loop()
        every = EDIT_EVERY_PRIVATE if target.private else EDIT_EVERY_GROUP
        next_edit = loop.time() + every  # a fast answer needs no preview at all
        text, shown, preview_id = "", "", None
        answer: Answer | None = None
        async for item in self.answerer.astream(question, conversation):
            if isinstance(item, Answer):
                answer = item
                continue
            text += item
            preview = _preview(text)
            if loop.time() < next_edit or not preview or preview == shown:
                continue
            try:
                if preview_id is None:
                    await typing.stop()
                    sent = await bot.send_message(
                        target.chat_id,
                        preview,
                        message_thread_id=target.thread_id,
                        reply_parameters=_reply(target),
                        link_preview_options=NO_PREVIEW,
                    )
                    preview_id = sent.message_id
                else:
                    await bot.edit_message_text(
                        preview, target.chat_id, preview_id, link_preview_options=NO_PREVIEW
                    )
                shown = preview
                next_edit = loop.time() + every
            except RetryAfter as exc:  # the rate limiter gave up: skip previews for a while
                next_edit = loop.time() + retry_seconds(exc)
            except BadRequest as exc:
                if "not modified" not in str(exc).lower():
                    log.warning("streaming edit failed: %s", exc)
                shown = preview
                next_edit = loop.time() + every
            except TelegramError as exc:  # network trouble: the final text is sent anyway
                log.warning("streaming preview failed: %s", exc)
                next_edit = loop.time() + every
        if answer is None:
            raise RuntimeError("the answerer's stream ended without an Answer")
        return answer, preview_id

    async def deliver(
        self, bot: Any, target: _Target, text: str, *, edit_id: int | None = None
    ) -> None:
        """Send HTML ``text`` in as many messages as needed (the first may replace a preview);
        a part Telegram cannot parse is resent as plain text."""
        parts = split_message(text, MAX_MESSAGE) or ["(no answer)"]
        for i, part in enumerate(parts):
            first = i == 0
            try:
                await self._send(
                    bot, target, part, html=True, edit_id=edit_id if first else None, reply=first
                )
            except BadRequest as exc:
                if "can't parse entities" not in str(exc).lower():
                    raise
                log.warning("Telegram could not parse our HTML (%s); sending plain text", exc)
                plain = split_message(html_to_plain(part), MAX_MESSAGE, html_mode=False)
                for j, piece in enumerate(plain):
                    lead = first and j == 0
                    await self._send(
                        bot,
                        target,
                        piece,
                        html=False,
                        edit_id=edit_id if lead else None,
                        reply=lead,
                    )

    async def _send(
        self, bot: Any, target: _Target, text: str, *, html: bool, edit_id: int | None, reply: bool
    ) -> None:
        """One message (or the edit of the preview), waiting out flood limits: the final text
        must arrive even when the rate limiter's own retries are used up."""
        parse_mode = ParseMode.HTML if html else None
        for attempt in range(FINAL_ATTEMPTS):
            try:
                if edit_id is not None:
                    await bot.edit_message_text(
                        text,
                        target.chat_id,
                        edit_id,
                        parse_mode=parse_mode,
                        link_preview_options=NO_PREVIEW,
                    )
                else:
                    await bot.send_message(
                        target.chat_id,
                        text,
                        parse_mode=parse_mode,
                        message_thread_id=target.thread_id,
                        reply_parameters=_reply(target) if reply else None,
                        link_preview_options=NO_PREVIEW,
                    )
                return
            except RetryAfter as exc:
                if attempt == FINAL_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(retry_seconds(exc) + 0.1)
            except BadRequest as exc:
                reason = str(exc).lower()
                if edit_id is not None and "not modified" in reason:
                    return  # the preview already shows exactly this
                if edit_id is not None and ("not found" in reason or "can't be edited" in reason):
                    edit_id = None  # the preview is gone: send a new message instead
                    continue
                raise

    async def reply(self, message: Message, text: str) -> None:
        """A short HTML reply to ``message`` (command output, refusals, upload reports)."""
        await self.deliver(message.get_bot(), _Target.of(message), text)

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
            "/sources – the newest articles\n/reset – forget this conversation\n"
            "/status – index status",
        ]
        if self.admins:
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

    async def status_text(self, update: Update) -> str:
        stats = await asyncio.to_thread(lambda: self.store().stats())
        llm = getattr(self.answerer, "llm", None) is not None
        mode = f"LLM ({self.settings.llm_model})" if llm else "offline (extractive)"
        open_access = not (self.allowed_users or self.allowed_chats)
        rows = [
            ("articles", stats["articles"]),
            ("chunks", stats["chunks"]),
            ("published", f"{stats['first_published'] or '?'} to {stats['last_published'] or '?'}"),
            ("last indexed", stats["last_indexed"] or "never"),
            ("answers", mode),
            ("access", "open to everyone" if open_access else "allowlist"),
            ("you", "admin" if self.is_admin(update) else "user"),
        ]
        return "<b>Status</b>\n" + "\n".join(f"{k}: {escape(str(v))}" for k, v in rows)

    def reindex_text(self, summary: IndexSummary) -> str:
        text = f"<b>Re-indexed the corpus</b>\n{escape(summary_line(summary))}"
        if summary.errors:
            shown = "\n".join(f"• {escape(_short_error(e))}" for e in summary.errors[:5])
            more = len(summary.errors) - 5
            text += f"\n\nProblems:\n{shown}" + (f"\n… and {more} more" if more > 0 else "")
        return text

    # --- indexing ------------------------------------------------------------------------------
    def _indexing(self) -> asyncio.Lock:
        # Created lazily: it must belong to the running event loop.
        if self._index_lock is None:
            self._index_lock = asyncio.Lock()
        return self._index_lock

    async def reindex(self) -> IndexSummary:
        """index_paths on the corpus folder, one run at a time, off the event loop."""
        from index.ingest import index_paths

        retriever = getattr(self.answerer, "retriever", None)
        async with self._indexing():
            summary = await asyncio.to_thread(
                index_paths,
                [self.settings.corpus_dir],
                self.settings,
                store=getattr(retriever, "store", None),
                embedder=getattr(retriever, "embedder", None),
            )
        _refresh_keyword_index(self.answerer)
        return summary

    async def upload(self, message: Message, bot: Any) -> str:
        """Validate an uploaded article file, save it into the corpus, index; say what happened."""
        document = message.document
        name = safe_filename(document.file_name or "upload")
        suffix = Path(name).suffix.lower()
        limit = self.settings.max_upload_bytes
        if suffix not in SUPPORTED_SUFFIXES:
            kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
            return escape(f"Rejected {name}: unsupported file type; send one of {kinds}.")
        if document.file_size and document.file_size > limit:  # checked before downloading
            return escape(
                f"Rejected {name}: {_size(document.file_size)} is over the {_size(limit)} limit."
            )
        tg_file = await bot.get_file(document.file_id)
        data = bytes(await tg_file.download_as_bytearray())
        if len(data) > limit:
            return escape(f"Rejected {name}: {_size(len(data))} is over the {_size(limit)} limit.")
        checked = await asyncio.to_thread(self._check_upload, name, data)
        if isinstance(checked, str):
            return escape(f"Rejected {name}: {checked}")
        async with self._indexing():
            replaced = await asyncio.to_thread(self._save_upload, name, data)
        summary = await self.reindex()
        titles = ", ".join(f"“{a.title}”" for a in checked[:5])
        more = f" and {len(checked) - 5} more" if len(checked) > 5 else ""
        what = "Replaced" if replaced else "Added"
        count = f"{len(checked)} article{'s' * (len(checked) != 1)}"
        text = f"{what} {name} ({count}: {titles}{more}).\nIndex: {summary_line(summary)}"
        if summary.failed:
            text += "\nSome corpus files failed to load; /reindex lists them."
        return escape(text)

    def _check_upload(self, name: str, data: bytes) -> list[Article] | str:
        """The articles in an upload, or why it is rejected: binary, not UTF-8, unparseable."""
        if b"\x00" in data[:8192]:
            return "binary file, not text."
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"not UTF-8 text (bad byte at offset {exc.start})."
        with tempfile.TemporaryDirectory(prefix="newsdesk-upload-") as tmp:
            path = Path(tmp) / name
            path.write_bytes(data)
            items = list(
                iter_articles(
                    path,
                    max_file_bytes=self.settings.max_upload_bytes,
                    max_article_chars=self.settings.max_article_chars,
                )
            )
        errors = [item for item in items if isinstance(item, LoadError)]
        articles = [item for item in items if isinstance(item, Article)]
        if errors:
            shown = "; ".join(_upload_error(e, name) for e in errors[:3])
            more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
            return f"{shown}{more}."
        if not articles:
            return "no articles found in it."
        return articles

    def _save_upload(self, name: str, data: bytes) -> bool:
        """Write into the corpus folder atomically; True when it replaced a file."""
        corpus = self.settings.corpus_dir.resolve()
        corpus.mkdir(parents=True, exist_ok=True)
        target = (corpus / name).resolve()
        if target.parent != corpus:  # safe_filename makes this impossible; belt and braces
            raise ValueError("upload path escapes the corpus folder")
        existed = target.exists()
        partial = corpus / f".{name}.{os.getpid()}.part"  # hidden: the indexer skips it
        partial.write_bytes(data)
        os.replace(partial, target)
        return existed


def _preview(text: str) -> str:
    """The streaming preview: plain text (cannot fail to parse), marked as unfinished."""
    text = text.strip()
    if not text:
        return ""
    if len(text) > PREVIEW_CHARS:
        text = text[:PREVIEW_CHARS].rsplit(" ", 1)[0]
    return text + " …"


def _reply(target: _Target) -> ReplyParameters | None:
    if target.reply_to is None:
        return None
    return ReplyParameters(message_id=target.reply_to, allow_sending_without_reply=True)


def _upload_error(error: LoadError, name: str) -> str:
    record = error.path.partition("#")[2]
    return f"record {record}: {error.reason}" if record else error.reason


def _short_error(error: str) -> str:
    # Paths of the server's corpus folder mean nothing in a chat: keep the file name.
    path, sep, reason = error.partition(": ")
    return f"{Path(path).name}: {reason}" if sep else error


def _refresh_keyword_index(answerer: Any) -> None:
    # Bm25Cache re-reads the store version at most once a second; after our own re-index we
    # know it moved, so make the next question check at once (else it may miss a new upload).
    cache = getattr(getattr(answerer, "retriever", None), "bm25", None)
    if cache is not None:
        cache.invalidate()


# --- building and running --------------------------------------------------------------------


def build_application(settings: Settings, answerer: Any = None) -> Application:
    """The configured PTB Application with newsdesk's handlers (what run() and tests use).

    ``answerer`` defaults to ``Answerer(settings)``; anything with the same ``ask``/
    ``astream``/``reset`` interface works (tests pass stubs).
    """
    token = check_token(settings)
    if answerer is None:
        from index.answer import Answerer

        answerer = Answerer(settings)
    bot = NewsdeskBot(settings, answerer)
    api = settings.telegram_api_url.rstrip("/")
    app = (
        Application.builder()
        .token(token)
        .base_url(f"{api}/bot")
        .base_file_url(f"{api}/file/bot")
        .rate_limiter(AIORateLimiter(max_retries=RATE_LIMIT_RETRIES))
        .concurrent_updates(True)  # many chats at once; NewsdeskBot.turn keeps each in order
        .post_init(bot.post_init)
        .build()
    )
    app.bot_data["newsdesk"] = bot
    bot.register(app)
    return app


def run(
    settings: Settings,
    webhook_url: str | None = None,
    listen: str | None = None,
    port: int | None = None,
) -> None:
    """Run the bot until interrupted: long polling, or a webhook when a URL is given."""
    token = check_token(settings)  # before anything touches the network
    webhook_url = webhook_url or settings.telegram_webhook_url
    options = webhook_options(settings, webhook_url, listen, port) if webhook_url else None
    install_log_redaction(token)
    app = build_application(settings)
    if options is not None:
        if options["secret_token"] is None:
            log.warning("webhook without NEWSDESK_TELEGRAM_WEBHOOK_SECRET: anyone may post updates")
        log.info("webhook mode: listening on %s:%s", options["listen"], options["port"])
        app.run_webhook(**options)
    else:
        log.info("polling mode")
        app.run_polling(
            drop_pending_updates=settings.telegram_drop_pending_updates,
            allowed_updates=Update.ALL_TYPES,
        )


__all__ = [
    "COMMANDS",
    "NewsdeskBot",
    "TelegramConfigError",
    "TokenRedactingFilter",
    "build_application",
    "check_token",
    "conversation_id",
    "install_log_redaction",
    "run",
    "safe_filename",
    "webhook_options",
]
