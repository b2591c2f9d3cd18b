"""Incremental, crash-safe indexing into a real embedded Chroma with the real ONNX embedder."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from chromadb.api.shared_system_client import SharedSystemClient
from conftest import OTHER_ARTICLES, SEED, make_settings

from index.chunk import Chunker, chunk_id
from index.corpus import iter_articles
from index.embed import LocalEmbedder
from index.ingest import _chroma_metadata, _manifest_record, index_paths, repair
from index.models import Article, LoadError
from index.settings import Settings
from index.store import EmbedderMismatch, IndexState, Store

SEED_TITLE = (
    "Pakistan and Azerbaijan agree to deepen trade, energy and defence cooperation "
    "at Joint Ministerial Commission"
)


class CountingEmbedder:
    """Wraps the real embedder; counts calls and texts; may pretend to be another model."""

    def __init__(self, inner: LocalEmbedder, name: str | None = None) -> None:
        self.inner = inner
        self.name = name or inner.name
        self.dim = inner.dim
        self.calls = 0
        self.texts = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts += len(texts)
        return self.inner.embed(texts)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def tokens(self, text: str) -> list[int]:
        return self.inner.tokens(text)


# --- helpers ----------------------------------------------------------------------------------


def make_corpus(root: Path) -> Path:
    """The seed article (3 chunks) and three one-chunk articles in a JSONL file."""
    corpus = root / "corpus"
    corpus.mkdir(parents=True)
    shutil.copy(SEED, corpus / SEED.name)
    (corpus / "other.jsonl").write_text(OTHER_ARTICLES + "\n", encoding="utf-8")
    return corpus


def md(title: str, body: str, url: str = "") -> str:
    front = f"---\ntitle: {title}\npublished: 2022-03-04\nsource: test\n"
    if url:
        front += f"url: {url}\n"
    return front + f"---\n\n{body}\n"


def read(path: Path, settings: Settings) -> list[Article]:
    items = iter_articles(
        path,
        max_file_bytes=settings.max_file_bytes,
        max_article_chars=settings.max_article_chars,
    )
    return [a for a in items if isinstance(a, Article)]


def expected_chunks(path: Path, settings: Settings, embedder: LocalEmbedder) -> dict[str, int]:
    chunker = Chunker(embedder, settings.chunk_tokens, settings.chunk_overlap)
    return {a.id: len(chunker.nodes(a)) for a in read(path, settings)}


def chunk_map(store: Store) -> dict[str, tuple[str, str]]:
    return {cid: (aid, h) for cid, aid, h in store.chunk_keys()}


def ids_of(store: Store, article_id: str) -> set[str]:
    return {cid for cid, (aid, _) in chunk_map(store).items() if aid == article_id}


def assert_consistent(store: Store) -> dict[str, dict]:
    """No duplicate, orphan or missing chunk; every manifest entry has exactly its chunks."""
    assert not store.state().dirty
    manifest = store.manifest()
    got = store.chunks.get(include=["metadatas"])
    ids = got["ids"]
    assert len(ids) == len(set(ids))
    want = {
        chunk_id(aid, meta["hash"], i)
        for aid, meta in manifest.items()
        for i in range(int(meta["n_chunks"]))
    }
    assert set(ids) == want, (
        f"orphans: {sorted(set(ids) - want)[:5]}, missing: {sorted(want - set(ids))[:5]}"
    )
    for cid, meta in zip(ids, got["metadatas"]):
        entry = manifest[meta["article_id"]]
        assert meta["doc_hash"] == entry["hash"]
        assert meta["n_chunks"] == entry["n_chunks"]
        assert cid == chunk_id(meta["article_id"], meta["doc_hash"], meta["position"])
    assert store.chunks.count() == sum(int(m["n_chunks"]) for m in manifest.values()) == len(ids)
    return manifest


@pytest.fixture
def indexed(tmp_path: Path, embedder: LocalEmbedder) -> tuple[Settings, Path, Store]:
    corpus = make_corpus(tmp_path)
    settings = make_settings(tmp_path)
    summary = index_paths([corpus], settings, embedder=embedder)
    assert (summary.added, summary.failed) == (4, 0)
    return settings, corpus, Store(settings)


# --- first run, no-op re-run ------------------------------------------------------------------


def test_first_index_then_unchanged_rerun_embeds_nothing(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    corpus = make_corpus(tmp_path)
    settings = make_settings(tmp_path)
    want = expected_chunks(corpus, settings, embedder)
    assert len(want) == 4 and max(want.values()) >= 2  # the seed article spans chunks

    counting = CountingEmbedder(embedder)
    summary = index_paths([corpus], settings, embedder=counting)
    assert (summary.added, summary.updated, summary.unchanged) == (4, 0, 0)
    assert (summary.removed, summary.failed, summary.errors) == (0, 0, [])
    assert summary.chunks == sum(want.values()) == counting.texts
    store = Store(settings)
    manifest = assert_consistent(store)
    assert {a: int(m["n_chunks"]) for a, m in manifest.items()} == want
    assert store.chunks.count() == sum(want.values())
    seed = next(m for m in manifest.values() if m["title"] == SEED_TITLE)
    assert seed["published"] == "2025-01-24" and seed["origin"] == str(corpus.resolve())
    state = store.state()
    assert state.embedder == embedder.name and state.version > 0

    again = CountingEmbedder(embedder)
    summary = index_paths([corpus], settings, embedder=again)
    assert (summary.added, summary.updated, summary.unchanged) == (0, 0, 4)
    assert (summary.removed, summary.failed, summary.chunks) == (0, 0, 0)
    assert again.calls == 0 and again.texts == 0
    assert Store(settings).state().version == state.version  # nothing changed: no new version
    assert_consistent(store)


def test_modifying_one_article_replaces_only_its_chunks(
    indexed: tuple[Settings, Path, Store], embedder: LocalEmbedder
) -> None:
    settings, corpus, store = indexed
    before = chunk_map(store)
    seed_id = next(a.id for a in read(corpus / SEED.name, settings))
    old_ids = ids_of(store, seed_id)
    assert len(old_ids) >= 2

    seed_file = corpus / SEED.name
    seed_file.write_text(
        seed_file.read_text(encoding="utf-8") + "\nA closing line was added on Monday.\n",
        encoding="utf-8",
    )
    counting = CountingEmbedder(embedder)
    summary = index_paths([corpus], settings, embedder=counting)
    assert (summary.added, summary.updated, summary.unchanged, summary.removed) == (0, 1, 3, 0)

    manifest = assert_consistent(store)
    new_ids = ids_of(store, seed_id)
    new_hash = manifest[seed_id]["hash"]
    assert new_ids == {chunk_id(seed_id, new_hash, i) for i in range(len(new_ids))}
    assert new_ids.isdisjoint(old_ids)  # every old chunk gone
    assert counting.texts == summary.chunks == len(new_ids)  # only the changed one embedded
    others = {c: v for c, v in before.items() if v[0] != seed_id}
    assert {c: v for c, v in chunk_map(store).items() if v[0] != seed_id} == others


def test_deleted_file_and_record_are_removed_and_only_those(
    indexed: tuple[Settings, Path, Store], embedder: LocalEmbedder
) -> None:
    settings, corpus, store = indexed
    seed_id = next(a.id for a in read(corpus / SEED.name, settings))
    before = chunk_map(store)

    (corpus / SEED.name).unlink()
    summary = index_paths([corpus], settings, embedder=embedder)
    assert (summary.added, summary.updated, summary.unchanged, summary.removed) == (0, 0, 3, 1)
    manifest = assert_consistent(store)
    assert seed_id not in manifest and not ids_of(store, seed_id)
    assert chunk_map(store) == {c: v for c, v in before.items() if v[0] != seed_id}

    lines = (corpus / "other.jsonl").read_text(encoding="utf-8").splitlines()
    gone = json.loads(lines[1])["url"]
    (corpus / "other.jsonl").write_text("\n".join([lines[0], lines[2]]) + "\n", encoding="utf-8")
    summary = index_paths([corpus], settings, embedder=embedder)
    assert (summary.added, summary.updated, summary.unchanged, summary.removed) == (0, 0, 2, 1)
    manifest = assert_consistent(store)
    assert len(manifest) == 2 and gone not in {m["url"] for m in manifest.values()}


@pytest.mark.parametrize(
    ("target", "garbage", "reason"),
    [
        ("other.jsonl", b"\x00\x01\x02\xff" * 500, "binary"),
        (SEED.name, "Caf\xe9 au lait, na\xefve text.\n".encode("latin-1"), "not UTF-8"),
        (SEED.name, b"", "empty file"),
    ],
)
def test_file_failing_on_rerun_keeps_its_articles(
    indexed: tuple[Settings, Path, Store],
    embedder: LocalEmbedder,
    target: str,
    garbage: bytes,
    reason: str,
) -> None:
    settings, corpus, store = indexed
    before = chunk_map(store)
    manifest_before = store.manifest()
    (corpus / target).write_bytes(garbage)
    errors: list[LoadError] = []
    summary = index_paths([corpus], settings, embedder=embedder, on_error=errors.append)
    kept = 3 if target == "other.jsonl" else 1
    assert (summary.failed, summary.removed, summary.added, summary.updated) == (1, 0, 0, 0)
    assert summary.unchanged == 4 - kept
    assert len(errors) == 1 and errors[0].path.endswith(target) and reason in errors[0].reason
    assert summary.errors == [str(errors[0])]
    assert chunk_map(store) == before  # bad input loses nothing
    assert store.manifest().keys() == manifest_before.keys()
    assert_consistent(store)


def test_failing_file_kept_when_the_folder_is_given_as_a_relative_path(
    indexed: tuple[Settings, Path, Store],
    embedder: LocalEmbedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`newsdesk index` (absolute default) then `newsdesk index corpus` (relative): same folder."""
    settings, corpus, store = indexed
    before = chunk_map(store)
    (corpus / SEED.name).write_bytes(b"\x00\x01\x02 garbage")
    monkeypatch.chdir(corpus.parent)
    for spelling in ("corpus", "./corpus/", "corpus/../corpus"):
        summary = index_paths([Path(spelling)], settings, embedder=embedder)
        assert (summary.failed, summary.removed, summary.unchanged) == (1, 0, 3), spelling
    assert chunk_map(store) == before
    (corpus / SEED.name).unlink()  # gone for real: now it goes
    summary = index_paths([Path("corpus")], settings, embedder=embedder)
    assert (summary.failed, summary.removed, summary.unchanged) == (0, 1, 3)
    assert len(assert_consistent(store)) == 3


