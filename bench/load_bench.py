"""Load test (issue 5 §5): many chats at once through the fake Bot API, offline answers.

One process, loopback only:

1. an index: ``--data-dir`` as given, or a temp data dir with ``corpus.jsonl`` (218
   articles; ``--limit-articles N`` for the first N) indexed by ``newsdesk index FILE --json``
   in a subprocess (so the indexer's memory is not the bot's); ``--data-dir /tmp/nd218``
   reuses such a dir: build it once with
   ``NEWSDESK_DATA_DIR=/tmp/nd218 newsdesk index ../shared/data/realtimeqa/corpus.jsonl``;
2. ``FakeTelegram`` (``tests/fakes/telegram_server.py``: a real HTTP Bot API on 127.0.0.1)
   and the real PTB ``Application`` from ``bot.telegram.build_application`` over a real
   offline ``Answerer``, started as ``run_polling`` would (initialize, post_init, start,
   polling); one warm-up question goes straight to the answerer first (model and BM25 load);
3. ``--rounds`` rounds of the same load per arrival model (``--mode``): ``--chats`` private
   chats x ``--messages`` questions (texts from ``dev.jsonl``, cycling; the same texts in
   both modes):

   - ``paced`` (the load issue 5's targets are stated for): every chat asks its questions one
     at a time, as a person does: it starts after a random offset in ``[0, think max]``,
     and sends the next question a think time (uniform in ``--think LO,HI`` s, default 3-7,
     ``--seed``-ed, the same schedule every round) after the reply to the previous one
     arrived. About 50 chats / ~5 s = ~9 questions/s offered; a round takes ~50-60 s;
   - ``burst`` (stress, a capacity figure): every question of the round injected at once,
     chat-interleaved. The rate limiter (Telegram's 30 requests/s flood limit) and the
     cores set how fast it drains; no p95 target applies;
   - ``both`` (default): paced rounds first, then burst rounds, on the same bot;

   a round ends when every question has its reply, or after ``--round-timeout`` s (what is
   still missing then, or was never sent, is lost);
4. per round: reply latency (the question offered to the fake Bot API to the bot's last
   message for it, matched per chat through ``reply_to_message``), p50/p95/max, lost,
   duplicates, per-chat order, error replies, Bot API calls per question, time in
   ``Answerer.ask``, CPU, and this process's RSS (sampled every 50 ms): before, peak, after;
5. the targets of issue 5 (p95 <= 1 s, 0 lost, order kept, RSS growth between rounds
   <= 5 %), evaluated on the paced rounds (on burst only when no paced round ran), burst
   rounds as capacity (questions/s); printed and written to the "Load test" section of
   ``bench/RESULTS.md`` (only that section is rewritten).

The whole script has a hard deadline (``--deadline``, default 30 min): a watchdog ends the
process if it is still running then.

Duration at full size (50 x 10, 2 rounds per mode, reused 218-article index, 2 cores):
paced ~1 min per round, burst ~20-35 s per round (500 questions behind the 30 requests/s
limiter and ~30-70 ms of CPU each): ~3-4 min for ``--mode both``; a fresh index adds
~2-4 min. Smoke run: ``--chats 3 --messages 2 --limit-articles 20 --think 0.5,1``
(~1-2 min).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import random
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from common import (
    Machine,
    RssSampler,
    add_output_options,
    bench_env,
    count_lines,
    log,
    mb,
    newsdesk_cmd,
    percentile,
    publish,
    read_jsonl,
    report,
    require_data,
    run_measured,
    secs,
    subset_jsonl,
    table,
    temp_dir,
    verdict,
)
from fakes.telegram_server import FakeTelegram

SECTION = "Load test (bench/load_bench.py)"
# Shaped like a BotFather token (the bot checks the format at start-up).
TOKEN = "123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
CHAT_BASE = 910_000  # private chat ids CHAT_BASE+1 .. CHAT_BASE+chats (user id = chat id)
P95_TARGET = 1.0  # seconds
GROWTH_TARGET = 0.05
POLL = 0.02  # seconds between checks for replies
MODES = ("paced", "burst")


# --- instruments ------------------------------------------------------------------------------
@dataclass
class Sent:
    chat_id: int
    message_id: int
    reply_to: int | None
    at: float  # perf_counter when the fake stored it
    text: str


class TimedTelegram(FakeTelegram):
    """The fake Bot API, also recording when each bot message lands (in its server thread)."""

    def __init__(self, error_text: str) -> None:
        super().__init__(token=TOKEN)
        self.error_text = error_text
        self.sent: list[Sent] = []
        self.settled: set[tuple[int, int]] = set()  # (chat, question id) with a first reply
        self.errors = 0
        self.chat_errors: Counter[int] = Counter()
        # Called in the server's thread with the chat id of every bot message (paced chats
        # wait for their reply on it instead of polling).
        self.on_message: Callable[[int], None] | None = None

    def _bot_message(
        self, chat: dict[str, Any], params: Any, content: dict[str, Any]
    ) -> dict[str, Any]:
        message = super()._bot_message(chat, params, content)
        reply = message.get("reply_to_message")
        reply_to = int(reply["message_id"]) if reply else None
        text = str(message.get("text", ""))
        self.sent.append(
            Sent(chat["id"], message["message_id"], reply_to, time.perf_counter(), text)
        )
        if reply_to is not None:
            self.settled.add((chat["id"], reply_to))
        elif text == self.error_text:
            self.errors += 1
            self.chat_errors[chat["id"]] += 1
        if self.on_message is not None:
            self.on_message(chat["id"])
        return message

    def done(self) -> int:
        """Questions that got a reply, plus error reports (which quote no question)."""
        with self._lock:
            return len(self.settled) + self.errors

    def replied(self, key: tuple[int, int], errors_before: int) -> bool:
        """The question ``key`` (chat, message id) has its reply, or its chat an error report."""
        with self._lock:
            return key in self.settled or self.chat_errors[key[0]] > errors_before

    def errors_in(self, chat: int) -> int:
        with self._lock:
            return self.chat_errors[chat]

    def sent_so_far(self) -> list[Sent]:
        with self._lock:
            return list(self.sent)

    def pending_count(self) -> int:
        with self._lock:
            return len(self._pending_updates)

    def forget(self) -> Counter[str]:
        """Between rounds: drop recorded calls, messages and sends (chats stay known), so the
        fake's own bookkeeping does not show up as growth; returns the calls by method."""
        with self._lock:
            methods = Counter(m for m, _ in self.calls)
            self.calls.clear()
            self._messages.clear()
            self.sent = []
            self.settled = set()
            self.errors = 0
            self.chat_errors = Counter()
        return methods


