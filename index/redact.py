"""Keeping secrets out of everything newsdesk prints: logs, errors, status, notes.

The secrets are the configured ones (bot token and its secret half, OpenAI key, webhook
secret) plus the userinfo of any URL (``http://admin:pass@host`` shows as
``http://[REDACTED]@host``). The entry point installs ``install_redaction`` once; it covers
every log record, including tracebacks, and uncaught exceptions in any thread.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from index.settings import Settings

REDACTED = "[REDACTED]"
# scheme://userinfo@ : the userinfo (user, or user:password, or a token) is dropped whole.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]+@")
_MIN_SECRET = 8  # shorter strings would redact ordinary words


def redact_url(url: str | None) -> str | None:
    """``url`` without the credentials in its userinfo part."""
    return None if url is None else _USERINFO.sub(rf"\1{REDACTED}@", url)


def secrets_of(settings: Settings) -> list[str]:
    """The configured secrets, as they could appear in text."""
    found = []
    for field in (settings.telegram_bot_token, settings.openai_api_key):
        if field is not None:
            found.append(field.get_secret_value().strip())
    if settings.telegram_bot_token is not None:
        found.append(settings.telegram_bot_token.get_secret_value().strip().partition(":")[2])
    if settings.telegram_webhook_secret is not None:
        found.append(settings.telegram_webhook_secret.get_secret_value())
    return found


class Redactor(logging.Filter):
    """Replaces secrets (and URL userinfo) in text; as a logging filter, in a record's
    message, traceback and stack."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: list[str] = []
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        for secret in secrets:
            if secret and len(secret) >= _MIN_SECRET and secret not in self.secrets:
                self.secrets.append(secret)
        self.secrets.sort(key=len, reverse=True)  # a token before its own secret half

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return _USERINFO.sub(rf"\1{REDACTED}@", text)

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


def install_redaction(secrets: Iterable[str] = ()) -> tuple[Redactor, Callable[[], None]]:
    """Redact ``secrets`` from every log record and every uncaught exception report.

    The filter sits on the root handlers and in the record factory, so handlers added later
    (and library loggers) are covered; httpx logs request URLs (which hold the bot token) at
    INFO, so it is raised to WARNING as well. Returns the redactor (``add`` more secrets as
    they are made, e.g. a generated webhook secret) and a function that undoes it all.
    """
    redactor = Redactor(secrets)
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(redactor)
    previous_factory = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous_factory(*args, **kwargs)
        redactor.filter(record)
        return record

    logging.setLogRecordFactory(factory)
    previous_hook, previous_thread_hook = sys.excepthook, threading.excepthook

    def excepthook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        text = "".join(traceback.format_exception(kind, exc, tb))
        sys.stderr.write(redactor.redact(text))

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "?"
        text = "".join(
            traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)
        )
        sys.stderr.write(redactor.redact(f"Exception in thread {name}:\n{text}"))

    sys.excepthook, threading.excepthook = excepthook, thread_hook

    def uninstall() -> None:
        if logging.getLogRecordFactory() is factory:
            logging.setLogRecordFactory(previous_factory)
        for handler in handlers:
            handler.removeFilter(redactor)
        if sys.excepthook is excepthook:
            sys.excepthook = previous_hook
        if threading.excepthook is thread_hook:
            threading.excepthook = previous_thread_hook

    return redactor, uninstall
