"""Watching: `newsdesk watch`, the index lease that keeps two watchers on one Chroma server
from interleaving their runs (tested against a real `chroma run`), and feeds given as a file."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_settings
from fakes.news_site import NewsSite
from test_follow import CHESS, RATES, VOLCANO
from typer.testing import CliRunner

from index.ingest import repair
from index.lease import IndexLease, LeaseBusy
from index.refresh import Cycle, refresh
from index.settings import Settings
from index.store import Store


@pytest.fixture
def site() -> Iterator[NewsSite]:
    with NewsSite([VOLCANO, RATES]) as running:
        yield running


def test_watch_once_indexes_corpus_and_feeds(site, tmp_path: Path, monkeypatch) -> None:
    from bot import cli

    feeds = tmp_path / "feeds.txt"
    feeds.write_text(f"# our feeds\n{site.url}/feed.xml\n\n{site.url}/missing\n")
    settings = make_settings(tmp_path, feeds=str(feeds), fetch_host_delay=0.0)
    settings.corpus_dir.mkdir()
    (settings.corpus_dir / "a.md").write_text("# Local story\n\nThe council approved a park.\n")
    assert settings.feed_urls == [f"{site.url}/feed.xml", f"{site.url}/missing"]
    monkeypatch.setattr(cli, "_settings", lambda: settings)

    result = CliRunner().invoke(cli.app, ["watch", "--once"])
    assert result.exit_code == 0, result.output
    assert "added 3 · updated 0 · unchanged 0 · removed 0 · failed 1" in result.stdout
    assert f"{site.url}/missing: HTTP 404 Not Found" in result.stderr

    site.publish(CHESS)
    result = CliRunner().invoke(cli.app, ["watch", "--once"])
    assert "added 1 · updated 0 · unchanged 3" in result.stdout


@pytest.mark.server
def test_two_watchers_on_one_server_take_turns(site, chroma_server, tmp_path: Path) -> None:
    host, port = chroma_server
    collection = f"watch-{uuid.uuid4().hex[:8]}"

    def watcher(name: str) -> Settings:
        return make_settings(
            tmp_path / name,
            chroma_host=host,
            chroma_port=port,
            collection=collection,
            feeds=[f"{site.url}/feed.xml"],
            fetch_host_delay=0.2,  # slow enough that the two runs would overlap
        )

    settings = [watcher("a"), watcher("b")]
    cycles: dict[str, Cycle] = {}
    barrier = threading.Barrier(2)

    def run(s: Settings) -> None:
        barrier.wait()
        cycles[s.data_dir.parent.name] = refresh(s)

    threads = [threading.Thread(target=run, args=(s,)) for s in settings]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    ran = [c for c in cycles.values() if c.summary is not None]
    skipped = [name for name, c in cycles.items() if c.skipped]
    assert len(ran) == 1 and len(skipped) == 1, cycles
    assert "another indexer" in cycles[skipped[0]].skipped
    assert ran[0].summary.added == 2

    store = Store(settings[1])
    assert not store.state().dirty
    assert repair(store) == {"stray_chunks": 0, "incomplete_articles": 0}
    assert len(store.manifest()) == 2
    # The lease was released: the watcher that was turned away runs now and finds nothing new.
    # (It must be that one: the other remembers the feed's validators and would get a 304.)
    again = refresh(watcher(skipped[0]))
    assert again.summary is not None and again.summary.unchanged == 2


def test_lease_excludes_expires_and_releases(settings: Settings) -> None:
    store = Store(settings)
    first = IndexLease(store, owner="first")
    first.acquire()
    with pytest.raises(LeaseBusy, match="first"):
        IndexLease(store, owner="second").acquire()
    first.release()
    with IndexLease(store, owner="second") as second:
        assert second.holder().owner == "second"
    # A crashed holder's lease expires.
    crashed = IndexLease(store, owner="crashed", ttl=0.5)
    crashed.acquire()
    crashed._stop.set()  # its renewer dies with it
    import time

    time.sleep(0.6)
    with IndexLease(store, owner="next") as taker:
        assert taker.holder().owner == "next"