class TimedAnswerer:
    """The real Answerer, with the time each answer takes (the engine's interface is kept)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds: list[float] = []
        self.query_chars: list[int] = []  # length of the standalone question answered
        self.refused = 0
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def respond(self, question: str, conversation_id: str | None = None, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            resolved, answer = self.inner.respond(question, conversation_id, **kwargs)
        finally:
            with self._lock:
                self.seconds.append(time.perf_counter() - started)
        with self._lock:
            self.query_chars.append(len(getattr(answer, "question", "") or ""))
            self.refused += bool(getattr(answer, "refused", False))
        return resolved, answer

    def take(self) -> tuple[list[float], list[int], int]:
        with self._lock:
            taken = self.seconds, self.query_chars, self.refused
            self.seconds, self.query_chars, self.refused = [], [], 0
        return taken


# --- one round ----------------------------------------------------------------------------------
@dataclass
class Round:
    mode: str
    n: int
    planned: int
    injected: int
    inject_seconds: float  # burst: how long queueing the whole round took
    seconds: float  # first question to the end of the round
    latencies: list[float]
    lost: int  # planned questions without a reply (never sent ones included)
    duplicates: int
    order_kept: bool
    disordered_chats: int
    errors: int
    refused: int
    answer_seconds: list[float]
    query_chars: list[int]
    cpu_seconds: float
    rss_before: int
    rss_peak: int
    rss_after: int
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    methods: Counter[str] = field(default_factory=Counter)
    timed_out: bool = False

    def api_calls(self) -> int:
        """Bot API calls the round made, long polls aside (those are not flood-limited)."""
        return sum(v for k, v in self.methods.items() if k.lower() != "getupdates")


@dataclass
class Schedule:
    """A paced round's timing per chat: the offset of its first question, then the think
    time before each next one."""

    start: dict[int, float]
    thinks: dict[int, list[float]]


def make_schedule(
    chats: list[int], messages: int, think: tuple[float, float], seed: int
) -> Schedule:
    # One generator, drawn in chat order: the same schedule every round and every run.
    rng = random.Random(seed)
    lo, hi = think
    start, thinks = {}, {}
    for chat in chats:
        start[chat] = rng.uniform(0.0, hi)
        thinks[chat] = [rng.uniform(lo, hi) for _ in range(messages - 1)]
    return Schedule(start, thinks)


Asked = dict[tuple[int, int], float]  # (chat, message id) -> perf_counter when offered


def inject_burst(
    tg: TimedTelegram, plan: list[tuple[int, str]], asked: Asked, order: dict[int, list[int]]
) -> None:
    """All at once: the event loop (and so the bot) is held until every update is queued."""
    for chat, text in plan:
        at = time.perf_counter()
        message = tg.send_text(chat, chat, text)
        asked[(chat, message["message_id"])] = at
        order.setdefault(chat, []).append(message["message_id"])


async def paced_chat(
    tg: TimedTelegram,
    chat: int,
    texts: list[str],
    schedule: Schedule,
    asked: Asked,
    order: dict[int, list[int]],
    deadline: float,
    wake: asyncio.Event,
) -> None:
    """One person: a question, wait for the reply, think, the next question (``wake`` is set
    whenever the bot sends this chat something)."""
    await asyncio.sleep(schedule.start[chat])
    for i, text in enumerate(texts):
        if i:
            await asyncio.sleep(schedule.thinks[chat][i - 1])
        if time.perf_counter() >= deadline:
            return  # the rest of this chat's questions count as lost
        errors_before = tg.errors_in(chat)
        at = time.perf_counter()
        message = tg.send_text(chat, chat, text)
        key = (chat, message["message_id"])
        asked[key] = at
        order.setdefault(chat, []).append(key[1])
        # No lost wake-up: the server thread's set() is queued on this loop, so it runs only
        # after the clear() below, once this task awaits.
        while not tg.replied(key, errors_before):
            wake.clear()
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), remaining)


async def run_round(
    mode: str,
    n: int,
    tg: TimedTelegram,
    app: Any,
    answerer: TimedAnswerer,
    sampler: RssSampler,
    plan: list[tuple[int, str]],
    schedule: Schedule,
    timeout: float,
) -> Round:
    gc.collect()
    me = psutil.Process()
    load_before = os.getloadavg()
    rss_before = sampler.reset_peak()
    cpu_before = sum(me.cpu_times()[:2])

    asked: Asked = {}
    order: dict[int, list[int]] = {}
    started = time.perf_counter()
    deadline = started + timeout
    if mode == "burst":
        inject_burst(tg, plan, asked, order)
        inject_seconds = time.perf_counter() - started
    else:
        texts: dict[int, list[str]] = {}
        for chat, text in plan:
            texts.setdefault(chat, []).append(text)
        wakes = {chat: asyncio.Event() for chat in texts}
        loop = asyncio.get_running_loop()

        def wake(chat: int) -> None:  # in the fake's server thread
            if chat in wakes:
                loop.call_soon_threadsafe(wakes[chat].set)

        tg.on_message = wake
        try:
            await asyncio.gather(
                *(
                    paced_chat(tg, chat, chat_texts, schedule, asked, order, deadline, wakes[chat])
                    for chat, chat_texts in texts.items()
                )
            )
        finally:
            tg.on_message = None
        inject_seconds = 0.0

    while tg.done() < len(asked) and time.perf_counter() < deadline:
        await asyncio.sleep(POLL)
    # Every fetched update fully handled (the last parts of split answers included).
    while tg.pending_count() and time.perf_counter() < deadline:
        await asyncio.sleep(POLL)
    remaining = max(0.1, deadline - time.perf_counter())
    timed_out = False
    try:
        await asyncio.wait_for(app.update_queue.join(), remaining)
    except asyncio.TimeoutError:
        timed_out = True
    ended = time.perf_counter()
    timed_out = timed_out or ended >= deadline

    # Match replies to questions, per chat, in the order the fake stored them.
    final: dict[tuple[int, int], float] = {}
    replied: dict[int, list[int]] = {}
    current: dict[int, tuple[int, int]] = {}
    duplicates = 0
    for s in tg.sent_so_far():
        if s.reply_to is not None and (s.chat_id, s.reply_to) in asked:
            key = (s.chat_id, s.reply_to)
            if key in final:
                duplicates += 1
            replied.setdefault(s.chat_id, []).append(s.reply_to)
            current[s.chat_id] = key
            final[key] = s.at
        elif s.reply_to is None and s.text != tg.error_text and s.chat_id in current:
            final[current[s.chat_id]] = s.at  # a further part of a split answer
    latencies = [final[k] - asked[k] for k in asked if k in final]
    # Message ids grow in the order questions were offered, so a chat's replies must quote
    # strictly increasing ids (a duplicate or a swap breaks it; a lost question is counted
    # as lost).
    disordered = sum(
        1 for chat in order if replied.get(chat, []) != sorted(set(replied.get(chat, [])))
    )

    gc.collect()
    rss_after = sampler.current()
    answer_seconds, query_chars, refused = answerer.take()
    return Round(
        mode=mode,
        n=n,
        planned=len(plan),
        injected=len(asked),
        inject_seconds=inject_seconds,
        seconds=ended - started,
        latencies=latencies,
        lost=len(plan) - len(final),
        duplicates=duplicates,
        order_kept=disordered == 0,
        disordered_chats=disordered,
        errors=tg.errors,
        refused=refused,
        answer_seconds=answer_seconds,
        query_chars=query_chars,
        cpu_seconds=sum(me.cpu_times()[:2]) - cpu_before,
        rss_before=rss_before,
        rss_peak=max(sampler.peak, rss_after),
        rss_after=rss_after,
        load_before=load_before,
        load_after=os.getloadavg(),
        methods=tg.forget(),
        timed_out=timed_out,
    )


# --- the run ------------------------------------------------------------------------------------
@dataclass
class Setup:
    data_dir: Path
    articles: int
    chunks: int
    index_note: str


def prepare_index(args: argparse.Namespace, tmp: Path) -> Setup:
    if args.data_dir:
        data_dir = Path(args.data_dir).resolve()
        if not data_dir.is_dir():
            sys.exit(f"--data-dir {data_dir} is not a folder")
        return Setup(data_dir, 0, 0, f"reused data dir `{data_dir}`")
    (source,) = require_data(args.corpus)
    corpus = subset_jsonl(source, args.limit_articles, tmp)
    data_dir = tmp / "data"
    log(f"indexing {count_lines(corpus)} articles of {source.name} -> {data_dir}")
    run = run_measured(
        [*newsdesk_cmd(), "index", str(corpus), "--json"], env=bench_env(data_dir), cwd=tmp
    ).check(ok=(0, 1))
    summary = run.json()
    note = (
        f"fresh index of the first {summary['added']:,} articles of `{source.name}` "
        f"({summary['chunks']:,} chunks, {secs(summary['seconds'])}, peak RSS "
        f"{mb(run.peak_rss)}; in a subprocess, not counted below)"
    )
    return Setup(data_dir, summary["added"], summary["chunks"], note)


def make_plan(chats: int, messages: int, questions: list[str]) -> list[tuple[int, str]]:
    """(chat, text) in injection order: every chat's first question, then every second..."""
    plan = []
    for m in range(messages):
        for c in range(chats):
            plan.append((CHAT_BASE + 1 + c, questions[(c * messages + m) % len(questions)]))
    return plan


