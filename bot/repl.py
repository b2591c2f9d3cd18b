"""`newsdesk chat`: the local REPL. Streams answers, lists numbered sources under them.

Commands: /sources (the last answer's sources with their quotes), /story N (how the story of
source [N] unfolded), /status (what is indexed), /reset (forget the conversation), /help,
/quit; and following topics (bot/repl_follow.py). Ctrl-C cancels the answer being written, not the session; Ctrl-D or /quit leaves.
This loop is the REPL's error boundary: a failure prints one line and the next question
works.

The prompt shows at once. The chat engine (Chroma, the embedder, LlamaIndex: seconds on a
busy machine) loads in a background thread while the first question is typed; nothing heavy
is imported before the prompt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from bot import repl_follow
from bot.render import print_answer, print_timeline, source_line, writing_progress
from index.errors import QuestionError, StoreError
from index.models import Answer
from index.settings import Settings
from index.store import describe_index, index_exists

if TYPE_CHECKING:
    from rich.live import Live

    from index.engine import NewsChatEngine

log = logging.getLogger(__name__)

CONVERSATION = "repl"
HELP = f"""Ask a question about the indexed articles; follow-ups work ("and what did he say?",
"tell me more about [2]"). Dates narrow the search: "in June 2022", "last week".
  /sources  the last answer's sources, with the sentence each one supports
  /story N  how the story of source [N] unfolded: its reports oldest first
  /status   what is indexed, and how answers are written
  /reset    forget this conversation
{repl_follow.HELP}
  /help     this text
  /quit     leave (or Ctrl-D)"""


def _setup_readline(path: Path) -> None:
    try:
        import readline
    except ImportError:  # not on every platform; the REPL works without it
        return
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    readline.set_history_length(1000)
    import atexit

    atexit.register(lambda: _save_history(readline, path))


def _save_history(readline: object, path: Path) -> None:
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        readline.write_history_file(path)  # type: ignore[attr-defined]


def build_chat_engine(settings: Settings, conversation_id: str) -> NewsChatEngine:
    """``index.engine.build_chat_engine``, imported on the first call: it brings LlamaIndex."""
    from index.engine import build_chat_engine as build

    return build(settings, conversation_id)


class _Loader:
    """The chat engine and the index's figures, built in a daemon thread (leaving the REPL
    need not wait for it). A load that failed is reported once and tried again next time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._start()

    def _start(self) -> None:
        self._future: Future[tuple[NewsChatEngine, dict]] = Future()
        threading.Thread(target=self._load, name="repl-engine", daemon=True).start()

    def _load(self) -> None:
        try:
            engine = build_chat_engine(self.settings, CONVERSATION)
            store = engine.answerer.retriever.store
            store.warm_up()  # the vector index loads too, before the first question
            self._future.set_result((engine, store.stats()))
        except BaseException as exc:  # handed to the question that waits for the engine
            self._future.set_exception(exc)

    def get(self) -> tuple[NewsChatEngine, dict]:
        """The engine and stats, waiting for the load; its error, and a fresh attempt."""
        try:
            return self._future.result()
        except BaseException:
            self._start()
            raise

    def reload(self) -> None:
        """Build the engine again (the index was just filled)."""
        self._start()


async def _answer(engine: NewsChatEngine, question: str, console: Console) -> Answer | None:
    """Progress while the answer is written, then only the checked answer and its sources:
    streamed text is unchecked (claims and citations the check may drop), so it is counted,
    not shown, as in Telegram's preview."""
    from rich.text import Text

    streamed = ""
    response = await engine.astream_chat(question)
    with _progress_line(console) as live:
        async for delta in response.async_response_gen():
            streamed += delta
            if live is not None:
                live.update(Text(writing_progress(streamed), style="dim"), refresh=True)
    final = response.answer
    if final is not None:
        print_answer(console, final)
    return final


@contextlib.contextmanager
def _progress_line(console: Console) -> Iterator[Live | None]:
    """On a terminal, one transient line that the answer replaces; in a pipe, nothing (a
    script reads the answer alone)."""
    if not console.is_terminal:
        yield None
        return
    from rich.live import Live
    from rich.text import Text

    # Log lines (an LLM that failed) must print above the line, not through it: Live
    # redirects sys.stderr, but a logging handler keeps the stream it was given.
    stderr = sys.stderr
    handlers = [
        h
        for h in logging.getLogger().handlers
        if type(h) is logging.StreamHandler and h.stream in (stderr, sys.__stderr__)
    ]
    start = Text("Searching the articles …", style="dim")
    with Live(start, console=console, transient=True, auto_refresh=False) as live:
        streams = [h.setStream(sys.stderr) for h in handlers]
        try:
            yield live
        finally:
            for handler, stream in zip(handlers, streams):
                handler.setStream(stream)


