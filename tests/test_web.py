"""Feeds, sitemaps and pages over real HTTP from a news site on 127.0.0.1 (tests/fakes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_settings
from fakes.news_site import NewsSite, SiteArticle
from typer.testing import CliRunner

from index.identity import article_id, canonical_url
from index.models import LoadError
from index.refresh import index_targets
from index.settings import Settings
from index.store import Store


def story(slug: str, title: str, day: str, topic: str) -> SiteArticle:
    return SiteArticle(
        slug,
        title,
        day,
        [
            f"{topic} was the main news on {day}, officials said in a statement on Monday.",
            f"Reporters at the scene described how {topic.lower()} affected thousands of people "
            "in the region, and local leaders asked for calm while the investigation went on.",
            "Experts said it would take weeks to know the full cost, and that the government "
            "would publish a detailed report before the end of the month.",
        ],
    )


ARTICLES = [
    story("bridge-opens", "New bridge opens over the river", "2022-06-01", "The bridge opening"),
    story("volcano-erupts", "Volcano erupts near the coast", "2022-06-02", "The eruption"),
    story("rates-rise", "Central bank raises interest rates", "2022-06-03", "The rate rise"),
]


@pytest.fixture
def site() -> Iterator[NewsSite]:
    with NewsSite([story(a.slug, a.title, a.published, a.title) for a in ARTICLES]) as running:
        running.slow_seconds = 2.0
        yield running


@pytest.fixture
def web_settings(tmp_path: Path) -> Settings:
    (tmp_path / "corpus").mkdir()
    return make_settings(
        tmp_path, fetch_host_delay=0.0, fetch_timeout=1.0, fetch_max_bytes=2_000_000
    )


def run(targets: list[str], settings: Settings, embedder) -> tuple[object, list[LoadError]]:
    errors: list[LoadError] = []
    summary = index_targets(targets, settings, embedder=embedder, on_error=errors.append)
    return summary, errors


def page_requests(site: NewsSite) -> list[str]:
    return site.paths("/news/")


# Each failing URL: what the one-line reason says.
FAILURES = [
    ("/missing", "HTTP 404 Not Found"),
    ("/error", "HTTP 500 Internal Server Error"),
    ("/slow", "timed out after 1 s"),
    ("/huge", "over the 2,000,000-byte limit"),
    ("/report.pdf", "not an article page or a feed (application/pdf)"),
    ("/broken.xml", "malformed XML"),
    ("/loop/a", "too many redirects"),
    ("/private/story", "disallowed by robots.txt"),
    ("/paywall", "no article text on the page"),
]


def test_each_failure_is_one_line_and_the_rest_is_indexed(site, web_settings, embedder) -> None:
    targets = [site.url + path for path, _ in FAILURES] + [site.url + "/feed.xml"]
    summary, errors = run(targets, web_settings, embedder)
    assert summary.added == 3 and summary.failed == len(FAILURES)
    by_url = {e.path: e.reason for e in errors}
    for path, reason in FAILURES:
        assert reason in by_url[site.url + path], (path, by_url[site.url + path])
        assert "\n" not in by_url[site.url + path]


def test_rss_feed_fetches_pages_then_only_new_items(site, web_settings, embedder) -> None:
    feed = site.url + "/feed.xml"
    summary, errors = run([feed], web_settings, embedder)
    assert (summary.added, summary.failed, errors) == (3, 0, [])
    assert sorted(page_requests(site)) == [
        f"/news/{a.slug}" for a in sorted(ARTICLES, key=lambda a: a.slug)
    ]
    ua = {h.get("User-Agent", "") for p, h in site.requests}
    assert all(agent.startswith("newsdesk/") for agent in ua)
    assert all("gzip" in h.get("Accept-Encoding", "") for _, h in site.requests)

    manifest = Store(web_settings).manifest()
    volcano = manifest[article_id(canonical_url(f"{site.url}/news/volcano-erupts"), "", None)]
    assert volcano["title"] == "Volcano erupts near the coast"
    assert volcano["published"] != ""
    assert (
        Store(web_settings)
        .article_text(article_id(canonical_url(f"{site.url}/news/volcano-erupts"), "", None))
        .count("Loopback Times. All rights reserved")
        == 0
    )  # page furniture is not text

    # Unchanged feed: a 304, no page fetched again.
    site.requests.clear()
    summary, _ = run([feed], web_settings, embedder)
    assert (summary.added, summary.updated, summary.unchanged) == (0, 0, 0)
    assert site.paths("/feed.xml") == ["/feed.xml"]
    assert page_requests(site) == []
    assert "If-None-Match" in site.requests[-1][1]

    # The feed gains an item: only that page is fetched.
    site.publish(story("flood-warning", "Flood warning for the valley", "2022-06-04", "The flood"))
    site.requests.clear()
    summary, _ = run([feed], web_settings, embedder)
    assert (summary.added, summary.unchanged) == (1, 3)
    assert page_requests(site) == ["/news/flood-warning"]


def test_an_item_whose_page_changed_is_fetched_again(site, web_settings, embedder) -> None:
    feed = site.url + "/feed.xml"
    run([feed], web_settings, embedder)
    site.edit("rates-rise", ["The central bank raised rates again by half a point on Friday. " * 6])
    site.requests.clear()
    summary, _ = run([feed], web_settings, embedder)
    assert (summary.added, summary.updated, summary.unchanged) == (0, 1, 2)
    assert page_requests(site) == ["/news/rates-rise"]
    assert "If-None-Match" in dict(site.requests)["/news/rates-rise"]
    aid = article_id(canonical_url(f"{site.url}/news/rates-rise"), "", None)
    assert "half a point" in Store(web_settings).article_text(aid)


def test_atom_with_full_text_needs_no_page_fetch(site, web_settings, embedder) -> None:
    site.articles["bridge-opens"].paragraphs *= 5  # long enough to be full text
    summary, errors = run([site.url + "/atom.xml"], web_settings, embedder)
    assert (summary.added, errors) == (3, [])
    # The two short items fetch their pages; the full-text one does not.
    assert sorted(page_requests(site)) == ["/news/rates-rise", "/news/volcano-erupts"]
    meta = Store(web_settings).manifest()
    assert any(m["title"] == "New bridge opens over the river" for m in meta.values())


def test_sitemap_index_and_a_single_page(site, web_settings, embedder) -> None:
    summary, errors = run([site.url + "/sitemap-index.xml"], web_settings, embedder)
    assert (summary.added, errors) == (3, [])
    site.requests.clear()
    summary, errors = run([site.url + "/news/volcano-erupts"], web_settings, embedder)
    assert (summary.added, summary.unchanged, errors) == (0, 1, [])
    assert site.paths("/news/") == ["/news/volcano-erupts"]  # asked with its ETag: 304
    assert "If-None-Match" in site.requests[-1][1]


def test_a_crash_before_commit_keeps_old_validators(
    site, web_settings, embedder, monkeypatch
) -> None:
    """Pages fetched in a run that dies are fetched again: a 304 must not hide them."""
    from index import ingest

    def boom(*args, **kwargs):
        raise RuntimeError("killed mid-run")

    monkeypatch.setattr(ingest, "_write", boom)
    with pytest.raises(RuntimeError):
        run([site.url + "/feed.xml"], web_settings, embedder)
    monkeypatch.undo()
    site.requests.clear()
    summary, errors = run([site.url + "/feed.xml"], web_settings, embedder)
    assert (summary.added, errors) == (3, [])
    assert len(page_requests(site)) == 3


def test_cli_index_accepts_urls_beside_folders(site, web_settings, monkeypatch) -> None:
    from bot import cli

    corpus = web_settings.corpus_dir
    (corpus / "local.md").write_text("# Local story\n\nA local council approved a new park.\n")
    monkeypatch.setattr(cli, "_settings", lambda: web_settings)
    result = CliRunner().invoke(
        cli.app, ["index", str(corpus), site.url + "/feed.xml", site.url + "/missing", "--json"]
    )
    assert result.exit_code == 1  # one failure
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["added"] == 4 and summary["failed"] == 1
    assert f"{site.url}/missing: HTTP 404 Not Found" in result.stderr
