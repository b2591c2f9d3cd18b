"""Getting text to a Telegram chat: "typing…", the streamed preview, and the final answer.

The final text must arrive: it waits out flood limits (RetryAfter) beyond the rate limiter's
own retries, and a part Telegram cannot parse as HTML is resent as plain text. Long texts are
split with ``split_message``; the first part may replace the streaming preview.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import logging
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from telegram import LinkPreviewOptions, Message, ReplyParameters
from telegram.constants import ChatAction, ChatType, ParseMode
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)

from bot.render import writing_progress
from bot.telegram_format import MAX_MESSAGE, escape, format_answer, html_to_plain, split_message
from index.answer import QuestionError
from index.errors import NewsdeskError
from index.models import Answer

if TYPE_CHECKING:
    from index.engine import NewsChatEngine

# One logger for the whole front end, as before it was split into modules.
log = logging.getLogger("bot.telegram")

# The final answer waits out flood limits (RetryAfter) itself, beyond the rate limiter's
# retries, for up to this many seconds in all; then it is given up on, with a log line.
FLOOD_WAIT_TOTAL = 60.0
SEND_RETRIES = 3  # a 5xx or a timeout on sending is retried this often...
SEND_BACKOFF = 0.5  # ...after 0.5, 1, 2 s
# The first "typing…" waits this long: a fast answer needs none, and skipping it halves the
# Bot API calls per question under Telegram's 30 requests/s flood limit.
TYPING_DELAY = 0.5
TYPING_EVERY = 4.0  # Telegram shows "typing" for ~5 s; renew a bit before it lapses
EDIT_EVERY_PRIVATE = 1.0  # seconds between streaming edits in a private chat
EDIT_EVERY_GROUP = 3.0  # groups have a 20 messages/minute flood limit
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)  # a big card for source 1 is just noise


@dataclass
class Target:
    """Where replies go: the chat, its forum thread, and the message being answered."""

    chat_id: int
    thread_id: int | None
    reply_to: int | None
    private: bool

    @classmethod
    def of(cls, message: Message) -> Target:
        return cls(
            chat_id=message.chat.id,
            thread_id=message.message_thread_id if message.is_topic_message else None,
            reply_to=message.message_id,
            private=message.chat.type == ChatType.PRIVATE,
        )


class Typing:
    """Shows "typing…" from TYPING_DELAY after start() (or entering ``async with``) until
    stop(), renewed every few seconds; an answer done within the delay sends none."""

    def __init__(self, bot: Any, target: Target) -> None:
        self.bot, self.target = bot, target
        self._stopped = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> Typing:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aenter__(self) -> Typing:
        return self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _run(self) -> None:
        wait = TYPING_DELAY
        while True:
            # Each wait ends early on stop(), so a pending action is dropped, not sent late.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), wait)
                return
            try:
                await self.bot.send_chat_action(
                    self.target.chat_id, ChatAction.TYPING, message_thread_id=self.target.thread_id
                )
            except TelegramError as exc:  # liveness is best effort
                log.debug("typing action failed: %s", exc)
            wait = TYPING_EVERY

    async def stop(self) -> None:
        """Stop (or never start) showing it; waits for an action in flight so it cannot land
        after the text."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopped.set()
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(task, 2.0)


def has_llm(answerer: Any) -> bool:
    """True when answers come from an LLM (and stream), False for offline answers."""
    return getattr(answerer, "llm", None) is not None


def retry_seconds(exc: RetryAfter) -> float:
    # PTB 22 gives an int (deprecated) or a timedelta, depending on PTB_TIMEDELTA.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


# --- answering -------------------------------------------------------------------------------


async def answer_question(chat: NewsChatEngine, bot: Any, target: Target, question: str) -> None:
    """Typing, then the answer: streamed by editing one message when an LLM streams."""
    preview_id: int | None = None
    try:
        async with Typing(bot, target) as typing:
            if has_llm(chat.answerer):
                answer, preview_id = await _stream(chat, bot, target, question, typing)
            else:
                answer = (await chat.achat(question)).metadata["answer"]
    except (QuestionError, NewsdeskError) as exc:
        # A bad question or an unreachable index is the user's business, in one line;
        # anything else goes to the error handler.
        await deliver(bot, target, escape(str(exc)))
        return
    await deliver(bot, target, format_answer(answer), edit_id=preview_id)


async def _stream(
    chat: NewsChatEngine, bot: Any, target: Target, question: str, typing: Typing
) -> tuple[Answer, int | None]:
    """Consume the engine's deltas, editing a progress preview now and then."""
    loop = asyncio.get_running_loop()
    every = EDIT_EVERY_PRIVATE if target.private else EDIT_EVERY_GROUP
    next_edit = loop.time() + every  # a fast answer needs no preview at all
    text, shown, preview_id = "", "", None
    response = await chat.astream_chat(question)
    async for item in response.async_response_gen():
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
                    reply_parameters=_reply_to(target),
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
    if response.answer is None:
        raise RuntimeError("the engine's stream ended without an Answer")
    return response.answer, preview_id


