"""End to end: the real PTB Application (built by bot.telegram.build_application) polls the
fake Bot API on 127.0.0.1; answers come from the real Answerer over the seed index, or from
stub answerers with the same interface where a test needs a particular answer.

Each test runs its own event loop with asyncio.run (no pytest-asyncio). Waits have generous
deadlines that only bound a hung test; nothing asserts on speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chroma_run import free_port
from conftest import make_settings
from fakes.openai_server import Error, FakeOpenAI, Reply, Slow
from fakes.telegram_server import FakeTelegram, parse_html, webhook_update
from telegram.ext import Application
from typer.testing import CliRunner

from bot.telegram import (
    ADMINS_ONLY,
    NOT_ALLOWED,
    RATE_LIMIT_RETRIES,
    SOMETHING_WRONG,
    TEXT_PLEASE,
    UNKNOWN_COMMAND,
    TelegramConfigError,
    build_application,
    check_token,
    install_log_redaction,
    run,
    safe_filename,
    webhook_options,
)
from bot.telegram_format import format_answer, html_to_plain
from index.answer import Answerer
from index.engine import NewsChatEngine
from index.models import Answer, Citation, Query, Resolved
from index.settings import Settings

# Shaped like a BotFather token (the fake's default "123456:TEST-token" is too short to pass
# the bot's start-up check); the fake derives the bot's user id from the part before ":".
TOKEN = "123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SECRET = TOKEN.partition(":")[2]
BOT = "@newsdesk_test_bot"
QUESTION = "What did Pakistan and Azerbaijan agree about defence hardware?"
SEED_TITLE = "Pakistan and Azerbaijan agree to deepen trade, energy and defence cooperation"
WAIT = 60.0  # deadline for one expected reply (only bounds a hung test)


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram(token=TOKEN) as fake:
        yield fake


def bot_settings(base: Path | Settings, tg: FakeTelegram, **overrides: Any) -> Settings:
    root = base.data_dir.parent if isinstance(base, Settings) else base
    return make_settings(root, telegram_bot_token=TOKEN, telegram_api_url=tg.url, **overrides)


LlmBot = Callable[..., tuple[Settings, Answerer]]


@pytest.fixture
def llm_bot(tg: FakeTelegram, fake_openai: FakeOpenAI, seeded: Settings, embedder: Any) -> LlmBot:
    """Make bot settings and an LLM-mode answerer whose LLM is the fake OpenAI server."""

    def make(**overrides: Any) -> tuple[Settings, Answerer]:
        settings = bot_settings(
            seeded,
            tg,
            openai_base_url=fake_openai.base_url,
            openai_api_key="k",
            llm_model="m",
            **overrides,
        )
        answerer = Answerer(settings, embedder=embedder)
        assert answerer.llm is not None
        return settings, answerer

    return make


def run_bot(
    tg: FakeTelegram,
    settings: Settings,
    answerer: Any,
    scenario: Callable[[Application], Awaitable[Any]],
) -> Any:
    """Start the app like run_polling does (initialize, post_init, start, poll), run the
    scenario, stop."""

    async def main() -> Any:
        app = build_application(settings, NewsChatEngine(answerer))
        await app.initialize()
        assert app.post_init is not None
        await app.post_init(app)
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        try:
            return await scenario(app)
        finally:
            await app.updater.stop()
            await app.stop()
            await app.shutdown()

    return asyncio.run(main())


async def settle(tg: FakeTelegram, app: Application) -> None:
    """Every injected update has been fetched and fully handled."""
    await tg.wait_for_async(lambda: not tg.pending_updates(), timeout=WAIT)
    await asyncio.wait_for(app.update_queue.join(), WAIT)


async def replies(tg: FakeTelegram, chat: int, n: int) -> list[dict[str, Any]]:
    """Wait until the bot has sent ``n`` messages to ``chat``; return them."""
    await tg.wait_for_async(lambda: len(tg.messages(chat)) >= n, timeout=WAIT)
    return tg.messages(chat)


async def settled(tg: FakeTelegram, chat: int, n: int) -> list[dict[str, Any]]:
    """``replies``, once every upload's status message shows its outcome (uploads are
    indexed in the background, their first reply edited when done)."""

    def done() -> bool:
        texts = tg.texts(chat)
        return len(texts) >= n and not any(t.startswith("Indexing ") for t in texts)

    await tg.wait_for_async(done, timeout=WAIT)
    return tg.messages(chat)


def link_urls(message: dict[str, Any]) -> list[str]:
    return [e["url"] for e in message.get("entities", []) if e["type"] == "text_link"]


class Stub:
    """The Answerer's interface (ask, respond, astream, reset) with scripted answers."""

    def __init__(
        self,
        make: Callable[[str], Answer],
        *,
        deltas: list[str] | None = None,
        delay: float = 0.0,
        streams: bool = False,
    ) -> None:
        self.make = make
        self.deltas = deltas or []
        self.delay = delay
        self.llm = object() if streams else None
        self.asked: list[tuple[str | None, str]] = []
        self.resets: list[str] = []

    def ask(self, question: str, conversation_id: str | None = None, **_: Any) -> Answer:
        self.asked.append((conversation_id, question))
        return self.make(question)

    def respond(
        self, question: str, conversation_id: str | None = None, **_: Any
    ) -> tuple[Resolved, Answer]:
        return Resolved(question, question, Query(question), []), self.ask(
            question, conversation_id
        )

    async def astream(
        self, question: str, conversation_id: str | None = None, **_: Any
    ) -> AsyncIterator[str | Answer]:
        for delta in self.deltas:
            await asyncio.sleep(self.delay)
            yield delta
        yield self.ask(question, conversation_id)

    def reset(self, conversation_id: str) -> None:
        self.resets.append(conversation_id)


