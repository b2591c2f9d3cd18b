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
from typing import Annotated, NoReturn

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

from index.errors import NewsdeskError
from index.settings import Settings, get_settings

INTERRUPTED = "interrupted"
INDEX_INTERRUPTED = (
    "indexing stopped; what was indexed is kept, and running the same command again resumes"
)


class CliError(NewsdeskError):
    """A command's bad input (unreadable file, empty question set), told in one line."""


class _ErrorBoundary(typer.core.TyperGroup):
    """The CLI's one error boundary, around every command (and so around CliRunner tests):
    known failures, usage errors and Ctrl-C each become one line on stderr, never a
    traceback. Unknown exceptions still propagate: they are bugs, and the report shows where.
    """

    def invoke(self, ctx: typer.Context) -> object:
        try:
            return super().invoke(ctx)
        except typer.TyperException as exc:  # click's usage errors, as typer vendors them
            if type(exc).__name__ == "NoArgsIsHelpError":
                raise  # shows the help, as intended
            sub = getattr(exc, "ctx", None)
            where = f"newsdesk {sub.info_name}" if sub is not None and sub.parent else "newsdesk"
            _fail(f"{exc.format_message()} (see '{where} --help')", exc.exit_code, where)
        except KeyboardInterrupt:
            indexing = ctx.invoked_subcommand == "index"
            _fail(INDEX_INTERRUPTED if indexing else INTERRUPTED, 130)
        except (NewsdeskError, _question_error()) as exc:
            _fail(str(exc), 1)
        except OSError as exc:  # the machine's problem (a path, permissions, a full disk)
            where = f"{exc.filename}: " if exc.filename else ""
            _fail(f"{where}{exc.strerror or exc}", 1)
        except Exception as exc:
            # Ctrl-C while a native module loads (onnxruntime) arrives wrapped in an
            # ImportError("initialization failed") whose cause is the KeyboardInterrupt.
            if not _interrupted(exc):
                raise
            indexing = ctx.invoked_subcommand == "index"
            _fail(INDEX_INTERRUPTED if indexing else INTERRUPTED, 130)
        return None


def _interrupted(exc: BaseException | None) -> bool:
    """Whether ``exc`` was caused by a KeyboardInterrupt somewhere down its chain."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _question_error() -> type[Exception]:
    from index.answer import QuestionError

    return QuestionError


def _fail(message: str, code: int, where: str = "newsdesk") -> NoReturn:
    """One line on stderr, never wrapped (CI logs are read by grep), then exit ``code``."""
    line = " ".join(str(message).split())
    sys.stderr.write(f"{where}: {line}\n")
    sys.stderr.flush()
    raise typer.Exit(code)


app = typer.Typer(
    cls=_ErrorBoundary,
    help="newsdesk: ask questions about your news articles and get answers that cite them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# soft_wrap: a one-line error stays one line in a pipe or a file, where rich assumes 80 columns.
err = Console(stderr=True, soft_wrap=True, highlight=False)
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


_ENTRY_POINT = False  # set by main(): the process is ours to end early


def _settings() -> Settings:
    settings = get_settings()
    for name, path in (
        ("data dir", settings.data_dir),
        ("bm25 folder", settings.data_dir / "bm25"),
    ):
        if path.exists() and not path.is_dir():
            raise CliError(
                f"the {name} {path} is a file, not a folder: move it away, or set "
                "NEWSDESK_DATA_DIR to a folder"
            )
    return settings


def _require_index(settings: Settings) -> None:
    """For commands that only read the index: a missing one is reported (with where it was
    looked for), never created empty in passing."""
    from index.store import empty_index, index_exists

    if not index_exists(settings):
        raise empty_index(settings)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"newsdesk {version('newsdesk')}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """newsdesk: ask questions about your news articles and get answers that cite them."""


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
        out.print(_summary_line(summary))
    if summary.failed:
        raise typer.Exit(1)


def _summary_line(summary: object) -> str:
    from bot.render import summary_line

    return summary_line(summary)  # type: ignore[arg-type]


@app.command()
def watch(
    once: Annotated[bool, typer.Option("--once", help="One cycle, then exit.")] = False,
    interval: Annotated[
        int | None,
        typer.Option(
            "--interval", help="Seconds between cycles (default: NEWSDESK_WATCH_INTERVAL)."
        ),
    ] = None,
) -> None:
    """Keep the index fresh: re-index the corpus folder and NEWSDESK_FEEDS on a schedule.

    Each cycle prints one line; a feed or page that fails is one line too and the rest goes
    on. Watchers sharing a Chroma server take turns (a lease), so run as many as you like.

    Example: NEWSDESK_FEEDS=https://example.com/rss.xml newsdesk watch --interval 600"""
    import time

    from index.embed import get_embedder
    from index.errors import NewsdeskError
    from index.refresh import refresh
    from index.store import Store

    settings = _settings()
    every = interval or settings.watch_interval
    store, embedder = Store(settings), get_embedder(settings)

    def on_error(error: object) -> None:
        err.print(f"[red]error[/red] {error}", markup=True, highlight=False)

    while True:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            cycle = refresh(settings, store=store, embedder=embedder, on_error=on_error)
        except NewsdeskError as exc:  # a server down for a moment: say so, try next cycle
            if once:
                raise
            err.print(f"{stamp} cycle failed: {exc}", highlight=False)
        else:
            line = f"skipped: {cycle.skipped}" if cycle.skipped else _summary_line(cycle.summary)
            out.print(f"{stamp} {line}")
        if once:
            return
        time.sleep(every)


