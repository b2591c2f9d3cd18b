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

import logging
import re
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from telegram import Update
from telegram.ext import AIORateLimiter, Application

from bot.telegram_access import NOT_ALLOWED, conversation_id
from bot.telegram_handlers import (
    ADMINS_ONLY,
    COMMANDS,
    SOMETHING_WRONG,
    TEXT_PLEASE,
    UNKNOWN_COMMAND,
    NewsdeskBot,
)
from bot.telegram_uploads import safe_filename
from index.settings import Settings

if TYPE_CHECKING:
    from index.engine import NewsChatEngine

log = logging.getLogger(__name__)

TOKEN_PATTERN = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{20,}$")
SECRET_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # what Telegram accepts as secret_token

RATE_LIMIT_RETRIES = 3  # AIORateLimiter retries a RetryAfter this often before raising


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
    "ADMINS_ONLY",
    "COMMANDS",
    "NOT_ALLOWED",
    "RATE_LIMIT_RETRIES",
    "SOMETHING_WRONG",
    "TEXT_PLEASE",
    "UNKNOWN_COMMAND",
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