def cite(n: int, title: str = "", url: str = "") -> Citation:
    return Citation(
        n=n,
        title=title or f"Article {n}",
        source="example.com",
        published="2022-06-10",
        url=url or f"https://example.com/{n}",
        quote="",
    )


def shown(answer: Answer) -> str:
    """What Telegram displays for the bot's HTML of ``answer``."""
    return parse_html(format_answer(answer))[0]


def echo(question: str) -> Answer:
    return Answer(text=f"You asked: {question} [1]", citations=[cite(1)])


# --- private chats with the real answerer ------------------------------------------------------


def test_private_question_follow_up_and_commands(
    tg: FakeTelegram, seeded: Settings, embedder: Any
) -> None:
    settings = bot_settings(seeded, tg)
    chat = 4242

    async def scenario(app: Application) -> None:
        asked = tg.send_text(chat, chat, QUESTION)
        [first] = await replies(tg, chat, 1)
        assert first["reply_to_message"]["message_id"] == asked["message_id"]
        assert "joint sale of defense hardware" in first["text"]
        assert re.search(r"hardware, [^\[]*\[1\]", first["text"])
        assert f"Sources\n1. {SEED_TITLE}" in first["text"]
        assert "newsdesk seed, 2025-01-24" in first["text"]
        assert {"type": "bold", "offset": first["text"].index("Sources"), "length": 7} in (
            first["entities"]
        )

        tg.send_text(chat, chat, "and what about energy?")
        second = (await replies(tg, chat, 2))[1]
        assert "energy" in second["text"] and "[1]" in second["text"]

        for command in ["/help", "/sources", "/status", "/reset", "/frobnicate"]:
            tg.send_text(chat, chat, command)
        texts = [m["text"] for m in (await replies(tg, chat, 7))[2:]]
        help_text, sources, status, reset, unknown = texts
        assert "4 indexed news articles published 2022-06-10 to 2025-01-24" in help_text
        assert BOT in help_text
        assert sources.splitlines()[1].startswith(f"1. {SEED_TITLE}")  # newest first
        assert "2. Chipmaker opens new plant in Arizona — example.com, 2022-08-15" in sources
        assert "https://example.com/2022/08/15/chip-plant" in link_urls(tg.messages(chat)[3])
        assert "articles: 4" in status and "offline" in status and "open to everyone" in status
        assert "forgot" in reset
        assert unknown == UNKNOWN_COMMAND

    run_bot(tg, settings, Answerer(settings, embedder=embedder), scenario)
    commands = [c["command"] for c in tg.my_commands()]
    assert sorted(commands) == [
        *["digest", "follow", "following", "help", "reindex", "reset", "sources", "start"],
        *["status", "story", "unfollow"],
    ]


