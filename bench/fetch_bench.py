"""Fetch benchmark: index N article pages from a news site on 127.0.0.1, against the same
articles indexed from a JSON Lines file in the same run.

The site (``tests/fakes/news_site.py``) serves the first N articles of
``../shared/data/realtimeqa/corpus.jsonl`` as HTML pages listed in a news sitemap. Two runs,
each with a fresh data dir and the same embedder:

1. ``index_targets([sitemap URL])`` with the polite client (robots.txt, per-host concurrency
   2, gzip); the per-host delay is 0 (``--delay`` to change it: at the default 0.5 s one host
   caps at 2 pages/s) -> pages/s, and the seconds spent fetching, extracting (trafilatura),
   chunking and embedding;
2. baseline: ``index_targets([the same articles as JSONL])`` -> seconds.

Extraction and embedding are timed by wrapping ``index.feeds.extract_page`` and the
embedder's ``embed``; fetching is the wall time of the run minus the rest (it overlaps them).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime

from common import Machine, add_output_options, log, publish, report, require_data, table, temp_dir
from fakes.news_site import NewsSite, SiteArticle

SECTION = "Fetching pages (bench/fetch_bench.py)"


class Timed:
    """Wraps a callable and adds up the seconds spent in it (thread-safe enough: +=)."""

    def __init__(self, fn):
        self.fn, self.seconds, self.calls = fn, 0.0, 0

    def __call__(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=200, help="article pages to index")
    parser.add_argument("--delay", type=float, default=0.0, help="per-host delay (seconds)")
    add_output_options(parser)
    args = parser.parse_args()
    machine, started = Machine(), datetime.now()
    (corpus,) = require_data("corpus.jsonl")
    records = [json.loads(line) for line in corpus.read_text().splitlines() if line.strip()]
    records = [r for r in records if r.get("text")][: args.pages]

    from conftest import make_settings

    from index import feeds
    from index.embed import get_embedder
    from index.refresh import index_targets

    articles = [
        SiteArticle(
            f"a{n:04d}",
            r.get("title") or f"Article {n}",
            (r.get("published") or "2022-06-01")[:10],
            [p for p in r["text"].split("\n\n") if p.strip()] or [r["text"]],
            author=", ".join(r.get("authors") or []) or "Staff",
        )
        for n, r in enumerate(records)
    ]
    with temp_dir("newsdesk-fetch-bench", keep=args.keep) as tmp, NewsSite(articles) as site:
        settings = make_settings(tmp / "web", fetch_host_delay=args.delay)
        embedder = get_embedder(settings)
        embedder.embed(["warm up"])
        embed = Timed(embedder.embed)
        embedder.embed = embed  # type: ignore[method-assign]
        extract = Timed(feeds.extract_page)
        feeds.extract_page = extract
        import index.web as web

        web.extract_page = extract
        log(f"indexing {len(articles)} pages from {site.url}/sitemap.xml ...")
        t0 = time.perf_counter()
        summary = index_targets([site.url + "/sitemap.xml"], settings, embedder=embedder)
        web_seconds = time.perf_counter() - t0
        web_embed = embed.seconds
        pages = len(site.paths("/news/"))

        jsonl = tmp / "same.jsonl"
        jsonl.write_text(
            "\n".join(
                json.dumps(
                    {
                        "url": f"{site.url}/news/{a.slug}",
                        "title": a.title,
                        "text": "\n\n".join(a.paragraphs),
                        "published": a.published,
                        "authors": [a.author],
                    }
                )
                for a in articles
            )
        )
        embed.seconds = 0.0
        base_settings = make_settings(tmp / "file")
        log("baseline: the same articles from a JSONL file ...")
        t0 = time.perf_counter()
        base = index_targets([jsonl], base_settings, embedder=embedder)
        file_seconds = time.perf_counter() - t0
        file_embed = embed.seconds

    rest = web_seconds - web_embed - extract.seconds
    rows = [
        ["pages fetched", pages, "-"],
        ["articles indexed", summary.added, base.added],
        ["failed", summary.failed, base.failed],
        ["chunks", summary.chunks, base.chunks],
        ["wall seconds", f"{web_seconds:.1f}", f"{file_seconds:.1f}"],
        ["pages (articles) per second", f"{pages / web_seconds:.2f}", f"{base.added / file_seconds:.2f}"],
        ["extraction seconds (trafilatura)", f"{extract.seconds:.1f}", "-"],
        ["per page extraction ms", f"{1000 * extract.seconds / max(extract.calls, 1):.0f}", "-"],
        ["embedding seconds", f"{web_embed:.1f}", f"{file_embed:.1f}"],
        ["fetch, chunk, write (rest)", f"{rest:.1f}", f"{file_seconds - file_embed:.1f}"],
    ]  # fmt: skip
    body = report(
        [
            (
                "From the local news site vs. from a file",
                table(["", "web pages", "JSONL file"], rows),
            )
        ],
        [
            f"{len(articles)} articles of corpus.jsonl served as HTML pages listed in a news "
            f"sitemap on 127.0.0.1; per-host delay {args.delay:g} s, concurrency 2, gzip on.",
            f"Extraction is {extract.seconds / max(web_embed, 1e-9):.2f}x the embedding time; "
            f"the web run takes {web_seconds / file_seconds:.2f}x the file run.",
            "Pages are fetched (8 threads, at most 2 per host) and extracted while the run "
            "plans, before embedding starts; 'rest' is the wall time neither extraction nor "
            "embedding accounts for: fetching, chunking, Chroma writes, BM25.",
        ],
    )
    publish(SECTION, body, machine, started, args)


if __name__ == "__main__":
    main()
