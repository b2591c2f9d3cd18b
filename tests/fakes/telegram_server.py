"""A fake Telegram Bot API server on 127.0.0.1 for tests.

python-telegram-bot (and any other client) talks to it over real HTTP:

    with FakeTelegram() as tg:
        app = (
            Application.builder()
            .token(tg.token)
            .base_url(f"{tg.url}/bot")
            .base_file_url(f"{tg.url}/file/bot")
            .build()
        )
        tg.send_text(chat_id=42, user_id=42, text="/ask what happened?")
        ...
        tg.wait_for(lambda: tg.texts(42))

Wire format handled (what PTB 22 sends, see telegram/request/_httpxrequest.py): POST with an
application/x-www-form-urlencoded body, or multipart/form-data when a file is uploaded. String
parameters arrive raw; every other value (ints, bools, dicts like `reply_parameters`,
`link_preview_options`, `reply_markup`, lists like `entities`) arrives JSON-encoded in its form
field. JSON bodies and query strings (other clients, curl) are accepted too.

Validation mirrors Telegram where it matters for the bot: HTML parse_mode is parsed with
tdlib's rules (tags, attributes, entities, nesting) and rejected with Telegram's error texts;
length is checked on the visible text; editing to the same content gives "message is not
modified". One deliberate difference: with `strict_html=True` (default) a bare "&" that does not
start a valid entity is rejected, while real Telegram silently keeps it as text. Anything that
passes the fake therefore also passes Telegram; pass strict_html=False to mirror tdlib exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from aiohttp import web

__all__ = ["FakeTelegram", "HtmlParseError", "TelegramApiError", "parse_html"]

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_DOWNLOAD_SIZE = 20 * 1024 * 1024  # getFile refuses bigger files, like the real Bot API

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)

CHAT_ACTIONS = frozenset(
    [
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    ]
)

# Form fields that are always strings. Everything else is JSON-decoded when it parses, which is
# how PTB encodes non-string values (see RequestParameter.json_value).
STRING_PARAMS = frozenset(
    [
        "text",
        "caption",
        "parse_mode",
        "action",
        "callback_query_id",
        "inline_message_id",
        "url",
        "file_id",
        "secret_token",
        "ip_address",
        "language_code",
        "description",
        "short_description",
        "name",
        "title",
        "emoji",
        "business_connection_id",
        "message_effect_id",
        "query",
        "document",
        "photo",
        "sticker",
        "video",
        "audio",
        "voice",
        "animation",
        "thumbnail",
        "certificate",
    ]
)

_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot "
    "instance is running",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


class TelegramApiError(Exception):
    """An error answer: becomes {"ok": false, "error_code": ..., "description": ...}."""

    def __init__(
        self, status: int, description: str, parameters: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = dict(parameters) if parameters else None

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad_request(detail: str) -> TelegramApiError:
    return TelegramApiError(400, f"Bad Request: {detail}")


# --------------------------------------------------------------------------------------------
# HTML parse_mode, following tdlib's parse_html (td/telegram/MessageEntity.cpp).
# --------------------------------------------------------------------------------------------


class HtmlParseError(ValueError):
    """Text for "Bad Request: can't parse entities: <message>"."""


_HTML_TAGS = frozenset(
    [
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "pre",
        "code",
        "tg-spoiler",
        "span",
        "tg-emoji",
        "blockquote",
    ]
)
_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "code": "code",
    "pre": "pre",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


def _utf16_len(s: str) -> int:
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in s)


def _decode_entity(text: str, pos: int) -> tuple[str, int] | None:
    """Decode an HTML entity at text[pos] == "&" -> (char, end) or None (tdlib semantics)."""
    end = pos + 1
    n = len(text)
    if end < n and text[end] == "#":
        end += 1
        value = 0
        if end < n and text[end] == "x":
            end += 1
            while end < n and text[end] in "0123456789abcdefABCDEF":
                value = value * 16 + int(text[end], 16)
                end += 1
        else:
            while end < n and text[end].isdigit() and text[end].isascii():
                value = value * 10 + int(text[end])
                end += 1
        if value == 0 or value >= 0x10FFFF or end - pos >= 10 or 0xD800 <= value <= 0xDFFF:
            return None
        char = chr(value)
    else:
        while end < n and text[end].isascii() and text[end].isalpha():
            end += 1
        char = _NAMED_ENTITIES.get(text[pos + 1 : end], "")
        if not char:
            return None
    if end < n and text[end] == ";":
        end += 1
    return char, end


def parse_html(text: str, *, strict: bool = True) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram-flavoured HTML -> (visible text, MessageEntity dicts with UTF-16 offsets).

    Raises HtmlParseError with tdlib's messages (byte offsets are UTF-8 byte offsets).
    `strict` additionally rejects a bare "&" (Telegram keeps it as a literal).
    """

    def at(pos: int) -> int:
        return len(text[:pos].encode())

    n = len(text)
    out: list[str] = []
    utf16 = 0
    entities: list[dict[str, Any]] = []
    # (tag, argument, utf16 offset where it starts, index into `out` where it starts)
    stack: list[tuple[str, str, int, int]] = []
    i = 0
    while i < n:
        c = text[i]
        if c == "&":
            decoded = _decode_entity(text, i)
            if decoded is not None:
                out.append(decoded[0])
                utf16 += _utf16_len(decoded[0])
                i = decoded[1]
                continue
            if strict:
                raise HtmlParseError(
                    f'Unescaped "&" at byte offset {at(i)}: use &amp; (the fake is stricter '
                    "than Telegram here, which would show it literally)"
                )
        if c != "<":
            out.append(c)
            utf16 += _utf16_len(c)
            i += 1
            continue

        begin = i
        i += 1
        if i < n and text[i] == "/":
            # End tag.
            if not stack:
                raise HtmlParseError(f"Unexpected end tag at byte offset {at(begin)}")
            j = i + 1
            while j < n and not text[j].isspace() and text[j] != ">":
                j += 1
            end_name = text[i + 1 : j]
            while j < n and text[j].isspace():
                j += 1
            if j >= n or text[j] != ">":
                raise HtmlParseError(f"Unclosed end tag at byte offset {at(begin)}")
            tag, argument, start16, start_out = stack.pop()
            if end_name and end_name.lower() != tag:
                raise HtmlParseError(
                    f'Unmatched end tag at byte offset {at(begin)}, expected "</{tag}>", '
                    f'found "</{end_name}>"'
                )
            i = j + 1
            length = utf16 - start16
            if length > 0:
                entity = _make_entity(tag, argument, start16, length, "".join(out[start_out:]))
                if entity is not None:
                    entities.append(entity)
            continue

        # Start tag.
        j = i
        while j < n and not text[j].isspace() and text[j] != ">":
            j += 1
        if j >= n:
            raise HtmlParseError(f"Unclosed start tag at byte offset {at(begin)}")
        tag = text[i:j].lower()
        if tag not in _HTML_TAGS:
            raise HtmlParseError(f'Unsupported start tag "{tag}" at byte offset {at(begin)}')
        i = j
        attributes: dict[str, str] = {}
        while i < n and text[i] != ">":
            while i < n and text[i].isspace():
                i += 1
            if i >= n or text[i] == ">":
                break
            name_start = i
            while i < n and not text[i].isspace() and text[i] not in "=>":
                i += 1
            attr = text[name_start:i].lower()
            if not attr:
                raise HtmlParseError(
                    f'Empty attribute name in the tag "{tag}" at byte offset {at(begin)}'
                )
            while i < n and text[i].isspace():
                i += 1
            if i >= n or text[i] != "=":
                if tag == "blockquote" and attr == "expandable":
                    attributes[attr] = ""
                    continue
                raise HtmlParseError(
                    "Expected equal sign in declaration of an attribute of the tag "
                    f'"{tag}" at byte offset {at(begin)}'
                )
            i += 1
            while i < n and text[i].isspace():
                i += 1
            if i >= n:
                raise HtmlParseError(f'Unclosed start tag "{tag}" at byte offset {at(begin)}')
            value_chars: list[str] = []
            if text[i] in "'\"":
                quote = text[i]
                i += 1
                while i < n and text[i] != quote:
                    if text[i] == "&":
                        decoded = _decode_entity(text, i)
                        if decoded is not None:
                            value_chars.append(decoded[0])
                            i = decoded[1]
                            continue
                    value_chars.append(text[i])
                    i += 1
                if i < n:
                    i += 1
            else:
                token_start = i
                while i < n and (text[i].isalnum() or text[i] in ".-"):
                    i += 1
                value_chars.append(text[token_start:i].lower())
                if i < n and not text[i].isspace() and text[i] != ">":
                    raise HtmlParseError(
                        f"Unexpected end of name token at byte offset {at(token_start)}"
                    )
            if i >= n:
                raise HtmlParseError(f"Unclosed start tag at byte offset {at(begin)}")
            attributes[attr] = "".join(value_chars)
        if i >= n:
            raise HtmlParseError(f"Unclosed start tag at byte offset {at(begin)}")
        i += 1  # past ">"

        argument = ""
        if tag == "a":
            argument = attributes.get("href", "")
        elif tag == "code":
            cls = attributes.get("class", "")
            argument = cls[len("language-") :] if cls.startswith("language-") else ""
        elif tag == "span":
            if attributes.get("class") != "tg-spoiler":
                raise HtmlParseError(
                    f'Tag "span" must have class "tg-spoiler" at byte offset {at(begin)}'
                )
        elif tag == "tg-emoji":
            argument = attributes.get("emoji-id", "")
            if not argument.isdigit():
                raise HtmlParseError(f'Invalid custom emoji identifier "{argument}" specified')
        elif tag == "blockquote":
            argument = "expandable" if "expandable" in attributes else ""
        stack.append((tag, argument, utf16, len(out)))

    if stack:
        raise HtmlParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities = _merge_pre_code(entities)
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _make_entity(
    tag: str, argument: str, offset: int, length: int, inner: str
) -> dict[str, Any] | None:
    entity: dict[str, Any] = {"offset": offset, "length": length}
    if tag == "a":
        url = argument or inner
        if not re.match(r"^(https?|tg|ftp)://", url, re.IGNORECASE):
            if re.match(r"^[\w.-]+\.[a-z]{2,}(/|$)", url, re.IGNORECASE):
                url = f"http://{url}"
            else:
                return None  # tdlib drops links with invalid URLs silently
        entity.update(type="text_link", url=url)
    elif tag == "tg-emoji":
        entity.update(type="custom_emoji", custom_emoji_id=argument)
    elif tag == "blockquote":
        entity["type"] = "expandable_blockquote" if argument else "blockquote"
    elif tag == "code":
        entity["type"] = "code"
        if argument:
            entity["_language"] = argument  # merged into an enclosing <pre>, then dropped
    else:
        entity["type"] = _ENTITY_TYPES[tag]
    return entity


