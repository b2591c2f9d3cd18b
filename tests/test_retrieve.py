"""Fusion: a story beats a digest that mentions it, and source preferences reorder sources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import make_settings
from pydantic import ValidationError

from index.ingest import index_paths
from index.retrieve import Query, Retriever

STORY = (
    "The city council of Riverton voted on Tuesday to close the old Harbour Bridge to cars "
    "for eighteen months of repairs. Engineers found corroded cables during an inspection. "
    "Buses will use a temporary ferry route while the bridge is closed."
)
ARTICLES = [
    {
        "url": "https://wire.example/2022/06/14/riverton-bridge",
        "title": "Riverton closes Harbour Bridge for repairs",
        "source": "wire.example",
        "published": "2022-06-14",
        "text": STORY,
    },
    {
        "url": "https://ours.example/2022/06/14/harbour-bridge-closure",
        "title": "Harbour Bridge in Riverton to close for repairs",
        "source": "ours.example",
        "published": "2022-06-14",
        "text": STORY.replace("on Tuesday", "this Tuesday"),
    },
    {
        "url": "https://ours.example/2022/06/15/five-things",
        "title": "5 things to know for June 15: Inflation, tennis, elections, weather",
        "source": "ours.example",
        "published": "2022-06-15",
        "text": (
            "Inflation rose again in May, the statistics office said. "
            "A young player won the grass-court tennis final in straight sets. "
            "Riverton's council voted to close the Harbour Bridge to cars for repairs. "
            "Voters in three states go to the polls next week. "
            "Forecasters expect a heatwave across the south at the weekend."
        ),
    },
]
QUESTION = "Why is Riverton closing the Harbour Bridge?"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    root = tmp_path_factory.mktemp("fusion")
    corpus = root / "corpus"
    corpus.mkdir()
    lines = "\n".join(json.dumps(a) for a in ARTICLES)
    (corpus / "feed.jsonl").write_text(lines, encoding="utf-8")
    summary = index_paths([corpus], make_settings(root), embedder=embedder)
    assert summary.added == 3
    return root


def ranked_sources(root: Path, embedder, **overrides: object) -> list[str]:
    retriever = Retriever(make_settings(root, **overrides), embedder=embedder)
    return [h.url for h in retriever.retrieve(Query(QUESTION), k=3)]


def test_stories_outrank_a_digest_that_mentions_them(data_root: Path, embedder) -> None:
    retriever = Retriever(make_settings(data_root), embedder=embedder)
    hits = retriever.retrieve(Query(QUESTION), k=3)
    # The two outlets' reports are one story, which takes one slot; the digest comes after.
    assert [h.url for h in hits][-1].endswith("five-things")
    assert len(hits) == 2
    assert {hits[0].url, hits[0].reports[0].url} == {ARTICLES[0]["url"], ARTICLES[1]["url"]}


@pytest.mark.parametrize("preferred", ["wire.example", "ours.example"])
def test_source_weights_put_the_preferred_outlet_first(
    data_root: Path, embedder, preferred: str
) -> None:
    urls = ranked_sources(data_root, embedder, source_weights={preferred: 1.5})
    assert urls[0].startswith(f"https://{preferred}/")
    assert not urls[0].endswith("five-things")


def test_source_weights_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("NEWSDESK_SOURCE_WEIGHTS", "CNN.com=1.2; example.org=0.8,")
    assert make_settings(tmp_path).source_weights == {"cnn.com": 1.2, "example.org": 0.8}
    monkeypatch.setenv("NEWSDESK_SOURCE_WEIGHTS", "cnn.com")
    with pytest.raises(ValidationError, match="source=weight"):
        make_settings(tmp_path)


def test_selective_date_filter_searches_the_window_like_chromas_where(
    data_root: Path, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import date

    from index.retrieve import _where
    from index.store import IndexState

    retriever = Retriever(make_settings(data_root), embedder=embedder)
    query = Query("Harbour Bridge repairs", start=date(2022, 6, 15), end=date(2022, 6, 15))
    by_where = retriever._dense(query.text, 5, _where(query))
    assert [chunk.metadata["url"] for chunk in by_where] == [ARTICLES[2]["url"]]

    searched_ids: list[object] = []
    real = retriever._search

    def spy(text: str, k: int, where=None, ids=None):
        searched_ids.append(ids)
        return real(text, k, where, ids)

    monkeypatch.setattr(retriever, "_search", spy)
    assert retriever.dense(query, 5) == by_where
    assert searched_ids and searched_ids[-1] is not None  # the id-window path, not where

    # While an index run is replacing chunks the BM25 id list is not trusted: where again.
    state = retriever.store.state()
    monkeypatch.setattr(
        retriever.store, "state", lambda: IndexState(state.version, True, state.embedder)
    )
    assert retriever.dense(query, 5) == by_where
    assert searched_ids[-1] is None


def test_wide_date_filter_reads_chunk_dates_from_the_keyword_index_or_chroma(
    data_root: Path, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An as-of date that keeps most chunks: an unfiltered search, whose chunks are then
    filtered by the dates the BM25 index lists (or Chroma's records, for chunks it does not
    list yet): the same chunks, text and scores as Chroma's ``where`` search."""
    from datetime import date

    from index.retrieve import _where

    retriever = Retriever(make_settings(data_root), embedder=embedder)
    query = Query(QUESTION, end=date(2022, 6, 14))  # two of the three articles
    by_where = retriever._dense(query.text, 2, _where(query))
    assert {c.metadata["published"] for c in by_where} == {"2022-06-14"}
    searches: list[tuple[object, object]] = []
    real = retriever._search

    def spy(text: str, k: int, where=None, ids=None):
        searches.append((where, ids))
        return real(text, k, where, ids)

    monkeypatch.setattr(retriever, "_search", spy)
    assert retriever.dense(query, 2) == by_where
    assert searches == [(None, None)]  # one unfiltered search, filtered here
    monkeypatch.setattr(retriever.bm25.get(), "rows", lambda: {})  # lists none of them
    assert retriever.dense(query, 2) == by_where
    assert searches == [(None, None)] * 2


