"""Growth benchmark (issue 5 §6): index time, size on disk, memory and warm query latency as
the corpus grows, with embedded Chroma and with a Chroma server, in one run.

For each size N (the first N articles of ``../shared/data/realtimeqa/corpus-full.jsonl``):

1. ``newsdesk index FILE --json`` into a fresh data dir, in a subprocess -> seconds (its own
   summary, and wall), chunks, peak RSS (the process tree, sampled every 50 ms);
   ``--reuse-full DIR`` takes an existing data dir holding all 3,974 articles instead of
   indexing the full corpus again (its index time is then reported as "reused");
2. embedded mode: a fresh interpreter (this script's ``_latency`` worker) opens an
   ``Answerer`` on that data dir, answers 3 warm-up questions from ``dev.jsonl``, then
   times ``Answerer.respond`` (retrieval + offline answer, as of each question's
   date) on the next ``--questions`` (50) -> p50/p95, plus the dense and BM25 retrievers
   alone on the same queries; its peak RSS is the answering process's memory;
3. size on disk of the data dir (Chroma + the BM25 index the first query built);
4. server mode: the data dir is copied, ``chroma run --path <copy>/chroma`` starts on
   127.0.0.1 and a free port, and the same worker runs with ``chroma_host``/``chroma_port``
   set and ``data_dir`` = the copy (so the BM25 index comes along); then the server stops.

The targets of issue 5 (latency at the largest N <= 2 x that at the smallest, normally 218;
server mode adds <= 20 ms to p50) are checked; the table, and a short guidance paragraph
computed from the numbers (when to move to a Chroma server, hosted embeddings, several
workers; for the README), are printed and written to the "Growth" section of
``bench/RESULTS.md``.

Duration on 2 cores: indexing dominates. corpus-full articles make ~10 chunks each (~38k
in all), embedded at ~15-25 chunks/s on an idle machine: 218 articles ~2-4 min, 1,000
~7-11 min, 3,974 ~25-45 min; the latency runs add ~1-3 min per size. The default sizes take
~45-70 min idle, up to twice that on a busy machine (the smoke run below indexed only ~5
chunks/s beside other jobs); with ``--reuse-full DIR`` (e.g. the data dir of
``index_bench.py --limit 0 --keep``) ~15-30 min. Smoke run: ``--sizes 20,40`` (~4-5 min).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from common import (
    ChromaRun,
    Machine,
    RssSampler,
    add_output_options,
    bench_env,
    count_lines,
    dir_size,
    log,
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

SECTION = "Growth (bench/growth_bench.py)"
FULL_ARTICLES = 3974
LATENCY_RATIO = 2.0
SERVER_MS = 20.0
WORKER = "_latency"
HISTORY_FILE = "conversations.sqlite3"  # index.history.FILE_NAME; not copied for the server


# --- the latency worker (a fresh interpreter per size and mode) ---------------------------------
def worker(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog=f"growth_bench.py {WORKER}")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--questions-file", required=True)
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--chroma-host")
    parser.add_argument("--chroma-port", type=int, default=8000)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    from index.answer import Answerer
    from index.history import History
    from index.settings import Settings

    rows = read_jsonl(Path(args.questions_file), args.warmup + args.questions)
    settings = Settings(
        _env_file=None,
        data_dir=Path(args.data_dir),
        corpus_dir=Path(args.data_dir) / "unused-corpus",
        embedder="local",
        openai_api_key=None,
        openai_base_url=None,
        chroma_host=args.chroma_host or None,
        chroma_port=args.chroma_port,
    )
    with tempfile.TemporaryDirectory(prefix="newsdesk-growth-history-") as scratch:
        started = time.perf_counter()
        # Stateless answers; the history file goes to scratch, never into the data dir.
        answerer = Answerer(settings, history=History(Path(scratch) / "history.sqlite3"))
        open_s = time.perf_counter() - started
        stats = answerer.retriever.store.stats()

        def ask(row: dict) -> tuple[float, Any, Any]:
            as_of = date.fromisoformat(row["date"][:10]) if row.get("date") else None
            t0 = time.perf_counter()
            resolved, answer = answerer.respond(row["question"], as_of=as_of)
            return time.perf_counter() - t0, resolved, answer

        warmup = [ask(row)[0] for row in rows[: args.warmup]]
        timed = [ask(row) for row in rows[args.warmup :]]
        # The two retrievers alone, on the same (resolved) queries: where the time goes.
        n = settings.candidates
        dense, keyword = [], []
        for _, resolved, _ in timed:
            t0 = time.perf_counter()
            answerer.retriever.dense(resolved.query, n)
            t1 = time.perf_counter()
            answerer.retriever.keyword(resolved.query, n)
            dense.append(t1 - t0)
            keyword.append(time.perf_counter() - t1)
        answerer.history.close()
    result = {
        "mode": "server" if settings.server_mode else "embedded",
        "open_s": open_s,
        "warmup_s": warmup,
        "latencies": [t for t, _, _ in timed],
        "dense": dense,
        "keyword": keyword,
        "refused": sum(bool(a.refused) for _, _, a in timed),
        "articles": stats.get("articles", 0),
        "chunks": stats.get("chunks", 0),
    }
    Path(args.out).write_text(json.dumps(result))


# --- one size -----------------------------------------------------------------------------------
@dataclass
class Latency:
    result: dict[str, Any]
    peak_rss: int  # the worker's process tree
    wall: float

    def p(self, pct: float, key: str = "latencies") -> float:
        return percentile(self.result[key], pct) * 1000  # ms


@dataclass
class Size:
    n: int
    reused: bool
    index: dict[str, Any] | None  # `newsdesk index --json` summary
    index_wall: float
    index_rss: int
    disk: int
    chroma_disk: int
    embedded: Latency
    server: Latency
    server_rss: int  # the chroma process, peak while the worker ran


def measure_latency(
    data_dir: Path,
    args: argparse.Namespace,
    out: Path,
    cwd: Path,
    server: ChromaRun | None = None,
) -> Latency:
    cmd = [sys.executable, str(Path(__file__).resolve()), WORKER]
    cmd += ["--data-dir", str(data_dir), "--questions-file", str(args.questions_path)]
    cmd += ["--questions", str(args.questions), "--warmup", str(args.warmup), "--out", str(out)]
    if server is not None:
        cmd += ["--chroma-host", server.host, "--chroma-port", str(server.port)]
    run = run_measured(cmd, env=bench_env(), cwd=cwd).check()
    return Latency(json.loads(out.read_text()), run.peak_rss, run.seconds)


def measure_size(n: int, source: Path, args: argparse.Namespace, tmp: Path) -> Size:
    work = tmp / f"n{n}"
    work.mkdir()
    reuse = args.reuse_full and n >= FULL_ARTICLES
    index: dict[str, Any] | None = None
    index_wall, index_rss = 0.0, 0
    if reuse:
        data_dir = Path(args.reuse_full).resolve()
        log(f"[N={n}] reusing the full index in {data_dir}")
    else:
        corpus = subset_jsonl(source, n, work)
        data_dir = work / "data"
        log(f"[N={n}] newsdesk index: {count_lines(corpus):,} articles -> {data_dir}")
        run = run_measured(
            [*newsdesk_cmd(), "index", str(corpus), "--json"], env=bench_env(data_dir), cwd=work
        ).check(ok=(0, 1))
        index, index_wall, index_rss = run.json(), run.seconds, run.peak_rss
        log(f"        {index['chunks']:,} chunks in {index['seconds']:.1f} s")

    log(f"[N={n}] embedded: {args.warmup} warm-up + {args.questions} timed questions")
    embedded = measure_latency(data_dir, args, work / "embedded.json", work)
    log(f"        p50 {embedded.p(50):.0f} ms, p95 {embedded.p(95):.0f} ms")
    disk, chroma_disk = dir_size(data_dir), dir_size(data_dir / "chroma")

    copy = work / "server-data"
    log(f"[N={n}] server: copying the data dir, starting `chroma run`")
    shutil.copytree(data_dir, copy, ignore=shutil.ignore_patterns(HISTORY_FILE + "*"))
    try:
        with ChromaRun(copy / "chroma", work / "chroma.log") as server:
            assert server.proc is not None
            with RssSampler(server.proc.pid, children=True) as sampler:
                served = measure_latency(copy, args, work / "server.json", work, server)
                server_rss = sampler.peak
    finally:
        if not args.keep:
            shutil.rmtree(copy, ignore_errors=True)
    log(f"        p50 {served.p(50):.0f} ms, p95 {served.p(95):.0f} ms")
    if embedded.result["articles"] != n:
        log(f"        note: the index holds {embedded.result['articles']:,} articles, not {n:,}")
    return Size(
        n,
        bool(reuse),
        index,
        index_wall,
        index_rss,
        disk,
        chroma_disk,
        embedded,
        served,
        server_rss,
    )


# --- main ---------------------------------------------------------------------------------------
def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == WORKER:
        worker(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Default sizes on 2 cores: ~45-70 min idle (indexing 3,974 articles alone "
        "~25-45 min), up to twice that when busy; with --reuse-full ~15-30 min. Smoke run: "
        "--sizes 20,40.",
    )
    parser.add_argument(
        "--sizes",
        default="218,1000,3974",
        help="comma-separated article counts, first N of corpus-full.jsonl (218,1000,3974)",
    )
    parser.add_argument(
        "--reuse-full",
        metavar="DIR",
        help="an embedded data dir already holding the full 3,974-article index: used for "
        "N >= 3974 instead of indexing again (only read; its BM25 cache may be built)",
    )
    parser.add_argument(
        "--questions", type=int, default=50, help="timed questions from dev.jsonl (50)"
    )
    parser.add_argument("--warmup", type=int, default=3, help="untimed warm-up questions (3)")
    parser.add_argument(
        "--questions-file", default="dev.jsonl", help="question set (default dev.jsonl)"
    )
    add_output_options(parser)
    args = parser.parse_args()
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        parser.error("--sizes takes comma-separated integers, e.g. 218,1000,3974")
    if not sizes or sizes[0] < 1:
        parser.error("--sizes must be positive")
    if args.reuse_full and not (Path(args.reuse_full) / "chroma").is_dir():
        parser.error(f"--reuse-full {args.reuse_full}: no chroma folder in it")
    source, args.questions_path = require_data("corpus-full.jsonl", args.questions_file)
    available = count_lines(source)
    if sizes[-1] > available:
        log(f"only {available:,} articles in {source.name}: sizes capped")
        sizes = sorted({min(s, available) for s in sizes})
    machine, started = Machine(), datetime.now()

    results: list[Size] = []
    with temp_dir("newsdesk-growth-bench-", keep=args.keep) as tmp:
        for n in sizes:
            results.append(measure_size(n, source, args, tmp))
        if args.keep:
            log(f"kept {tmp}")
    section, guidance = _report(results, args, machine)
    body = section + "\n\n### Guidance (for the README)\n\n" + guidance
    publish(SECTION, body, machine, started, args)


# --- report -------------------------------------------------------------------------------------
def _signed(ms: float) -> str:
    return f"{round(ms) + 0:+d}"  # no "-0"


def _mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:,.0f}"


def _size_label(s: Size) -> str:
    """N lines of the feed, and the articles they hold where copies of one page merged."""
    held = s.embedded.result["articles"]
    return f"{s.n:,}" if held == s.n else f"{s.n:,} ({held:,})"


def _report(results: list[Size], args: argparse.Namespace, machine: Machine) -> tuple[str, str]:
    rows = []
    for s in results:
        e, v = s.embedded, s.server
        rows.append(
            [
                _size_label(s),
                "reused" if s.reused else secs(s.index["seconds"]) if s.index else "-",
                f"{s.index['chunks']:,}" if s.index else f"{e.result['chunks']:,}",
                _mb(s.disk),
                "-" if s.reused else _mb(s.index_rss),
                _mb(e.peak_rss),
                f"{e.p(50):.0f} / {e.p(95):.0f}",
                f"{v.p(50):.0f} / {v.p(95):.0f}",
                f"{_signed(v.p(50) - e.p(50))}",
                f"{e.p(50, 'dense'):.0f} / {v.p(50, 'dense'):.0f}",
                f"{e.p(50, 'keyword'):.1f}",
                _mb(s.server_rss),
            ]
        )
    measured = table(
        [
            "N (articles)",
            "index s",
            "chunks",
            "size on disk MB",
            "index peak RSS MB",
            "query RSS MB (embedded)",
            "p50 / p95 ms embedded",
            "p50 / p95 ms server",
            "server - embedded p50 ms",
            "dense p50 ms emb / srv",
            "BM25 p50 ms",
            "chroma server RSS MB",
        ],
        rows,
    )

    small, large = results[0], results[-1]
    ratio = large.embedded.p(50) / small.embedded.p(50) if small.embedded.p(50) else 0.0
    ratio95 = large.embedded.p(95) / small.embedded.p(95) if small.embedded.p(95) else 0.0
    ratio_server = large.server.p(50) / small.server.p(50) if small.server.p(50) else 0.0
    deltas = [s.server.p(50) - s.embedded.p(50) for s in results]
    worst = max(deltas)
    stated = small.n == 218 and large.n == FULL_ARTICLES
    scale = "" if stated else f" (stated for 218 -> 3,974; run {small.n:,} -> {large.n:,})"
    targets = table(
        ["target (issue 5)", "measured", "result"],
        [
            [
                f"warm p50 at the largest N <= {LATENCY_RATIO:.0f} x at the smallest{scale}",
                f"{ratio:.2f} x embedded ({small.embedded.p(50):.0f} -> "
                f"{large.embedded.p(50):.0f} ms), {ratio_server:.2f} x server; p95 "
                f"{ratio95:.2f} x",
                verdict(0 < ratio <= LATENCY_RATIO) if len(results) > 1 else "n/a",
            ],
            [
                f"server mode adds <= {SERVER_MS:.0f} ms to p50 (every N)",
                ", ".join(f"{s.n:,}: {_signed(d)} ms" for s, d in zip(results, deltas)),
                verdict(worst <= SERVER_MS),
            ],
        ],
    )
    warm = ", ".join(
        f"{s.n:,}: {max(s.embedded.result['warmup_s']):.1f} s"
        for s in results
        if s.embedded.result["warmup_s"]
    )
    notes = [
        f"Articles: the first N lines of `corpus-full.jsonl`; questions: {args.warmup} "
        f"warm-up + the next {args.questions} of `{Path(args.questions_path).name}`, each asked "
        "as of its date (`Answerer.respond`: retrieval + offline answer, no history), "
        "the same questions at every N and in both modes.",
        "Each latency run is a fresh interpreter; *query RSS* is its peak (model, Chroma "
        "client or embedded store, BM25). *index s*: the `newsdesk index --json` summary "
        "(model load included); *index peak RSS*: the indexer's process tree, sampled every "
        "50 ms. *size on disk*: allocated bytes of the data dir (Chroma "
        + ", ".join(f"{_mb(s.chroma_disk)} MB at {s.n:,}" for s in results)
        + ", the rest is the BM25 index).",
        "Server mode: `chroma run` on 127.0.0.1 over a copy of the same data dir (same HNSW "
        "index and BM25 files), same machine: the difference is the HTTP round trips, not "
        "the search. *dense p50*: the dense retriever alone on the same queries.",
        f"Slowest warm-up question (the first opens the BM25 index, or builds it): {warm}.",
        "Refused (offline): "
        + ", ".join(f"{s.n:,}: {s.embedded.result['refused']}" for s in results)
        + f" of {args.questions} (few articles answer dev questions at small N; latency "
        "covers refusals too).",
    ]
    if any(s.reused for s in results):
        notes.append(
            f"Reused full index: `{args.reuse_full}` (index time and indexing RSS not "
            "measured in this run)."
        )
    text = report([("Measurements", measured), ("Targets", targets)], notes)
    return text, _guidance(results, machine)


def _index_rate(results: list[Size]) -> tuple[float, str]:
    """Articles per second of indexing: marginal between the smallest and the largest
    indexed size (the model load and other fixed costs cancel out), else the plain rate."""
    indexed = [s for s in results if s.index and s.index["seconds"] > 0]
    if not indexed:
        return 0.0, ""
    first, last = indexed[0], indexed[-1]
    t0, t1 = first.index["seconds"], last.index["seconds"]  # type: ignore[index]
    if last.n > first.n and t1 > t0:
        return (last.n - first.n) / (t1 - t0), f"between {first.n:,} and {last.n:,} articles"
    return last.n / t1, f"at {last.n:,} articles, model load included"


def _guidance(results: list[Size], machine: Machine) -> str:
    """Going beyond one machine, in numbers from this run."""
    small, large = results[0], results[-1]
    delta = large.server.p(50) - large.embedded.p(50)
    p50, p95 = large.embedded.p(50), large.embedded.p(95)
    qps = 1000 / p50 if p50 else 0.0

    server = (
        f"**Chroma server.** At {large.n:,} articles a Chroma server on the same machine "
        f"changed the median question from {p50:.0f} ms to {large.server.p(50):.0f} ms "
        f"({_signed(delta)} ms); the server process held {_mb(large.server_rss)} MB. "
    )
    if delta <= SERVER_MS:
        server += (
            "That is cheap, so size is not the trigger: move to a server (`chroma run`, "
            "`NEWSDESK_CHROMA_HOST`) as soon as a second process needs the index: several "
            "bot workers, the bot beside a REPL, or `newsdesk index` running under live "
            "traffic. An embedded store belongs to one process."
        )
    else:
        server += (
            "Stay embedded while one process does all the answering; move to a server when "
            "a second process needs the index (several workers, the bot beside a REPL, an "
            "indexer under live traffic), and expect that cost per question."
        )

    span = large.n - small.n
    if span >= 1000:
        disk_per_k = (large.disk - small.disk) / span * 1000
        rss_per_k = (large.embedded.peak_rss - small.embedded.peak_rss) / span * 1000
        big = 100_000
        disk_big = large.disk + disk_per_k * (big - large.n) / 1000
        rss_big = large.embedded.peak_rss + rss_per_k * (big - large.n) / 1000
        size = (
            f" **Size.** The index takes ~{_mb(disk_per_k)} MB on disk per 1,000 articles "
            f"({_mb(large.disk)} MB at {large.n:,}) and the answering process grows by "
            f"~{_mb(rss_per_k)} MB per 1,000 ({_mb(large.embedded.peak_rss)} MB at "
            f"{large.n:,}); a straight line gives ~{disk_big / 1e9:.1f} GB on disk and "
            f"~{rss_big / 1e9:.1f} GB in every embedded process at {big:,} articles, while "
            "a server holds the vectors once for all workers."
        )
    else:
        size = (
            f" **Size.** {_mb(large.disk)} MB on disk and {_mb(large.embedded.peak_rss)} MB "
            f"in the answering process at {large.n:,} articles ({small.n:,} to {large.n:,} "
            "is too short a span to extrapolate from)."
        )

    rate, basis = _index_rate(results)
    if rate:
        per_hour = rate * 3600
        embed = (
            f" **Hosted embeddings.** Local embedding indexed {rate:.2f} articles/s "
            f"({basis}; ~{per_hour:,.0f} an hour, ~{FULL_ARTICLES / rate / 60:.0f} min for "
            f"all {FULL_ARTICLES:,}) with the machine's {machine.cores} cores busy, the same "
            f"cores that answer questions. When intake would take more than a tenth of the "
            f"machine (beyond ~{per_hour * 24 / 10:,.0f} new or changed articles a day) or a "
            "full rebuild must take minutes, switch to hosted embeddings "
            "(`NEWSDESK_EMBEDDER=openai`; a new embedder means a full re-index)."
        )
    else:
        embed = (
            " **Hosted embeddings.** This run reused every index, so it has no indexing rate "
            "to judge by; see the Indexing section."
        )

    ratio = p50 / small.embedded.p(50) if small.embedded.p(50) else 0.0
    workers = (
        f" **Several workers.** One process answered in {p50:.0f} ms median ({p95:.0f} ms "
        f"p95) at {large.n:,} articles, ~{qps:.0f} questions/s per busy core, and latency "
        f"grew {ratio:.2f} x from {small.n:,} to {large.n:,} articles: more articles alone "
        f"do not call for more workers, traffic does. Once sustained questions approach "
        f"~{qps * machine.cores:.0f}/s on this {machine.cores}-core machine (or the load "
        f"test's p95 passes 1 s), run several answering workers (webhook workers behind a "
        f"load balancer) on one Chroma server, on more machines once these cores are busy; "
        f"each worker needs ~{_mb(large.embedded.peak_rss)} MB of RAM."
    )
    return server + size + embed + workers


if __name__ == "__main__":
    main()
