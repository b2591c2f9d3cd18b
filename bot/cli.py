"""The `newsdesk` command: index, search, ask, chat (REPL), eval, status, telegram.

This is the CLI's single error boundary: known failures become one line on stderr and a
non-zero exit, never a traceback. Logging is configured here and nowhere else.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from index.settings import Settings, get_settings

app = typer.Typer(
    help="newsdesk: ask questions about your news articles and get answers that cite them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console(highlight=False, soft_wrap=True)


class _BarProgress:
    """Rich progress bar for `newsdesk index` on a terminal: articles, chunks/s, ETA."""

    def __init__(self) -> None:
        self.bar = Progress(
            TextColumn("indexing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("articles · {task.fields[chunks]} chunks · {task.fields[rate]}/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
        self.task = None
        self.chunks = 0

    def start(self, articles: int) -> None:
        self.bar.start()
        self.task = self.bar.add_task("index", total=articles, chunks=0, rate="-")

    def advance(self, articles: int, chunks: int) -> None:
        self.chunks += chunks
        elapsed = self.bar.tasks[0].elapsed or 0.0
        rate = f"{self.chunks / elapsed:.0f}" if elapsed > 0 else "-"
        self.bar.update(self.task, advance=articles, chunks=self.chunks, rate=rate)

    def stop(self) -> None:
        self.bar.stop()


def _settings() -> Settings:
    return get_settings()


@app.command()
def index(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="Files, folders (recursive), feeds, sitemaps or article URLs. "
            "Default: the corpus folder."
        ),
    ] = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Drop the index and start over.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Index articles (.md .txt .html .json .jsonl) and web feeds/pages, incrementally and safely.

    New and changed articles are embedded, unchanged ones skipped, vanished ones removed.
    RSS/Atom feeds, news sitemaps and article pages are fetched politely (robots.txt, ETags);
    a feed item seen before is not fetched again. Safe to interrupt and re-run.

    Example: newsdesk index corpus/ https://example.com/rss.xml"""
    from index.refresh import index_targets

    settings = _settings()
    targets: list[str | Path] = list(paths) if paths else [settings.corpus_dir]
    progress = _BarProgress() if err.is_terminal and not as_json else None

    def on_error(error: object) -> None:
        err.print(f"[red]error[/red] {error}", markup=True, highlight=False)

    summary = index_targets(
        targets, settings, rebuild=rebuild, progress=progress, on_error=on_error
    )
    if as_json:
        data = summary.to_dict()
        print(json.dumps(data))
    else:
        out.print(
            f"added {summary.added} · updated {summary.updated} · unchanged {summary.unchanged}"
            f" · removed {summary.removed} · failed {summary.failed} · "
            f"{summary.chunks} chunks in {summary.seconds:.1f}s"
        )
    if summary.failed:
        raise typer.Exit(1)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", help="How many articles.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the articles (and best passage) hybrid retrieval finds for QUERY."""
    from index.retrieve import Query, Retriever

    hits = Retriever(_settings()).retrieve(Query(text=query), k=k)
    rows = [
        {
            "url": h.url,
            "title": h.title,
            "source": h.source,
            "published": h.published,
            "score": round(h.score, 5),
            "text": h.passages[0].text if h.passages else "",
            "article_id": h.article_id,
        }
        for h in hits
    ]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        out.print("No matching articles. Index some with `newsdesk index PATH`.")
    for n, row in enumerate(rows, 1):
        out.print(f"[bold]{n}. {row['title']}[/bold] — {row['source']}, {row['published']}")
        if row["url"]:
            out.print(f"   {row['url']}")
        out.print(f"   score {row['score']}: {row['text'][:240].strip()}…\n")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What is indexed, with which embedder, where, and in which mode."""
    from index.store import Store

    settings = _settings()
    stats = Store(settings).stats()
    info = {
        **stats,
        "data_dir": str(settings.data_dir.resolve()),
        "store_mode": "server" if settings.server_mode else "embedded",
        "chroma": (
            f"{settings.chroma_host}:{settings.chroma_port}"
            if settings.server_mode
            else str(settings.chroma_dir.resolve())
        ),
        "answer_mode": "llm" if settings.llm_enabled else "offline",
        "llm": (settings.openai_base_url or "OpenAI") + f" / {settings.llm_model}"
        if settings.llm_enabled
        else None,
        "collection": settings.collection,
    }
    if as_json:
        print(json.dumps(info))
        return
    for key, value in info.items():
        out.print(f"{key:>16}: {value}")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in quotes.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the Answer as JSON.")] = False,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Answer as of this day (YYYY-MM-DD): later articles hidden."),
    ] = None,
) -> None:
    """Answer one QUESTION from the indexed articles, with numbered citations."""
    from concurrent.futures import ThreadPoolExecutor

    from index.embed import get_embedder
    from index.store import Store

    settings = _settings()
    store = Store(settings)
    # Loading the vector index and the ONNX model release the GIL: start both before the
    # heavy imports below so a one-off question does not pay for them one after another.
    store.warm_up()
    with ThreadPoolExecutor(1) as pool:
        embedder = pool.submit(get_embedder, settings)
        from bot.render import print_answer
        from index.engine import build_query_engine

        engine = build_query_engine(
            settings, store=store, embedder=embedder.result(), as_of=_parse_date(as_of)
        )
    answer = engine.query(question).metadata["answer"]
    if as_json:
        data = answer.to_dict()
        print(
            json.dumps(
                {k: data[k] for k in ("text", "refused", "citations", "see_also", "mode", "note")},
                ensure_ascii=False,
            )
        )
    else:
        print_answer(out, answer)
    _exit_now()


