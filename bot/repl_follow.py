"""Follows and digests in the REPL: /follow, /following, /unfollow, /digest and /reindex.

The REPL is one chat (``REPL_CHAT``) in the same follows file as the Telegram bot, so a
topic followed here is matched by the same rules. It has no schedule of its own: /reindex
re-indexes the corpus folder and the feeds (as one `newsdesk watch` cycle, under the same
lease), then checks the follows and prints the new alerts here. Daily digests need a
running bot; /digest shows one now.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from bot.render import summary_line
from index.follow import REPL_CHAT, Alert, FollowError, FollowStore
from index.settings import Settings

if TYPE_CHECKING:
    from index.alerts import FollowMatcher
    from index.digest import DigestItem
    from index.retrieve import Retriever

COMMANDS = ("/follow", "/following", "/unfollow", "/digest", "/reindex")
HELP = """  /follow T    show new articles on topic T (after /reindex)
  /following   the topics you follow, numbered
  /unfollow N  stop following topic N
  /digest      the main stories indexed since the last digest (or the last 24 h)
  /reindex     index new articles (corpus folder, NEWSDESK_FEEDS), then show alerts"""
USER = 0  # the REPL's one user


class ReplFollows:
    """The REPL's follow commands, run with the loaded engine's retriever."""

    def __init__(self, settings: Settings, console: Console) -> None:
        self.settings = settings
        self.console = console
        self._follows: FollowStore | None = None
        self._matcher: FollowMatcher | None = None

    @property
    def follows(self) -> FollowStore:
        if self._follows is None:  # opened on the first follow command, not at start-up
            self._follows = FollowStore(self.settings)
        return self._follows

    def handle(self, command: str, args: list[str], retriever: Retriever) -> None:
        if command == "/follow":
            self.follow(" ".join(args))
        elif command == "/following":
            self.following()
        elif command == "/unfollow":
            self.unfollow(args)
        elif command == "/digest":
            self.digest(args, retriever)
        elif command == "/reindex":
            self.reindex(retriever)

    def follow(self, topic: str) -> None:
        try:
            made = self.follows.add(REPL_CHAT, USER, topic)
        except FollowError as exc:
            self.console.print(escape(str(exc)))
            return
        n = len(self.follows.follows(REPL_CHAT))
        self.console.print(
            f"Following {n}. [bold]{escape(made.topic)}[/bold]: /reindex fetches new articles "
            "and tells you about those on it."
        )

    def following(self) -> None:
        follows = self.follows.follows(REPL_CHAT)
        if not follows:
            self.console.print("You follow nothing yet. Try /follow Artemis moon rocket launch")
            return
        for n, f in enumerate(follows, 1):
            self.console.print(f"{n}. {escape(f.topic)}")

    def unfollow(self, args: list[str]) -> None:
        if len(args) != 1 or not args[0].isdigit():
            self.console.print("Say which: /unfollow N, with N from /following.")
            return
        removed = self.follows.remove(REPL_CHAT, int(args[0]))
        if removed is None:
            self.console.print(f"There is no topic {escape(args[0])}; /following lists them.")
        else:
            self.console.print(f"Stopped following [bold]{escape(removed.topic)}[/bold].")

    def digest(self, args: list[str], retriever: Retriever) -> None:
        from index.digest import chat_digest

        if args:
            self.console.print(
                "Daily digests are sent by the Telegram bot (/digest daily HH:MM there); "
                "here /digest shows one now."
            )
            return
        items, since = chat_digest(
            self.follows, retriever.store, REPL_CHAT, USER, time.time(), self.settings.digest_items
        )
        start = time.strftime("%Y-%m-%d %H:%M", time.localtime(since))
        if not items:
            self.console.print(f"No new stories since {start}.")
            return
        self.console.print(f"[bold]Digest: the main stories since {start}[/bold]")
        print_digest(self.console, items)

    def reindex(self, retriever: Retriever) -> None:
        """One watch cycle, then this chat's new alerts."""
        from index.alerts import FollowMatcher, check_follows
        from index.refresh import refresh

        cycle = refresh(
            self.settings,
            store=retriever.store,
            embedder=retriever.embedder,
            on_error=lambda error: self.console.print(f"[red]error[/red] {escape(str(error))}"),
        )
        if cycle.skipped:
            self.console.print(f"Not re-indexed: {escape(cycle.skipped)}")
        elif cycle.summary is not None:
            self.console.print(f"Re-indexed: {escape(summary_line(cycle.summary))}")
        if not self.follows.follows(REPL_CHAT):
            return
        if self._matcher is None or self._matcher.retriever.store is not retriever.store:
            self._matcher = FollowMatcher(self.settings, retriever)
        check_follows(self.follows, self._matcher, retriever.store.manifest())
        alerts = self.follows.pending(REPL_CHAT)
        for alert in alerts:
            print_alert(self.console, alert)
        self.follows.mark_sent([a.id for a in alerts], time.time())
        if not alerts:
            self.console.print("No new articles on the topics you follow.")


def print_alert(console: Console, alert: Alert) -> None:
    """Headline, one sentence with its [1], then [1] source, date and link."""
    console.print(f"🔔 New on [bold]{escape(alert.topic)}[/bold]: {escape(alert.title)}")
    if alert.sentence:
        console.print(f"   {escape(alert.sentence)} [1]")
    details = ", ".join(p for p in (alert.source, alert.published) if p)
    console.print(f"   \\[1] {escape(details)}" + (f"  {escape(alert.url)}" if alert.url else ""))


def print_digest(console: Console, items: list[DigestItem]) -> None:
    """Numbered stories: headline, one sentence with its [n], then [n] source, date, link."""
    for n, item in enumerate(items, 1):
        reports = f" · {item.reports} reports" if item.reports > 1 else ""
        details = ", ".join(p for p in (item.source, item.published) if p)
        console.print(f"[bold]{n}. {escape(item.title)}[/bold]{reports}")
        console.print(f"   {escape(item.sentence)} \\[{n}]")
        console.print(
            f"   \\[{n}] {escape(details)}" + (f"  {escape(item.url)}" if item.url else "")
        )
