"""Plain-terminal rendering of an ``Answer`` (the REPL and `newsdesk ask`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from index.models import Answer, Citation, IndexSummary, OtherReport

if TYPE_CHECKING:  # the timeline module loads the retrieval stack; rendering needs none of it
    from index.timeline import Timeline

SHOWN_SOURCES = 2  # other outlets named beside a citation; the rest are counted


def other_reports(c: Citation, name: Callable[[OtherReport], str] = lambda r: r.source) -> str:
    """`` (+3 reports: usatoday.com, theweek.co.uk, …)``: who else reported the cited story.
    ``name`` renders one report, escaped for the front end (Telegram links it)."""
    if not c.also:
        return ""
    first_of: dict[str, OtherReport] = {}
    for report in c.also:  # oldest first: each outlet named once, by its first report
        first_of.setdefault(report.source or report.url, report)
    shown = [name(r) for r in list(first_of.values())[:SHOWN_SOURCES]]
    more = ", …" if len(c.also) > len(shown) else ""
    noun = "report" if len(c.also) == 1 else "reports"
    return f" (+{len(c.also)} {noun}: {', '.join(shown)}{more})"


def summary_line(s: IndexSummary) -> str:
    """What an indexing run did, in one line (the CLI, the REPL and Telegram's /reindex)."""
    return (
        f"added {s.added} · updated {s.updated} · unchanged {s.unchanged} · removed {s.removed}"
        f" · failed {s.failed} · {s.chunks} chunks in {s.seconds:.1f}s"
    )


def writing_progress(streamed: str) -> str:
    """What a front end shows while the LLM writes: how far the answer has got, never its
    words. Streamed text has not been through the citation check yet (an article can talk
    the LLM into a claim, or a forged "[1]"), and replacing it would come after it was read."""
    n = len(streamed.split())
    if not n:
        return ""
    return f"Writing the answer ({n} word{'s' * (n != 1)} so far) …"


def source_line(c: Citation) -> str:
    when = f", {c.published}" if c.published else ""
    url = f"\n     {escape(c.url)}" if c.url else ""
    also = other_reports(c, lambda r: escape(r.source or r.url))
    return f"  [{c.n}] {escape(c.title)} — {escape(c.source or 'unknown source')}{when}{also}{url}"


def print_answer(console: Console, answer: Answer, *, text: bool = True) -> None:
    """The answer, then its numbered sources; article text is escaped, never markup."""
    if text:
        console.print(escape(answer.text))
    if answer.note:
        console.print(f"[yellow]{escape(answer.note)}[/yellow]")
    if answer.citations:
        console.print("\n[bold]Sources[/bold]")
        for c in answer.citations:
            console.print(source_line(c))
    elif answer.refused and answer.see_also:
        console.print("\n[bold]See also[/bold]")
        for c in answer.see_also:
            console.print(source_line(c))


def print_timeline(console: Console, timeline: Timeline) -> None:
    """A story's reports oldest first: date, source, headline, and what each one added."""
    entries = timeline.entries
    span = f", {entries[0].published} to {entries[-1].published}" if entries else ""
    noun = "report" if len(entries) == 1 else "reports"
    console.print(
        f"[bold]{escape(timeline.title)}[/bold] — story {timeline.story_id}, "
        f"{len(entries)} {noun}{span}"
    )
    for e in entries:
        console.print(f"  {e.published or '(undated)'}  {escape(e.source)}  {escape(e.title)}")
        if e.new:
            console.print(f"      “{escape(e.new)}”")
        if e.url:
            console.print(f"      {escape(e.url)}")
