"""Stories at index time: stored with every article and chunk, kept consistent through
changes, removals, crashes and the migration of an index built before stories existed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_settings

from index import story_store
from index.chunk import chunk_id
from index.embed import LocalEmbedder
from index.ingest import index_paths
from index.store import IndexState, Store
from index.stories import group, story_id

QUAKE_A = {
    "url": "https://news-a.example/2022/07/04/quake",
    "title": "Magnitude 6.8 earthquake strikes Ecuador's Manabi province, killing 12",
    "source": "news-a.example",
    "published": "2022-07-04",
    "text": "A magnitude 6.8 earthquake struck Ecuador's Manabi province on Monday, killing at "
    "least 12 people and toppling buildings in Portoviejo and Manta, officials said. President "
    "Guillermo Lasso declared a state of emergency in Manabi. Rescue teams searched the rubble "
    "through the night.",
}
QUAKE_B = {
    "url": "https://news-b.example/2022/07/05/ecuador-earthquake",
    "title": "Ecuador earthquake: death toll in Manabi rises to 14 as rescuers dig in Portoviejo",
    "source": "news-b.example",
    "published": "2022-07-05",
    "text": "The death toll from the magnitude 6.8 earthquake that hit Ecuador's Manabi province "
    "rose to 14 on Tuesday, as rescuers searched collapsed buildings in Portoviejo and Manta. "
    "President Guillermo Lasso visited the area and kept the state of emergency in place.",
}
BAKE = {
    "url": "https://news-a.example/2022/07/05/bake-off",
    "title": "Village bakery wins national sourdough prize",
    "source": "news-a.example",
    "published": "2022-07-05",
    "text": "A family bakery in the village of Ashby took first prize in the national sourdough "
    "awards on Tuesday, beating 300 entries with a rye loaf proved for two days.",
}
DIGEST = {
    "url": "https://news-b.example/2022/07/05/five-things",
    "title": "5 things to know for July 5: Ecuador earthquake, sourdough prize, heat",
    "source": "news-b.example",
    "published": "2022-07-05",
    "text": "If your day doesn't start until you're up to speed on the latest headlines, here "
    "you go. A magnitude 6.8 earthquake struck Ecuador's Manabi province, killing 14. A "
    "bakery in Ashby won the national sourdough prize.",
}


def write(path: Path, *records: dict) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def ids(store: Store) -> dict[str, str]:
    """url -> article id."""
    return {m["url"]: aid for aid, m in store.manifest().items()}


def assert_stories_consistent(store: Store) -> dict[str, str]:
    """Every article's stored story is what grouping the stored leads gives now, and every
    chunk carries its article's story id; returns article id -> story id."""
    manifest = store.manifest()
    stats = story_store.grouped(store).stats  # the frequencies the index weighs names with
    expected = group(story_store.load_reports(store, manifest), stats).story_of
    stored = {aid: m.get("story_id") for aid, m in manifest.items()}
    assert stored == expected
    got = store.chunks.get(include=["metadatas"])
    for meta in got["metadatas"]:
        assert meta["story_id"] == stored[meta["article_id"]], meta
    assert story_store.grouped_version(store) == store.state().version
    return stored


@pytest.fixture
def indexed(tmp_path: Path, embedder: LocalEmbedder) -> tuple[Path, Store]:
    feed = write(tmp_path / "feed.jsonl", QUAKE_A, QUAKE_B, BAKE, DIGEST)
    settings = make_settings(tmp_path)
    summary = index_paths([feed], settings, embedder=embedder)
    assert summary.added == 4 and summary.stories == 3
    return feed, Store(settings)


def test_reports_of_one_event_share_a_story_named_after_the_first(indexed) -> None:
    _, store = indexed
    stories = assert_stories_consistent(store)
    by_url = ids(store)
    a, b = by_url[QUAKE_A["url"]], by_url[QUAKE_B["url"]]
    assert stories[a] == stories[b] == story_id(a)
    assert stories[by_url[BAKE["url"]]] != stories[a]
    digest = by_url[DIGEST["url"]]
    assert stories[digest] == story_id(digest)
    assert store.manifest()[digest]["digest"] is True
    # Any process can list a story's chunks straight from Chroma.
    got = store.chunks.get(where={"story_id": stories[a]}, include=["metadatas"])
    assert {m["article_id"] for m in got["metadatas"]} == {a, b}
    assert story_store.StoryMap(store).story_of(b) == stories[a]