def _exit_now() -> None:
    """End a one-shot command without the interpreter's teardown, which spends ~0.5 s
    finalising LlamaIndex's and Chroma's modules. Nothing is left to save: `ask` writes
    nothing, and the stores are crash-safe anyway (they survive kill -9 by design)."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(0)


@app.command()
def chat() -> None:
    """The REPL: ask questions, follow up, see numbered sources.

    Indexes the corpus first if the index is empty."""
    import sys as _sys

    from bot.repl import run

    run(_settings(), interactive=_sys.stdin.isatty())


@app.command("eval")
def evaluate(
    questions: Annotated[
        Path, typer.Argument(help="JSONL: question, answer, gold_urls, answerable, date.")
    ],
    corpus: Annotated[
        Path | None, typer.Option("--corpus", help="Index this corpus first (incremental).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="Only the first N questions (0: all).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    details: Annotated[bool, typer.Option("--details", help="Include per-question rows.")] = False,
) -> None:
    """Measure retrieval hit@k/MRR, answer accuracy, citation precision and refusals."""
    from index.engine import build_query_engine
    from index.evaluate import evaluate as run_eval
    from index.evaluate import load_questions
    from index.ingest import index_paths

    settings = _settings()
    rows = load_questions(questions)[: limit or None]
    if corpus is not None:
        summary = index_paths(
            [corpus], settings, progress=_BarProgress() if err.is_terminal else None
        )
        if summary.failed:
            err.print(f"{summary.failed} corpus records failed to load; evaluating the rest")
    engine = build_query_engine(settings)
    with Progress(
        TextColumn("evaluating"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task("eval", total=len(rows))
        result = run_eval(engine, rows, progress=lambda n: bar.advance(task, n))
    if not details:
        result.pop("details")
    if as_json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        if key != "details":
            out.print(f"{key:>20}: {value}")


@app.command()
def telegram(
    webhook_url: Annotated[
        str | None,
        typer.Option("--webhook-url", help="Public HTTPS URL: webhook mode instead of polling."),
    ] = None,
    listen: Annotated[
        str | None, typer.Option("--listen", help="Webhook listen address (default: settings).")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Webhook listen port (default: settings).")
    ] = None,
) -> None:
    """Run the Telegram bot (long polling, or a webhook with --webhook-url)."""
    from bot.telegram import TelegramConfigError, run

    try:
        run(_settings(), webhook_url=webhook_url, listen=listen, port=port)
    except TelegramConfigError as exc:
        print(f"newsdesk: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None


def _parse_date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a date (use YYYY-MM-DD)") from exc


def main() -> None:
    """Entry point: configure logging once, run the app, turn known errors into one line."""
    from index.errors import NewsdeskError

    try:
        settings = get_settings()
    except Exception as exc:  # pydantic ValidationError: bad values in env/.env
        print(f"newsdesk: invalid settings: {exc}", file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "chromadb", "httpcore", "bm25s", "telegram.ext.Updater"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        app()
    except NewsdeskError as exc:
        print(f"newsdesk: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("newsdesk: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
