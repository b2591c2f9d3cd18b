"""Fetch benchmark: N article pages from a news site on 127.0.0.1, fetched, extracted and
indexed, against reading the same articles from a JSON Lines file.

The site (``tests/fakes/news_site.py``) serves the first N articles of
``../shared/data/realtimeqa/corpus.jsonl`` as HTML pages listed in a news sitemap.

1. Getting the pages: the indexer's planning phase over the sitemap URL, with the polite
   client (robots.txt, per-host concurrency 2, gzip, 8 fetch threads; per-host delay 0 here,
   ``--delay`` to change it: at the default 0.5 s one host caps at 2 pages/s) -> pages/s.
   Baseline: planning the same articles from a JSONL file.
2. Extraction alone: trafilatura on every fetched page, one after another -> ms per page.
3. Embedding: the chunks of the first ``--embed-pages`` pages (default: all), embedded by the
   indexer's embedder -> seconds per page, so extraction can be set against embedding.
4. The whole ``index_targets([sitemap URL])`` run, when ``--embed-pages`` covers all pages.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime

from common import Machine, add_output_options, log, publish, report, require_data, table, temp_dir
from fakes.news_site import NewsSite, SiteArticle

SECTION = "Fetching pages (bench/fetch_bench.py)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=200, help="article pages to serve")
    parser.add_argument("--embed-pages", type=int, default=0, help="pages embedded (0: all)")
    parser.add_argument("--delay", type=float, default=0.0, help="per-host delay (seconds)")
    add_output_options(parser)
    args = parser.parse_args()
    machine, started = Machine(), datetime.now()
    (corpus,) = require_data("corpus.jsonl")
    records = [json.loads(line) for line in corpus.read_text().splitlines() if line.strip()]
    records = [r for r in records if r.get("text")][: args.pages]

    import httpx
    from conftest import make_settings

    from index import ingest
    from index.chunk import Chunker
    from index.embed import get_embedder
    from index.feeds import extract_page
    from index.fetch import Fetcher
    from index.ingest import path_source
    from index.models import Article
    from index.refresh import index_targets
    from index.web import web_source

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
        extract_page(articles[0].html().encode(), site.url)  # warm up trafilatura's imports

        log(f"1. getting {len(articles)} pages from {site.url}/sitemap.xml ...")
        with Fetcher(settings) as fetcher:
            source = web_source(site.url + "/sitemap.xml", fetcher, settings.max_article_chars)
            t0 = time.perf_counter()
            plan = ingest._plan([source], {}, None)
            web_plan = time.perf_counter() - t0
        got = [change.article for change in plan.changed]
        jsonl = tmp / "same.jsonl"
        jsonl.write_text("\n".join(json.dumps(r) for r in records))
        t0 = time.perf_counter()
        base = ingest._plan([path_source(jsonl, settings)], {}, None)
        file_plan = time.perf_counter() - t0

        log("2. extraction alone ...")
        bodies = [httpx.get(f"{site.url}/news/{a.slug}").content for a in articles]
        t0 = time.perf_counter()
        for body, a in zip(bodies, articles):
            extract_page(body, f"{site.url}/news/{a.slug}")
        extraction = time.perf_counter() - t0

        n_embed = args.embed_pages or len(got)
        log(f"3. embedding the chunks of {n_embed} pages ...")
        embedder = get_embedder(settings)
        embedder.embed(["warm up"])
        chunker = Chunker(embedder, settings.chunk_tokens, settings.chunk_overlap)
        texts = [chunker.embed_text(n) for a in got[:n_embed] if isinstance(a, Article)
                 for n in chunker.nodes(a)]  # fmt: skip
        t0 = time.perf_counter()
        for start in range(0, len(texts), 64):
            embedder.embed(texts[start : start + 64])
        embedding = time.perf_counter() - t0

        whole = None
        if n_embed >= len(got):
            log("4. the whole index run ...")
            t0 = time.perf_counter()
            summary = index_targets(
                [site.url + "/sitemap.xml"], make_settings(tmp / "run"), embedder=embedder
            )
            whole = (time.perf_counter() - t0, summary)

    pages = len(got)
    embed_per_page = embedding / max(n_embed, 1)
    extract_per_page = extraction / max(len(articles), 1)
    rows = [
        ["articles", f"{pages} of {len(articles)} pages ({len(plan.errors)} failed)", f"{len(base.changed)}"],
        ["getting them: seconds", f"{web_plan:.1f}", f"{file_plan:.2f}"],
        ["getting them: articles per second", f"{pages / web_plan:.1f}", f"{len(base.changed) / file_plan:.0f}"],
        ["extraction alone: ms per page", f"{1000 * extract_per_page:.0f}", "-"],
        [f"embedding: ms per page ({len(texts)} chunks of {n_embed} pages)", f"{1000 * embed_per_page:.0f}", "same"],
    ]  # fmt: skip
    if whole is not None:
        seconds, summary = whole
        rows.append(["whole index run: seconds", f"{seconds:.1f}", "-"])
        rows.append(["whole index run: pages per second", f"{summary.added / seconds:.2f}", "-"])
    body = report(
        [("From the local news site; reading a JSONL file as the baseline",
          table(["", "web pages", "JSONL file"], rows))],
        [
            f"{len(articles)} articles of corpus.jsonl served as HTML pages listed in a news "
            f"sitemap on 127.0.0.1; per-host delay {args.delay:g} s, concurrency 2 per host, "
            "8 fetch threads, gzip on.",
            f"Extraction costs {extract_per_page / max(embed_per_page, 1e-9):.2f}x what "
            "embedding the same page costs; getting pages from the site (fetch + extract) "
            f"takes {web_plan / max(file_plan, 1e-9):.0f}x reading them from a file.",
            "Load average at the start: " + ", ".join(f"{x:.1f}" for x in machine.load) + ".",
        ],
    )  # fmt: skip
    publish(SECTION, body, machine, started, args)


if __name__ == "__main__":
    main()