def _merge_pre_code(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """<pre><code class="language-x">..</code></pre> is one `pre` entity with a language."""
    result: list[dict[str, Any]] = []
    for entity in entities:
        language = entity.pop("_language", None)
        prev = result[-1] if result else None
        if (
            entity["type"] == "pre"
            and prev is not None
            and prev["type"] == "code"
            and prev.get("_pre_language")
            and (prev["offset"], prev["length"]) == (entity["offset"], entity["length"])
        ):
            result[-1] = {**entity, "language": prev["_pre_language"]}
            continue
        if language:
            entity["_pre_language"] = language
        result.append(entity)
    for entity in result:
        entity.pop("_pre_language", None)
    return result


# --------------------------------------------------------------------------------------------
# The fake server.
# --------------------------------------------------------------------------------------------


def _decode_form_value(name: str, value: str) -> Any:
    if name in STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _auto_entities(text: str) -> list[dict[str, Any]]:
    """What Telegram adds to incoming text: bot_command and mention entities (UTF-16 offsets).

    PTB's CommandHandler only fires when a `bot_command` entity sits at offset 0, so injected
    "/cmd" messages need these to behave like real ones.
    """
    entities: list[dict[str, Any]] = []
    taken: list[range] = []
    for m in re.finditer(r"(?<![\w/])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?", text):
        offset = _utf16_len(text[: m.start()])
        entities.append({"type": "bot_command", "offset": offset, "length": _utf16_len(m[0])})
        taken.append(range(m.start(), m.end()))
    for m in re.finditer(r"(?<![\w@])@[A-Za-z][A-Za-z0-9_]{4,31}\b", text):
        if any(m.start() in r for r in taken):
            continue
        offset = _utf16_len(text[: m.start()])
        entities.append({"type": "mention", "offset": offset, "length": _utf16_len(m[0])})
    entities.sort(key=lambda e: e["offset"])
    return entities


class FakeTelegram:
    """Fake Bot API on 127.0.0.1:<free port>; use as a context manager (or start()/stop()).

    `url` is the root: PTB needs base_url=f"{url}/bot", base_file_url=f"{url}/file/bot".
    Injection and inspection methods are thread-safe and may be called from any thread;
    inside `asyncio.run` tests, await `wait_for_async` rather than calling `wait_for`.
    """

    def __init__(
        self,
        token: str = "123456:TEST-token",
        *,
        bot_username: str = "newsdesk_test_bot",
        bot_first_name: str = "Newsdesk",
        max_long_poll: float = 1.0,
        strict_html: bool = True,
    ) -> None:
        self.token = token
        self.bot_username = bot_username
        self.bot_first_name = bot_first_name
        self.bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 1
        # Long polls are capped so a test never waits PTB's full 10 s timeout for nothing.
        self.max_long_poll = max_long_poll
        self.strict_html = strict_html
        self.calls: list[tuple[str, dict[str, Any]]] = []

        self._lock = threading.RLock()
        self._pending_updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(10_001)
        self._chats: dict[int, dict[str, Any]] = {}
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}  # insertion-ordered
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._files: dict[str, dict[str, Any]] = {}
        self._file_paths: dict[str, str] = {}
        self._file_counter = itertools.count(1)
        self._callback_counter = itertools.count(1)
        self._failures: dict[str, deque[TelegramApiError]] = {}
        self._webhook: dict[str, Any] = {"url": ""}
        self._commands: dict[str, list[dict[str, Any]]] = {}

        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._updates_event: asyncio.Event | None = None
        self._stopping = False
        self._port = 0

    # --- lifecycle ---

    def start(self) -> FakeTelegram:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._stopping = False
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._startup())
            except BaseException as exc:  # surfaced to start()'s caller below
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-telegram", daemon=True)
        self._thread.start()
        started.wait(10)
        if failure:
            raise RuntimeError("FakeTelegram failed to start") from failure[0]
        return self

    async def _startup(self) -> None:
        self._updates_event = asyncio.Event()
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # handler_cancellation: a client that hangs up (PTB cancelling a long poll) ends the
        # handler, as on a real server; shutdown_timeout bounds cleanup.
        self._runner = web.AppRunner(
            app, handle_signals=False, handler_cancellation=True, shutdown_timeout=2.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = None

        async def shutdown() -> None:
            self._stopping = True
            if self._updates_event is not None:
                self._updates_event.set()  # release pending long polls at once
            if self._runner is not None:
                await self._runner.cleanup()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    # --- injection API (test side) ---

    def add_chat(
        self,
        chat_id: int,
        *,
        chat_type: str = "private",
        title: str | None = None,
        username: str | None = None,
        first_name: str = "Test",
        is_forum: bool = False,
    ) -> dict[str, Any]:
        """Make a chat known (the bot can only send to chats it has seen, as on Telegram)."""
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = first_name
            if username:
                chat["username"] = username
        else:
            chat["title"] = title or f"Test {chat_type} {chat_id}"
            if is_forum and chat_type == "supergroup":
                chat["is_forum"] = True
        with self._lock:
            self._chats[chat_id] = chat
            self._message_ids.setdefault(chat_id, itertools.count(1))
        return dict(chat)

    def send_text(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        chat_type: str = "private",
        reply_to_message_id: int | None = None,
        username: str | None = None,
        first_name: str = "Test",
        message_thread_id: int | None = None,
        entities: list[dict[str, Any]] | None = None,
        chat_title: str | None = None,
    ) -> dict[str, Any]:
        """A user writes `text`; returns the Message dict that the bot will receive."""
        return self._user_message(
            chat_id,
            user_id,
            # Telegram itself marks /commands and @mentions in incoming text.
            {"text": text, "entities": _auto_entities(text) if entities is None else entities},
            chat_type=chat_type,
            reply_to_message_id=reply_to_message_id,
            username=username,
            first_name=first_name,
            message_thread_id=message_thread_id,
            chat_title=chat_title,
        )

    def send_document(
        self,
        chat_id: int,
        user_id: int,
        file_name: str,
        data: bytes,
        mime_type: str = "application/octet-stream",
        caption: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """A user uploads a document; the bytes are served by getFile + the file endpoint."""
        meta = self._store_file(data, f"documents/file_{{n}}{_extension(file_name)}")
        content: dict[str, Any] = {
            "document": {**meta, "file_name": file_name, "mime_type": mime_type}
        }
        if caption is not None:
            content["caption"] = caption
            content["caption_entities"] = _auto_entities(caption)
        return self._user_message(chat_id, user_id, content, **kwargs)

    def send_photo(
        self,
        chat_id: int,
        user_id: int,
        data: bytes = b"\xff\xd8\xff\xe0fake-jpeg",
        caption: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        big = self._store_file(data, "photos/file_{n}.jpg")
        small = self._store_file(data[:64], "photos/file_{n}.jpg")
        content: dict[str, Any] = {
            "photo": [{**small, "width": 90, "height": 60}, {**big, "width": 1280, "height": 853}]
        }
        if caption is not None:
            content["caption"] = caption
        return self._user_message(chat_id, user_id, content, **kwargs)

    def send_sticker(
        self, chat_id: int, user_id: int, emoji: str = "👍", **kwargs: Any
    ) -> dict[str, Any]:
        meta = self._store_file(b"RIFF-fake-webp", "stickers/file_{n}.webp")
        sticker = {
            **meta,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
        }
        return self._user_message(chat_id, user_id, {"sticker": sticker}, **kwargs)

    def edit_user_text(self, chat_id: int, message_id: int, text: str) -> dict[str, Any]:
        """A user edits their message: enqueues an `edited_message` update."""
        with self._lock:
            message = self._messages.get((chat_id, message_id))
            if message is None:
                raise KeyError(f"no message {message_id} in chat {chat_id}")
            message.update(
                text=text,
                entities=_auto_entities(text),
                edit_date=int(time.time()),
            )
            snapshot = copy.deepcopy(message)
        self._enqueue({"edited_message": snapshot})
        return snapshot

    def send_callback_query(
        self, chat_id: int, user_id: int, message_id: int, data: str, first_name: str = "Test"
    ) -> str:
        """A user presses an inline button under bot message `message_id`; returns its id."""
        with self._lock:
            message = self._messages.get((chat_id, message_id))
            if message is None:
                raise KeyError(f"no message {message_id} in chat {chat_id}")
            query_id = f"cbq{next(self._callback_counter)}"
            query = {
                "id": query_id,
                "from": {"id": user_id, "is_bot": False, "first_name": first_name},
                "message": copy.deepcopy(message),
                "chat_instance": f"ci{chat_id}",
                "data": data,
            }
        self._enqueue({"callback_query": query})
        return query_id

    def fail_next(
        self,
        method: str,
        status: int = 429,
        retry_after: int = 1,
        description: str | None = None,
        times: int = 1,
    ) -> None:
        """Make the next `times` calls of `method` fail (nothing is executed or stored).

        429 answers carry parameters.retry_after like real Telegram (PTB raises RetryAfter).
        """
        parameters = {"retry_after": retry_after} if status == 429 else None
        if description is None:
            description = (
                f"Too Many Requests: retry after {retry_after}"
                if status == 429
                else _DEFAULT_DESCRIPTIONS.get(status, "Error")
            )
        with self._lock:
            queue = self._failures.setdefault(method.lower(), deque())
            queue.extend(TelegramApiError(status, description, parameters) for _ in range(times))

    # --- inspection API (test side) ---

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        """Params of every recorded call of `method` (case-insensitive), in order."""
        with self._lock:
            return [copy.deepcopy(p) for m, p in self.calls if m.lower() == method.lower()]

    def messages(self, chat_id: int, *, include_user: bool = False) -> list[dict[str, Any]]:
        """Messages in the chat (bot's only by default), as they are now (after edits and
        deletions), in the order they were sent. Each is a Bot API Message dict."""
        with self._lock:
            return [
                copy.deepcopy(m)
                for (cid, _), m in self._messages.items()
                if cid == chat_id and (include_user or m["from"]["id"] == self.bot_id)
            ]

    def texts(self, chat_id: int) -> list[str]:
        """Visible text (or caption) of the bot's messages in the chat, in order."""
        return [m.get("text", m.get("caption", "")) for m in self.messages(chat_id)]

    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed by the bot (getUpdates with a higher offset)."""
        with self._lock:
            return copy.deepcopy(self._pending_updates)

    def my_commands(
        self, scope: Mapping[str, Any] | None = None, language_code: str = ""
    ) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._commands.get(_commands_key(scope, language_code), []))

    def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01
    ) -> Any:
        """Poll `predicate` until truthy and return its value; TimeoutError after `timeout`.

        The deadline only bounds a hung test; it is not an assertion about speed.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            time.sleep(interval)

    async def wait_for_async(
        self, predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01
    ) -> Any:
        """`wait_for` for code running inside an event loop (keeps the loop responsive)."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            await asyncio.sleep(interval)

    # --- internals: state ---

    def _enqueue(self, payload: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            update = {"update_id": next(self._update_ids), **payload}
            self._pending_updates.append(update)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake_pollers)
        return update

    def _wake_pollers(self) -> None:
        if self._updates_event is not None:
            self._updates_event.set()

    def _store_file(self, data: bytes, path_pattern: str) -> dict[str, Any]:
        with self._lock:
            n = next(self._file_counter)
            file_id = f"BQACAgIAAxkBAAI{n:06d}fake"
            meta = {
                "file_id": file_id,
                "file_unique_id": f"AgAD{n:06d}",
                "file_size": len(data),
            }
            file_path = path_pattern.format(n=n)
            self._files[file_id] = {**meta, "file_path": file_path, "data": bytes(data)}
            self._file_paths[file_path] = file_id
        return meta

    def _new_message(self, chat_id: int, sender: dict[str, Any], content: dict[str, Any]) -> dict:
        with self._lock:
            chat = self._chats[chat_id]
            message_id = next(self._message_ids.setdefault(chat_id, itertools.count(1)))
            message: dict[str, Any] = {
                "message_id": message_id,
                "from": sender,
                "chat": dict(chat),
                "date": int(time.time()),
            }
            message.update({k: v for k, v in content.items() if v not in (None, [])})
            self._messages[(chat_id, message_id)] = message
            return message

    def _user_message(
        self,
        chat_id: int,
        user_id: int,
        content: dict[str, Any],
        *,
        chat_type: str = "private",
        reply_to_message_id: int | None = None,
        username: str | None = None,
        first_name: str = "Test",
        message_thread_id: int | None = None,
        chat_title: str | None = None,
    ) -> dict[str, Any]:
        user: dict[str, Any] = {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name,
            "username": username or f"user{user_id}",
            "language_code": "en",
        }
        with self._lock:
            if chat_id not in self._chats or self._chats[chat_id]["type"] != chat_type:
                self.add_chat(
                    chat_id,
                    chat_type=chat_type,
                    title=chat_title,
                    username=user["username"],
                    first_name=first_name,
                    is_forum=message_thread_id is not None,
                )
            extra: dict[str, Any] = dict(content)
            if reply_to_message_id is not None:
                replied = self._messages.get((chat_id, reply_to_message_id))
                if replied is None:
                    raise KeyError(f"no message {reply_to_message_id} in chat {chat_id}")
                extra["reply_to_message"] = _shallow_reply(replied)
            if message_thread_id is not None:
                extra["message_thread_id"] = message_thread_id
                extra["is_topic_message"] = True
            message = self._new_message(chat_id, user, extra)
            snapshot = copy.deepcopy(message)
        self._enqueue({"message": snapshot})
        return snapshot

    # --- internals: HTTP ---

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        file_prefix = f"/file/bot{self.token}/"
        if path.startswith("/file/bot"):
            if not path.startswith(file_prefix):
                return _json_error(TelegramApiError(401, "Unauthorized"))
            return self._download(path[len(file_prefix) :])
        if not path.startswith("/bot"):
            return _json_error(TelegramApiError(404, "Not Found"))
        token, _, method = path[len("/bot") :].partition("/")
        if token != self.token:
            return _json_error(TelegramApiError(401, "Unauthorized"))
        try:
            params = await _read_params(request)
        except ValueError as exc:
            return _json_error(_bad_request(f"can't parse request: {exc}"))
        key = method.lower()
        with self._lock:
            self.calls.append((method, params))
            failures = self._failures.get(key)
            injected = failures.popleft() if failures else None
        if injected is not None:
            return _json_error(injected)
        try:
            if key == "getupdates":
                result = await self._get_updates(params)
            else:
                handler = self._METHODS.get(key)
                if handler is None:
                    raise TelegramApiError(404, "Not Found: method not found")
                with self._lock:
                    result = handler(self, params)
        except TelegramApiError as exc:
            return _json_error(exc)
        return web.json_response({"ok": True, "result": result})

    def _download(self, file_path: str) -> web.Response:
        with self._lock:
            file_id = self._file_paths.get(file_path)
            data = self._files[file_id]["data"] if file_id else None
        if data is None:
            return _json_error(TelegramApiError(404, "Not Found"))
        return web.Response(body=data, content_type="application/octet-stream")

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        assert self._updates_event is not None
        offset = int(params.get("offset") or 0)
        limit = max(1, min(int(params.get("limit") or 100), 100))
        timeout = min(max(float(params.get("timeout") or 0), 0.0), self.max_long_poll)
        allowed = params.get("allowed_updates") or None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with self._lock:
                if self._webhook["url"]:
                    raise TelegramApiError(
                        409,
                        "Conflict: can't use getUpdates method while webhook is active; use "
                        "deleteWebhook to delete the webhook first",
                    )
                # The offset confirms (forgets) every update below it; a negative offset keeps
                # only the last -offset updates.
                if offset > 0:
                    self._pending_updates = [
                        u for u in self._pending_updates if u["update_id"] >= offset
                    ]
                elif offset < 0:
                    self._pending_updates = self._pending_updates[offset:]
                batch = [
                    copy.deepcopy(u)
                    for u in self._pending_updates
                    if allowed is None or any(k in u for k in allowed)
                ][:limit]
            remaining = deadline - loop.time()
            if batch or remaining <= 0 or self._stopping:
                return batch
            # No lost wake-ups: _wake_pollers runs on this loop, so it cannot slip in between
            # the check above and this clear().
            self._updates_event.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._updates_event.wait(), remaining)

    # --- Bot API methods (called with self._lock held) ---

    def _chat(self, params: Mapping[str, Any]) -> dict[str, Any]:
        chat_id = params.get("chat_id")
        if chat_id in (None, ""):
            raise _bad_request("chat_id is empty")
        try:
            chat = self._chats.get(int(chat_id))
        except (TypeError, ValueError):
            chat = None
        if chat is None:
            raise _bad_request("chat not found")
        return chat

    def _formatted(
        self, params: Mapping[str, Any], field: str, limit: int, what: str
    ) -> tuple[str, list[dict[str, Any]]]:
        raw = params.get(field)
        raw = "" if raw is None else str(raw)
        parse_mode = str(params.get("parse_mode") or "")
        if parse_mode.lower() == "html":
            try:
                text, entities = parse_html(raw, strict=self.strict_html)
            except HtmlParseError as exc:
                raise _bad_request(f"can't parse entities: {exc}") from None
        elif parse_mode and parse_mode.lower() not in ("markdown", "markdownv2"):
            raise _bad_request("unsupported parse_mode")
        else:
            # Markdown modes are passed through unparsed: this project formats with HTML.
            text = raw
            entities_field = "caption_entities" if field == "caption" else "entities"
            entities = list(params.get(entities_field) or [])
        if field == "text" and not text.strip():
            raise _bad_request("message text is empty")
        if len(text) > limit:
            raise _bad_request(f"message {what} too long")
        return text, entities

    def _reply_to(self, chat_id: int, params: Mapping[str, Any]) -> dict[str, Any] | None:
        reply = params.get("reply_parameters")
        if isinstance(reply, str):  # a raw client may send it as a JSON string inside JSON
            reply = json.loads(reply)
        if not reply and params.get("reply_to_message_id"):
            reply = {"message_id": params["reply_to_message_id"]}
        if not reply:
            return None
        target_chat = int(reply.get("chat_id") or chat_id)
        replied = self._messages.get((target_chat, int(reply["message_id"])))
        if replied is None:
            if reply.get("allow_sending_without_reply") or params.get(
                "allow_sending_without_reply"
            ):
                return None
            raise _bad_request("message to be replied not found")
        return _shallow_reply(replied)

    def _bot_message(
        self, chat: dict[str, Any], params: Mapping[str, Any], content: dict[str, Any]
    ) -> dict[str, Any]:
        content = dict(content)
        content["reply_to_message"] = self._reply_to(chat["id"], params)
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            content["reply_markup"] = markup  # Telegram echoes inline keyboards only
        if params.get("message_thread_id") and chat.get("is_forum"):
            content["message_thread_id"] = int(params["message_thread_id"])
            content["is_topic_message"] = True
        return copy.deepcopy(self._new_message(chat["id"], self.bot_user, content))

    def _m_getme(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _m_sendmessage(self, params: Mapping[str, Any]) -> dict[str, Any]:
        chat = self._chat(params)
        text, entities = self._formatted(params, "text", MAX_TEXT_LENGTH, "is")
        content: dict[str, Any] = {"text": text, "entities": entities}
        preview = params.get("link_preview_options")
        if isinstance(preview, dict) and preview:
            content["link_preview_options"] = preview
        return self._bot_message(chat, params, content)

    def _m_editmessagetext(self, params: Mapping[str, Any]) -> dict[str, Any] | bool:
        if params.get("inline_message_id"):
            self._formatted(params, "text", MAX_TEXT_LENGTH, "is")
            return True
        chat = self._chat(params)
        if not params.get("message_id"):
            raise _bad_request("message identifier is not specified")
        message = self._messages.get((chat["id"], int(params["message_id"])))
        if message is None:
            raise _bad_request("message to edit not found")
        if message["from"]["id"] != self.bot_id:
            raise _bad_request("message can't be edited")
        if "text" not in message:
            raise _bad_request("there is no text in the message to edit")
        text, entities = self._formatted(params, "text", MAX_TEXT_LENGTH, "is")
        markup = params.get("reply_markup")
        new_markup = markup if isinstance(markup, dict) and "inline_keyboard" in markup else None
        if (
            text == message["text"]
            and entities == message.get("entities", [])
            and new_markup == message.get("reply_markup")
        ):
            raise _bad_request(NOT_MODIFIED[len("Bad Request: ") :])
        message["text"] = text
        if entities:
            message["entities"] = entities
        else:
            message.pop("entities", None)
        if new_markup is not None:
            message["reply_markup"] = new_markup
        else:
            message.pop("reply_markup", None)
        message["edit_date"] = int(time.time())
        return copy.deepcopy(message)

    def _m_editmessagereplymarkup(self, params: Mapping[str, Any]) -> dict[str, Any]:
        chat = self._chat(params)
        message = self._messages.get((chat["id"], int(params.get("message_id") or 0)))
        if message is None:
            raise _bad_request("message to edit not found")
        markup = params.get("reply_markup")
        new_markup = markup if isinstance(markup, dict) and markup.get("inline_keyboard") else None
        if new_markup == message.get("reply_markup"):
            raise _bad_request(NOT_MODIFIED[len("Bad Request: ") :])
        if new_markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = new_markup
        message["edit_date"] = int(time.time())
        return copy.deepcopy(message)

    def _m_deletemessage(self, params: Mapping[str, Any]) -> bool:
        chat = self._chat(params)
        if self._messages.pop((chat["id"], int(params.get("message_id") or 0)), None) is None:
            raise _bad_request("message to delete not found")
        return True

    def _m_sendchataction(self, params: Mapping[str, Any]) -> bool:
        self._chat(params)
        if params.get("action") not in CHAT_ACTIONS:
            raise _bad_request("wrong parameter action in request")
        return True

    def _m_senddocument(self, params: Mapping[str, Any]) -> dict[str, Any]:
        chat = self._chat(params)
        document = params.get("document")
        if isinstance(document, dict) and "data" in document:  # an uploaded part
            meta = self._store_file(
                document["data"], f"documents/file_{{n}}{_extension(document['file_name'])}"
            )
            meta = {**meta, "file_name": document["file_name"], "mime_type": document["mime_type"]}
        elif isinstance(document, str) and document in self._files:  # resend by file_id
            stored = self._files[document]
            meta = {k: stored[k] for k in ("file_id", "file_unique_id", "file_size")}
        else:
            raise _bad_request("wrong file identifier/HTTP URL specified")
        content: dict[str, Any] = {"document": meta}
        if params.get("caption") is not None:
            caption, entities = self._formatted(params, "caption", MAX_CAPTION_LENGTH, "caption is")
            content.update(caption=caption, caption_entities=entities)
        return self._bot_message(chat, params, content)

    def _m_getfile(self, params: Mapping[str, Any]) -> dict[str, Any]:
        stored = self._files.get(str(params.get("file_id") or ""))
        if stored is None:
            raise _bad_request("invalid file_id")
        if stored["file_size"] > MAX_DOWNLOAD_SIZE:
            raise _bad_request("file is too big")
        return {k: stored[k] for k in ("file_id", "file_unique_id", "file_size", "file_path")}

    def _m_answercallbackquery(self, params: Mapping[str, Any]) -> bool:
        if not params.get("callback_query_id"):
            raise _bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        return True

    def _m_setwebhook(self, params: Mapping[str, Any]) -> bool:
        self._webhook = {"url": str(params.get("url") or "")}
        return True

    def _m_deletewebhook(self, params: Mapping[str, Any]) -> bool:
        self._webhook = {"url": ""}
        if params.get("drop_pending_updates"):
            self._pending_updates.clear()
        return True

    def _m_getwebhookinfo(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "url": self._webhook["url"],
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending_updates),
        }

    def _m_setmycommands(self, params: Mapping[str, Any]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad_request("can't parse commands JSON object")
        for command in commands:
            name = str(command.get("command", "")) if isinstance(command, dict) else ""
            description = str(command.get("description", "")) if isinstance(command, dict) else ""
            if not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(description) <= 256:
                raise _bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        key = _commands_key(params.get("scope"), str(params.get("language_code") or ""))
        self._commands[key] = list(commands)
        return True

    def _m_getmycommands(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        key = _commands_key(params.get("scope"), str(params.get("language_code") or ""))
        return list(self._commands.get(key, []))

    def _m_deletemycommands(self, params: Mapping[str, Any]) -> bool:
        key = _commands_key(params.get("scope"), str(params.get("language_code") or ""))
        self._commands.pop(key, None)
        return True

    _METHODS: ClassVar[dict[str, Callable[[FakeTelegram, Mapping[str, Any]], Any]]] = {
        "getme": _m_getme,
        "sendmessage": _m_sendmessage,
        "editmessagetext": _m_editmessagetext,
        "editmessagereplymarkup": _m_editmessagereplymarkup,
        "deletemessage": _m_deletemessage,
        "sendchataction": _m_sendchataction,
        "senddocument": _m_senddocument,
        "getfile": _m_getfile,
        "answercallbackquery": _m_answercallbackquery,
        "setwebhook": _m_setwebhook,
        "deletewebhook": _m_deletewebhook,
        "getwebhookinfo": _m_getwebhookinfo,
        "setmycommands": _m_setmycommands,
        "getmycommands": _m_getmycommands,
        "deletemycommands": _m_deletemycommands,
    }


def webhook_update(update_id: int, chat_id: int, text: str) -> dict[str, Any]:
    """An Update as Telegram POSTs it to a webhook: a private text message from ``chat_id``."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": "T"},
            "from": {"id": chat_id, "is_bot": False, "first_name": "T"},
            "text": text,
        },
    }