def test_story_command_shows_the_timeline_of_a_source(
    tg: FakeTelegram, seeded: Settings, embedder: Any
) -> None:
    settings = bot_settings(seeded, tg)
    chat = 4343

    async def scenario(app: Application) -> None:
        tg.send_text(chat, chat, QUESTION)
        await replies(tg, chat, 1)
        for command in ["/story 1", "/story 9", "/story"]:
            tg.send_text(chat, chat, command)
        story, missing, usage = [m["text"] for m in (await replies(tg, chat, 4))[1:]]
        header, entry = story.splitlines()[:2]
        assert header.startswith(SEED_TITLE) and header.endswith("Commission — 1 report")
        assert entry.startswith("2025-01-24 · newsdesk seed: Pakistan and Azerbaijan")
        assert "No story 9" in missing
        assert usage.startswith("Usage: /story N")

    run_bot(tg, settings, Answerer(settings, embedder=embedder), scenario)


def test_non_text_and_unusable_questions(tg: FakeTelegram, seeded: Settings, embedder: Any) -> None:
    settings = bot_settings(seeded, tg, max_question_chars=100)
    chat = 77

    async def scenario(app: Application) -> None:
        tg.send_sticker(chat, chat)
        tg.send_photo(chat, chat)
        tg.send_text(chat, chat, "x " * 80)
        tg.send_text(chat, chat, "?? !!")
        texts = [m["text"] for m in await replies(tg, chat, 4)]
        assert texts[:2] == [TEXT_PLEASE, TEXT_PLEASE]
        assert "please keep it under 100" in texts[2]
        assert "couldn't find any words" in texts[3]

    run_bot(tg, settings, Answerer(settings, embedder=embedder), scenario)


# --- groups ------------------------------------------------------------------------------------


def test_groups_answer_mentions_and_replies_only(tg: FakeTelegram, tmp_path: Path) -> None:
    settings = bot_settings(tmp_path, tg)
    stub = Stub(echo)
    group, forum = -100200, -100300

    async def scenario(app: Application) -> None:
        tg.send_text(group, 7, QUESTION, chat_type="supergroup")  # not for the bot
        tg.send_sticker(group, 7, chat_type="supergroup")  # neither is this
        asked = tg.send_text(group, 7, f"{BOT} what did they agree?", chat_type="supergroup")
        [answer] = await replies(tg, group, 1)
        assert answer["reply_to_message"]["message_id"] == asked["message_id"]
        assert answer["text"].startswith("You asked: what did they agree? [1]")

        # A reply to the bot's message is for the bot; a reply to someone else is not.
        tg.send_text(group, 8, "and the other side?", "supergroup", asked["message_id"])
        tg.send_text(group, 8, "and why?", "supergroup", answer["message_id"])
        second = (await replies(tg, group, 2))[1]
        assert second["text"].startswith("You asked: and why? [1]")
        tg.send_text(forum, 7, f"hey {BOT}, any news?", "supergroup", message_thread_id=5)
        [threaded] = await replies(tg, forum, 1)
        assert threaded["message_thread_id"] == 5
        await settle(tg, app)

    run_bot(tg, settings, stub, scenario)
    assert len(tg.messages(group)) == 2
    assert stub.asked == [
        (f"tg:{group}", "what did they agree?"),
        (f"tg:{group}", "and why?"),
        (f"tg:{forum}:thread:5", "hey any news?"),
    ]


# --- access control ----------------------------------------------------------------------------


