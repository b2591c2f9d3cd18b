"""Indexing benchmark: newsdesk's indexer against its embedding floor and LlamaIndex's starter.

One run, on one machine, over the first N articles of
``../shared/data/realtimeqa/corpus-full.jsonl`` (``--limit 0``: all 3,974):

1. full index: ``newsdesk index FILE --json`` in a subprocess with a fresh
   ``NEWSDESK_DATA_DIR`` -> seconds (its own summary, and wall), chunks, chunks/s, peak RSS;
2. no-op re-index of the same file -> seconds;
3. raw embedding floor: the same chunk texts (``index.chunk.Chunker`` on
   ``index.corpus.iter_articles``), embedded by the same embedder in a fresh subprocess, in
   the indexer's own groups; only the ``embed()`` calls are timed -> index / floor ratio;
4. LlamaIndex's starter path: ``VectorStoreIndex.from_documents`` into Chroma with the
   default splitter and the same embedder -> seconds, chunks, peak RSS.

Then the targets of issue 2 (full index <= 1.15 x floor, faster than the starter, no-op
re-index <= 3 s, peak RSS <= 1 GB) and issue 13 (grouping into stories <= 10% of the index
run, from the run's own ``story_seconds``) are checked and the table goes to stdout and to the
"Indexing" section of ``bench/RESULTS.md``.

Duration: the corpus is embedded three times (index, floor, starter; the starter's chunks are
fewer). Embedding runs at ~15-25 chunks/s on 2 cores: the default 600 articles (~5-6k
chunks) take ~10-15 min; the full corpus (~38k chunks) ~1-1.75 h. Use ``--limit 40`` for a
~2 min smoke run.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime

from common import (
    Machine,
    RunResult,
    add_output_options,
    bench_env,
    count_lines,
    log,
    mb,
    newsdesk_cmd,
    publish,
    report,
    require_data,
    run_measured,
    run_worker,
    secs,
    subset_jsonl,
    table,
    temp_dir,
    verdict,
)

SECTION = "Indexing (bench/index_bench.py)"
FULL_ARTICLES = 3974
FLOOR_RATIO = 1.15
NOOP_SECONDS = 3.0
RSS_LIMIT = 1e9  # 1 GB, decimal: the stricter reading
STORY_SHARE = 0.10  # grouping's share of a full index run (the index JSON reports its seconds)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Full size (--limit 0) takes about 1-1.75 h on 2 cores; the default 10-15 min.",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=600,
        help="first N articles of corpus-full.jsonl (default 600; 0 = all 3,974)",
    )
    add_output_options(
        parser,
        keep_help="keep the temp folder (newsdesk data dir and starter index) for answer_bench.py",
    )
    args = parser.parse_args()
    (source,) = require_data("corpus-full.jsonl")
    machine, started = Machine(), datetime.now()

    with temp_dir("newsdesk-index-bench-", keep=args.keep) as tmp:
        corpus = subset_jsonl(source, args.limit, tmp)
        n_articles = count_lines(corpus)
        data_dir, starter_dir = tmp / "data", tmp / "starter"
        env = bench_env(data_dir)
        # cwd = the temp folder: no stray .env changes the settings under test.
        index_cmd = [*newsdesk_cmd(), "index", str(corpus), "--json"]

        log(f"[1/4] newsdesk index: {n_articles} articles -> {data_dir}")
        full = run_measured(index_cmd, env=env, cwd=tmp).check(ok=(0, 1))
        full_s = full.json()
        log(f"      {full_s['chunks']} chunks in {full_s['seconds']:.1f} s")

        log("[2/4] no-op re-index")
        noop = run_measured(index_cmd, env=env, cwd=tmp).check(ok=(0, 1))
        noop_s = noop.json()

        log("[3/4] raw embedding floor (fresh subprocess)")
        raw_run = run_worker(
            "raw-embed",
            ["--corpus", str(corpus), "--out", str(tmp / "raw.json")],
            env=bench_env(),
            cwd=tmp,
        )
        raw = json.loads((tmp / "raw.json").read_text())

        log("[4/4] LlamaIndex starter path (fresh subprocess)")
        marker = json.dumps({"corpus": str(source.resolve()), "limit": args.limit})
        starter_run = run_worker(
            "starter",
            [
                *("--corpus", str(corpus), "--dir", str(starter_dir)),
                *("--marker", marker, "--out", str(tmp / "starter.json")),
            ],
            env=bench_env(),
            cwd=tmp,
        )
        starter = json.loads((tmp / "starter.json").read_text())

        report = _report(n_articles, full, full_s, noop, noop_s, raw_run, raw, starter_run, starter)
        if args.keep:
            report += (
                f"\n\nKept: newsdesk data dir `{data_dir}`, starter index `{starter_dir}` "
                f"(reuse: `answer_bench.py --data-dir {data_dir} --starter-dir {starter_dir}` "
                "when this ran on the full corpus)."
            )
    publish(SECTION, report, machine, started, args)


def _report(
    n_articles: int,
    full: RunResult,
    full_s: dict,
    noop: RunResult,
    noop_s: dict,
    raw_run: RunResult,
    raw: dict,
    starter_run: RunResult,
    starter: dict,
) -> str:
    index_s, embed_s, starter_s = full_s["seconds"], raw["embed_seconds"], starter["seconds"]
    story_s = float(full_s.get("story_seconds", 0.0))  # part of index_s
    chunks = full_s["chunks"]
    ratio = index_s / embed_s if embed_s else float("inf")
    rows = [
        [
            "newsdesk index (full)",
            secs(index_s),
            secs(full.seconds),
            f"{chunks:,}",
            f"{chunks / index_s:.1f}" if index_s else "-",
            mb(full.peak_rss),
        ],
        [
            "newsdesk index (no-op)",
            secs(noop_s["seconds"]),
            secs(noop.seconds),
            f"0 ({noop_s['unchanged']:,} unchanged)",
            "-",
            mb(noop.peak_rss),
        ],
        [
            "raw embedding (floor)",
            secs(embed_s),
            secs(raw_run.seconds),
            f"{raw['chunks']:,}",
            f"{raw['chunks'] / embed_s:.1f}" if embed_s else "-",
            mb(raw_run.peak_rss),
        ],
        [
            "LlamaIndex starter",
            secs(starter_s),
            secs(starter_run.seconds),
            f"{starter['chunks']:,}",
            f"{starter['chunks'] / starter_s:.1f}" if starter_s else "-",
            mb(starter_run.peak_rss),
        ],
    ]
    measured = table(["run", "seconds", "wall", "chunks", "chunks/s", "peak RSS"], rows)

    speedup = starter_s / index_s if index_s else 0.0
    baseline = table(
        ["", "newsdesk", "LlamaIndex starter", "newsdesk vs starter"],
        [
            ["seconds", secs(index_s), secs(starter_s), f"{speedup:.2f}x as fast"],
            [
                "chunks",
                f"{chunks:,}",
                f"{starter['chunks']:,}",
                f"{chunks / max(starter['chunks'], 1):.2f}x as many",
            ],
            [
                "seconds per 1,000 tokens the model read",
                f"{1000 * index_s / max(raw['tokens'], 1):.2f}",
                f"{1000 * starter_s / max(starter['embedded_tokens'], 1):.2f}",
                "",
            ],
            ["peak RSS", mb(full.peak_rss), mb(starter_run.peak_rss), ""],
        ],
    )

    scale = "" if n_articles >= FULL_ARTICLES else f"; stated for {FULL_ARTICLES:,}, run on "
    scale += f"{n_articles:,} articles" if scale else ""
    targets = table(
        ["target (issue 2)", "measured", "result"],
        [
            [
                f"full index <= {FLOOR_RATIO} x raw embedding",
                f"{ratio:.3f} ({secs(index_s)} / {secs(embed_s)}; wall "
                f"{full.seconds / embed_s:.3f})"
                if embed_s
                else "-",
                verdict(ratio <= FLOOR_RATIO),
            ],
            [
                "faster than the starter path",
                f"{secs(index_s)} vs {secs(starter_s)}",
                verdict(index_s < starter_s),
            ],
            [
                f"no-op re-index <= {NOOP_SECONDS:.0f} s{scale}",
                f"{secs(noop_s['seconds'])} (wall {secs(noop.seconds)})",
                verdict(noop_s["seconds"] <= NOOP_SECONDS),
            ],
            [
                "peak RSS while indexing <= 1 GB",
                mb(full.peak_rss),
                verdict(full.peak_rss <= RSS_LIMIT),
            ],
            [
                f"grouping into stories <= {STORY_SHARE:.0%} of index time (issue 13)",
                f"{story_s / index_s:.2%} ({secs(story_s)} of {secs(index_s)}; "
                f"{full_s.get('stories', 0):,} stories)"
                if index_s
                else "-",
                verdict(index_s > 0 and story_s / index_s <= STORY_SHARE),
            ],
        ],
    )

    notes = [
        f"Articles: {n_articles:,} (first lines of corpus-full.jsonl; "
        f"indexer: {full_s['added']:,} added, {full_s['failed']} failed).",
        "*seconds*: what each path reports for its own work: newsdesk's `index --json` "
        "`seconds` (from opening the store, model load included, to the last write); the "
        "starter's from reading the file to the end of `from_documents` (model load "
        "included); the floor's only the `embed()` calls. *wall*: the subprocess from spawn "
        "to exit, interpreter start and imports included. Peak RSS: the process tree, "
        "sampled every 50 ms.",
        f"Floor: {raw['chunks']:,} chunks, {raw['tokens']:,} tokens "
        f"({raw['tokens'] / max(raw['chunks'], 1):.0f} per chunk, header included), "
        f"{raw['calls']} `embed()` calls grouped as the indexer groups them, embedder "
        f"`{raw['embedder']}` batch {raw['batch_size']}; chunking took "
        f"{secs(raw['chunk_seconds'])} and is not in the floor.",
        f"Starter: default `SentenceSplitter` (1,024 tiktoken tokens); "
        f"{starter['truncated_chunks']:,} of {starter['chunks']:,} chunks exceed the model's "
        f"256-token window, so {starter['dropped_token_share']:.0%} of the starter's text "
        "never reaches a vector (the model truncates it).",
    ]
    if raw["chunks"] != chunks:
        notes.append(
            f"**Chunk counts differ**: the indexer wrote {chunks:,}, the floor chunked "
            f"{raw['chunks']:,}; the ratio compares different work."
        )
    if n_articles < FULL_ARTICLES:
        notes.append(
            f"Run on {n_articles:,} of {FULL_ARTICLES:,} articles: the no-op target is stated "
            "for the full corpus (`--limit 0`); the ratios carry over, absolute times do not."
        )
    return report(
        [
            ("Measurements", measured),
            ("Against the baseline (LlamaIndex starter)", baseline),
            ("Targets", targets),
        ],
        notes,
    )


if __name__ == "__main__":
    main()
