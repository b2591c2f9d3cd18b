"""The Telegram front end: python-telegram-bot v22 on top of newsdesk's chat engine.

Private chats: any text is a question. Groups: only messages that mention the bot or reply to
one of its messages. Each chat (and forum thread) is one conversation, so follow-ups work.
Updates are handled concurrently across chats; one lock per conversation keeps each chat's
answers in order. Blocking work (retrieval, indexing, file checks) runs in worker threads so
the event loop keeps serving other chats.

    build_application(settings, engine=None) -> Application     # what run() and tests use
    run(settings, webhook_url=None, listen=None, port=None)     # `newsdesk telegram`

This module builds and runs the Application and checks its configuration; the rest is in
    bot.telegram_handlers   NewsdeskBot: the handlers and what the commands say
    bot.telegram_access     who may ask, which messages are for the bot, conversations
    bot.telegram_delivery   typing, streamed previews, the final answer (flood limits, splits)
    bot.telegram_uploads    /reindex and admin uploads: checking, saving, indexing
    bot.telegram_format     Telegram HTML for answers, and splitting long messages
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from telegram import Bot, Update
from telegram.error import InvalidToken, TelegramError, TimedOut
from telegram.ext import AIORateLimiter, Application
from telegram.request import HTTPXRequest

from bot.telegram_access import NOT_ALLOWED, conversation_id
from bot.telegram_follow import FollowBot
from bot.telegram_handlers import (
    ADMINS_ONLY,
    COMMANDS,
    SOMETHING_WRONG,
    TEXT_PLEASE,
    UNKNOWN_COMMAND,
    NewsdeskBot,
)
from bot.telegram_runtime import PollWatch, Stopper, check_webhook_bodies
from bot.telegram_uploads import safe_filename
from index.errors import NewsdeskError
from index.redact import Redactor, install_redaction, redact_url
from index.settings import Settings

if TYPE_CHECKING:
    from index.engine import NewsChatEngine

log = logging.getLogger(__name__)

TOKEN_PATTERN = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{20,}$")
SECRET_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # what Telegram accepts as secret_token

RATE_LIMIT_RETRIES = 3  # AIORateLimiter retries a RetryAfter this often before raising
STARTUP_TIMEOUT = 10.0  # seconds the start-up getMe may take before the Bot API counts as down


class TelegramConfigError(RuntimeError):
    """The bot cannot start as configured; the message is one line for the user."""


class TelegramUnavailable(NewsdeskError):
    """The Bot API cannot be reached, or stopped accepting the bot; one line for the user."""


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
    # Without a configured secret anyone who finds the URL could post fake updates: make
    # one up for this run (Telegram gets it with setWebhook, so nothing else changes).
    secret_token = secret.get_secret_value() if secret is not None else secrets.token_urlsafe(32)
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


class TokenRedactingFilter(Redactor):
    """A Redactor for the bot token and its secret half."""

    def __init__(self, token: str) -> None:
        super().__init__([token, token.partition(":")[2]])


def install_log_redaction(token: str, *more: str | None) -> Callable[[], None]:
    """Keep the token (and ``more`` secrets) out of every log record and uncaught error;
    returns a function that undoes it."""
    redactor, uninstall = install_redaction([token, token.partition(":")[2]])
    redactor.add(*more)
    return uninstall


# --- starting ----------------------------------------------------------------------------------


def check_bot_api(settings: Settings, token: str) -> str:
    """One getMe before anything else loads; returns the bot's username.

    A rejected token, an unreachable server or one that never answers becomes one line
    (TelegramConfigError or TelegramUnavailable) that names the URL but never the token;
    PTB's own report of a rejected token quotes it.
    """
    api = settings.telegram_api_url.rstrip("/")
    shown = redact_url(api)
    request = HTTPXRequest(connect_timeout=STARTUP_TIMEOUT, read_timeout=STARTUP_TIMEOUT)

    async def probe() -> str:
        async with Bot(token, base_url=f"{api}/bot", request=request) as bot:
            return bot.username

    try:
        return asyncio.run(probe())
    except InvalidToken as exc:
        reason = str(exc.__cause__ or "rejected")
        raise TelegramConfigError(
            f"the Telegram Bot API at {shown} rejected TELEGRAM_BOT_TOKEN ({_redact(reason, token)}):"
            " check the token @BotFather gave you, or NEWSDESK_TELEGRAM_API_URL"
        ) from None
    except TelegramError as exc:
        raise TelegramUnavailable(
            f"cannot reach the Telegram Bot API at {shown}: {_reason(exc, token)}"
        ) from None


def _reason(exc: BaseException, token: str) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, TimedOut):
        text = f"no answer within {STARTUP_TIMEOUT:.0f} s"
    return _redact(" ".join(text.split()), token)


def _redact(text: str, token: str) -> str:
    return TokenRedactingFilter(token).redact(text)


# --- building and running --------------------------------------------------------------------


def build_application(settings: Settings, engine: NewsChatEngine | None = None) -> Application:
    """The configured PTB Application with newsdesk's handlers (what run() and tests use).

    ``engine`` defaults to ``build_chat_engine(settings)``; each chat gets its own
    conversation of it (``engine.for_conversation``).
    """
    token = check_token(settings)
    if engine is None:
        from index.engine import build_chat_engine

        engine = build_chat_engine(settings)
    bot = NewsdeskBot(settings, engine)
    api = settings.telegram_api_url.rstrip("/")
    watch = PollWatch()
    check_webhook_bodies()
    app = (
        Application.builder()
        .token(token)
        .base_url(f"{api}/bot")
        .base_file_url(f"{api}/file/bot")
        .get_updates_request(watch)
        .rate_limiter(AIORateLimiter(max_retries=RATE_LIMIT_RETRIES))
        .concurrent_updates(True)  # many chats at once; NewsdeskBot.turn keeps each in order
        .post_init(bot.post_init)
        .build()
    )
    watch.app = app
    app.bot_data["newsdesk"] = bot
    app.bot_data["poll_watch"] = watch
    follow = FollowBot(settings, bot)
    app.bot_data["newsdesk_follow"] = follow
    follow.register(app)  # before bot.register: its catch-all for unknown commands comes last
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
    install_log_redaction(token, options["secret_token"] if options else None)
    check_bot_api(settings, token)  # before the index loads: a bad token fails in seconds
    app = build_application(settings)
    watch: PollWatch = app.bot_data["poll_watch"]
    bot: NewsdeskBot = app.bot_data["newsdesk"]
    stopper = Stopper(app, on_stop=bot.indexer.cancel)
    post_init = app.post_init

    async def start(app: Application) -> None:
        stopper.install()  # our handlers, not PTB's: a stop must end within STOP_GRACE
        if post_init is not None:
            await post_init(app)

    app.post_init = start
    try:
        if options is not None:
            log.info("webhook mode: listening on %s:%s", options["listen"], options["port"])
            app.run_webhook(**options, stop_signals=None)
        else:
            log.info("polling mode")
            app.run_polling(
                drop_pending_updates=settings.telegram_drop_pending_updates,
                allowed_updates=Update.ALL_TYPES,
                stop_signals=None,
            )
    except InvalidToken:
        raise TelegramConfigError(
            f"the Telegram Bot API at {redact_url(settings.telegram_api_url)} rejected "
            "TELEGRAM_BOT_TOKEN: check the token @BotFather gave you"
        ) from None
    except TelegramError as exc:
        raise TelegramUnavailable(
            f"cannot reach the Telegram Bot API at {redact_url(settings.telegram_api_url)}: "
            f"{_reason(exc, token)}"
        ) from None
    if watch.fatal is not None:
        raise TelegramUnavailable(watch.fatal)


__all__ = [
    "ADMINS_ONLY",
    "COMMANDS",
    "NOT_ALLOWED",
    "RATE_LIMIT_RETRIES",
    "SOMETHING_WRONG",
    "TEXT_PLEASE",
    "UNKNOWN_COMMAND",
    "NewsdeskBot",
    "TelegramConfigError",
    "TelegramUnavailable",
    "TokenRedactingFilter",
    "build_application",
    "check_bot_api",
    "check_token",
    "conversation_id",
    "install_log_redaction",
    "run",
    "safe_filename",
    "webhook_options",
]