async def drive(
    args: argparse.Namespace, setup: Setup, tmp: Path, sampler: RssSampler
) -> dict[str, Any]:
    from bot.telegram import SOMETHING_WRONG, build_application
    from index.answer import Answerer
    from index.engine import NewsChatEngine
    from index.history import History
    from index.settings import Settings
    from index.store import Store

    (dev,) = require_data(args.questions)
    questions = [row["question"] for row in read_jsonl(dev) if row.get("question")]
    plan = make_plan(args.chats, args.messages, questions)
    chats = [CHAT_BASE + 1 + c for c in range(args.chats)]
    schedule = make_schedule(chats, args.messages, args.think, args.seed)
    modes = MODES if args.mode == "both" else (args.mode,)

    with TimedTelegram(SOMETHING_WRONG) as tg:
        settings = Settings(
            _env_file=None,
            data_dir=setup.data_dir,
            corpus_dir=tmp / "corpus",
            embedder="local",
            openai_api_key=None,
            openai_base_url=None,
            chroma_host=None,
            telegram_bot_token=TOKEN,
            telegram_api_url=tg.url,
            telegram_allowed_users=[],
            telegram_allowed_chats=[],
            telegram_admins=[],
        )
        stats = Store(settings).stats()
        if not stats.get("articles"):
            sys.exit(f"no articles indexed in {setup.data_dir}")
        # Conversations go to the temp folder: a reused data dir is not written to.
        history = History(tmp / "history.sqlite3", max_turns=settings.history_turns)
        inner = Answerer(settings, history=history)
        if inner.llm is not None:
            sys.exit("the answerer has an LLM configured; this test is for offline answers")
        answerer = TimedAnswerer(inner)

        started = time.perf_counter()
        await asyncio.to_thread(inner.ask, questions[0])
        warmup = time.perf_counter() - started
        rss_warm = sampler.current()
        log(f"warm-up question answered in {warmup:.2f} s; RSS {mb(rss_warm)}")

        app = build_application(settings, NewsChatEngine(answerer))
        await app.initialize()
        if app.post_init is not None:
            await app.post_init(app)
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        limiter = getattr(app.bot, "rate_limiter", None)
        rate = getattr(getattr(limiter, "_base_limiter", None), "max_rate", None)
        tg.forget()  # start-up calls (getMe, setMyCommands) are not part of a round
        rounds: list[Round] = []
        try:
            for mode in modes:
                for n in range(1, args.rounds + 1):
                    log(
                        f"{mode} round {n}/{args.rounds}: {len(plan)} questions from "
                        f"{args.chats} chats"
                    )
                    r = await run_round(
                        mode, n, tg, app, answerer, sampler, plan, schedule, args.round_timeout
                    )
                    rounds.append(r)
                    log(
                        f"  {len(r.latencies)}/{r.planned} answered in {r.seconds:.1f} s; p50 "
                        f"{percentile(r.latencies, 50):.2f} s, p95 "
                        f"{percentile(r.latencies, 95):.2f} s; lost {r.lost}; "
                        f"{r.api_calls() / max(r.injected, 1):.2f} API calls/question; "
                        f"RSS after {mb(r.rss_after)}"
                    )
        finally:
            await asyncio.wait_for(app.updater.stop(), 30)
            await asyncio.wait_for(app.stop(), 30)
            await asyncio.wait_for(app.shutdown(), 30)
            history.close()
    return {
        "rounds": rounds,
        "warmup": warmup,
        "rss_warm": rss_warm,
        "stats": stats,
        "rate": rate,
        "limiter": type(limiter).__name__ if limiter is not None else None,
    }


