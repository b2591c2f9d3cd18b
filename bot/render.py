"""Plain-terminal rendering of an ``Answer`` (the REPL and `newsdesk ask`)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from index.models import Answer, Citation


def source_line(c: Citation) -> str:
    when = f", {c.published}" if c.published else ""
    url = f"\n     {escape(c.url)}" if c.url else ""
    return f"  [{c.n}] {escape(c.title)} — {escape(c.source or 'unknown source')}{when}{url}"


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