def run(settings: Settings, console: Console | None = None, interactive: bool = True) -> None:
    console = console or Console(highlight=False, soft_wrap=True)
    filled = not index_exists(settings)  # a first start: index the corpus folder, then ask
    if filled:
        _index_corpus(settings, console)
    mode = "LLM answers" if settings.llm_enabled else "offline answers"
    console.print(
        f"[bold]newsdesk[/bold] · {mode} · {escape(describe_index(settings))}. "
        "Ask a question; /status says what is indexed, /help lists the commands."
    )
    if interactive:
        _setup_readline(settings.data_dir / "repl_history")
    # Started last, just before input(): two threads importing at once can see each other's
    # half-initialised modules (numpy then raises ImportError), so this one is done importing.
    loader = _Loader(settings)
    follows = repl_follow.ReplFollows(settings, console)
    last: Answer | None = None
    while True:
        try:
            line = input("› " if interactive else "")
        except EOFError:
            console.print()
            return
        except KeyboardInterrupt:
            console.print("\n(/quit or Ctrl-D to leave)")
            continue
        text = line.strip()
        if not text:
            continue
        command = text.split()[0].lower() if text.startswith("/") else ""
        if command in ("/quit", "/exit", "/q"):
            return
        if command == "/help":
            console.print(HELP)
            continue
        if command == "/sources":
            _print_sources(console, last)
            continue
        if command and command not in ("/reset", "/status", "/story", *repl_follow.COMMANDS):
            console.print(f"Unknown command {escape(command)}; /help lists them.")
            continue
        try:
            engine, stats = loader.get()
            if not stats["articles"] and not filled and not command:  # once, as at a first start
                filled = True
                _index_corpus(settings, console)
                loader.reload()
                engine, stats = loader.get()
            if command == "/reset":
                engine.reset()
                last = None
                console.print("Conversation forgotten.")
            elif command == "/status":
                console.print(_status(stats, engine, settings))
            elif command == "/story":
                _print_story(console, engine, text.split()[1:], last)
            elif command in repl_follow.COMMANDS:
                follows.handle(command, text.split()[1:], engine.answerer.retriever)
            else:
                last = asyncio.run(_answer(engine, text, console)) or last
        except KeyboardInterrupt:
            console.print("\n(answer cancelled)")
        except QuestionError as exc:
            console.print(str(exc))
        except StoreError as exc:
            console.print(f"[red]{escape(str(exc))}[/red]")
        except Exception as exc:  # the REPL's error boundary: report, keep the session
            log.debug("answer failed", exc_info=True)
            console.print(
                f"[red]Something went wrong: {escape(type(exc).__name__)}: {escape(str(exc))}[/red]"
            )


def _status(stats: dict, engine: NewsChatEngine, settings: Settings) -> str:
    span = (
        f", published {stats['first_published']} to {stats['last_published']}"
        if stats["first_published"]
        else ""
    )
    mode = "LLM answers" if engine.answerer.llm is not None else "offline answers"
    return escape(f"{stats['articles']:,} articles{span} · {mode} · {describe_index(settings)}")


def _print_sources(console: Console, last: Answer | None) -> None:
    if last is None or not (last.citations or last.see_also):
        console.print("No sources yet: ask a question first.")
        return
    for c in last.citations or last.see_also:
        console.print(source_line(c))
        if c.quote:
            console.print(f"     “{escape(c.quote)}”")


def _print_story(
    console: Console, engine: NewsChatEngine, args: list[str], last: Answer | None
) -> None:
    from index.timeline import find_story, story_timeline

    cited = (last.citations or last.see_also) if last else []
    if not args:
        console.print("Usage: /story N (the story of source [N] of the last answer)")
        return
    retriever = engine.answerer.retriever
    story = find_story(args[0], retriever.stories, cited)
    if story is None:
        console.print(f"No story {escape(args[0])}: /sources lists the last answer's sources.")
        return
    print_timeline(console, story_timeline(retriever, story))


def _index_corpus(settings: Settings, console: Console) -> None:
    from index.ingest import index_paths

    if not settings.corpus_dir.is_dir():
        console.print(
            escape(
                f"No articles are indexed in {describe_index(settings)} and there is no "
                f"folder {settings.corpus_dir} to index: add articles with `newsdesk index "
                "PATH` (or set NEWSDESK_CORPUS_DIR)."
            )
        )
        return
    console.print(escape(f"The index is empty: indexing {settings.corpus_dir} first…"))
    summary = index_paths([settings.corpus_dir], settings)
    console.print(
        f"Indexed {summary.added} articles ({summary.chunks} chunks) in {summary.seconds:.1f}s"
        + (f"; {summary.failed} failed" if summary.failed else "")
    )
