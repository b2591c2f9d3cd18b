"""Re-index under live traffic: a writer keeps replacing one article (version A <-> B) and
removing/re-adding another on a real `chroma run` server, while a second "process" (its own
Store, HttpClient, Retriever, BM25 cache and data dir) keeps asking questions.

On every answer: the replaced article is found, in its old or its new version (never in
neither), and only once (never as two hits, never with passages of both versions). The
writer's chunk writes are slowed down, so every intermediate state of a re-index (new chunks
written, old ones not yet deleted; an article half removed) stays visible for a while and the
reader is sure to run into it.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import make_settings

import index.bm25
from index.answer import Answerer
from index.embed import LocalEmbedder
from index.ingest import index_paths
from index.retrieve import Query
from index.settings import Settings
from index.store import Store

pytestmark = pytest.mark.server

CYCLES = 8  # re-index runs of the writer
MAX_QUESTIONS = 400  # bounds the reader, whatever happens
DEADLINE = 90.0  # seconds; only bounds a hung test
WRITE_PAUSE = 0.15  # before each chunk write of the writer: intermediate states last

X_URL = "https://example.net/2023/05/04/footbridge"
Y_URL = "https://example.net/2023/05/05/lighthouse"
KEYWORD = {"A": "vermilion", "B": "turquoise"}
X_QUESTION = "What did the harbour council decide about the Zephyr footbridge?"
Y_QUESTION = "Why was the old Kestrel lighthouse restored?"

OTHERS = [
    (
        "orchard",
        "Apple growers report a record harvest in Kent",
        "Apple growers in Kent picked "
        "a record harvest this autumn after a mild spring. Prices at the farm gate fell slightly.",
    ),
    (
        "tram",
        "Lisbon extends its tram network",
        "Lisbon opened a new tram line to Belem on "
        "Thursday. The line carries twenty thousand passengers a day, the mayor said.",
    ),
    (
        "chess",
        "Teenager wins the national chess championship",
        "A sixteen-year-old won the "
        "national chess championship on Sunday after a tense final game against the holder.",
    ),
    (
        "volcano",
        "Volcano erupts near Reykjavik",
        "A volcano erupted near Reykjavik on Monday, "
        "sending lava across an empty valley. Flights were not disrupted, the airport said.",
    ),
    (
        "library",
        "City library reopens after renovation",
        "The central library reopened on "
        "Saturday after a two-year renovation that added a children's wing and a rooftop garden.",
    ),
    (
        "marathon",
        "Marathon runners brave the heat",
        "Thousands of runners finished the city "
        "marathon despite temperatures above thirty degrees. Medics treated dozens for heat stroke.",
    ),
]


def md(title: str, url: str, published: str, body: str) -> str:
    return (
        f"---\ntitle: {title}\nurl: {url}\nsource: example.net\npublished: {published}\n---\n\n"
        f"{body}\n"
    )


def x_article(version: str) -> str:
    word = KEYWORD[version]
    return md(
        "Harbour council approves the Zephyr footbridge",
        X_URL,
        "2023-05-04",
        f"The harbour council approved the Zephyr footbridge on Wednesday. The footbridge will "
        f"be painted {word} and its {word} railings will be lit at night, the council said. "
        f"Construction of the {word} footbridge starts in the spring.",
    )


Y_ARTICLE = md(
    "Kestrel lighthouse restored",
    Y_URL,
    "2023-05-05",
    "The old Kestrel lighthouse was restored because storms had cracked its tower. Volunteers "
    "repainted the lighthouse and the lamp shines again for the first time in ten years.",
)


class SlowWrites:
    """The writer's chunk collection, pausing before every write: a slow Chroma server."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def upsert(self, **kwargs: Any) -> Any:
        time.sleep(WRITE_PAUSE)
        return self._inner.upsert(**kwargs)

    def delete(self, **kwargs: Any) -> Any:
        time.sleep(WRITE_PAUSE)
        return self._inner.delete(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def versions_in(texts: list[str]) -> set[str]:
    joined = " ".join(texts).lower()
    return {v for v, word in KEYWORD.items() if word in joined}


def test_questions_during_reindex_see_each_article_once(
    tmp_path: Path,
    chroma_server: tuple[str, int],
    embedder: LocalEmbedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, port = chroma_server
    collection = f"live{uuid.uuid4().hex[:10]}"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for slug, title, body in OTHERS:
        (corpus / f"{slug}.md").write_text(
            md(title, f"https://example.net/2023/05/01/{slug}", "2023-05-01", body), "utf-8"
        )
    x_file, y_file = corpus / "footbridge.md", corpus / "lighthouse.md"
    x_file.write_text(x_article("A"), "utf-8")
    y_file.write_text(Y_ARTICLE, "utf-8")

    def settings_for(name: str) -> Settings:
        return make_settings(
            tmp_path / name, chroma_host=host, chroma_port=port, collection=collection
        )

    writer_settings = settings_for("writer")
    first = index_paths([corpus], writer_settings, embedder=embedder)
    assert (first.added, first.failed) == (8, 0)

    # The second "process": its own client, store, retriever, BM25 cache and data dir. The
    # BM25 cache checks the index version on every question, so it is rebuilt mid-write too.
    monkeypatch.setattr(index.bm25, "CHECK_EVERY", 0.0)
    reader_settings = settings_for("reader")
    reader_store = Store(reader_settings)
    writer_store = Store(writer_settings)
    assert reader_store.client is not writer_store.client
    writer_store.chunks = SlowWrites(writer_store.chunks)
    answerer = Answerer(reader_settings, store=reader_store, embedder=embedder)
    x_id = answerer.retriever.store.manifest()
    x_id = next(aid for aid, meta in x_id.items() if meta.get("url") == X_URL)

    done = threading.Event()
    writer_errors: list[BaseException] = []
    runs: list[tuple[int, int, int]] = []  # (updated, added, removed) per writer run

    def writer() -> None:
        try:
            for cycle in range(CYCLES):
                x_file.write_text(x_article("B" if cycle % 2 == 0 else "A"), "utf-8")
                if cycle % 2 == 0:
                    y_file.unlink()
                else:
                    y_file.write_text(Y_ARTICLE, "utf-8")
                s = index_paths([corpus], writer_settings, store=writer_store, embedder=embedder)
                runs.append((s.updated, s.added, s.removed))
        except BaseException as exc:
            writer_errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=writer, name="live-writer", daemon=True)
    started = time.monotonic()
    thread.start()
    seen_versions: set[str] = set()
    bm25_versions: set[int] = set()
    problems: list[str] = []
    asked = keyword_found = y_found = 0
    try:
        while asked < MAX_QUESTIONS and time.monotonic() - started < DEADLINE:
            finished = done.is_set()  # one last round after the writer is done
            for question in (X_QUESTION, Y_QUESTION, f"{KEYWORD['A']} {KEYWORD['B']} railings"):
                resolved, answer = answerer.respond(question)
                asked += 1
                bm25_versions.add(answerer.retriever.bm25.get().version)
                x_hits = [h for h in resolved.hits if h.article_id == x_id]
                if len(x_hits) > 1:
                    problems.append(f"{question!r}: the replaced article is hit twice")
                cited = [c for c in answer.citations if c.article_id == x_id]
                if len(cited) > 1:
                    problems.append(f"{question!r}: the replaced article is cited twice")
                if question == Y_QUESTION:
                    y_found += any(h.url == Y_URL for h in resolved.hits)
                    if sum(h.url == Y_URL for h in resolved.hits) > 1:
                        problems.append("the removed/re-added article is hit twice")
                    continue
                if not x_hits:
                    problems.append(f"{question!r}: the replaced article is in neither version")
                    continue
                versions = versions_in([p.text for p in x_hits[0].passages])
                seen_versions |= versions
                if len(versions) != 1:
                    problems.append(
                        f"{question!r}: the replaced article shows versions {sorted(versions)}"
                    )
                if len(versions_in([answer.text])) > 1:
                    problems.append(f"{question!r}: the answer quotes both versions")
                if question != X_QUESTION and x_hits[0].bm25_rank is not None:
                    keyword_found += 1
            if finished:
                break
    finally:
        done.wait(DEADLINE)
        thread.join(10)
    assert not writer_errors, writer_errors
    assert len(runs) == CYCLES, "the writer did not finish in time"
    assert all(updated == 1 for updated, _, _ in runs)
    assert [added for _, added, _ in runs] == [0, 1] * (CYCLES // 2)
    assert [removed for _, _, removed in runs] == [1, 0] * (CYCLES // 2)
    assert not problems, f"{len(problems)} of {asked} answers broke the rule: {problems[:5]}"
    # The reader really ran during the re-index, with the keyword side in play.
    assert asked >= 3 * CYCLES
    assert seen_versions == {"A", "B"}
    assert len(bm25_versions) >= 3, "the reader's BM25 index was never rebuilt mid-run"
    assert keyword_found >= asked // 6, "keyword questions did not reach the BM25 side"
    assert y_found > 0

    # Once the writer is done, the reader converges: the last version only, Y present.
    hits = answerer.retriever.retrieve(Query(X_QUESTION))
    [x_hit] = [h for h in hits if h.article_id == x_id]
    assert versions_in([p.text for p in x_hit.passages]) == {"A"}  # CYCLES is even: back to A
    assert any(h.url == Y_URL for h in answerer.retriever.retrieve(Query(Y_QUESTION)))
    assert writer_store.stats()["articles"] == 8