def _commands_key(scope: Any, language_code: str) -> str:
    if isinstance(scope, str):
        scope = json.loads(scope) if scope else None
    scope = scope or {"type": "default"}
    return json.dumps([scope, language_code], sort_keys=True)


def _shallow_reply(message: dict[str, Any]) -> dict[str, Any]:
    # Telegram embeds the replied-to message without its own reply_to_message.
    replied = copy.deepcopy(message)
    replied.pop("reply_to_message", None)
    return replied


def _extension(file_name: str) -> str:
    dot = file_name.rfind(".")
    return file_name[dot:] if dot > 0 else ""


def _json_error(error: TelegramApiError) -> web.Response:
    return web.json_response(error.payload(), status=error.status)


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Parameters from the query string plus a JSON, urlencoded or multipart body."""
    params: dict[str, Any] = {k: _decode_form_value(k, v) for k, v in request.query.items()}
    if request.method not in ("POST", "PUT") or not request.can_read_body:
        return params
    if request.content_type == "application/json":
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("JSON body must be an object")
        params.update(body)
        return params
    form = await request.post()
    files: dict[str, dict[str, Any]] = {}
    for name, value in form.items():
        if isinstance(value, web.FileField):
            files[name] = {
                "file_name": value.filename,
                "mime_type": value.content_type,
                "data": value.file.read(),
            }
        else:
            params[name] = _decode_form_value(name, str(value))
    for name, info in files.items():
        params.setdefault(name, info)
    # attach://<name> references (media groups, thumbnails) point at uploaded parts.
    for name, value in list(params.items()):
        if isinstance(value, str) and value.startswith("attach://"):
            params[name] = files.get(value[len("attach://") :], value)
    return params