@app.command()
def digest(
    since: Annotated[
        str, typer.Option("--since", help="Window start: Nh, Nd (back from now) or a date.")
    ] = "24h",
    limit: Annotated[
        int | None, typer.Option("-n", help="Most stories (default: NEWSDESK_DIGEST_ITEMS).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The main stories published since a time, one cited sentence each, newest first.

    'Now' is NEWSDESK_REFERENCE_DATE's end when set (for archives), else the clock.

    Example: newsdesk digest --since 2d --json"""
    from index.digest import SinceError, build_digest, parse_since, window_end
    from index.store import Store

    settings = _settings()
    until = window_end(settings.reference_date)
    try:
        start = parse_since(since, until)
    except SinceError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    store = Store(settings)
    items = build_digest(store.manifest(), store, start, until, limit or settings.digest_items)
    if as_json:
        print(json.dumps([item.to_dict() for item in items], ensure_ascii=False))
        return
    if not items:
        out.print("No stories in that window.")
    for n, item in enumerate(items, 1):
        reports = f" · {item.reports} reports" if item.reports > 1 else ""
        out.print(f"[bold]{n}. {item.title}[/bold] — {item.source}, {item.published}{reports}")
        out.print(f"   {item.sentence} [{n}]")
        if item.url:
            out.print(f"   [{n}] {item.url}")


@app.command()
def story(
    ref: Annotated[
        str,
        typer.Argument(
            help="N (source [N] of the chat's last answer), a story id, an article id or URL."
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the timeline as JSON.")] = False,
) -> None:
    """How a story unfolded: its reports oldest first, each with what it added.

    Example: `newsdesk story 2` after the chat cited a source [2], or
    `newsdesk story https://www.cnn.com/2022/10/04/entertainment/loretta-lynn-death/index.html`."""
    from dataclasses import asdict

    from bot.render import print_timeline
    from bot.repl import CONVERSATION
    from index.bm25 import Bm25Cache
    from index.history import open_history
    from index.store import Store
    from index.story_store import StoryMap
    from index.timeline import build_timeline, find_story

    settings = _settings()
    store = Store(settings)
    stories = StoryMap(store)
    cited = []
    if ref.strip("[]").isdigit():
        last = open_history(settings).last(CONVERSATION)
        cited = last.citations if last else []
        if not cited:
            raise CliError(f"no source [{ref.strip('[]')}]: ask in `newsdesk chat` first")
    story_id = find_story(ref, stories, cited)
    if story_id is None:
        raise CliError(f"no indexed story matches {ref!r}")
    keywords = Bm25Cache(settings, store).get()
    timeline = build_timeline(
        store, stories, story_id, idf=keywords.idf(), boilerplate=keywords.boilerplate
    )
    if as_json:
        print(json.dumps(asdict(timeline), ensure_ascii=False))
        return
    print_timeline(out, timeline)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", min=1, max=100, help="How many articles.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the articles (and their best passages) that retrieval finds for QUERY.

    Retrieval is the one `ask` uses: dates in QUERY narrow it ("floods in June 2022").

    Example: newsdesk search "defence MOU" -k 3"""
    from index.engine import build_query_engine

    settings = _settings()
    _check_query(query, settings)
    _require_index(settings)
    nodes = build_query_engine(settings, similarity_top_k=k).retriever.retrieve(query)
    fields = ("url", "title", "source", "published")
    rows = [
        {
            **{name: node.node.metadata[name] for name in fields},
            "score": round(node.score or 0.0, 5),
            "text": node.node.get_content(),
            "article_id": node.node.metadata["article_id"],
        }
        for node in nodes
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
    from index.redact import redact_url
    from index.store import Store, index_exists

    settings = _settings()
    if index_exists(settings):
        stats = Store(settings).stats()
    else:  # reported as empty; nothing is created by looking
        stats = {"articles": 0, "chunks": 0, "first_published": None, "last_published": None}
        stats |= {"version": 0, "embedder": "", "last_indexed": None, "updated_at": 0.0}
    info = {
        **stats,
        "data_dir": str(settings.data_dir),
        "store_mode": "server" if settings.server_mode else "embedded",
        "chroma": (
            f"{settings.chroma_host}:{settings.chroma_port}"
            if settings.server_mode
            else str(settings.chroma_dir)
        ),
        "answer_mode": "llm" if settings.llm_enabled else "offline",
        "llm": (redact_url(settings.openai_base_url) or "OpenAI") + f" / {settings.llm_model}"
        if settings.llm_enabled
        else None,
        "collection": settings.collection,
    }
    if as_json:
        print(json.dumps(info))
        return
    for label, value in _status_lines(info, settings):
        out.print(f"{label:>12}: {value}", markup=False)


def _status_lines(info: dict, settings: Settings) -> list[tuple[str, str]]:
    """``status`` for a person: counts with separators, times as dates, modes in words."""
    from index.redact import redact_url

    articles = f"{info['articles']:,}"
    if info["first_published"]:
        articles += f" (published {info['first_published']} to {info['last_published']})"
    if not info["articles"]:
        articles += " (add some with `newsdesk index PATH`)"
    answers = "offline (extractive, no LLM)"
    if info["llm"]:
        answers = f"LLM {settings.llm_model} at {redact_url(settings.openai_base_url) or 'OpenAI'}"
    store = (
        f"Chroma server at {info['chroma']}"
        if settings.server_mode
        else f"embedded Chroma in {info['chroma']}"
    )
    return [
        ("articles", articles),
        ("chunks", f"{info['chunks']:,}"),
        ("last change", _when(info["updated_at"])),
        ("embedder", info["embedder"] or "none yet"),
        ("answers", answers),
        ("data dir", info["data_dir"]),
        ("store", f"{store}, collection {info['collection']!r}"),
    ]


def _when(timestamp: float) -> str:
    """'2026-11-30 01:02 (3 hours ago)' in local time; 'never' for 0."""
    if not timestamp:
        return "never"
    from datetime import datetime

    moment = datetime.fromtimestamp(timestamp)
    seconds = max(0.0, datetime.now().timestamp() - timestamp)
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            ago = f"{count} {unit}{'s' if count > 1 else ''} ago"
            break
    else:
        ago = "just now"
    return f"{moment:%Y-%m-%d %H:%M} ({ago})"


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in quotes.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the Answer as JSON.")] = False,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Answer as of this day (YYYY-MM-DD): later articles hidden."),
    ] = None,
) -> None:
    """Answer one QUESTION from the indexed articles, with numbered citations.

    Example: newsdesk ask "What did Pakistan and Azerbaijan agree on defence?" --as-of 2025-02-01"""
    from concurrent.futures import ThreadPoolExecutor

    from index.embed import get_embedder, import_libraries
    from index.store import Store, empty_index, index_exists

    settings = _settings()
    day = _parse_date(as_of)
    if not index_exists(settings):
        from index.answer import validate_question

        validate_question(question, settings)  # a bad question is the first thing to hear
        raise empty_index(settings)
    # A cold start overlapped: building the ONNX model and loading the vector index mostly
    # run without the GIL, so each starts as soon as it can and proceeds while this thread
    # imports LlamaIndex and the answering code (the longest part of a cold `ask`:
    # bench/RESULTS.md, start-up).
    import_libraries(settings)
    with ThreadPoolExecutor(1) as pool:
        embedder = pool.submit(get_embedder, settings)
        store = Store(settings)
        store.warm_up()
        from bot.render import print_answer
        from index.engine import build_query_engine

        engine = build_query_engine(settings, store=store, embedder=embedder.result(), as_of=day)
    answer = engine.query(question).metadata["answer"]
    if as_json:
        data = answer.to_dict()
        print(
            json.dumps(
                {
                    k: data[k]
                    for k in (
                        "text",
                        "refused",
                        "citations",
                        "see_also",
                        "conflicts",
                        "mode",
                        "note",
                    )
                },
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
    if not _ENTRY_POINT:  # in-process callers (tests) keep their interpreter
        return
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
    _exit_now()  # the interpreter's teardown can crash in ONNX Runtime's threads


@app.command("eval")
def evaluate(
    questions: Annotated[
        Path,
        typer.Argument(
            help="JSONL: question, answer, gold_urls, answerable, date; or conversations: "
            "date and turns (each a question, answer, gold_urls)."
        ),
    ],
    corpus: Annotated[
        Path | None, typer.Option("--corpus", help="Index this corpus first (incremental).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="Only the first N records (0: all).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    details: Annotated[bool, typer.Option("--details", help="Include per-question rows.")] = False,
) -> None:
    """Measure retrieval hit@k/MRR, answer accuracy, citation precision and refusals.

    Conversation records (with `turns`) are asked turn by turn in one conversation and add
    turn1_accuracy, followup_accuracy, followup_citation_precision and followup_refusal_rate.
    lead_accuracy (and turn1_/followup_lead_accuracy) asks for the expected answer in the
    reply's first sentence.

    Example: newsdesk eval dev.jsonl --corpus corpus.jsonl --json
    """
    from index.engine import build_query_engine
    from index.evaluate import evaluate as run_eval
    from index.evaluate import load_questions
    from index.ingest import index_paths

    settings = _settings()
    try:
        rows = load_questions(questions)[: limit or None]
    except OSError as exc:
        raise CliError(f"cannot read {questions}: {exc.strerror or exc}") from None
    except ValueError as exc:  # not UTF-8, not JSON, no 'question'
        raise CliError(f"cannot use {questions}: {exc}") from None
    if not rows:
        raise CliError(f"{questions} holds no questions (one JSON object per line)")
    if corpus is not None and not corpus.exists():
        raise CliError(f"--corpus {corpus}: no such file or folder")
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


def _check_query(query: str, settings: Settings) -> None:
    """The same limits a question has: words to look for, and not a book."""
    text = " ".join(query.split())
    if not text:
        raise CliError("nothing to search for: give some words")
    if len(text) > settings.max_question_chars:
        raise CliError(
            f"the query is {len(text)} characters long; keep it under {settings.max_question_chars}"
        )


def _parse_date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a date (use YYYY-MM-DD)") from exc


def _settings_problems(exc: Exception) -> str:
    """Each bad setting and why, on one line; never the value (it may be a secret)."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return " ".join(str(exc).split())
    return "; ".join(
        f"{'.'.join(str(part) for part in e.get('loc', ())) or 'settings'}: {e.get('msg', '')}"
        for e in errors()
    )


def main() -> None:
    """Entry point: configure logging once, then run the app inside its error boundary."""
    try:
        settings = get_settings()
    except Exception as exc:  # pydantic ValidationError: bad values in env/.env
        print(f"newsdesk: invalid settings: {_settings_problems(exc)}", file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "chromadb", "httpcore", "bm25s", "telegram.ext.Updater"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The rate limiter logs a traceback when it stops retrying a flood limit; the bot's
    # delivery waits that out itself and logs one line if it gives up.
    logging.getLogger("telegram.ext.AIORateLimiter").setLevel(logging.CRITICAL)
    from index.redact import install_redaction, secrets_of

    install_redaction(secrets_of(settings))  # logs and uncaught errors never show a secret
    global _ENTRY_POINT
    _ENTRY_POINT = True
    try:
        app()
    except KeyboardInterrupt:  # before a command started (the boundary covers the rest)
        print(f"newsdesk: {INTERRUPTED}", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