def test_allowlist_refuses_once_then_stays_silent(tg: FakeTelegram, tmp_path: Path) -> None:
    settings = bot_settings(tmp_path, tg, telegram_allowed_users=[1], telegram_admins=[9])
    stub = Stub(echo)

    async def scenario(app: Application) -> None:
        tg.send_text(2, 2, "who are you?")
        tg.send_text(2, 2, "hello?")
        tg.send_text(2, 2, "/help")
        tg.send_sticker(2, 2)
        tg.send_text(1, 1, "allowed question?")
        tg.send_text(9, 9, "admin question?")
        await replies(tg, 1, 1)
        await replies(tg, 9, 1)
        await settle(tg, app)

    run_bot(tg, settings, stub, scenario)
    assert tg.texts(2) == [NOT_ALLOWED]
    # Two chats are answered concurrently, so only the set of questions asked is fixed.
    assert sorted(q for _, q in stub.asked) == ["admin question?", "allowed question?"]


# --- admin: /reindex and uploads ----------------------------------------------------------------

TRAM_ARTICLE = """---
title: Lisbon opens a new tram line to Belem
url: https://example.com/2022/09/01/lisbon-tram
source: example.com
published: 2022-09-01
---

Lisbon opened a new tram line on Thursday that links the city centre with Belem.
The tram line cost 40 million euros and carries 20,000 passengers a day, the mayor said.
"""