def test_removing_the_first_report_renames_the_story_after_the_next(
    indexed, embedder: LocalEmbedder
) -> None:
    feed, store = indexed
    b = ids(store)[QUAKE_B["url"]]
    write(feed, QUAKE_B, BAKE, DIGEST)
    summary = index_paths([feed], store.settings, embedder=embedder)
    assert summary.removed == 1 and summary.chunks == 0
    stories = assert_stories_consistent(store)
    assert stories[b] == story_id(b)


def test_a_changed_report_that_leaves_the_event_leaves_its_story(
    indexed, embedder: LocalEmbedder
) -> None:
    feed, store = indexed
    b = ids(store)[QUAKE_B["url"]]
    moved = {**QUAKE_B, "title": BAKE["title"] + " again", "text": BAKE["text"]}
    write(feed, QUAKE_A, moved, BAKE, DIGEST)
    index_paths([feed], store.settings, embedder=embedder)
    stories = assert_stories_consistent(store)
    assert stories[b] != stories[ids(store)[QUAKE_A["url"]]]


def test_an_index_without_stories_gets_them_without_re_embedding(
    indexed, embedder: LocalEmbedder
) -> None:
    from test_ingest import CountingEmbedder

    feed, store = indexed
    before = assert_stories_consistent(store)
    # What an index built before stories looks like: no ids anywhere, no grouping record.
    manifest = store.manifest()
    store.articles.update(  # None removes a key
        ids=list(manifest), metadatas=[{"story_id": None, "digest": None}] * len(manifest)
    )
    all_chunks = store.chunks.get(include=["metadatas"])
    store.chunks.update(
        ids=all_chunks["ids"], metadatas=[{"story_id": None}] * len(all_chunks["ids"])
    )
    store.articles.delete(ids=[story_store.STORIES_ID])
    assert all("story_id" not in m for m in store.manifest().values())

    counting = CountingEmbedder(embedder)
    summary = index_paths([feed], store.settings, embedder=counting)
    assert counting.texts == 0 and summary.unchanged == 4 and summary.stories == 3
    assert assert_stories_consistent(store) == before
    # ... and the next run has nothing left to do.
    summary = index_paths([feed], store.settings, embedder=counting)
    assert summary.stories == 0 and counting.texts == 0


