"""Keeping a running bot honest: polling that cannot fail silently, and a bounded stop.

``PollWatch`` is the getUpdates connection (a PTB ``HTTPXRequest``) plus the polling error
callback. PTB ends its polling loop for good on one 401/404 ("Invalid token. Aborting retry
loop.") while the process stays alive and deaf; so a rejection reaches PTB as a retryable
502, and after ``POLL_REJECTIONS`` in a row the watch stops the application with a reason
that ``run`` turns into one line and a non-zero exit. A 409 (another process polling with the
token, or a webhook set) is one warning per episode instead of a traceback per poll.

``Stopper`` handles SIGINT/SIGTERM: it cancels background indexing, asks the application to
stop, and if that has not ended the process within ``STOP_GRACE`` seconds (an answer or an
index run in a worker thread cannot be interrupted), exits anyway: every store newsdesk
writes survives ``kill -9`` by design, so nothing is lost that a re-run does not redo.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from telegram.error import Conflict, NetworkError, TelegramError, TimedOut
from telegram.ext import Application
from telegram.request import HTTPXRequest

log = logging.getLogger("bot.telegram")

POLL_REJECTIONS = 3  # getUpdates rejected (401/404) this many times in a row: the token is gone
STOP_GRACE = 5.0  # seconds between a stop signal and exiting regardless


class PollWatch(HTTPXRequest):
    """The connection that polls getUpdates, and what its failures mean."""

    def __init__(self) -> None:
        super().__init__(connection_pool_size=1)
        self.app: Application | None = None
        self.rejections = 0
        self.fatal: str | None = None  # why polling was given up, for run() to report
        self._conflict_logged = False
        self._trouble_logged = False

    async def do_request(
        self, url: str, method: str, *args: Any, **kwargs: Any
    ) -> tuple[int, bytes]:
        if self.fatal is not None:
            # Shutting down after the token was rejected: PTB's last getUpdates (which only
            # confirms fetched updates) would fail the same way and log a traceback.
            return HTTPStatus.OK, b'{"ok": true, "result": []}'
        code, payload = await super().do_request(url, method, *args, **kwargs)
        if code in (HTTPStatus.UNAUTHORIZED, HTTPStatus.NOT_FOUND):
            self.rejections += 1
            if self.rejections >= POLL_REJECTIONS:
                self.give_up(
                    f"Telegram rejected the bot token while polling ({code} "
                    f"{HTTPStatus(code).phrase}, {self.rejections} times in a row): the token "
                    "was revoked or changed; get the current one from @BotFather"
                )
            # Retryable for PTB's polling loop: the next poll either recovers or counts.
            return HTTPStatus.BAD_GATEWAY, payload
        self.rejections = 0
        if code == HTTPStatus.OK:
            if self._conflict_logged or self._trouble_logged:
                log.info("polling works again")
            self._conflict_logged = self._trouble_logged = False
        return code, payload

    def give_up(self, reason: str) -> None:
        if self.fatal is None:
            self.fatal = reason
            if self.app is not None and self.app.running:
                self.app.stop_running()

    def on_error(self, exc: TelegramError) -> None:
        """PTB's polling error callback: one line per episode, never a traceback."""
        if self.rejections:
            log.warning(
                "Telegram rejected the bot token while polling (%d of %d before giving up)",
                self.rejections,
                POLL_REJECTIONS,
            )
        elif isinstance(exc, Conflict):
            if not self._conflict_logged:
                self._conflict_logged = True
                log.warning(
                    "Telegram refuses to deliver updates: another process is polling with this "
                    "bot token, or a webhook is set for it (stop the other instance, or delete "
                    "the webhook); retrying (%s)",
                    exc,
                )
        elif isinstance(exc, TimedOut):
            log.debug("polling timed out: %s", exc)
        elif isinstance(exc, NetworkError):
            if not self._trouble_logged:
                self._trouble_logged = True
                log.warning("Telegram unreachable while polling, retrying: %s", exc)
        else:
            log.warning("polling failed, retrying: %s", exc)


class Stopper:
    """SIGINT/SIGTERM: stop the application, and the process within STOP_GRACE seconds."""

    def __init__(self, app: Application, on_stop: Callable[[], None] = lambda: None) -> None:
        self.app = app
        self.on_stop = on_stop
        self.signalled: int | None = None

    def install(self) -> None:
        """Called on the running loop (post_init)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop, sig)

    def stop(self, sig: int) -> None:
        if self.signalled is not None:  # a second signal: the user means now
            log.warning("second %s: exiting now", signal.Signals(sig).name)
            _exit(0)
        self.signalled = sig
        log.info("%s: stopping", signal.Signals(sig).name)
        threading.Thread(target=self._deadline, name="newsdesk-stop", daemon=True).start()
        try:
            self.on_stop()
        finally:
            self.app.stop_running()

    def _deadline(self) -> None:
        time.sleep(STOP_GRACE)
        log.warning(
            "still busy %.0f s after the stop signal (an answer or indexing in progress); "
            "exiting anyway: the index and conversations are crash-safe",
            STOP_GRACE,
        )
        _exit(0)


def check_webhook_bodies() -> None:
    """Answer a malformed webhook body with 400 and one log line.

    PTB's webhook handler decodes the body before its own error handling, so a body that is
    not JSON (from someone holding the secret, or a broken proxy) gets a 500 and no log line,
    and a JSON object that is not an update gets a CRITICAL traceback. PTB has no hook for
    the handler class, so its module gets a subclass that checks the body first.
    """
    import tornado.web
    from telegram.ext._utils import webhookhandler

    base = webhookhandler.TelegramHandler
    if getattr(base, "checks_bodies", False):
        return

    class CheckedTelegramHandler(base):  # type: ignore[misc, valid-type]
        checks_bodies = True

        async def post(self) -> None:
            self._validate_post()  # content type and secret first: 403 without them
            body = self.request.body
            try:
                data = json.loads(body.decode())
                if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
                    raise ValueError("not an update object")
            except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
                log.warning(
                    "webhook: malformed update from %s (%d bytes: %s); answered 400",
                    self.request.remote_ip,
                    len(body),
                    " ".join(str(exc).split())[:200],
                )
                raise tornado.web.HTTPError(HTTPStatus.BAD_REQUEST) from None
            await super().post()

    webhookhandler.TelegramHandler = CheckedTelegramHandler


def _exit(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
