"""Big uploads from Telegram: a first reply at once, indexing in the background with progress
edits and a final summary, a bounded record count, "already indexing" for /reindex or another
upload meanwhile, and a corpus file that links out of the corpus folder left alone.

Over the fake Bot API with the real answerer; deadlines only bound a hung test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.telegram_server import FakeTelegram
from telegram.ext import Application
from test_telegram import TOKEN, bot_settings, replies, run_bot

import bot.telegram_uploads
from index.answer import Answerer
from index.settings import Settings

ADMIN = 700
WAIT = 180.0


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram(token=TOKEN) as fake:
        yield fake


def feed(n: int, topic: str = "harbour") -> bytes:
    rows = [
        {
            "url": f"https://example.com/2022/10/{i}/{topic}",
            "title": f"The {topic} council report number {i}",
            "published": "2022-10-01",
            "text": f"The {topic} council met on Tuesday about item {i} of the budget. "
            f"Item {i} covers repairs to the {topic} walls and costs {i} thousand euros.",
        }
        for i in range(n)
    ]
    return "\n".join(json.dumps(r) for r in rows).encode() + b"\n"


def status_edits(tg: FakeTelegram, chat: int, message_id: int) -> list[str]:
    return [
        c["text"]
        for c in tg.calls_to("editMessageText")
        if c["chat_id"] == chat and c["message_id"] == message_id
    ]


def test_a_big_upload_is_indexed_in_the_background(
    tg: FakeTelegram, seeded: Settings, embedder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bot.telegram_uploads, "PROGRESS_EVERY", 0.2)
    monkeypatch.setattr(bot.telegram_uploads, "PARSE_AT_ONCE_BYTES", 100)  # parse it later too
    settings = bot_settings(seeded, tg, telegram_admins=[ADMIN], max_upload_records=60)

    async def scenario(app: Application) -> dict[str, Any]:
        tg.send_document(ADMIN, ADMIN, "harbour.jsonl", feed(40))
        [first] = await replies(tg, ADMIN, 1)
        # While it indexes, the same admin asks for more indexing: told how far it has got.
        tg.send_text(ADMIN, ADMIN, "/reindex")
        tg.send_document(ADMIN, ADMIN, "second.jsonl", feed(3, "river"))
        busy = (await replies(tg, ADMIN, 3))[1:]
        await tg.wait_for_async(
            lambda: tg.messages(ADMIN)[0]["text"].startswith("Added"), timeout=WAIT
        )
        tg.send_text(ADMIN, ADMIN, "What do the repairs to the harbour walls in item 7 cost?")
        answer = (await replies(tg, ADMIN, 4))[3]
        return {"first": first, "busy": busy, "answer": answer}

    seen = run_bot(tg, settings, Answerer(settings, embedder=embedder), scenario)
    first = seen["first"]
    assert first["text"] == "Indexing harbour.jsonl (40 records)…"
    for message in seen["busy"]:
        assert message["text"].startswith("Already indexing harbour.jsonl, ")
        assert message["text"].endswith("try again when it is done.")
    final = tg.messages(ADMIN)[0]["text"]
    assert final.startswith("Added harbour.jsonl (40 articles: “The harbour council report")
    assert "added 40" in final
    edits = status_edits(tg, ADMIN, first["message_id"])
    progress = edits[:-1]
    assert progress  # embedding 40 articles takes longer than one 0.2 s progress tick
    assert all(
        e.startswith("Indexing harbour.jsonl: ") and "of 40 articles done" in e for e in progress
    )
    assert len(set(progress)) == len(progress)  # an edit only when the count moved
    assert "7 thousand euros" in seen["answer"]["text"]
    assert not (settings.corpus_dir / "second.jsonl").exists()  # the busy upload was not saved


def test_too_many_records_and_links_out_of_the_corpus_are_refused(
    tg: FakeTelegram, seeded: Settings, embedder: Any, tmp_path: Path
) -> None:
    settings = bot_settings(seeded, tg, telegram_admins=[ADMIN], max_upload_records=25)
    outside = tmp_path / "outside.md"
    outside.write_text("# Not the corpus\n\nA file the bot must not overwrite.\n")
    (settings.corpus_dir / "linked.md").symlink_to(outside)

    async def scenario(app: Application) -> list[str]:
        tg.send_document(ADMIN, ADMIN, "big.jsonl", feed(30))
        tg.send_document(ADMIN, ADMIN, "linked.md", b"# Replaced?\n\nThis text must not land.\n")
        return [m["text"] for m in await replies(tg, ADMIN, 2)]

    texts = run_bot(tg, settings, Answerer(settings, embedder=embedder), scenario)
    assert texts[0] == (
        "Rejected big.jsonl: 30 records is over the limit of 25 per upload "
        "(NEWSDESK_MAX_UPLOAD_RECORDS); split the file."
    )
    assert texts[1].startswith(
        f"Rejected linked.md: the corpus file of that name is a link to {outside.resolve()}, "
        "outside the corpus folder"
    )
    assert outside.read_text().startswith("# Not the corpus")
    assert (settings.corpus_dir / "linked.md").is_symlink()
    assert not (settings.corpus_dir / "big.jsonl").exists()