def _preview(text: str) -> str:
    """The streaming preview: the REPL's progress line, never the unchecked words."""
    return writing_progress(text)


# --- final delivery --------------------------------------------------------------------------


async def reply(message: Message, text: str) -> int | None:
    """A short HTML reply to ``message`` (command output, refusals, upload reports); the id
    of the (first) message sent, None when nothing could be."""
    return await deliver(message.get_bot(), Target.of(message), text)


async def deliver(bot: Any, target: Target, text: str, *, edit_id: int | None = None) -> int | None:
    """Send HTML ``text`` in as many messages as needed (the first may replace a preview);
    a part Telegram cannot parse is resent as plain text. A chat that blocked the bot gets
    nothing (logged once); one that stays flood-limited too long is given up on, logged."""
    parts = split_message(text, MAX_MESSAGE) or ["(no answer)"]
    sent: int | None = None
    try:
        for i, part in enumerate(parts):
            first = i == 0
            try:
                got = await _send(
                    bot, target, part, html=True, edit_id=edit_id if first else None, reply=first
                )
                sent = sent if sent is not None else got
            except BadRequest as exc:
                if "can't parse entities" not in str(exc).lower():
                    raise
                log.warning("Telegram could not parse our HTML (%s); sending plain text", exc)
                plain = split_message(html_to_plain(part), MAX_MESSAGE, html_mode=False)
                for j, piece in enumerate(plain):
                    lead = first and j == 0
                    got = await _send(
                        bot,
                        target,
                        piece,
                        html=False,
                        edit_id=edit_id if lead else None,
                        reply=lead,
                    )
                    sent = sent if sent is not None else got
    except Forbidden as exc:
        forbidden(target.chat_id, exc)
    except GaveUp as exc:
        log.warning("gave up sending to chat %s: %s", target.chat_id, exc)
    else:
        _blocked.discard(target.chat_id)
    return sent


class GaveUp(TelegramError):
    """Telegram kept refusing a message (flood limits, server errors) past our bounds."""


# Chats that blocked the bot (or removed it): logged once, until a send works again.
_blocked: set[int] = set()


def forbidden(chat_id: int, exc: Exception) -> None:
    """A 403: the user blocked the bot, or it left the group. Nothing more is sent there."""
    if chat_id not in _blocked:
        _blocked.add(chat_id)
        log.warning("chat %s does not accept messages from the bot (%s); not sending", chat_id, exc)


async def _send(
    bot: Any, target: Target, text: str, *, html: bool, edit_id: int | None, reply: bool
) -> int | None:
    """One message (or the edit of the preview). The final text must arrive: flood limits
    are waited out beyond the rate limiter's own retries, up to FLOOD_WAIT_TOTAL seconds in
    all, and a server error or timeout is retried SEND_RETRIES times; then GaveUp."""
    parse_mode = ParseMode.HTML if html else None
    waited, failures = 0.0, 0
    while True:
        try:
            if edit_id is not None:
                await bot.edit_message_text(
                    text,
                    target.chat_id,
                    edit_id,
                    parse_mode=parse_mode,
                    link_preview_options=NO_PREVIEW,
                )
                return edit_id
            sent = await bot.send_message(
                target.chat_id,
                text,
                parse_mode=parse_mode,
                message_thread_id=target.thread_id,
                reply_parameters=_reply_to(target) if reply else None,
                link_preview_options=NO_PREVIEW,
            )
            return sent.message_id
        except RetryAfter as exc:
            wait = retry_seconds(exc) + 0.1
            if waited + wait > FLOOD_WAIT_TOTAL:
                raise GaveUp(
                    f"still flood-limited after waiting {waited:.0f} s (Telegram asks for "
                    f"{wait:.0f} s more; the limit is {FLOOD_WAIT_TOTAL:.0f} s)"
                ) from exc
            waited += wait
            await asyncio.sleep(wait)
        except BadRequest as exc:
            reason = str(exc).lower()
            if edit_id is not None and "not modified" in reason:
                return edit_id  # the preview already shows exactly this
            if edit_id is not None and ("not found" in reason or "can't be edited" in reason):
                edit_id = None  # the preview is gone: send a new message instead
                continue
            raise
        except (Forbidden, InvalidToken):
            raise
        except NetworkError as exc:  # 5xx, 502 from a proxy, a timeout, a dropped connection
            failures += 1
            if failures > SEND_RETRIES:
                raise GaveUp(f"{exc} ({failures} attempts)") from exc
            log.info("send failed (%s); retrying", exc)
            await asyncio.sleep(SEND_BACKOFF * 2 ** (failures - 1))


def _reply_to(target: Target) -> ReplyParameters | None:
    if target.reply_to is None:
        return None
    return ReplyParameters(message_id=target.reply_to, allow_sending_without_reply=True)
