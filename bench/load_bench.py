"""Load test (issue 5 §5): many chats at once through the fake Bot API, offline answers.

One process, loopback only:

1. an index: ``--data-dir`` as given, or a temp data dir with ``corpus.jsonl`` (218
   articles; ``--limit-articles N`` for the first N) indexed by ``newsdesk index FILE --json``
   in a subprocess (so the indexer's memory is not the bot's);
2. ``FakeTelegram`` (``tests/fakes/telegram_server.py``: a real HTTP Bot API on 127.0.0.1)
   and the real PTB ``Application`` from ``bot.telegram.build_application`` over a real
   offline ``Answerer``, started as ``run_polling`` would (initialize, post_init, start,
   polling); one warm-up question goes straight to the answerer first (model and BM25 load);
3. ``--rounds`` rounds of the same load: ``--chats`` private chats x ``--messages``
   questions (texts from ``dev.jsonl``, cycling), all injected at once, chat-interleaved;
   a round ends when every question has its reply, or after ``--round-timeout`` s (what is
   still missing then is lost);
4. per round: reply latency (injection to the bot's last message for that question, matched
   per chat through ``reply_to_message``), p50/p95/max, lost, duplicates, per-chat order,
   error replies, time in ``Answerer.ask``, CPU, and this process's RSS (sampled every
   50 ms): before, peak, after;
5. the targets of issue 5 (p95 <= 1 s, 0 lost, order kept, RSS growth between rounds
   <= 5 %), printed and written to the "Load test" section of ``bench/RESULTS.md``.

The whole script has a hard deadline (``--deadline``, default 30 min): a watchdog ends the
process if it is still running then.

Duration at full size (50 x 10, 2 rounds, fresh index of 218 articles on 2 cores): indexing
~2-4 min, then each round takes as long as answering 500 questions on the machine's cores
(offline answers cost ~0.1-0.3 s of CPU each, and PTB's rate limiter lets at most 30
requests per second through), so roughly 1-3 min per round: ~5-10 min in all. Smoke run:
``--chats 3 --messages 2 --limit-articles 20`` (~1-2 min).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from common import (
    REPO,
    RESULTS,
    Machine,
    RssSampler,
    bench_env,
    count_lines,
    mb,
    newsdesk_cmd,
    percentile,
    read_jsonl,
    report,
    require_data,
    run_measured,
    secs,
    section_preamble,
    subset_jsonl,
    table,
    temp_dir,
    update_results,
    verdict,
)

sys.path.insert(0, str(REPO / "tests"))
from fakes.telegram_server import FakeTelegram

SECTION = "Load test (bench/load_bench.py)"
# Shaped like a BotFather token (the bot checks the format at start-up).
TOKEN = "123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
CHAT_BASE = 910_000  # private chat ids CHAT_BASE+1 .. CHAT_BASE+chats (user id = chat id)
P95_TARGET = 1.0  # seconds
GROWTH_TARGET = 0.05
POLL = 0.02  # seconds between checks for replies


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
        return message

    def done(self) -> int:
        """Questions that got a reply, plus error reports (which quote no question)."""
        with self._lock:
            return len(self.settled) + self.errors

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
        return methods


class TimedAnswerer:
    """The real Answerer, with the time each ``ask`` takes (the bot's interface is kept)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds: list[float] = []
        self.query_chars: list[int] = []  # length of the standalone question answered
        self.refused = 0
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def ask(self, question: str, conversation_id: str | None = None, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            answer = self.inner.ask(question, conversation_id, **kwargs)
        finally:
            with self._lock:
                self.seconds.append(time.perf_counter() - started)
        with self._lock:
            self.query_chars.append(len(getattr(answer, "question", "") or ""))
            self.refused += bool(getattr(answer, "refused", False))
        return answer

    def take(self) -> tuple[list[float], list[int], int]:
        with self._lock:
            taken = self.seconds, self.query_chars, self.refused
            self.seconds, self.query_chars, self.refused = [], [], 0
        return taken


# --- one round ----------------------------------------------------------------------------------
@dataclass
class Round:
    n: int
    injected: int
    inject_seconds: float
    seconds: float  # first injection to the end of the round
    latencies: list[float]
    lost: int
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


async def run_round(
    n: int,
    tg: TimedTelegram,
    app: Any,
    answerer: TimedAnswerer,
    sampler: RssSampler,
    plan: list[tuple[int, str]],
    timeout: float,
) -> Round:
    gc.collect()
    me = psutil.Process()
    load_before = os.getloadavg()
    rss_before = sampler.reset_peak()
    cpu_before = sum(me.cpu_times()[:2])

    # All at once: the event loop (and so the bot) is held until every update is queued.
    asked: dict[tuple[int, int], float] = {}
    order: dict[int, list[int]] = {}
    started = time.perf_counter()
    for chat, text in plan:
        at = time.perf_counter()
        message = tg.send_text(chat, chat, text)
        asked[(chat, message["message_id"])] = at
        order.setdefault(chat, []).append(message["message_id"])
    inject_seconds = time.perf_counter() - started

    deadline = started + timeout
    while tg.done() < len(plan) and time.perf_counter() < deadline:
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
    # Message ids grow in injection order, so a chat's replies must quote strictly
    # increasing ids (a duplicate or a swap breaks it; a lost question is counted as lost).
    disordered = sum(
        1 for chat in order if replied.get(chat, []) != sorted(set(replied.get(chat, [])))
    )

    gc.collect()
    rss_after = sampler.current()
    answer_seconds, query_chars, refused = answerer.take()
    return Round(
        n=n,
        injected=len(plan),
        inject_seconds=inject_seconds,
        seconds=ended - started,
        latencies=latencies,
        lost=len(asked) - len(final),
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
    from index.history import History
    from index.settings import Settings
    from index.store import Store

    (dev,) = require_data(args.questions)
    questions = [row["question"] for row in read_jsonl(dev) if row.get("question")]
    plan = make_plan(args.chats, args.messages, questions)

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

        app = build_application(settings, answerer)
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
            for n in range(1, args.rounds + 1):
                log(f"round {n}/{args.rounds}: {len(plan)} questions from {args.chats} chats")
                r = await run_round(n, tg, app, answerer, sampler, plan, args.round_timeout)
                rounds.append(r)
                log(
                    f"  {len(r.latencies)}/{r.injected} answered in {r.seconds:.1f} s; p50 "
                    f"{percentile(r.latencies, 50):.2f} s, p95 {percentile(r.latencies, 95):.2f} s"
                    f"; lost {r.lost}; RSS after {mb(r.rss_after)}"
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Full size (50 x 10, 2 rounds, fresh 218-article index): about 5-10 min on "
        "2 cores. Smoke run: --chats 3 --messages 2 --limit-articles 20.",
    )
    parser.add_argument("--chats", type=int, default=50, help="private chats (default 50)")
    parser.add_argument(
        "--messages", type=int, default=10, help="questions per chat per round (default 10)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the same load (2)")
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
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument(
        "--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        help="Markdown file whose section is rewritten (default bench/RESULTS.md)",
    )
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
    print(report)
    if not args.no_write:
        update_results(SECTION, section_preamble(machine, started) + "\n" + report, args.results)
        log(f"written to the '{SECTION}' section of {args.results}")


# --- report -------------------------------------------------------------------------------------
def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def _growth(a: int, b: int) -> float:
    return (b - a) / a if a else 0.0


def _report(args: argparse.Namespace, setup: Setup, result: dict[str, Any], peak: int) -> str:
    rounds: list[Round] = result["rounds"]
    stats = result["stats"]
    rows = []
    for r in rounds:
        lat, ans = r.latencies, r.answer_seconds
        rows.append(
            [
                r.n,
                f"{len(lat)}/{r.injected}",
                r.lost,
                "yes" if r.order_kept else f"NO ({r.disordered_chats} chats)",
                _ms(percentile(lat, 50)),
                _ms(percentile(lat, 95)),
                _ms(max(lat, default=0.0)),
                secs(r.seconds),
                f"{len(lat) / r.seconds:.1f}" if r.seconds else "-",
                f"{_ms(percentile(ans, 50))} / {_ms(percentile(ans, 95))}",
                f"{r.cpu_seconds / max(r.injected, 1) * 1000:.0f} ms",
                f"{sum(r.query_chars) / max(len(r.query_chars), 1):,.0f} / "
                f"{max(r.query_chars, default=0):,}",
                f"{mb(r.rss_before)} / {mb(r.rss_peak)} / {mb(r.rss_after)}",
            ]
        )
    measured = table(
        [
            "round",
            "answered",
            "lost",
            "order kept",
            "p50",
            "p95",
            "max",
            "round took",
            "replies/s",
            "in Answerer.ask p50 / p95",
            "CPU per msg",
            "query chars mean / max",
            "RSS before / peak / after",
        ],
        rows,
    )

    first, last = rounds[0], rounds[-1]
    worst_p95 = max(percentile(r.latencies, 95) for r in rounds)
    lost = sum(r.lost for r in rounds)
    order_ok = all(r.order_kept for r in rounds)
    after_growth = _growth(first.rss_after, last.rss_after)
    peak_growth = _growth(first.rss_peak, last.rss_peak)
    growth_ok = len(rounds) > 1 and max(after_growth, peak_growth) <= GROWTH_TARGET
    full = args.chats == 50 and args.messages == 10
    scale = "" if full else f" (stated for 50 x 10; run at {args.chats} x {args.messages})"
    targets = table(
        ["target (issue 5)", "measured", "result"],
        [
            [
                f"p95 reply <= {P95_TARGET:.0f} s offline{scale}",
                f"{_ms(worst_p95)} (worst round)",
                verdict(worst_p95 <= P95_TARGET),
            ],
            ["0 lost", f"{lost} lost of {sum(r.injected for r in rounds)}", verdict(lost == 0)],
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

    sends = sum(r.methods.get("sendMessage", 0) for r in rounds) / len(rounds)
    actions = sum(r.methods.get("sendChatAction", 0) for r in rounds) / len(rounds)
    rate = result["rate"]
    # aiolimiter lets a burst of `rate` through at once, then `rate` per second.
    floor = max(0.0, sends + actions - rate) / rate if rate else 0.0
    loads = "; ".join(
        f"round {r.n}: {r.load_before[0]:.2f} -> {r.load_after[0]:.2f}" for r in rounds
    )
    notes = [
        f"Load: {args.chats} private chats x {args.messages} questions, {args.rounds} rounds "
        f"of the same texts (`{args.questions}`, cycled); each round injected at once "
        f"(chat-interleaved; injecting took {_ms(first.inject_seconds)}), offline answers, "
        f"real PTB `Application` (`build_application`) polling the fake Bot API on 127.0.0.1.",
        f"Index: {setup.index_note}; the store holds {stats.get('articles', 0):,} articles, "
        f"{stats.get('chunks', '?')} chunks.",
        "Latency: from injecting the update into the fake to the bot's last message for it "
        "(matched per chat by `reply_to_message`; further parts of a split answer extend it). "
        "*in Answerer.ask*: the answer's own compute, from the bot's worker thread; the rest "
        "is queueing behind the chat's earlier questions, other chats and the rate limiter.",
        f"Rate limiter: {result['limiter'] or 'none'}"
        + (
            f", {rate:g} requests/s with a chat_id overall (Telegram's flood limit; a burst of "
            f"{rate:g} passes at once); a round sent {sends:.0f} messages and {actions:.0f} "
            "chat actions, so "
            + (
                f"its last reply cannot come sooner than ~{floor:.1f} s after the burst, "
                "whatever the CPU."
                if floor > 0
                else "the limiter never held a request back."
            )
            if rate
            else "."
        ),
        f"Memory: RSS of this one process (bot, answerer, model, and the fake server, whose "
        f"message log is cleared between rounds), sampled every 50 ms. After the warm-up "
        f"question ({result['warmup']:.2f} s): {mb(result['rss_warm'])}; peak over the run "
        f"{mb(peak)}. *before/after*: after `gc.collect()`.",
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
    return report([("Measurements", measured), ("Targets", targets)], notes)


if __name__ == "__main__":
    main()