def test_other_folders_are_left_alone(tmp_path: Path, embedder: LocalEmbedder) -> None:
    settings = make_settings(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    # No URLs: ids come from paths relative to each folder, so the names differ.
    (a / "a1.md").write_text(md("Alpha one", "First article in folder A."), encoding="utf-8")
    (a / "a2.md").write_text(md("Alpha two", "Second article in folder A."), encoding="utf-8")
    (b / "b1.md").write_text(md("Beta one", "First article in folder B."), encoding="utf-8")
    (b / "b2.md").write_text(md("Beta two", "Second article in folder B."), encoding="utf-8")
    single = tmp_path / "single.jsonl"
    single.write_text(
        json.dumps({"url": "https://e.com/s", "title": "Single", "text": "A single file."}) + "\n",
        encoding="utf-8",
    )
    assert index_paths([a], settings, embedder=embedder).added == 2
    assert index_paths([single], settings, embedder=embedder).added == 1
    summary = index_paths([b], settings, embedder=embedder)
    assert (summary.added, summary.removed) == (2, 0)  # A's and the file's articles stay
    store = Store(settings)
    assert len(assert_consistent(store)) == 5

    (b / "b2.md").unlink()
    summary = index_paths([b], settings, embedder=embedder)
    assert (summary.removed, summary.unchanged, summary.added) == (1, 1, 0)
    titles = {m["title"] for m in assert_consistent(store).values()}
    assert titles == {"Alpha one", "Alpha two", "Beta one", "Single"}
    summary = index_paths([a, single], settings, embedder=embedder)
    assert (summary.unchanged, summary.removed, summary.added) == (3, 0, 0)


def test_same_article_under_two_paths_of_one_run_is_indexed_once(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    settings = make_settings(tmp_path)
    for folder, text in (("a", "Version A of the story."), ("b", "Version B of the story.")):
        (tmp_path / folder).mkdir()
        record = {"url": "https://e.com/story", "title": "Story", "text": text}
        (tmp_path / folder / "feed.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    summary = index_paths([tmp_path / "a", tmp_path / "b"], settings, embedder=embedder)
    assert (summary.added, summary.updated, summary.unchanged) == (1, 0, 0)
    store = Store(settings)
    assert len(assert_consistent(store)) == 1  # one version's chunks, no orphan of the other
    docs = store.chunks.get(include=["documents"])["documents"]
    assert docs == ["Version A of the story."]
    summary = index_paths([tmp_path / "a", tmp_path / "b"], settings, embedder=embedder)
    assert (summary.added, summary.updated, summary.unchanged, summary.removed) == (0, 0, 1, 0)


def test_rebuild_starts_over(
    indexed: tuple[Settings, Path, Store], embedder: LocalEmbedder
) -> None:
    settings, corpus, store = indexed
    before = chunk_map(store)
    version = store.state().version
    counting = CountingEmbedder(embedder)
    summary = index_paths([corpus], settings, rebuild=True, embedder=counting)
    assert (summary.added, summary.updated, summary.unchanged, summary.removed) == (4, 0, 0, 0)
    assert counting.texts == len(before) == summary.chunks
    store = Store(settings)
    assert chunk_map(store) == before
    assert_consistent(store)
    assert store.state().version > version


def test_switching_embedder_requires_rebuild(
    indexed: tuple[Settings, Path, Store], embedder: LocalEmbedder
) -> None:
    settings, corpus, store = indexed
    before = chunk_map(store)
    other = CountingEmbedder(embedder, name="onnx:some-other-model:0000")
    with pytest.raises(EmbedderMismatch) as info:
        index_paths([corpus], settings, embedder=other)
    message = str(info.value)
    assert "newsdesk index --rebuild" in message and "\n" not in message
    assert embedder.name in message and other.name in message
    assert other.calls == 0
    assert chunk_map(store) == before
    summary = index_paths([corpus], settings, rebuild=True, embedder=other)
    assert summary.added == 4
    store = Store(settings)
    assert store.state().embedder == other.name
    assert_consistent(store)
    with pytest.raises(EmbedderMismatch):
        index_paths([corpus], settings, embedder=embedder)


def test_duplicate_urls_in_one_jsonl_are_indexed_once(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    settings = make_settings(tmp_path)
    feed = tmp_path / "feed.jsonl"
    rows = [
        {"url": "https://e.com/a", "title": "First copy", "text": "The first copy wins."},
        {"url": "https://e.com/b", "title": "Other", "text": "Another article."},
        {"url": "https://e.com/a", "title": "Second copy", "text": "A later duplicate."},
        {"url": "https://E.com/a/?utm_source=x", "title": "Third", "text": "Same URL again."},
    ]
    feed.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    summary = index_paths([feed], settings, embedder=embedder)
    assert (summary.added, summary.failed) == (2, 0)
    store = Store(settings)
    manifest = assert_consistent(store)
    assert sorted(m["title"] for m in manifest.values()) == ["First copy", "Other"]
    assert store.chunks.count() == 2


def test_bad_files_each_give_one_error_and_good_articles_are_indexed(
    tmp_path: Path, embedder: LocalEmbedder
) -> None:
    settings = make_settings(tmp_path, max_file_bytes=2000)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.md").write_text(md("Good one", "A good article body."), encoding="utf-8")
    (corpus / "binary.txt").write_bytes(b"GIF89a\x00\x01\x02\x03" * 50)
    (corpus / "empty.md").write_bytes(b"")
    (corpus / "latin1.txt").write_bytes("Titre\nUn caf\xe9 tr\xe8s bon.\n".encode("latin-1"))
    (corpus / "huge.md").write_text(md("Huge", "word " * 1000), encoding="utf-8")
    good = [
        {"url": "https://e.com/1", "title": "Feed one", "text": "First good record."},
        {"url": "https://e.com/2", "title": "Feed two", "text": "Second good record."},
    ]
    (corpus / "feed.jsonl").write_text(
        json.dumps(good[0]) + "\n" + '{"url": "https://e.com/3", "title": \n' + json.dumps(good[1]),
        encoding="utf-8",
    )
    errors: list[LoadError] = []
    summary = index_paths([corpus], settings, embedder=embedder, on_error=errors.append)
    assert (summary.added, summary.failed) == (3, 5)
    expected = {
        "binary.txt": "binary file",
        "empty.md": "empty file",
        "latin1.txt": "not UTF-8",
        "huge.md": "over the",
        "feed.jsonl#2": "malformed JSON",
    }
    by_name = {Path(e.path).name: e.reason for e in errors}
    assert len(errors) == 5 and by_name.keys() == expected.keys()
    for name, reason in expected.items():
        assert reason in by_name[name], (name, by_name[name])
    for line in summary.errors:
        assert "\n" not in line and str(corpus) in line
    store = Store(settings)
    titles = sorted(m["title"] for m in assert_consistent(store).values())
    assert titles == ["Feed one", "Feed two", "Good one"]

    summary = index_paths([corpus], settings, embedder=embedder)  # same failures, nothing lost
    assert (summary.unchanged, summary.failed, summary.removed, summary.added) == (3, 5, 0, 0)


def test_missing_path_is_an_error_not_a_crash(tmp_path: Path, embedder: LocalEmbedder) -> None:
    settings = make_settings(tmp_path)
    summary = index_paths([tmp_path / "nope"], settings, embedder=embedder)
    assert (summary.failed, summary.added) == (1, 0)
    assert "no such file or folder" in summary.errors[0]


# --- repair after a crash at each point of the write order --------------------------------------


def _nodes(article: Article, origin: str, settings: Settings, embedder: LocalEmbedder):
    nodes = Chunker(embedder, settings.chunk_tokens, settings.chunk_overlap).nodes(article, origin)
    vectors = embedder.embed([n.get_content(metadata_mode="embed") for n in nodes])
    for node, vector in zip(nodes, vectors):
        node.embedding = vector.tolist()
    return nodes


def _upsert(store: Store, nodes) -> None:
    store.chunks.upsert(
        ids=[n.node_id for n in nodes],
        embeddings=[n.embedding for n in nodes],
        documents=[n.text for n in nodes],
        metadatas=[_chroma_metadata(n) for n in nodes],
    )


def _mark_dirty(store: Store) -> None:
    state = store.state()
    store.set_state(IndexState(state.version, True, state.embedder, state.updated_at))


def test_repair_orphan_chunks_of_a_new_article(
    indexed: tuple[Settings, Path, Store], embedder: LocalEmbedder
) -> None:
    """Crash after step 2 for a new article: its chunks exist, its manifest record doesn't."""
    settings, corpus, store = indexed
    (corpus / "new.md").write_text(
        md("Brand new", "A new article. " * 80, url="https://e.com/new"), encoding="utf-8"
    )
    new = read(corpus / "new.md", settings)[0]
    nodes = _nodes(new, str(corpus.resolve()), settings, embedder)
    assert len(nodes) >= 2
    _upsert(store, nodes)
    # a stray chunk of an article that exists nowhere else
    ghost = read(corpus / "new.md", settings)[0]
    ghost.id, ghost.hash = "ghost-article", "0123456789abcdef"
    _upsert(store, _nodes(ghost, "/elsewhere", settings, embedder)[:1])
    _mark_dirty(store)
    total = store.chunks.count()

    summary = index_paths([corpus], settings, embedder=embedder)
    assert (summary.added, summary.updated, summary.unchanged, summary.removed) == (1, 0, 4, 0)
    manifest = assert_consistent(store)
    assert "ghost-article" not in manifest and not ids_of(store, "ghost-article")
    assert store.chunks.count() == total - 1  # the ghost chunk went; the new article is whole
    assert ids_of(store, new.id) == {n.node_id for n in nodes}


@pytest.mark.parametrize("manifest_written", [False, True])
def test_repair_old_and_new_versions_both_present(
    indexed: tuple[Settings, Path, Store], embedder: LocalEmbedder, manifest_written: bool
) -> None:
    """Crash between steps 2 and 3 (manifest still old) or 3 and 4 (old chunks not deleted)."""
    settings, corpus, store = indexed
    seed_file = corpus / SEED.name
    old = read(seed_file, settings)[0]
    old_ids = ids_of(store, old.id)
    seed_file.write_text(
        seed_file.read_text(encoding="utf-8").replace("Islamabad", "Islamabad, Pakistan"),
        encoding="utf-8",
    )
    new = read(seed_file, settings)[0]
    assert new.id == old.id and new.hash != old.hash
    nodes = _nodes(new, str(corpus.resolve()), settings, embedder)
    _upsert(store, nodes)
    if manifest_written:
        store.put_articles({new.id: _manifest_record(new, str(corpus.resolve()), len(nodes))})
    _mark_dirty(store)
    assert store.chunks.count() == 3 + len(old_ids) + len(nodes)

    summary = index_paths([corpus], settings, embedder=embedder)
    if manifest_written:  # the new version was complete: kept, nothing to re-embed
        assert (summary.updated, summary.unchanged, summary.chunks) == (0, 4, 0)
    else:  # the new chunks were strays: dropped, then the article re-indexed as changed
        assert (summary.updated, summary.unchanged, summary.chunks) == (1, 3, len(nodes))
    manifest = assert_consistent(store)
    assert manifest[new.id]["hash"] == new.hash
    assert ids_of(store, new.id) == {n.node_id for n in nodes}
    assert store.chunks.count() == 3 + len(nodes)


@pytest.mark.parametrize("manifest_written", [False, True])
def test_article_text_is_the_version_the_manifest_lists(
    indexed: tuple[Settings, Path, Store], embedder: LocalEmbedder, manifest_written: bool
) -> None:
    """Mid-run, an article's old and new chunks coexist: its text is one version's, the
    one the manifest lists, not both mixed."""
    settings, corpus, store = indexed
    seed_file = corpus / SEED.name
    old = read(seed_file, settings)[0]
    before = store.article_text(old.id)
    assert "Islamabad" in before
    seed_file.write_text(
        seed_file.read_text(encoding="utf-8").replace("Islamabad", "Rawalpindi"),
        encoding="utf-8",
    )
    new = read(seed_file, settings)[0]
    nodes = _nodes(new, str(corpus.resolve()), settings, embedder)
    _upsert(store, nodes)
    if manifest_written:
        store.put_articles({new.id: _manifest_record(new, str(corpus.resolve()), len(nodes))})
        assert "Rawalpindi" in store.article_text(new.id)
        assert "Islamabad" not in store.article_text(new.id)
    else:
        assert store.article_text(old.id) == before
    # An article the manifest does not list yet is read from whatever chunks it has.
    ghost = read(seed_file, settings)[0]
    ghost.id = "ghost-article"
    _upsert(store, _nodes(ghost, "/elsewhere", settings, embedder))
    assert "Rawalpindi" in store.article_text("ghost-article")


def test_repair_manifest_entry_with_missing_chunks(
    indexed: tuple[Settings, Path, Store], embedder: LocalEmbedder
) -> None:
    """The manifest says n chunks but some are gone (crash during a removal, or worse)."""
    settings, corpus, store = indexed
    seed = read(corpus / SEED.name, settings)[0]
    seed_ids = sorted(ids_of(store, seed.id))
    assert len(seed_ids) >= 2
    store.chunks.delete(ids=seed_ids[:1])
    _mark_dirty(store)
    assert repair(store) == {"stray_chunks": len(seed_ids) - 1, "incomplete_articles": 1}
    assert not store.state().dirty
    assert seed.id not in store.manifest() and not ids_of(store, seed.id)

    store.chunks.delete(ids=sorted(ids_of(store, read(corpus / "other.jsonl", settings)[0].id)))
    _mark_dirty(store)
    summary = index_paths([corpus], settings, embedder=embedder)
    assert (summary.added, summary.updated, summary.unchanged, summary.removed) == (2, 0, 2, 0)
    manifest = assert_consistent(store)
    assert len(manifest) == 4 and sorted(ids_of(store, seed.id)) == seed_ids


def test_repair_interrupted_removal(
    indexed: tuple[Settings, Path, Store], embedder: LocalEmbedder
) -> None:
    settings, corpus, store = indexed
    seed = read(corpus / SEED.name, settings)[0]
    (corpus / SEED.name).unlink()
    _mark_dirty(store)
    store.chunks.delete(where={"article_id": seed.id})  # crash before the manifest delete
    summary = index_paths([corpus], settings, embedder=embedder)
    assert (summary.added, summary.unchanged, summary.failed) == (0, 3, 0)
    manifest = assert_consistent(store)
    assert seed.id not in manifest and len(manifest) == 3


# --- a real process killed with SIGKILL mid-index ---------------------------------------------

# The CLI itself, with smaller write batches (so 60 small articles take 15 commits, not one)
# and a line on stderr after each commit, so the test can kill at chosen moments.
KILLABLE_CLI = """
import sys
import index.ingest as ingest
ingest.BATCH_CHUNKS = 4
_commit = ingest._commit
def commit(*args):
    _commit(*args)
    print("COMMITTED", file=sys.stderr, flush=True)
ingest._commit = commit
from bot.cli import main
sys.argv = ["newsdesk", *sys.argv[1:]]
main()
"""

N_ARTICLES = 60


def write_feed(path: Path, version: int, skip: int = 0) -> None:
    rows = []
    for i in range(skip, N_ARTICLES):
        rows.append(
            {
                "url": f"https://example.org/news/{i}",
                "title": f"Story number {i}",
                "source": "example.org",
                "published": f"2022-0{1 + i % 9}-1{i % 10}",
                "text": f"Story {i}, version {version}: the council met on day {i} and "
                f"approved budget line {i * 7 + version}. Officials expect a vote soon.",
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _drain(stream, lines: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        lines.put(line)
    lines.put(None)


def run_and_kill(feed: Path, data_dir: Path, commits: int, delay: float) -> None:
    """Start `newsdesk index FEED`; SIGKILL it ``delay`` s after its ``commits``-th write."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSDESK_", "OPENAI_"))}
    env |= {"NEWSDESK_DATA_DIR": str(data_dir), "NEWSDESK_EMBED_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLABLE_CLI, "index", str(feed), "--json"],
        cwd=data_dir.parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_drain, args=(proc.stderr, lines), daemon=True).start()
    seen, log = 0, []
    deadline = time.monotonic() + 120
    try:
        while seen < commits:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
            if line is None:
                break
            log.append(line)
            seen += line.strip() == "COMMITTED"
        if seen < commits:
            proc.wait(30)
            if proc.returncode == 0:
                pytest.skip(f"the index run finished before commit {commits}; cannot kill it")
            pytest.fail(f"index run failed (rc {proc.returncode}):\n{''.join(log)[-3000:]}")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    if proc.returncode != -signal.SIGKILL:
        pytest.skip(f"the index run ended (rc {proc.returncode}) before it could be killed")


def close_embedded(store: Store) -> None:
    """Drop this process's cached client of an embedded store, so that the next open reads
    what another process wrote (only this path's entry: other tests' clients stay valid)."""
    key = store.client.get_settings().persist_directory
    SharedSystemClient._identifier_to_refcount.pop(key, None)
    system = SharedSystemClient._identifier_to_system.pop(key, None)
    if system is not None:
        system.stop()


def test_sigkill_mid_index_then_rerun_converges(tmp_path: Path, embedder: LocalEmbedder) -> None:
    data_dir = tmp_path / "data"
    feed = tmp_path / "feed.jsonl"
    settings = make_settings(tmp_path)
    moments = [  # (version of the texts, articles dropped, commits seen, delay before the kill)
        (1, 0, 1, 0.0),  # first index: after the first write
        (2, 0, 3, 0.05),  # every article changed: new versions half written
        (3, 10, 2, 0.2),  # changed again and ten removed
    ]
    for version, skip, commits, delay in moments:
        write_feed(feed, version, skip)
        run_and_kill(feed, data_dir, commits, delay)

        store = Store(settings)
        state, manifest = store.state(), store.manifest()
        assert state.dirty, "killed mid-run, the index must be marked unfinished"
        current = {a.id: a.hash for a in read(feed, settings)}
        done = sum(1 for a, m in manifest.items() if current.get(a) == m["hash"])
        assert done >= 4 * commits, f"{commits} writes were seen but {done} articles are done"

        counting = CountingEmbedder(embedder)
        summary = index_paths([feed], settings, embedder=counting)
        assert summary.failed == 0
        assert summary.added + summary.updated + summary.unchanged == len(current)
        manifest = assert_consistent(store)
        assert {a: m["hash"] for a, m in manifest.items()} == current  # each once, current
        assert {aid for aid, _ in chunk_map(store).values()} == set(current)
        assert store.chunks.count() == len(current)  # one chunk per small article

        summary = index_paths([feed], settings, embedder=counting)
        assert summary.unchanged == len(current) and summary.chunks == 0
        close_embedded(store)  # the next subprocess owns the store meanwhile


def test_index_builds_the_keyword_index_for_its_version(tmp_path: Path, embedder) -> None:
    """BM25 is updated by indexing, never rebuilt per question."""
    from index import bm25
    from index.ingest import index_paths
    from index.store import Store

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.md").write_text("# Harbour ferry\n\nThe harbour ferry runs every two hours.\n")
    settings = make_settings(tmp_path)
    index_paths([corpus], settings, embedder=embedder)
    version = Store(settings).state().version
    loaded = bm25.load(settings, version)
    assert loaded is not None and len(loaded.ids) == Store(settings).chunks.count()
    assert loaded.search("ferry", 3)