def test_a_text_searched_again_is_not_embedded_again(data_root: Path, embedder) -> None:
    """A follow-up searches its previous articles, then all, with the same text: one
    embedding, and the same ranking as a fresh retriever's."""
    from test_ingest import CountingEmbedder

    counting = CountingEmbedder(embedder)
    retriever = Retriever(make_settings(data_root), embedder=counting)
    first = retriever.retrieve(Query(QUESTION), k=3)
    assert counting.texts == 1
    prior = retriever.retrieve(Query(QUESTION, restrict_to=[first[1].article_id]), k=1)
    assert [h.article_id for h in prior] == [first[1].article_id]
    assert counting.texts == 1
    retriever.retrieve(Query("Inflation rose again in May"), k=3)
    assert counting.texts == 2
    fresh = Retriever(make_settings(data_root), embedder=embedder).retrieve(Query(QUESTION), k=3)
    again = retriever.retrieve(Query(QUESTION), k=3)
    assert counting.texts == 2
    assert [(h.article_id, h.score) for h in again] == [(h.article_id, h.score) for h in fresh]


def test_chunk_records_are_read_once_for_the_questions_that_need_them(
    data_root: Path, embedder
) -> None:
    """A chunk record read for one question is not read again for the next (its id fixes
    its text), and retrieval ranks the same with the records kept."""
    retriever = Retriever(make_settings(data_root), embedder=embedder)
    read: list[str] = []
    chunks = retriever.store.chunks

    class Counting:
        def __getattr__(self, name: str):
            return getattr(chunks, name)

        def get(self, ids=None, **kwargs):
            read.extend(ids or [])
            return chunks.get(ids=ids, **kwargs)

    retriever.store.chunks = Counting()  # type: ignore[assignment]
    first = retriever.retrieve(Query(QUESTION), k=3)
    assert read and len(read) == len(set(read))
    count = len(read)
    again = retriever.retrieve(Query(QUESTION), k=3)
    assert len(read) == count
    assert [(h.article_id, h.score, [p.text for p in h.passages]) for h in again] == [
        (h.article_id, h.score, [p.text for p in h.passages]) for h in first
    ]


