"""Incremental grouping: a run that adds or removes a few articles regroups only the
components around them, and ends with the stories a rebuild of the same feed gives."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from conftest import make_settings

from index import story_store
from index.embed import LocalEmbedder
from index.ingest import index_paths
from index.store import Store
from index.stories import group

START = date(2022, 3, 1)
# (kind, three openings of one event's reports) filled with the event's names and numbers
KINDS = {
    "storm": (
        "Storm {name} made landfall near {place} on {day}, with winds of {n} mph, "
        "forcing thousands of residents of {place} to evacuate.",
        "Residents of {place} cleared debris after Storm {name} battered the coast with "
        "{n} mph winds, cutting power to homes across the region.",
        "Storm {name} weakened inland after striking {place}; officials said the {n} mph "
        "winds destroyed piers and flooded streets.",
    ),
    "vote": (
        "{name} won the mayoral election in {place} with {n} percent of the vote, "
        "defeating the incumbent after a bitter campaign.",
        "Mayor-elect {name} of {place} promised to fix the city budget after taking {n} "
        "percent of the vote in the election.",
        "Voters in {place} chose {name} as mayor; turnout was high and {name} took {n} "
        "percent, officials said.",
    ),
    "launch": (
        "The {name} rocket lifted off from {place} carrying a weather satellite, its "
        "{n}th flight, the space agency said.",
        "Engineers at {place} confirmed the weather satellite launched on the {name} "
        "rocket's {n}th flight reached orbit.",
        "After the {name} launch from {place}, the satellite unfolded its solar panels; "
        "it was the rocket's {n}th mission.",
    ),
}
EVENTS = [  # (kind, names, place, number, first day): same kinds at least 3 weeks apart
    ("storm", "Alder", "Port Kellan", 95, 0),
    ("vote", "Maria Okafor", "Brindleford", 54, 6),
    ("launch", "Corvid", "Hallam Point", 12, 13),
    ("storm", "Bramble", "Sutter Bay", 110, 24),
    ("vote", "Tomas Reyes", "Eastwick", 61, 31),
    ("launch", "Heron", "Cape Morrow", 7, 40),
    ("storm", "Cinder", "Grey Harbor", 80, 52),
    ("vote", "Ana Lindqvist", "Milltown", 58, 60),
]
FILLER = [
    "A museum in {place} reopened its dinosaur hall after renovations lasting two years.",
    "The {place} orchestra announced a season of Baroque concerts and a new conductor.",
    "Bakers in {place} sold a record number of pies at the annual county fair.",
    "A rare orchid bloomed at the botanical garden in {place}, drawing long queues.",
]
PLACES = ["Ashby", "Dunmore", "Fenwick", "Larchmont", "Oakridge", "Quenby", "Rowan", "Selby"]


def articles() -> list[dict]:
    out = []
    for number, (kind, name, place, n, day) in enumerate(EVENTS):
        for part, text in enumerate(KINDS[kind]):
            when = START + timedelta(days=day + part)
            body = text.format(name=name, place=place, n=n, day=when.strftime("%A"))
            out.append(_article(f"e{number}-{part}", f"{name} in {place}", when, body))
    for number, place in enumerate(PLACES):
        when = START + timedelta(days=7 * number + 3)
        body = FILLER[number % len(FILLER)].format(place=place)
        out.append(_article(f"f{number}", f"News from {place}", when, body))
    return out


def _article(slug: str, title: str, when: date, body: str) -> dict:
    return {
        "url": f"https://news.example/{when.isoformat()}/{slug}",
        "title": title,
        "source": "news.example",
        "published": when.isoformat(),
        "text": body + " " + body,
    }


def write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def stories_by_url(store: Store) -> dict[str, frozenset[str]]:
    """url -> the urls of its story (ids aside: what a reader sees)."""
    manifest = store.manifest()
    members: dict[str, set[str]] = {}
    for meta in manifest.values():
        members.setdefault(meta["story_id"], set()).add(meta["url"])
    return {m["url"]: frozenset(members[m["story_id"]]) for m in manifest.values()}


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> list[story_store.StoryPass]:
    """Every grouping pass that index runs make."""
    seen: list[story_store.StoryPass] = []
    real = story_store.assign_stories

    def spy(*args, **kwargs) -> story_store.StoryPass:
        seen.append(real(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(story_store, "assign_stories", spy)
    return seen


def test_the_synthetic_feed_forms_its_events(
    tmp_path: Path, embedder: LocalEmbedder, passes
) -> None:
    feed = write(tmp_path / "feed.jsonl", articles())
    index_paths([feed], make_settings(tmp_path), embedder=embedder)
    got = stories_by_url(Store(make_settings(tmp_path)))
    expected_events = {
        frozenset(a["url"] for a in articles() if f"/e{number}-" in a["url"])
        for number in range(len(EVENTS))
    }
    assert expected_events <= set(got.values())  # each event one story, nothing else in it
    assert passes[-1].full


@pytest.mark.parametrize(
    "change",
    [
        "add an update and an unrelated report",
        "add a video page whose text is only an ad survey",
        "remove an event's first report",
        "move a report to another day",
    ],
)
def test_an_incremental_run_ends_where_a_rebuild_does(
    tmp_path: Path, embedder: LocalEmbedder, passes, change: str
) -> None:
    base = articles()
    final = [dict(a) for a in base]
    if change.startswith("add a video"):  # joins by its headline alone (index.stories)
        survey = "1. How relevant is this ad to you?\n\nVideo player was slow to load content"
        final.append(_article("v", "Tomas Reyes Eastwick", START + timedelta(days=32), survey))
    elif change.startswith("add"):
        update = _article(
            "e4-3",
            "Tomas Reyes in Eastwick",
            START + timedelta(days=34),
            "Tomas Reyes was sworn in as mayor of Eastwick after winning 61 percent of the "
            "vote, and named a new budget chief.",
        )
        other = _article(
            "x", "Chess in Selby", START + timedelta(days=35), "A chess club in Selby won."
        )
        final += [update, other]
    elif change.startswith("remove"):
        final = [a for a in final if "/e3-0" not in a["url"]]
    else:
        moved = next(a for a in final if "/e6-2" in a["url"])
        moved["published"] = (START + timedelta(days=20)).isoformat()
    feed = write(tmp_path / "feed.jsonl", base)
    settings = make_settings(tmp_path)
    index_paths([feed], settings, embedder=embedder)
    write(feed, final)
    index_paths([feed], settings, embedder=embedder)
    incremental = passes[-1]
    store = Store(settings)
    assert not incremental.full and 0 < incremental.articles < len(final) - 10

    # What a full regroup with the same name frequencies gives: identical ids.
    manifest = store.manifest()
    stats = story_store.grouped(store).stats
    full = group(story_store.load_reports(store, manifest), stats).story_of
    assert {aid: m["story_id"] for aid, m in manifest.items()} == full
    # And a rebuild of the final feed in another data dir: the same stories.
    other = tmp_path / "rebuilt"
    other.mkdir()
    rebuilt = make_settings(other)
    index_paths([write(other / "feed.jsonl", final)], rebuilt, embedder=embedder)
    assert passes[-1].full
    assert stories_by_url(store) == stories_by_url(Store(rebuilt))
    if change.startswith("add a video"):
        video = next(a["url"] for a in final if a["url"].endswith("/v"))
        assert {a["url"] for a in final if "/e4-" in a["url"]} < stories_by_url(store)[video]


def test_a_run_killed_in_an_incremental_pass_converges_on_the_next(
    tmp_path: Path, embedder: LocalEmbedder, passes, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = articles()
    final = [a for a in base if "/e5-0" not in a["url"]]  # a story's first report goes
    final.append(_article("e2-3", "Corvid in Hallam Point", START + timedelta(days=16),
                          "The Corvid rocket's 12th flight from Hallam Point put the weather "
                          "satellite in orbit, engineers said."))  # fmt: skip
    feed = write(tmp_path / "feed.jsonl", base)
    settings = make_settings(tmp_path)
    index_paths([feed], settings, embedder=embedder)
    write(feed, final)

    real = story_store._write_chunk_stories
    regrouped: list[int] = []

    def killed(store, moved, grouping):  # some chunks written, then the process dies
        regrouped.append(len(grouping.story_of))
        real(store, dict(list(moved.items())[: len(moved) // 2]), grouping)
        raise KeyboardInterrupt

    monkeypatch.setattr(story_store, "_write_chunk_stories", killed)
    with pytest.raises(KeyboardInterrupt):
        index_paths([feed], settings, embedder=embedder)
    monkeypatch.setattr(story_store, "_write_chunk_stories", real)
    assert 0 < regrouped[0] < len(final) - 10  # it died in an incremental pass
    store = Store(settings)
    assert store.state().dirty

    index_paths([feed], settings, embedder=embedder)
    assert not store.state().dirty
    manifest = store.manifest()
    stats = story_store.grouped(store).stats
    full = group(story_store.load_reports(store, manifest), stats).story_of
    assert {aid: m["story_id"] for aid, m in manifest.items()} == full
    chunks = store.chunks.get(include=["metadatas"])["metadatas"]
    assert all(m["story_id"] == full[m["article_id"]] for m in chunks)
    other = tmp_path / "rebuilt"
    other.mkdir()
    rebuilt = make_settings(other)
    index_paths([write(other / "feed.jsonl", final)], rebuilt, embedder=embedder)
    assert stories_by_url(store) == stories_by_url(Store(rebuilt))