def test_stories_grouped_by_older_rules_are_regrouped_without_re_embedding(
    indexed, embedder: LocalEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_ingest import CountingEmbedder

    feed, store = indexed
    before = assert_stories_consistent(store)
    # The record an index grouped by the first rules has: a version, no rules number.
    store.articles.update(ids=[story_store.STORIES_ID], metadatas=[{"rules": None}])
    assert story_store.grouped_version(store) is None
    regrouped = []
    real = story_store.assign_stories
    monkeypatch.setattr(
        story_store,
        "assign_stories",
        lambda *a, **k: regrouped.append(real(*a, **k)) or regrouped[-1],
    )
    counting = CountingEmbedder(embedder)
    summary = index_paths([feed], store.settings, embedder=counting)
    assert counting.texts == 0 and summary.unchanged == 4 and summary.stories == 3
    assert regrouped[0].full and regrouped[0].articles == 4
    assert assert_stories_consistent(store) == before


def test_an_interrupted_grouping_pass_is_completed_by_the_next_run(
    indexed, embedder: LocalEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed, store = indexed
    before = assert_stories_consistent(store)
    write(feed, QUAKE_B, BAKE, DIGEST)  # the story's first report goes: ids must move

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # as if killed after the chunk metadata was written

    monkeypatch.setattr(store.__class__, "put_articles", crash)
    with pytest.raises(KeyboardInterrupt):
        index_paths([feed], store.settings, embedder=embedder)
    monkeypatch.undo()
    assert store.state().dirty
    b = ids(store)[QUAKE_B["url"]]
    assert store.manifest()[b]["story_id"] == before[b]  # not yet moved in the manifest

    index_paths([feed], store.settings, embedder=embedder)
    stories = assert_stories_consistent(store)
    assert stories[b] == story_id(b) and not store.state().dirty


def test_rebuild_recomputes_the_same_stories(indexed, embedder: LocalEmbedder) -> None:
    feed, store = indexed
    before = assert_stories_consistent(store)
    summary = index_paths([feed], store.settings, rebuild=True, embedder=embedder)
    assert summary.added == 4
    assert assert_stories_consistent(Store(store.settings)) == before


def test_the_grouping_reads_each_lead_from_the_first_chunk(indexed) -> None:
    _, store = indexed
    manifest = store.manifest()
    reports = {r.article_id: r for r in story_store.load_reports(store, manifest)}
    assert set(reports) == set(manifest)
    for aid, meta in manifest.items():
        got = store.chunks.get(ids=[chunk_id(aid, meta["hash"], 0)], include=["documents"])
        assert reports[aid].lead == got["documents"][0]
        assert reports[aid].title == meta["title"]


def test_state_after_grouping_is_clean_and_versioned(indexed) -> None:
    _, store = indexed
    state: IndexState = store.state()
    assert not state.dirty
    assert story_store.grouped_version(store) == state.version


def test_settings_free_helper_for_other_processes(tmp_path: Path, indexed) -> None:
    """A second Store on the same data dir (another process's view) sees the same stories."""
    _, store = indexed
    other = Store(make_settings(store.settings.data_dir.parent))
    assert {a: m.get("story_id") for a, m in other.manifest().items()} == {
        a: m.get("story_id") for a, m in store.manifest().items()
    }


def test_a_retrievers_stories_follow_its_keyword_index_version(
    indexed, embedder: LocalEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import index.bm25
    from index.retrieve import Retriever

    feed, store = indexed
    retriever = Retriever(store.settings, Store(store.settings), embedder)
    by_url = ids(store)
    a, b = by_url[QUAKE_A["url"]], by_url[QUAKE_B["url"]]
    assert retriever.stories.story_of(b) == story_id(a)
    # Lookups between version checks read no state from the store (2 ms a read).
    monkeypatch.setattr(index.bm25, "CHECK_EVERY", 3600.0)  # no check due during the loop
    reads = []
    real_state = Store.state
    monkeypatch.setattr(Store, "state", lambda self: reads.append(1) or real_state(self))
    for _ in range(5):
        retriever.stories.lookup()(b)
        retriever.stories.story_of(b)
    assert reads == []
    monkeypatch.setattr(index.bm25, "CHECK_EVERY", 1.0)
    # Another run removes the story's first report: once the keyword index sees the new
    # version, so do the stories (no stale story ids).
    write(feed, QUAKE_B, BAKE, DIGEST)
    index_paths([feed], store.settings, embedder=embedder)
    retriever.bm25.invalidate()
    assert retriever.stories.story_of(b) == story_id(b)
    assert retriever.bm25.get().version == store.state().version


def test_a_lead_of_page_furniture_is_read_from_the_second_chunk(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    """A page whose first chunk is a sign-up and consent box is grouped by its second chunk
    (text and vector), where its own story starts."""
    consent = (
        "We will use the details you have shared to manage your newsletter subscription, as "
        "described in our Privacy Policy. Would you like to receive The WeekDay newsletter? "
        "If you wish to object to the use of your data in this way, please tick here.\n\n"
    )
    boxed = {
        **QUAKE_B,
        "url": "https://news-c.example/quake",
        "text": consent * 6 + QUAKE_B["text"],
    }
    feed = write(tmp_path / "feed.jsonl", QUAKE_A, boxed, BAKE)
    settings = make_settings(tmp_path)
    index_paths([feed], settings, embedder=embedder)
    store = Store(settings)
    manifest = store.manifest()
    reports = {r.article_id: r for r in story_store.load_reports(store, manifest)}
    aid = ids(store)[boxed["url"]]
    assert manifest[aid]["n_chunks"] > 1
    second = store.chunks.get(
        ids=[chunk_id(aid, manifest[aid]["hash"], 1)], include=["documents", "embeddings"]
    )
    assert reports[aid].body == second["documents"][0]
    assert list(reports[aid].vector) == pytest.approx(list(second["embeddings"][0]))
    assert all(not r.body for a, r in reports.items() if a != aid)
    stories = assert_stories_consistent(store)
    assert stories[aid] == stories[ids(store)[QUAKE_A["url"]]]


def test_chunk_records_a_retriever_keeps_are_read_again_after_an_index_run(
    indexed, embedder: LocalEmbedder
) -> None:
    """Chunk records are kept between questions, for one index version: a run that moves
    an unchanged article to another story (its chunk ids stay) is seen at once."""
    from index.models import Query
    from index.retrieve import Retriever

    feed, store = indexed
    retriever = Retriever(store.settings, Store(store.settings), embedder)
    by_url = ids(store)
    a, b = by_url[QUAKE_A["url"]], by_url[QUAKE_B["url"]]
    query = Query(QUAKE_B["title"], restrict_to=[b])

    def story_of_b() -> set[str]:
        return {c.metadata["story_id"] for c in retriever.dense(query, 3) if c.text}

    assert story_of_b() == {story_id(a)}
    assert story_of_b() == {story_id(a)}  # from the records kept
    write(feed, QUAKE_B, BAKE, DIGEST)
    index_paths([feed], store.settings, embedder=embedder)
    retriever.bm25.invalidate()
    assert story_of_b() == {story_id(b)}