def watchdog(seconds: float, tmp: Path, keep: bool) -> threading.Timer:
    def fire() -> None:
        log(f"load_bench: hard deadline of {seconds:.0f} s reached; stopping now")
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
        os._exit(2)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    return timer


def think_range(value: str) -> tuple[float, float]:
    """``LO,HI`` (or one number for a fixed think time) in seconds."""
    try:
        parts = [float(x) for x in value.split(",")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or not 0 <= parts[0] <= parts[1]:
        raise argparse.ArgumentTypeError(f"expected LO,HI seconds with 0 <= LO <= HI: {value!r}")
    return parts[0], parts[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Arrival models: 'paced' = each chat asks one question at a time, the next a "
        "think time after the previous reply (the load issue 5's targets are for); 'burst' = "
        "every question of a round at once (stress: capacity in questions/s). Full size "
        "(50 x 10, 2 rounds per mode, --mode both, reused 218-article index): about 3-4 min "
        "on 2 cores, plus 2-4 min to index without --data-dir (build /tmp/nd218 once with "
        "NEWSDESK_DATA_DIR=/tmp/nd218 newsdesk index ../shared/data/realtimeqa/corpus.jsonl). "
        "Smoke run: --chats 3 --messages 2 --limit-articles 20 --think 0.5,1.",
    )
    parser.add_argument("--chats", type=int, default=50, help="private chats (default 50)")
    parser.add_argument(
        "--messages", type=int, default=10, help="questions per chat per round (default 10)"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="rounds of the same load per mode (2)"
    )
    parser.add_argument(
        "--mode",
        choices=[*MODES, "both"],
        default="both",
        help="arrival model: paced (one question at a time per chat, think time between), "
        "burst (a round's questions all at once), or both, paced first (default both)",
    )
    parser.add_argument(
        "--think",
        type=think_range,
        default=(3.0, 7.0),
        metavar="LO,HI",
        help="paced: seconds a chat waits after a reply before its next question, uniform "
        "in [LO, HI]; its first question comes after [0, HI] (default 3,7)",
    )
    parser.add_argument(
        "--seed", type=int, default=5, help="paced: seed of the think-time draws (5)"
    )
    parser.add_argument(
        "--data-dir",
        help="an indexed newsdesk data dir to reuse (default: index --corpus into a temp dir)",
    )
    parser.add_argument(
        "--corpus", default="corpus.jsonl", help="articles to index (default corpus.jsonl)"
    )
    parser.add_argument(
        "--limit-articles", type=int, default=0, help="index only the first N articles (0: all)"
    )
    parser.add_argument(
        "--questions", default="dev.jsonl", help="question texts, cycled (default dev.jsonl)"
    )
    parser.add_argument(
        "--round-timeout",
        type=float,
        default=300.0,
        help="seconds a round may take; questions still unanswered then are lost (300)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=1800.0,
        help="hard limit for the whole run in seconds; the process ends itself (1800)",
    )
    add_output_options(parser)
    args = parser.parse_args()
    if min(args.chats, args.messages, args.rounds) < 1:
        parser.error("--chats, --messages and --rounds must be at least 1")
    machine, started = Machine(), datetime.now()

    with temp_dir("newsdesk-load-bench-", keep=args.keep) as tmp:
        timer = watchdog(args.deadline, tmp, args.keep)
        setup = prepare_index(args, tmp)
        with RssSampler() as sampler:
            result = asyncio.run(drive(args, setup, tmp, sampler))
            peak = sampler.peak
        timer.cancel()
    report = _report(args, setup, result, peak)
    publish(SECTION, report, machine, started, args)


# --- report -------------------------------------------------------------------------------------
def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def _growth(a: int, b: int) -> float:
    return (b - a) / a if a else 0.0


def _per_question(r: Round, method: str | None = None) -> float:
    calls = r.api_calls() if method is None else r.methods.get(method, 0)
    return calls / max(r.injected, 1)


def _targets(args: argparse.Namespace, rounds: list[Round]) -> str:
    """Issue 5's targets over ``rounds`` (one mode's)."""
    mode = rounds[0].mode
    first, last = rounds[0], rounds[-1]
    worst_p95 = max(percentile(r.latencies, 95) for r in rounds)
    lost = sum(r.lost for r in rounds)
    order_ok = all(r.order_kept for r in rounds)
    after_growth = _growth(first.rss_after, last.rss_after)
    peak_growth = _growth(first.rss_peak, last.rss_peak)
    growth_ok = len(rounds) > 1 and max(after_growth, peak_growth) <= GROWTH_TARGET
    full = args.chats == 50 and args.messages == 10
    scale = "" if full else f" (stated for 50 x 10; run at {args.chats} x {args.messages})"
    label = (
        "target (issue 5), paced arrivals"
        if mode == "paced"
        else "target (issue 5), burst arrivals (stated for paced)"
    )
    return table(
        [label, "measured", "result"],
        [
            [
                f"p95 reply <= {P95_TARGET:.0f} s offline{scale}",
                f"{_ms(worst_p95)} (worst round)",
                verdict(worst_p95 <= P95_TARGET),
            ],
            ["0 lost", f"{lost} lost of {sum(r.planned for r in rounds)}", verdict(lost == 0)],
            [
                "per-chat order kept",
                "kept in every chat" if order_ok else "broken",
                verdict(order_ok),
            ],
            [
                f"RSS growth between rounds <= {GROWTH_TARGET:.0%}",
                (
                    f"after round: {after_growth:+.1%} ({mb(first.rss_after)} -> "
                    f"{mb(last.rss_after)}); peak: {peak_growth:+.1%} ({mb(first.rss_peak)} -> "
                    f"{mb(last.rss_peak)})"
                )
                if len(rounds) > 1
                else "one round only",
                verdict(growth_ok) if len(rounds) > 1 else "n/a",
            ],
        ],
    )


def _floor(r: Round, rate: float | None) -> float:
    """aiolimiter lets a burst of ``rate`` through at once, then ``rate`` per second: the
    soonest a burst round's last reply can come, whatever the CPU."""
    return max(0.0, r.api_calls() - rate) / rate if rate else 0.0


def _capacity(rounds: list[Round], rate: float | None) -> str:
    rows = [
        [
            r.n,
            f"{len(r.latencies)}/{r.planned}",
            secs(r.seconds),
            f"{len(r.latencies) / r.seconds:.1f}" if r.seconds else "-",
            " / ".join(
                _ms(x)
                for x in (
                    percentile(r.latencies, 50),
                    percentile(r.latencies, 95),
                    max(r.latencies, default=0.0),
                )
            ),
            f"{_per_question(r):.2f}",
            f"~{_floor(r, rate):.1f} s" if rate else "-",
            f"{r.cpu_seconds / max(r.injected, 1) * 1000:.0f} ms",
        ]
        for r in rounds
    ]
    return table(
        [
            "burst round",
            "answered",
            "drained in",
            "questions/s",
            "reply p50 / p95 / max",
            "API calls / question",
            "rate-limiter floor",
            "CPU per question",
        ],
        rows,
    )


def _report(args: argparse.Namespace, setup: Setup, result: dict[str, Any], peak: int) -> str:
    from bot.telegram_delivery import TYPING_DELAY

    rounds: list[Round] = result["rounds"]
    stats = result["stats"]
    by_mode = {m: [r for r in rounds if r.mode == m] for m in MODES}
    rows = []
    for r in rounds:
        lat, ans = r.latencies, r.answer_seconds
        rows.append(
            [
                r.mode,
                r.n,
                f"{len(lat)}/{r.planned}",
                r.lost,
                "yes" if r.order_kept else f"NO ({r.disordered_chats} chats)",
                _ms(percentile(lat, 50)),
                _ms(percentile(lat, 95)),
                _ms(max(lat, default=0.0)),
                secs(r.seconds),
                f"{len(lat) / r.seconds:.1f}" if r.seconds else "-",
                f"{_per_question(r):.2f}",
                f"{_ms(percentile(ans, 50))} / {_ms(percentile(ans, 95))}",
                f"{r.cpu_seconds / max(r.injected, 1) * 1000:.0f} ms",
                f"{sum(r.query_chars) / max(len(r.query_chars), 1):,.0f} / "
                f"{max(r.query_chars, default=0):,}",
                f"{mb(r.rss_before)} / {mb(r.rss_peak)} / {mb(r.rss_after)}",
            ]
        )
    measured = table(
        [
            "mode",
            "round",
            "answered",
            "lost",
            "order kept",
            "p50",
            "p95",
            "max",
            "round took",
            "replies/s",
            "API calls / question",
            "in Answerer.ask p50 / p95",
            "CPU per msg",
            "query chars mean / max",
            "RSS before / peak / after",
        ],
        rows,
    )
    paced, burst = by_mode["paced"], by_mode["burst"]
    parts = [("Measurements", measured), ("Targets", _targets(args, paced or burst))]
    rate = result["rate"]
    if burst:
        parts.append(("Capacity (burst mode)", _capacity(burst, rate)))

    lo, hi = args.think
    load = []
    if paced:
        offered = sum(r.injected for r in paced) / sum(r.seconds for r in paced)
        load.append(
            f"*paced*: each chat asks its questions one at a time; its first question comes "
            f"after a uniform [0, {hi:g}] s offset, each next one a think time of "
            f"{lo:g}-{hi:g} s (uniform, seed {args.seed}, the same schedule every round) after "
            f"the reply to the previous one arrived; {offered:.1f} questions/s offered on "
            "average"
        )
    if burst:
        load.append(
            f"*burst*: each round's questions injected at once, chat-interleaved (injecting "
            f"took {_ms(burst[0].inject_seconds)}): a stress test, reported as capacity"
        )
    calls = "; ".join(
        f"{m}: {_per_question(rs[0], 'sendMessage') if rs else 0:.2f} sendMessage + "
        f"{_per_question(rs[0], 'sendChatAction') if rs else 0:.2f} sendChatAction per "
        "question (round 1)"
        for m, rs in by_mode.items()
        if rs
    )
    limiter = f"Rate limiter: {result['limiter'] or 'none'}"
    if rate:
        limiter += (
            f", {rate:g} requests/s with a chat_id overall (Telegram's flood limit; a burst of "
            f"{rate:g} passes at once)"
        )
        if paced:
            busiest = max(r.api_calls() / r.seconds for r in paced if r.seconds)
            limiter += f"; the busiest paced round averaged {busiest:.1f} requests/s"
        if burst:
            r = burst[0]
            cpu_rate = (os.cpu_count() or 1) / max(r.cpu_seconds / max(r.injected, 1), 1e-6)
            # Which one set the burst's pace: the limiter's floor or the cores.
            bound = "the rate limiter" if r.seconds <= 1.1 * _floor(r, rate) else "the CPU"
            limiter += (
                f"; a burst round made {r.api_calls()} requests, so its last reply cannot "
                f"come sooner than ~{_floor(r, rate):.1f} s after the burst, whatever the CPU "
                f"(it drained in {secs(r.seconds)}: burst capacity here is {bound}'s; the "
                f"CPU alone, {r.cpu_seconds / max(r.injected, 1) * 1000:.0f} ms per question "
                f"on {os.cpu_count()} cores, would allow ~{cpu_rate:.0f} questions/s)"
            )
    limiter += "."
    loads = "; ".join(
        f"{r.mode} {r.n}: {r.load_before[0]:.2f} -> {r.load_after[0]:.2f}" for r in rounds
    )
    growth = "; ".join(
        f"{m} rounds {rs[0].n} -> {rs[-1].n}: after {_growth(rs[0].rss_after, rs[-1].rss_after):+.1%}"
        f", peak {_growth(rs[0].rss_peak, rs[-1].rss_peak):+.1%}"
        for m, rs in by_mode.items()
        if len(rs) > 1
    )
    notes = [
        f"Load: {args.chats} private chats x {args.messages} questions, {args.rounds} rounds "
        f"per mode of the same texts (`{args.questions}`, cycled; the same chats throughout, "
        f"so conversations carry over), offline answers, real PTB `Application` "
        f"(`build_application`) polling the fake Bot API on 127.0.0.1. " + "; ".join(load) + ".",
        f"Index: {setup.index_note}; the store holds {stats.get('articles', 0):,} articles, "
        f"{stats.get('chunks', '?')} chunks.",
        "Latency: from offering the update to the fake Bot API to the bot's last message for "
        "it (matched per chat by `reply_to_message`; further parts of a split answer extend "
        "it). *in Answerer.ask*: the answer's own compute, from the bot's worker thread; the "
        "rest is queueing behind the chat's earlier questions, other chats and the rate "
        "limiter. *lost*: planned questions without a reply by --round-timeout (never sent "
        "ones included).",
        f'Bot API calls (long polls aside): {calls}. The first "typing…" waits '
        f"{TYPING_DELAY:g} s (`TYPING_DELAY`), so an answer done sooner sends none.",
        limiter,
        f"Memory: RSS of this one process (bot, answerer, model, and the fake server, whose "
        f"message log is cleared between rounds), sampled every 50 ms. After the warm-up "
        f"question ({result['warmup']:.2f} s): {mb(result['rss_warm'])}; peak over the run "
        f"{mb(peak)}. *before/after*: after `gc.collect()`. Growth "
        + (growth or "n/a (one round per mode)")
        + ".",
        "*query chars*: length of the standalone question the answerer searched with (a "
        "follow-up is the question plus the chat's previous standalone question); it grows "
        "along a chat's turns, and retrieval and answer time grow with it.",
        f"Errors: {sum(r.errors for r in rounds)} error replies; refusals "
        f"{', '.join(str(r.refused) for r in rounds)} per round (an offline refusal is a "
        "reply, and ordinary for questions the index does not cover); duplicates "
        f"{sum(r.duplicates for r in rounds)}"
        + (
            "; a round hit --round-timeout"
            if any(r.timed_out for r in rounds)
            else "; no round hit --round-timeout"
        )
        + f" ({args.round_timeout:.0f} s).",
        f"Machine load (1-min load average, before -> after each round): {loads}. The "
        "machine is shared: other jobs' CPU shows up as latency here.",
    ]
    return report(parts, notes)


if __name__ == "__main__":
    main()