def test_admin_reindex_and_uploads(
    tg: FakeTelegram, seeded: Settings, embedder: Any, tmp_path: Path
) -> None:
    admin, user = 900, 901
    settings = bot_settings(seeded, tg, telegram_admins=[admin], max_upload_bytes=3000)
    corpus = settings.corpus_dir

    async def scenario(app: Application) -> None:
        tg.send_text(user, user, "/reindex")
        tg.send_document(user, user, "tram.md", TRAM_ARTICLE.encode())
        assert [m["text"] for m in await replies(tg, user, 2)] == [ADMINS_ONLY] * 2

        tg.send_text(admin, admin, "/reindex")
        [reindexed] = await replies(tg, admin, 1)
        assert reindexed["text"].startswith("Re-indexed the corpus\nadded 0 · updated 0 · unch")
        assert "unchanged 4" in reindexed["text"]

        tg.send_document(admin, admin, "../../lisbon tram.md", TRAM_ARTICLE.encode())
        added = (await settled(tg, admin, 2))[1]["text"]
        assert added.startswith("Added lisbon_tram.md (1 article: “Lisbon opens a new tram")
        assert "added 1 · updated 0 · unchanged 4" in added

        tg.send_text(admin, admin, "How much did the new tram line in Lisbon cost?")
        answer = (await replies(tg, admin, 3))[2]
        assert "40 million euros" in answer["text"]
        assert "Lisbon opens a new tram line to Belem" in answer["text"]
        assert link_urls(answer) == ["https://example.com/2022/09/01/lisbon-tram"]

        big = tg.send_document(admin, admin, "big.md", b"# Big\n\n" + b"word " * 1000)
        tg.send_document(admin, admin, "photo.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 20)
        tg.send_document(admin, admin, "latin.txt", "Café title\n\ncafé au lait".encode("latin-1"))
        tg.send_document(admin, admin, "feed.json", b'{"title": "x", "text": ')
        tg.send_document(admin, admin, "report.pdf", b"%PDF-1.4")
        tg.send_document(admin, admin, "empty.md", b"---\ntitle: Nothing\n---\n")
        texts = [m["text"] for m in (await settled(tg, admin, 9))[3:]]
        assert texts[0] == "Rejected big.md: 5 kB is over the 3 kB limit."
        assert texts[1] == "Rejected photo.md: binary file, not text."
        assert texts[2].startswith("Rejected latin.txt: not UTF-8 text")
        assert texts[3].startswith("Rejected feed.json: malformed JSON")
        assert texts[4].startswith("Rejected report.pdf: unsupported file type")
        assert texts[5] == "Rejected empty.md: no article text."
        downloaded = {c["file_id"] for c in tg.calls_to("getFile")}
        assert big["document"]["file_id"] not in downloaded  # size checked before download

    run_bot(tg, settings, Answerer(settings, embedder=embedder), scenario)
    assert sorted(p.name for p in corpus.iterdir()) == [
        "000_pakistan-azerbaijan-joint-ministerial-commission.md",
        "lisbon_tram.md",
        "other.jsonl",
    ]
    assert not list(tmp_path.parent.glob("lisbon*"))  # nothing escaped the corpus folder


def test_safe_filename() -> None:
    assert safe_filename("../../x.md") == "x.md"
    assert safe_filename("..\\..\\evil.MD") == "evil.md"
    assert safe_filename("/etc/passwd") == "passwd"
    assert safe_filename(".hidden.md") == "hidden.md"
    assert safe_filename("..") == "upload"
    assert safe_filename("a b;c$(rm).jsonl") == "a_b_c_rm.jsonl"
    assert len(safe_filename("x" * 500 + ".md")) == 103


# --- formatting end to end ----------------------------------------------------------------------

HOSTILE = "<script>alert(1)</script> & *bold* `code` <b>unclosed **broken [1]"


def scripted(question: str) -> Answer:
    if question.startswith("long"):
        sentences = [
            f"Point {i}: the minister said talks went well. [{i % 3 + 1}]" for i in range(110)
        ]
        text = " ".join(sentences[:60]) + "\n\n" + " ".join(sentences[60:])
        return Answer(text=text, citations=[cite(1), cite(2), cite(3)])
    if question.startswith("hostile"):
        return Answer(
            text=HOSTILE,
            citations=[cite(1, title="<i>T&C</i>", url='https://ex.com/?a=1&b="2"')],
        )
    return echo(question)


def test_long_hostile_and_unparseable_answers(tg: FakeTelegram, tmp_path: Path) -> None:
    settings = bot_settings(tmp_path, tg)

    async def scenario(app: Application) -> None:
        tg.send_text(1, 1, "long answer please")
        parts = await replies(tg, 1, 2)
        await settle(tg, app)
        assert len(tg.messages(1)) == 2
        full = scripted("long")
        assert len(full.text) > 5000
        assert all(len(p["text"]) <= 4096 for p in parts)
        assert parts[0]["text"].endswith("[3]") and parts[1]["text"].startswith("Point 60:")
        shown = "".join("".join(p["text"].split()) for p in parts)
        assert shown == "".join(parse_html(format_answer(full))[0].split())
        assert link_urls(parts[1]) == [f"https://example.com/{n}" for n in (1, 2, 3)]

        tg.send_text(2, 2, "hostile answer please")
        [hostile] = await replies(tg, 2, 1)
        assert hostile["text"].startswith(HOSTILE)
        assert "1. <i>T&C</i> — example.com" in hostile["text"]
        assert link_urls(hostile) == ['https://ex.com/?a=1&b="2"']

        # Telegram refuses the HTML (as it might for a tag we did not foresee): resent plain.
        tg.fail_next(
            "sendMessage",
            status=400,
            description="Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"b\"",
        )
        tg.send_text(3, 3, "plain please")
        [plain] = await replies(tg, 3, 1)
        sent = [c for c in tg.calls_to("sendMessage") if c["chat_id"] == 3]
        assert [c.get("parse_mode") for c in sent] == ["HTML", None]
        assert plain["text"] == html_to_plain(format_answer(echo("plain please")))
        assert "entities" not in plain

    run_bot(tg, settings, Stub(scripted), scenario)
    assert all(c.get("parse_mode") == "HTML" for c in tg.calls_to("sendMessage")[:-1])


# --- streaming ----------------------------------------------------------------------------------

LLM_TEXT = (
    "Pakistan and Azerbaijan agreed to accelerate the signature of a MOU for the production "
    "and joint sale of defense hardware [1]. Both countries agreed to implement the "
    "preferential commercial agreement between Azerbaijan and Pakistan signed in July 2024 [1]."
)


def test_streaming_edits_survive_429_and_llm_outage_shows_note(
    tg: FakeTelegram, fake_openai: FakeOpenAI, llm_bot: LlmBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PTB 22 warns inside RetryAfter() unless it may use timedelta (PTB 23's behaviour).
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    settings, answerer = llm_bot(llm_max_retries=0)

    async def scenario(app: Application) -> None:
        fake_openai.script(Slow(LLM_TEXT, delay=0.2, chunk_words=2))
        tg.fail_next("editMessageText", status=429, retry_after=1)
        tg.send_text(1, 1, QUESTION)
        await tg.wait_for_async(lambda: "Sources" in "".join(tg.texts(1)), timeout=WAIT)
        [final] = tg.messages(1)  # the preview message became the final answer
        assert final["text"].startswith("Pakistan and Azerbaijan agreed to accelerate")
        assert f"Sources\n1. {SEED_TITLE}" in final["text"]
        sends = [c for c in tg.calls_to("sendMessage") if c["chat_id"] == 1]
        edits = [c for c in tg.calls_to("editMessageText") if c["chat_id"] == 1]
        assert len(sends) == 1 and "parse_mode" not in sends[0]  # a plain-text preview
        assert sends[0]["text"].endswith(" …")
        assert len(edits) >= 3  # the one that got 429, its retry, ..., the final
        assert [e.get("parse_mode") for e in edits][-1] == "HTML"
        previews = [e["text"] for e in edits[:-1]]
        assert all(p.endswith(" …") for p in previews)
        assert len(set(previews)) == len(previews) - 1  # only the 429'd edit was repeated
        assert fake_openai.chat_requests[0]["json"]["stream"] is True

        fake_openai.script(Error(500))
        tg.send_text(2, 2, QUESTION)
        [fallback] = await replies(tg, 2, 1)
        assert "joint sale of defense hardware" in fallback["text"]
        assert "LLM unavailable (HTTP 500); offline answer shown." in fallback["text"]

    run_bot(tg, settings, answerer, scenario)


def test_group_streaming_edits_less_often(tg: FakeTelegram, tmp_path: Path) -> None:
    settings = bot_settings(tmp_path, tg)
    stub = Stub(echo, deltas=[f"word{i} " for i in range(30)], delay=0.1, streams=True)

    async def scenario(app: Application) -> None:
        tg.send_text(-5, 7, f"{BOT} stream please", chat_type="group")
        await tg.wait_for_async(lambda: "Sources" in "".join(tg.texts(-5)), timeout=WAIT)

    run_bot(tg, settings, stub, scenario)
    # ~3 s of deltas, a preview at most every 3 s in a group: one preview, then the final edit.
    assert len(tg.calls_to("sendMessage")) == 1
    assert len(tg.calls_to("editMessageText")) <= 2
    assert tg.texts(-5) == [shown(echo("stream please"))]


def test_typing_until_the_answer_and_final_text_after_flood_limits(
    tg: FakeTelegram, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.telegram_delivery

    monkeypatch.setattr(bot.telegram_delivery, "TYPING_DELAY", 0.2)
    monkeypatch.setattr(bot.telegram_delivery, "TYPING_EVERY", 0.2)
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    settings = bot_settings(tmp_path, tg)

    def slow(question: str) -> Answer:
        # Slow until "typing…" was renewed twice (the deadline only bounds a broken Typing).
        with contextlib.suppress(TimeoutError):
            tg.wait_for(lambda: len(tg.calls_to("sendChatAction")) >= 3, timeout=WAIT / 2)
        return echo(question)

    async def scenario(app: Application) -> None:
        # More 429s than the rate limiter retries: the bot itself waits and sends again.
        tg.fail_next("sendMessage", status=429, retry_after=1, times=RATE_LIMIT_RETRIES + 1)
        tg.send_text(1, 1, "slow one?")
        [answer] = await replies(tg, 1, 1)
        assert answer["text"] == shown(echo("slow one?"))

    run_bot(tg, settings, Stub(slow), scenario)
    names = [method for method, params in tg.calls if params.get("chat_id") == 1]
    first_send = names.index("sendMessage")
    assert names[:first_send].count("sendChatAction") >= 3
    assert "sendChatAction" not in names[first_send:]  # no "typing…" after the answer
    assert names[first_send:] == ["sendMessage"] * (RATE_LIMIT_RETRIES + 2)


def test_typing_only_while_an_answer_is_not_done(
    tg: FakeTelegram, fake_openai: FakeOpenAI, llm_bot: LlmBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.telegram_delivery

    settings, answerer = llm_bot()
    fast, slow = 1, 2
    real_delay = bot.telegram_delivery.TYPING_DELAY

    def typing_in(chat: int) -> list[dict[str, Any]]:
        return [c for c in tg.calls_to("sendChatAction") if c["chat_id"] == chat]

    def held_until_typing(request: dict[str, Any]) -> str:
        # A slow LLM: it answers once "typing…" shows (the deadline only bounds a broken
        # Typing, whose missing action the assertions below then report).
        with contextlib.suppress(TimeoutError):
            tg.wait_for(lambda: typing_in(slow), timeout=WAIT / 3)
        return LLM_TEXT

    async def scenario(app: Application) -> None:
        # "Fast" must not be a bet on this machine's speed: the delay is made far longer
        # than the answer takes, and stop() has to drop the pending action.
        monkeypatch.setattr(bot.telegram_delivery, "TYPING_DELAY", WAIT)
        fake_openai.script(Reply(LLM_TEXT))
        tg.send_text(fast, fast, QUESTION)
        await tg.wait_for_async(lambda: "Sources" in "".join(tg.texts(fast)), timeout=WAIT)
        await settle(tg, app)
        assert typing_in(fast) == []
        pending = [t for t in asyncio.all_tasks() if "Typing._run" in repr(t.get_coro())]
        assert pending == []  # no stray task waiting to send it

        monkeypatch.setattr(bot.telegram_delivery, "TYPING_DELAY", real_delay)
        fake_openai.responder = held_until_typing
        tg.send_text(slow, slow, QUESTION)
        await tg.wait_for_async(lambda: "Sources" in "".join(tg.texts(slow)), timeout=WAIT)
        await settle(tg, app)

    run_bot(tg, settings, answerer, scenario)
    names = [method for method, params in tg.calls if params.get("chat_id") == slow]
    assert names.count("sendChatAction") >= 1
    assert "sendChatAction" not in names[names.index("sendMessage") :]  # none after the text
    for chat in (fast, slow):  # both answers came from the LLM, not the offline fallback
        assert tg.texts(chat)[0].startswith("Pakistan and Azerbaijan agreed to accelerate")


# --- concurrency --------------------------------------------------------------------------------

QUESTIONS = [
    QUESTION,
    "Why did rail workers walk out?",
    "How hot did it get in Seville?",
    "Where did the chipmaker open a factory?",
    "What was discussed about gas storage?",
]


def test_twenty_chats_five_messages_each_in_order(
    tg: FakeTelegram, seeded: Settings, embedder: Any
) -> None:
    settings = bot_settings(seeded, tg)
    chats = list(range(5001, 5021))

    async def scenario(app: Application) -> dict[int, list[int]]:
        asked: dict[int, list[int]] = {chat: [] for chat in chats}
        for question in QUESTIONS:
            for chat in chats:
                asked[chat].append(tg.send_text(chat, chat, question)["message_id"])
        await tg.wait_for_async(
            lambda: all(len(tg.messages(chat)) >= 5 for chat in chats), timeout=180
        )
        return asked

    asked = run_bot(tg, settings, Answerer(settings, embedder=embedder), scenario)
    for chat in chats:
        messages = tg.messages(chat)
        assert len(messages) == 5
        assert [m["reply_to_message"]["message_id"] for m in messages] == asked[chat]
        assert all(m["text"].strip() for m in messages)
        assert "defense hardware" in messages[0]["text"]


# --- errors and logs ----------------------------------------------------------------------------


def test_errors_are_reported_and_the_token_never_logged(
    tg: FakeTelegram, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = bot_settings(tmp_path, tg)

    def flaky(question: str) -> Answer:
        if question.startswith("boom"):
            raise RuntimeError(f"internal failure calling {tg.url}/bot{TOKEN}/x")
        return echo(question)

    async def scenario(app: Application) -> None:
        tg.send_text(1, 1, "boom please")
        tg.send_text(1, 1, "still there?")
        texts = [m["text"] for m in await replies(tg, 1, 2)]
        assert texts[0] == SOMETHING_WRONG
        assert texts[1].startswith("You asked: still there?")  # the bot kept running

    caplog.set_level(logging.DEBUG)
    uninstall = install_log_redaction(TOKEN)
    httpx_logger = logging.getLogger("httpx")
    level = httpx_logger.level
    httpx_logger.setLevel(logging.DEBUG)  # prove the filter, not just the quiet level
    try:
        run_bot(tg, settings, Stub(flaky), scenario)
    finally:
        httpx_logger.setLevel(level)
        uninstall()
    assert "Traceback" in caplog.text and "RuntimeError: internal failure" in caplog.text
    assert "OPEN to everyone" in caplog.text  # no allowlist: the start-up log says so
    assert "HTTP Request: POST" in caplog.text  # httpx did log its URLs...
    assert "[REDACTED]" in caplog.text
    assert SECRET not in caplog.text  # ...but never the token
    assert all(SECRET not in r.getMessage() for r in caplog.records)


# --- configuration, CLI, webhook -----------------------------------------------------------------


def test_token_is_checked_before_any_network_call(tg: FakeTelegram, tmp_path: Path) -> None:
    with pytest.raises(TelegramConfigError, match="not set"):
        check_token(make_settings(tmp_path))
    for bad in ["123456:short", "bot123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", "AAAA" * 10]:
        settings = make_settings(tmp_path, telegram_bot_token=bad, telegram_api_url=tg.url)
        with pytest.raises(TelegramConfigError, match="malformed") as caught:
            run(settings)
        assert bad not in str(caught.value)
    settings = bot_settings(tmp_path, tg)
    with pytest.raises(TelegramConfigError, match="webhook-url"):
        run(settings, webhook_url="ftp://example.com/hook")
    assert tg.calls == []
    assert check_token(settings) == TOKEN


def test_cli_reports_config_errors_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.cli

    settings = make_settings(tmp_path, telegram_bot_token="not-a-token")
    monkeypatch.setattr(bot.cli, "_settings", lambda: settings)
    result = CliRunner().invoke(bot.cli.app, ["telegram"])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("newsdesk: TELEGRAM_BOT_TOKEN is malformed")


def test_webhook_mode_checks_the_secret(tg: FakeTelegram, tmp_path: Path) -> None:
    settings = bot_settings(tmp_path, tg, telegram_webhook_secret="s3cret_token-1")
    port = free_port()
    options = webhook_options(settings, "https://bot.example.com/hooks/newsdesk", port=port)
    assert options["url_path"] == "hooks/newsdesk" and options["listen"] == "127.0.0.1"
    tg.add_chat(31)
    update = webhook_update(1, 31, "hello there?")

    async def main() -> None:
        app = build_application(settings, NewsChatEngine(Stub(echo)))
        await app.initialize()
        await app.start()
        assert app.updater is not None
        await app.updater.start_webhook(**options)
        try:
            hook = f"http://127.0.0.1:{port}/hooks/newsdesk"
            async with httpx.AsyncClient() as client:
                wrong = {"X-Telegram-Bot-Api-Secret-Token": "nope"}
                assert (await client.post(hook, json=update, headers=wrong)).status_code == 403
                right = {"X-Telegram-Bot-Api-Secret-Token": "s3cret_token-1"}
                assert (await client.post(hook, json=update, headers=right)).status_code == 200
            await replies(tg, 31, 1)
        finally:
            await app.updater.stop()
            await app.stop()
            await app.shutdown()

    asyncio.run(main())
    [set_webhook] = tg.calls_to("setWebhook")
    assert set_webhook["url"] == "https://bot.example.com/hooks/newsdesk"
    assert set_webhook["secret_token"] == "s3cret_token-1"
    assert tg.texts(31) == [shown(echo("hello there?"))]
