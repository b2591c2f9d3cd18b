"""The fake Telegram Bot API, driven through a real python-telegram-bot `Bot`/`Application`.

Each test runs its coroutine with asyncio.run, so no pytest-asyncio is needed.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import telegram
from fakes.telegram_server import FakeTelegram, parse_html
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Update
from telegram.error import BadRequest, Conflict, InvalidToken, RetryAfter
from telegram.ext import Application, CommandHandler, ContextTypes, MessageHandler, filters
from telegram.warnings import PTBDeprecationWarning

CHAT = 4242  # a private chat: chat id == user id, as on Telegram


def run_with_bot(tg: FakeTelegram, body: Callable[[telegram.Bot], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        bot = telegram.Bot(tg.token, base_url=f"{tg.url}/bot", base_file_url=f"{tg.url}/file/bot")
        async with bot:  # initialize() calls getMe, shutdown() closes the HTTP pool
            return await body(bot)

    return asyncio.run(main())


def retry_seconds(error: RetryAfter) -> float:
    # PTB 22 gives an int (deprecated) or a timedelta, depending on PTB_TIMEDELTA.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = error.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


def test_get_me(fake_telegram: FakeTelegram) -> None:
    async def body(bot: telegram.Bot) -> None:
        me = await bot.get_me()
        assert me.is_bot
        assert me.username == fake_telegram.bot_username == "newsdesk_test_bot"
        assert me.id == 123456
        assert me.can_join_groups is True
        assert me.can_read_all_group_messages is False
        assert me.supports_inline_queries is False

    run_with_bot(fake_telegram, body)


def test_send_message_html_is_parsed_and_stored(fake_telegram: FakeTelegram) -> None:
    fake_telegram.add_chat(CHAT)
    html = '<b>Tram 28</b> reopened &amp; runs <a href="https://example.com/a">again</a> [1]'

    async def body(bot: telegram.Bot) -> telegram.Message:
        return await bot.send_message(
            CHAT,
            html,
            parse_mode="HTML",
            link_preview_options=LinkPreviewOptions(is_disabled=True),
            reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("More", callback_data="m")]]),
        )

    sent = run_with_bot(fake_telegram, body)
    assert sent.text == "Tram 28 reopened & runs again [1]"
    assert sent.from_user is not None and sent.from_user.is_bot
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [
        ("bold", 0, 7),
        ("text_link", 24, 5),
    ]
    assert sent.entities[1].url == "https://example.com/a"
    assert sent.reply_markup is not None

    # JSON-encoded form fields arrive decoded.
    params = fake_telegram.calls_to("sendMessage")[0]
    assert params["chat_id"] == CHAT
    assert params["text"] == html
    assert params["link_preview_options"] == {"is_disabled": True}
    assert params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "m"
    assert fake_telegram.texts(CHAT) == ["Tram 28 reopened & runs again [1]"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("price < 100", "can't parse entities: unsupported start tag"),
        ("AT&T results", 'can\'t parse entities: unescaped "&"'),
        ("<b>bold <i>both</b></i>", "can't parse entities: unmatched end tag"),
        ("<b>never closed", "can't find end tag corresponding to start tag"),
        ("<script>x</script>", 'unsupported start tag "script"'),
        ("x" * 4097, "message is too long"),
        ("<b></b>  ", "message text is empty"),
    ],
)
def test_send_message_rejected_like_telegram(
    fake_telegram: FakeTelegram,
    text: str,
    fragment: str,
) -> None:
    fake_telegram.add_chat(CHAT)

    async def body(bot: telegram.Bot) -> None:
        with pytest.raises(BadRequest) as caught:
            await bot.send_message(CHAT, text, parse_mode="HTML")
        assert fragment in caught.value.message.lower()

    run_with_bot(fake_telegram, body)
    assert fake_telegram.messages(CHAT) == []


def test_html_length_counts_visible_text() -> None:
    text, entities = parse_html("<b>" + "x" * 4096 + "</b>")
    assert len(text) == 4096 and entities[0]["length"] == 4096
    # UTF-16 offsets, as the Bot API uses: the emoji counts as two units.
    text, entities = parse_html("😀 <i>a</i>")
    assert entities == [{"offset": 3, "length": 1, "type": "italic"}]
    text, entities = parse_html('<pre><code class="language-python">x = 1</code></pre>')
    assert entities == [{"offset": 0, "length": 5, "type": "pre", "language": "python"}]
    # tdlib keeps a bare "&" literally; the default strict mode does not.
    assert parse_html("AT&T", strict=False)[0] == "AT&T"


def test_unknown_chat_and_bad_action(fake_telegram: FakeTelegram) -> None:
    async def body(bot: telegram.Bot) -> None:
        with pytest.raises(BadRequest, match=r"(?i)chat not found"):
            await bot.send_message(999, "hello")
        fake_telegram.add_chat(CHAT)
        assert await bot.send_chat_action(CHAT, "typing") is True
        with pytest.raises(BadRequest, match=r"(?i)wrong parameter action"):
            await bot.send_chat_action(CHAT, "dancing")

    run_with_bot(fake_telegram, body)


def test_429_injection_raises_retry_after(fake_telegram: FakeTelegram) -> None:
    fake_telegram.add_chat(CHAT)
    fake_telegram.fail_next("sendMessage", status=429, retry_after=7)

    async def body(bot: telegram.Bot) -> None:
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(CHAT, "first")
        assert retry_seconds(caught.value) == 7
        await bot.send_message(CHAT, "second")  # only the next call fails

    run_with_bot(fake_telegram, body)
    assert fake_telegram.texts(CHAT) == ["second"]
    assert [p["text"] for p in fake_telegram.calls_to("sendMessage")] == ["first", "second"]


def test_other_injected_errors(fake_telegram: FakeTelegram) -> None:
    fake_telegram.add_chat(CHAT)
    detail = 'Bad Request: can\'t parse entities: Unsupported start tag "x" at byte offset 0'
    fake_telegram.fail_next("sendMessage", status=400, description=detail)

    async def body(bot: telegram.Bot) -> None:
        # PTB strips "Bad Request: " and str.capitalize()s the rest, hence (?i).
        with pytest.raises(BadRequest, match=r'(?i)unsupported start tag "x"'):
            await bot.send_message(CHAT, "fine")

    run_with_bot(fake_telegram, body)


def test_get_updates_offsets_and_long_poll(fake_telegram: FakeTelegram) -> None:
    for text in ("one", "two", "three"):
        fake_telegram.send_text(CHAT, CHAT, text)

    async def body(bot: telegram.Bot) -> None:
        updates = await bot.get_updates(timeout=0)
        assert [u.message.text for u in updates] == ["one", "two", "three"]
        ids = [u.update_id for u in updates]
        assert ids == sorted(ids) and len(set(ids)) == 3

        # Unconfirmed updates come again; an offset confirms (forgets) the older ones.
        assert len(await bot.get_updates(timeout=0)) == 3
        assert [u.message.text for u in await bot.get_updates(offset=ids[1], timeout=0)] == [
            "two",
            "three",
        ]
        assert len(await bot.get_updates(timeout=0)) == 2  # "one" is gone for good
        assert await bot.get_updates(offset=ids[2] + 1, timeout=0) == ()

        # A long poll started before the message arrives returns it.
        polls_before = len(fake_telegram.calls_to("getUpdates"))
        poll = asyncio.create_task(bot.get_updates(offset=ids[2] + 1, timeout=5))
        await fake_telegram.wait_for_async(
            lambda: len(fake_telegram.calls_to("getUpdates")) > polls_before
        )
        fake_telegram.send_text(CHAT, CHAT, "four")
        late = await poll
        assert [u.message.text for u in late] == ["four"]
        assert late[0].update_id > ids[2]

    run_with_bot(fake_telegram, body)


def test_injected_messages_parse_as_ptb_objects(fake_telegram: FakeTelegram) -> None:
    group = -100777
    fake_telegram.add_chat(group, chat_type="supergroup", title="Newsroom")
    fake_telegram.send_text(group, 7, "/ask@newsdesk_test_bot what now?", chat_type="supergroup")
    fake_telegram.send_sticker(CHAT, CHAT)
    fake_telegram.send_photo(CHAT, CHAT, caption="look")

    async def body(bot: telegram.Bot) -> None:
        bot_reply = await bot.send_message(group, "<i>Answer</i>", parse_mode="HTML")
        fake_telegram.send_text(
            group,
            7,
            "thanks @newsdesk_test_bot",
            chat_type="supergroup",
            reply_to_message_id=bot_reply.message_id,
        )
        command, sticker, photo, reply = (u.message for u in await bot.get_updates(timeout=0))

        assert command.chat.type == "supergroup" and command.chat.title == "Newsroom"
        assert command.entities[0].type == "bot_command" and command.entities[0].offset == 0
        assert command.parse_entity(command.entities[0]) == "/ask@newsdesk_test_bot"
        assert sticker.sticker is not None and sticker.sticker.emoji
        assert photo.photo and photo.caption == "look"
        assert reply.reply_to_message is not None
        assert reply.reply_to_message.message_id == bot_reply.message_id
        assert reply.reply_to_message.from_user.is_bot
        assert reply.reply_to_message.text == "Answer"
        assert [reply.parse_entity(e) for e in reply.entities] == ["@newsdesk_test_bot"]

    run_with_bot(fake_telegram, body)


def test_edit_message_text(fake_telegram: FakeTelegram) -> None:
    fake_telegram.add_chat(CHAT)

    async def body(bot: telegram.Bot) -> None:
        sent = await bot.send_message(CHAT, "Searching…")
        edited = await bot.edit_message_text(
            "<b>Done</b> [1]", chat_id=CHAT, message_id=sent.message_id, parse_mode="HTML"
        )
        assert edited.text == "Done [1]" and edited.edit_date is not None
        with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
            await bot.edit_message_text(
                "<b>Done</b> [1]", chat_id=CHAT, message_id=sent.message_id, parse_mode="HTML"
            )
        with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
            await bot.edit_message_text("x", chat_id=CHAT, message_id=9999)
        assert await bot.delete_message(CHAT, sent.message_id) is True

    run_with_bot(fake_telegram, body)
    assert fake_telegram.messages(CHAT) == []
    assert next(p["text"] for p in fake_telegram.calls_to("editMessageText")) == "<b>Done</b> [1]"


def test_file_upload_and_download(fake_telegram: FakeTelegram) -> None:
    article = b"# Tram 28\n\nThe line reopened on Monday.\n"
    fake_telegram.send_document(
        CHAT, CHAT, "tram.md", article, mime_type="text/markdown", caption="add this"
    )

    async def body(bot: telegram.Bot) -> None:
        (update,) = await bot.get_updates(timeout=0)
        document = update.message.document
        assert document.file_name == "tram.md" and document.mime_type == "text/markdown"
        assert update.message.caption == "add this"
        incoming = await document.get_file()
        assert incoming.file_size == len(article)
        assert bytes(await incoming.download_as_bytearray()) == article

        # The bot's own upload (multipart/form-data) is stored and downloadable too.
        sent = await bot.send_document(
            CHAT,
            document=b"report body",
            filename="report.txt",
            caption="<b>Report</b>",
            parse_mode="HTML",
        )
        assert sent.document.file_name == "report.txt" and sent.caption == "Report"
        outgoing = await bot.get_file(sent.document.file_id)
        assert bytes(await outgoing.download_as_bytearray()) == b"report body"
        with pytest.raises(BadRequest, match=r"(?i)invalid file_id"):
            await bot.get_file("nope")

    run_with_bot(fake_telegram, body)


def test_commands_and_webhook(fake_telegram: FakeTelegram) -> None:
    async def body(bot: telegram.Bot) -> None:
        assert await bot.set_my_commands([("ask", "Ask about the news"), ("help", "Help")])
        assert [(c.command, c.description) for c in await bot.get_my_commands()] == [
            ("ask", "Ask about the news"),
            ("help", "Help"),
        ]
        with pytest.raises(BadRequest):
            await bot.set_my_commands([("Bad Command", "x")])

        assert await bot.set_webhook("https://example.com/hook")
        assert (await bot.get_webhook_info()).url == "https://example.com/hook"
        with pytest.raises(Conflict):
            await bot.get_updates(timeout=0)
        assert await bot.delete_webhook(drop_pending_updates=True)
        assert (await bot.get_webhook_info()).url == ""

    run_with_bot(fake_telegram, body)


def test_wrong_token_and_unknown_method(fake_telegram: FakeTelegram) -> None:
    async def main() -> None:
        bot = telegram.Bot("999:wrong", base_url=f"{fake_telegram.url}/bot")
        with pytest.raises(InvalidToken):
            await bot.get_me()
        # Never initialized, so Bot.shutdown() would skip closing the HTTP pool.
        await bot.request.shutdown()

    asyncio.run(main())
    response = httpx.post(f"{fake_telegram.url}/bot{fake_telegram.token}/frobnicate")
    assert response.status_code == 404
    assert response.json() == {
        "ok": False,
        "error_code": 404,
        "description": "Not Found: method not found",
    }


def test_json_bodies_are_accepted(fake_telegram: FakeTelegram) -> None:
    fake_telegram.add_chat(CHAT)
    response = httpx.post(
        f"{fake_telegram.url}/bot{fake_telegram.token}/sendMessage",
        json={"chat_id": CHAT, "text": "<i>hi</i>", "parse_mode": "HTML"},
    )
    assert response.json()["result"]["text"] == "hi"


def test_application_echo_round_trip(fake_telegram: FakeTelegram) -> None:
    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.text is not None
        await update.message.reply_text(f"echo: {update.message.text}")

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await update.message.reply_html("<b>Welcome</b>")

    async def main() -> None:
        app = (
            Application.builder()
            .token(fake_telegram.token)
            .base_url(f"{fake_telegram.url}/bot")
            .base_file_url(f"{fake_telegram.url}/file/bot")
            .build()
        )
        app.add_handler(CommandHandler("start", start))
        app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
        await app.initialize()
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0)
        try:
            fake_telegram.send_text(CHAT, CHAT, "/start")
            fake_telegram.send_text(CHAT, CHAT, "what happened in Lisbon?")
            await fake_telegram.wait_for_async(lambda: len(fake_telegram.texts(CHAT)) == 2)
        finally:
            await app.updater.stop()
            await app.stop()
            await app.shutdown()

    asyncio.run(main())
    assert sorted(fake_telegram.texts(CHAT)) == ["Welcome", "echo: what happened in Lisbon?"]
    # Stopping the updater confirmed the processed updates with a final getUpdates.
    assert fake_telegram.pending_updates() == []
