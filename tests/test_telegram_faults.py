"""A bot that runs must not stop hearing or answering without saying so. Each fault comes from
the fake Bot API over real HTTP: 401 and 409 while polling, 500/403/429 on sendMessage, and
SIGINT/SIGTERM while an answer hangs.

Deadlines only bound a hung test; nothing asserts on speed.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from chroma_run import free_port
from fakes.openai_server import FakeOpenAI, Hang
from fakes.telegram_server import FakeTelegram, webhook_update
from telegram.ext import Application
from test_cli import cli_env
from test_faults import BotProcess, polling_started
from test_telegram import (
    TOKEN,
    Stub,
    bot_settings,
    echo,
    replies,
    run_bot,
    shown,
)

import bot.telegram
import bot.telegram_delivery
from bot.telegram import SOMETHING_WRONG, build_application, webhook_options
from index.engine import NewsChatEngine
from index.settings import Settings

STOP_BOUND = 30.0  # a stopped bot must be gone well before this (bounds a hang only)


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram(token=TOKEN) as fake:
        yield fake


# --- sending: 500, 403, 429 -------------------------------------------------------------------


def test_a_500_on_send_is_retried_and_the_answer_arrives(tg: FakeTelegram, tmp_path: Path) -> None:
    settings = bot_settings(tmp_path, tg)

    async def scenario(app: Application) -> None:
        tg.fail_next("sendMessage", 500, times=2)
        tg.send_text(7, 7, "first question?")
        [answer] = await replies(tg, 7, 1)
        assert answer["text"] == shown(echo("first question?"))

    run_bot(tg, settings, Stub(echo), scenario)
    assert len(tg.calls_to("sendMessage")) == 3  # two 500s, then the answer
    assert SOMETHING_WRONG not in tg.texts(7)


def test_a_blocked_chat_gets_nothing_and_is_logged_once(
    tg: FakeTelegram, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = bot_settings(tmp_path, tg)
    caplog.set_level(logging.INFO)

    async def scenario(app: Application) -> None:
        tg.fail_next("sendMessage", 403, times=2)
        tg.send_text(8, 8, "are you there?")
        tg.send_text(8, 8, "hello?")
        await tg.wait_for_async(lambda: len(tg.calls_to("sendMessage")) >= 2, timeout=60)
        tg.send_text(9, 9, "other chat?")  # the bot keeps working for everyone else
        await replies(tg, 9, 1)

    run_bot(tg, settings, Stub(echo), scenario)
    to_8 = [c for c in tg.calls_to("sendMessage") if c["chat_id"] == 8]
    assert len(to_8) == 2  # one try per answer: no retry, no apology
    assert tg.texts(8) == []
    warned = [r for r in caplog.records if "does not accept messages" in r.getMessage()]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING
    assert "Traceback" not in caplog.text
    assert tg.texts(9) == [shown(echo("other chat?"))]


def test_endless_flood_limits_are_given_up_with_a_log_line(
    tg: FakeTelegram,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # PTB 22 warns in RetryAfter() otherwise
    monkeypatch.setattr(bot.telegram, "RATE_LIMIT_RETRIES", 0)
    monkeypatch.setattr(bot.telegram_delivery, "FLOOD_WAIT_TOTAL", 2.5)
    settings = bot_settings(tmp_path, tg)
    caplog.set_level(logging.INFO)

    async def scenario(app: Application) -> None:
        tg.fail_next("sendMessage", 429, retry_after=1, times=1000)
        tg.send_text(10, 10, "flooded?")
        await tg.wait_for_async(
            lambda: any("gave up sending" in r.getMessage() for r in caplog.records), timeout=60
        )
        await tg.wait_for_async(lambda: not tg.pending_updates(), timeout=60)
        await app.update_queue.join()

    run_bot(tg, settings, Stub(echo), scenario)
    calls = tg.calls_to("sendMessage")
    assert 2 <= len(calls) <= 3  # retry_after waited out twice within 2.5 s, then given up
    assert all(c["text"] != SOMETHING_WRONG for c in calls)  # no apology after a flood
    [line] = [r.getMessage() for r in caplog.records if "gave up sending" in r.getMessage()]
    assert "flood-limited" in line
    # PTB's rate limiter reports its own give-up with a traceback; the CLI silences that
    # logger, and newsdesk's own lines carry none.
    assert all(r.exc_info is None for r in caplog.records if r.name.startswith("bot."))


# --- polling: 409, 401 ------------------------------------------------------------------------


def bot_env(tmp_path: Path, tg: FakeTelegram, **extra: str) -> dict[str, str]:
    return cli_env(
        tmp_path / "data",
        tmp_path / "corpus",
        TELEGRAM_BOT_TOKEN=TOKEN,
        NEWSDESK_TELEGRAM_API_URL=tg.url,
        NEWSDESK_EMBED_THREADS="1",
        **extra,
    )


def ask_and_wait(bot_process: BotProcess, tg: FakeTelegram, chat: int, text: str) -> None:
    before = len(tg.messages(chat))
    tg.send_text(chat, chat, text)
    bot_process.wait_until(lambda: len(tg.messages(chat)) > before, f"an answer to {text!r}")


def test_polling_conflict_warns_once_and_a_revoked_token_ends_the_process(
    tmp_path: Path,
) -> None:
    (tmp_path / "corpus").mkdir()
    log = tmp_path / "bot.log"
    with FakeTelegram(token=TOKEN) as tg:
        proc = BotProcess(bot_env(tmp_path, tg), tmp_path, log)
        try:
            proc.wait_until(polling_started(tg, 0), "polling")
            # Another instance polls with the same token for a while: one warning, then the
            # bot hears messages again.
            tg.fail_next("getUpdates", 409, times=3)
            ask_and_wait(proc, tg, 5, "after the conflict?")
            # One rejected poll (a blip): polling goes on.
            tg.fail_next("getUpdates", 401, times=1)
            ask_and_wait(proc, tg, 5, "after one 401?")
            # The token is revoked for good: the process ends, non-zero, with one line.
            tg.fail_next("getUpdates", 401, times=1000)
            proc.proc.wait(90)
        finally:
            proc.stop()
    text = log.read_text(errors="replace")
    assert proc.proc.returncode == 1, text[-3000:]
    assert "Traceback" not in text, text[text.index("Traceback") - 1500 :][:4000]
    conflict = [line for line in text.splitlines() if "another process is polling" in line]
    assert len(conflict) == 1 and " WARNING " in conflict[0]
    last = text.strip().splitlines()[-1]
    assert last.startswith("newsdesk: Telegram rejected the bot token while polling (401")
    assert TOKEN.partition(":")[2] not in text


# --- stopping -------------------------------------------------------------------------------------


def test_sigterm_ends_the_bot_while_an_answer_hangs(
    tmp_path: Path, seeded: Settings, fake_openai: FakeOpenAI
) -> None:
    sig = signal.SIGTERM  # (SIGINT: the upload test below)
    log = tmp_path / "bot.log"
    with FakeTelegram(token=TOKEN) as tg:
        env = cli_env(
            seeded.data_dir,
            seeded.corpus_dir,
            TELEGRAM_BOT_TOKEN=TOKEN,
            NEWSDESK_TELEGRAM_API_URL=tg.url,
            OPENAI_API_KEY="sk-test",
            OPENAI_BASE_URL=fake_openai.base_url,
            NEWSDESK_LLM_TIMEOUT="120",
            NEWSDESK_EMBED_THREADS="1",
        )
        fake_openai.script(Hang(), Hang(), Hang())
        proc = BotProcess(env, tmp_path, log)
        try:
            proc.wait_until(polling_started(tg, 0), "polling")
            tg.send_text(6, 6, "What did Pakistan and Azerbaijan agree about defence hardware?")
            proc.wait_until(lambda: fake_openai.chat_requests, "the hanging LLM call")
            proc.proc.send_signal(sig)
            started = time.monotonic()
            proc.proc.wait(STOP_BOUND)
            waited = time.monotonic() - started
        finally:
            proc.stop()
    text = log.read_text(errors="replace")
    assert proc.proc.returncode == 0, text[-3000:]
    assert waited < STOP_BOUND
    assert f"{sig.name}: stopping" in text
    assert "Traceback" not in text


# --- webhook: malformed bodies with the right secret ------------------------------------------


def test_malformed_webhook_bodies_get_400_and_one_log_line(
    tg: FakeTelegram, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cret_token-3"
    settings = bot_settings(tmp_path, tg, telegram_webhook_secret=secret)
    port = free_port()
    options = webhook_options(settings, "https://bot.example.com/hook", port=port)
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret, "Content-Type": "application/json"}
    bodies = [b"{not json", b"\xff\xfe\x00binary", b"[1, 2, 3]", b'{"message": {}}', b""]
    good = webhook_update(7, 51, "still there?")
    tg.add_chat(51)
    caplog.set_level(logging.DEBUG)

    async def main() -> list[int]:
        app = build_application(settings, NewsChatEngine(Stub(echo)))
        await app.initialize()
        await app.start()
        assert app.updater is not None
        await app.updater.start_webhook(**options)
        try:
            hook = f"http://127.0.0.1:{port}/hook"
            async with httpx.AsyncClient(timeout=10) as client:
                codes = [
                    (await client.post(hook, content=body, headers=headers)).status_code
                    for body in bodies
                ]
                codes.append((await client.post(hook, json=good, headers=headers)).status_code)
            await replies(tg, 51, 1)
            return codes
        finally:
            await app.updater.stop()
            await app.stop()
            await app.shutdown()

    codes = asyncio.run(main())
    assert codes == [400] * len(bodies) + [200]
    lines = [r for r in caplog.records if "malformed update" in r.getMessage()]
    assert len(lines) == len(bodies)
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in lines)
    assert not any(r.levelno >= logging.ERROR for r in caplog.records), caplog.text[-3000:]
    assert tg.texts(51) == [shown(echo("still there?"))]


def test_a_stop_signal_ends_the_bot_while_an_upload_is_indexed(tmp_path: Path) -> None:
    (tmp_path / "corpus").mkdir()
    rows = [
        f'{{"url": "https://example.com/{i}", "title": "Harbour report {i}", '
        f'"text": "{"The harbour council met about the budget again. " * 12}{i}"}}'
        for i in range(400)
    ]
    log = tmp_path / "bot.log"
    with FakeTelegram(token=TOKEN) as tg:
        env = bot_env(tmp_path, tg, NEWSDESK_TELEGRAM_ADMINS="77")
        proc = BotProcess(env, tmp_path, log)
        try:
            proc.wait_until(polling_started(tg, 0), "polling")
            tg.send_document(77, 77, "harbour.jsonl", "\n".join(rows).encode())
            proc.wait_until(
                lambda: any(t.startswith("Indexing harbour.jsonl") for t in tg.texts(77)),
                "the upload's first reply",
            )
            time.sleep(1.0)  # into the indexing
            proc.proc.send_signal(signal.SIGINT)
            proc.proc.wait(STOP_BOUND)
        finally:
            proc.stop()
    text = log.read_text(errors="replace")
    assert proc.proc.returncode == 0, text[-3000:]
    assert "SIGINT: stopping" in text
    assert "Traceback" not in text
    assert not tg.texts(77)[0].startswith("Added")  # it was stopped before the end