def test_dense_search_finds_what_llamaindexs_chroma_vector_store_finds(
    data_root: Path, embedder
) -> None:
    """The dense search queries the collection itself (a cold `ask` never imports
    LlamaIndex); LlamaIndex's own ChromaVectorStore must rank and score the same."""
    from llama_index.core import VectorStoreIndex
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from index.engine import LlamaEmbedding

    retriever = Retriever(make_settings(data_root), embedder=embedder)
    question = "Harbour Bridge repairs"
    ours = retriever._dense(question, 5)
    theirs = (
        VectorStoreIndex.from_vector_store(
            ChromaVectorStore(chroma_collection=retriever.store.chunks),
            embed_model=LlamaEmbedding(embedder),
        )
        .as_retriever(similarity_top_k=5)
        .retrieve(question)
    )
    assert len(ours) == len(theirs) >= 3
    assert [c.chunk_id for c in ours] == [hit.node.node_id for hit in theirs]
    assert [c.score for c in ours] == pytest.approx([hit.score for hit in theirs])
    assert [c.text for c in ours] == [hit.node.get_content() for hit in theirs]
    for chunk, hit in zip(ours, theirs):
        assert hit.node.metadata.items() <= chunk.metadata.items()


def test_warm_up_runs_in_the_background_and_swallows_errors(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from index.store import Store

    failures: list[object] = []
    monkeypatch.setattr(threading, "excepthook", failures.append)
    store = Store(make_settings(data_root))
    searched: list[int] = []
    real_query = store.chunks.query

    class Spy:
        def __getattr__(self, name: str):
            return getattr(real_chunks, name)

        def query(self, **kwargs):
            searched.append(kwargs["n_results"])
            return real_query(**kwargs)

    real_chunks = store.chunks
    store.chunks = Spy()
    thread = store.warm_up()
    thread.join(30)
    assert not thread.is_alive() and thread.daemon
    assert searched == [1]  # one tiny search with a stored vector loads the index

    empty = Store(make_settings(tmp_path))  # nothing indexed: nothing to load, no error
    empty.warm_up().join(30)

    def broken(**kwargs):
        raise RuntimeError("disk gone")

    monkeypatch.setattr(store, "chunks", type("C", (), {"get": staticmethod(broken)})())
    store.warm_up().join(30)
    assert failures == []


def test_copies_of_an_article_are_shown_once() -> None:
    from index.retrieve import ArticleHit, Passage, _distinct

    def hit(aid: str, url: str, text: str, source: str = "cnn.com", title: str = "Live updates"):
        found = ArticleHit(aid, title, url, source, "2022-09-08", 0)
        found.passages = [Passage(f"{aid}-0", text, 0), Passage(f"{aid}-1", f"{aid} only", 1)]
        return found

    ranked = [
        hit("a", "https://cnn.com/2022/09/08/artemis", "NASA eyes two dates."),
        hit("b", "https://cnn.com/2022/09/08/artemis/index.html/", "Different text."),
        hit("c", "https://cnn.com/2022/09/08/artemis-2", "NASA  eyes two\ndates."),
        hit("d", "https://wire.example/artemis", "NASA eyes two dates.", "wire.example"),
        hit("e", "https://cnn.com/2022/09/08/live-updates-ukraine", "Kyiv said on Thursday."),
        hit("f", "https://cnn.com/untitled-1", "One.", title=""),
        hit("g", "https://cnn.com/untitled-2", "Two.", title=""),
        hit("h", "", "Three."),  # files without a URL are not copies of each other
        hit("i", "", "Four."),
    ]
    assert [h.article_id for h in _distinct(ranked)] == ["a", "d", "e", "f", "g", "h", "i"]


def test_a_compound_counts_as_its_parts_too() -> None:
    from index.text import terms

    quake = set(terms("The 7.0-magnitude quake hit northern Luzon"))
    assert set(terms("What was the magnitude?")) <= quake
    assert {"single-season", "singl", "season"} <= set(terms("a single-season record"))


def test_a_peoples_adjective_is_its_place() -> None:
    from index.text import terms

    assert set(terms("the Russian army")) == set(terms("Russia's army"))
    assert set(terms("prime minister of Britain")) == set(terms("the British prime minister"))
    assert terms("English") != terms("England")  # a language, too: left alone
    # Dotted abbreviations are words, not single letters.
    assert terms("U.S. officials") == terms("US officials") == ["us", "offici"]
    assert set(terms("the U.K. government")) == set(terms("Britain's government"))


def test_one_spelling_per_word_for_keywords_and_sentences() -> None:
    from index.bm25 import tokenize
    from index.text import one_spelling, terms

    assert tokenize(["Defence labour organisations travelled"]) == tokenize(
        ["defense labor organizations traveled"]
    )
    assert terms("the centre's favourite programme") == terms("the center's favorite program")
    # Words that only look British stay as they are.
    assert one_spelling("Four hours: our tour, a promise, the rise") == (
        "four hours: our tour, a promise, the rise"
    )
