"""The same indexing against a real `chroma run` server (HttpClient), and the CLI in server mode."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
from conftest import SEED, make_settings, newsdesk
from test_cli import SEED_TITLE, cli_env
from test_ingest import (
    CountingEmbedder,
    assert_consistent,
    chunk_map,
    ids_of,
    make_corpus,
    read,
)

from index.embed import LocalEmbedder
from index.ingest import index_paths
from index.retrieve import Query, Retriever
from index.settings import Settings
from index.store import IndexState, Store

pytestmark = pytest.mark.server


@pytest.fixture
def server_settings(tmp_path: Path, chroma_server: tuple[str, int]) -> Settings:
    host, port = chroma_server
    return make_settings(
        tmp_path, chroma_host=host, chroma_port=port, collection=f"t{uuid.uuid4().hex[:12]}"
    )


def test_store_is_an_http_client(server_settings: Settings) -> None:
    store = Store(server_settings)
    assert store.client.get_settings().chroma_api_impl == "chromadb.api.fastapi.FastAPI"
    assert store.client.heartbeat() > 0
    assert not (server_settings.data_dir / "chroma").exists()  # nothing embedded on disk


def test_index_unchanged_modify_remove(
    tmp_path: Path, server_settings: Settings, embedder: LocalEmbedder
) -> None:
    settings = server_settings
    corpus = make_corpus(tmp_path)
    summary = index_paths([corpus], settings, embedder=embedder)
    assert (summary.added, summary.updated, summary.unchanged, summary.failed) == (4, 0, 0, 0)
    store = Store(settings)
    manifest = assert_consistent(store)
    assert len(manifest) == 4 and store.chunks.count() == summary.chunks

    counting = CountingEmbedder(embedder)
    summary = index_paths([corpus], settings, embedder=counting)
    assert (summary.added, summary.updated, summary.unchanged, summary.removed) == (0, 0, 4, 0)
    assert counting.calls == 0

    seed_file = corpus / SEED.name
    seed_id = read(seed_file, settings)[0].id
    before = chunk_map(store)
    old_ids = ids_of(store, seed_id)
    seed_file.write_text(seed_file.read_text(encoding="utf-8") + "\nOne more line.\n", "utf-8")
    summary = index_paths([corpus], settings, embedder=embedder)
    assert (summary.added, summary.updated, summary.unchanged, summary.removed) == (0, 1, 3, 0)
    assert_consistent(store)
    assert ids_of(store, seed_id).isdisjoint(old_ids)
    after = chunk_map(store)
    assert {c: v for c, v in after.items() if v[0] != seed_id} == {
        c: v for c, v in before.items() if v[0] != seed_id
    }

    seed_file.unlink()
    summary = index_paths([corpus], settings, embedder=embedder)
    assert (summary.added, summary.updated, summary.unchanged, summary.removed) == (0, 0, 3, 1)
    manifest = assert_consistent(store)
    assert seed_id not in manifest and len(manifest) == 3


def test_repair_converges_in_server_mode(
    tmp_path: Path, server_settings: Settings, embedder: LocalEmbedder
) -> None:
    settings = server_settings
    corpus = make_corpus(tmp_path)
    index_paths([corpus], settings, embedder=embedder)
    store = Store(settings)
    seed_id = read(corpus / SEED.name, settings)[0].id
    store.chunks.delete(ids=sorted(ids_of(store, seed_id))[:1])  # a missing chunk
    state = store.state()
    store.set_state(IndexState(state.version, True, state.embedder, state.updated_at))
    summary = index_paths([corpus], settings, embedder=embedder)
    assert (summary.added, summary.unchanged) == (1, 3)
    assert len(assert_consistent(store)) == 4


def test_search_returns_the_seed_article(
    tmp_path: Path, server_settings: Settings, embedder: LocalEmbedder
) -> None:
    corpus = make_corpus(tmp_path)
    index_paths([corpus], server_settings, embedder=embedder)
    hits = Retriever(server_settings, embedder=embedder).retrieve(Query("defence MOU"), k=3)
    assert len(hits) == 3
    assert hits[0].title == SEED_TITLE and hits[0].published == "2025-01-24"
    assert any("MOU" in p.text for p in hits[0].passages)


def test_status_json_via_cli_reports_server_mode(
    tmp_path: Path, server_settings: Settings, embedder: LocalEmbedder
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(SEED, corpus / SEED.name)
    summary = index_paths([corpus], server_settings, embedder=embedder)
    env = cli_env(
        server_settings.data_dir,
        corpus,
        NEWSDESK_CHROMA_HOST=str(server_settings.chroma_host),
        NEWSDESK_CHROMA_PORT=str(server_settings.chroma_port),
        NEWSDESK_COLLECTION=server_settings.collection,
    )
    proc = newsdesk("status", "--json", env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    assert status["store_mode"] == "server"
    assert status["chroma"] == f"{server_settings.chroma_host}:{server_settings.chroma_port}"
    assert (status["articles"], status["chunks"]) == (1, summary.chunks)
    assert status["collection"] == server_settings.collection


def test_stories_are_shared_through_the_server(
    tmp_path: Path, server_settings: Settings, embedder: LocalEmbedder
) -> None:
    """Story ids live in the server's collections: another client sees the same stories."""
    from test_story_index import BAKE, QUAKE_A, QUAKE_B, assert_stories_consistent, write

    from index.story_store import StoryMap

    feed = write(tmp_path / "feed.jsonl", QUAKE_A, QUAKE_B, BAKE)
    summary = index_paths([feed], server_settings, embedder=embedder)
    assert summary.stories == 2
    stories = assert_stories_consistent(Store(server_settings))
    other = StoryMap(Store(server_settings))  # a second client, as another process would be
    by_url = {r["url"]: r["article_id"] for s in set(stories.values()) for r in other.reports(s)}
    assert other.story_of(by_url[QUAKE_A["url"]]) == other.story_of(by_url[QUAKE_B["url"]])
    assert other.story_of(by_url[BAKE["url"]]) != other.story_of(by_url[QUAKE_A["url"]])
