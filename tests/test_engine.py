"""The engines from a LlamaIndex user's view: build one, query it, read ``source_nodes``, put
the retriever into LlamaIndex's own ``RetrieverQueryEngine``, stream, chat with follow-ups.

Offline answers run over the seed index; LLM answers go over HTTP to the fake OpenAI server."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

import pytest
from fakes.openai_server import FakeOpenAI, Reply
from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.response.schema import Response, StreamingResponse
from llama_index.core.chat_engine.types import (
    AgentChatResponse,
    BaseChatEngine,
    StreamingAgentChatResponse,
)
from llama_index.core.prompts import PromptTemplate
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import NodeWithScore
from llama_index.core.tools import QueryEngineTool
from test_llm import GOOD, QUESTION, llm_settings

from index.answer import Answerer
from index.engine import (
    ArticleRetriever,
    NewsChatEngine,
    NewsQueryEngine,
    build_chat_engine,
    build_query_engine,
)
from index.models import Answer
from index.prompts import REFUSAL
from index.settings import Settings

SEED_TITLE = "Pakistan and Azerbaijan"  # how the seed article's headline starts
UNANSWERABLE = "Who won the 2030 football world cup final?"
MOON = " The ministers also agreed to build a bridge to the moon [1]."  # no source says so


@pytest.fixture
def engine(seeded: Settings, embedder) -> NewsQueryEngine:
    return NewsQueryEngine(Answerer(seeded, embedder=embedder))


@pytest.fixture
def llm_answerer(tmp_path: Path, seeded: Settings, embedder, fake_openai: FakeOpenAI) -> Answerer:
    return Answerer(llm_settings(tmp_path, seeded, fake_openai.base_url), embedder=embedder)


def check_sources(nodes: list[NodeWithScore], answer: Answer) -> None:
    """source_nodes are the answer's citations, in citation order, with their metadata."""
    assert [n.node.metadata["n"] for n in nodes] == [c.n for c in answer.citations]
    assert [n.node.metadata["n"] for n in nodes] == list(range(1, len(nodes) + 1))
    for node, citation in zip(nodes, answer.citations):
        meta = node.node.metadata
        assert {k: meta[k] for k in ("title", "url", "source", "published")} == {
            "title": citation.title,
            "url": citation.url,
            "source": citation.source,
            "published": citation.published,
        }
        assert node.node.get_content() == citation.quote
        assert (meta["article_id"], meta["story_id"]) == (citation.article_id, citation.story_id)


# --- building ------------------------------------------------------------------------------------
def test_built_engines_are_llamaindex_engines(seeded: Settings) -> None:
    engine = build_query_engine(seeded, top_k=3, similarity_top_k=4, as_of=date(2025, 2, 1))
    assert isinstance(engine, BaseQueryEngine)
    assert engine.answerer.settings.top_k == 3 and seeded.top_k != 3
    assert (engine.similarity_top_k, engine.as_of) == (4, date(2025, 2, 1))
    chat = build_chat_engine(seeded, conversation_id="c1")
    assert isinstance(chat, BaseChatEngine) and chat.conversation_id == "c1"
    with pytest.raises(TypeError, match="no_such_option"):
        build_query_engine(seeded, no_such_option=1)
    # The LLM's prompts are LlamaIndex templates, loaded from prompts/*.txt.
    prompts = engine.get_prompts()
    assert isinstance(prompts["answer"], PromptTemplate)
    assert prompts["answer"].template_vars == ["refusal"]
    assert set(prompts["condense"].template_vars) == {
        "previous_question",
        "previous_answer",
        "question",
    }


# --- querying ------------------------------------------------------------------------------------
def test_query_returns_a_response_with_cited_source_nodes(engine: NewsQueryEngine) -> None:
    response = engine.query(QUESTION)

    assert isinstance(response, Response)
    answer = response.metadata["answer"]
    assert isinstance(answer, Answer) and not answer.refused
    assert response.response == answer.text and "[1]" in response.response
    assert response.source_nodes and response.source_nodes[0].node.metadata["title"].startswith(
        SEED_TITLE
    )
    check_sources(response.source_nodes, answer)
    # What retrieval saw travels along: the ranked articles behind the answer.
    assert response.metadata["resolved"].hits[0].url == answer.citations[0].url


def test_a_refusal_is_a_normal_response(engine: NewsQueryEngine) -> None:
    response = engine.query(UNANSWERABLE)
    assert response.metadata["answer"].refused
    assert response.response == REFUSAL and response.source_nodes == []


def test_as_of_hides_later_articles(engine: NewsQueryEngine) -> None:
    # The seed article is from January 2025: asked as of 2024 the question has no answer.
    assert not engine.with_as_of(date(2025, 2, 1)).query(QUESTION).metadata["answer"].refused
    before = engine.with_as_of(date(2024, 6, 1))
    assert before.query(QUESTION).metadata["answer"].refused
    assert all(
        not n.node.metadata["title"].startswith(SEED_TITLE) for n in before.retrieve(QUESTION)
    )


def test_aquery_gives_the_same_answer(engine: NewsQueryEngine) -> None:
    response = asyncio.run(engine.aquery(QUESTION))
    assert response.response == engine.query(QUESTION).response


# --- the retriever -------------------------------------------------------------------------------
def test_retriever_returns_one_node_per_article(engine: NewsQueryEngine) -> None:
    retriever = engine.retriever
    assert isinstance(retriever, BaseRetriever)
    nodes = retriever.retrieve("rail workers strike over pay")
    ids = [n.node.node_id for n in nodes]
    assert len(ids) == len(set(ids)) >= 2  # articles, not chunks
    assert "rail-strike" in nodes[0].node.metadata["url"]
    assert [n.score for n in nodes] == sorted((n.score for n in nodes), reverse=True)
    assert "Rail workers across Britain walked out" in nodes[0].node.get_content()


def test_retriever_inside_llamaindexs_own_query_engine(
    tmp_path: Path, seeded: Settings, embedder, fake_openai: FakeOpenAI
) -> None:
    from index.llm import make_llm

    retriever = ArticleRetriever(Answerer(seeded, embedder=embedder), similarity_top_k=2)
    llm = make_llm(llm_settings(tmp_path, seeded, fake_openai.base_url))
    fake_openai.script(Reply("Seville reached 44 degrees."))
    # LlamaIndex's own synthesizer and prompt, over newsdesk's article nodes.
    pipeline = RetrieverQueryEngine.from_args(retriever, llm=llm)
    response = pipeline.query("heatwave records in Spain")

    assert str(response) == "Seville reached 44 degrees."
    assert len(response.source_nodes) == 2
    assert response.source_nodes[0].node.metadata["title"] == "Heatwave breaks records in Spain"
    [request] = fake_openai.chat_requests
    prompt = " ".join(str(m["content"]) for m in request["json"]["messages"])
    assert "Temperatures in Seville reached 44 degrees Celsius" in prompt
    assert "title: Heatwave breaks records in Spain" in prompt  # metadata the LLM sees
    assert "article_id" not in prompt and "story_id" not in prompt


def test_engine_as_an_agent_tool(engine: NewsQueryEngine) -> None:
    tool = QueryEngineTool.from_defaults(engine, name="news", description="Cited news answers.")
    output = tool.call(QUESTION)
    answer = output.raw_output.metadata["answer"]
    assert output.content == answer.text and "[1]" in output.content
    assert output.raw_output.source_nodes[0].node.metadata["n"] == 1


# --- streaming -----------------------------------------------------------------------------------
def test_streaming_query_ends_with_the_checked_answer(
    llm_answerer: Answerer, fake_openai: FakeOpenAI
) -> None:
    # The LLM adds an unsupported claim: it streams, and the checked answer drops it.
    fake_openai.script(Reply(GOOD + MOON))
    response = NewsQueryEngine(llm_answerer, streaming=True).query(QUESTION)

    assert isinstance(response, StreamingResponse)
    streamed = "".join(response.response_gen)
    assert "moon" in streamed
    answer = response.metadata["answer"]
    assert answer.mode == "llm" and "moon" not in answer.text
    assert str(response) == answer.text == response.get_response().response
    check_sources(response.source_nodes, answer)


def test_streaming_aquery(llm_answerer: Answerer, fake_openai: FakeOpenAI) -> None:
    fake_openai.script(Reply(GOOD + MOON))

    async def run() -> tuple[str, object]:
        response = await NewsQueryEngine(llm_answerer, streaming=True).aquery(QUESTION)
        deltas = [d async for d in response.async_response_gen()]
        assert (await response.get_response()).response == response.metadata["answer"].text
        return "".join(deltas), response

    streamed, response = asyncio.run(run())
    assert streamed.strip() == (GOOD + MOON).strip()
    assert response.response_txt == response.metadata["answer"].text == str(response)
    assert "moon" not in response.response_txt
    check_sources(response.source_nodes, response.metadata["answer"])


def test_streaming_offline_gives_the_answer_in_one_piece(engine: NewsQueryEngine) -> None:
    response = NewsQueryEngine(engine.answerer, streaming=True).query(QUESTION)
    assert list(response.response_gen) == [response.metadata["answer"].text]


# --- chat ----------------------------------------------------------------------------------------
def test_chat_follow_up_and_history(seeded: Settings, embedder) -> None:
    chat = NewsChatEngine(Answerer(seeded, embedder=embedder), "conv-1")
    first = chat.chat("Where was the Pakistan Azerbaijan joint ministerial commission held?")
    assert isinstance(first, AgentChatResponse) and not first.metadata["answer"].refused
    follow = chat.chat("and what did they agree?")
    resolved = follow.metadata["resolved"]
    assert resolved.standalone != resolved.question  # resolved against the first turn
    assert follow.source_nodes[0].node.metadata["title"].startswith(SEED_TITLE)

    # History is in SQLite: a new engine for the same conversation sees it.
    again = build_chat_engine(seeded, "conv-1")
    assert [m.content for m in again.chat_history][::2] == [
        "Where was the Pakistan Azerbaijan joint ministerial commission held?",
        "and what did they agree?",
    ]
    again.reset()
    assert again.chat_history == [] and chat.for_conversation("conv-1").chat_history == []


def test_stream_chat_ends_with_the_checked_answer(
    llm_answerer: Answerer, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(Reply(GOOD), Reply(GOOD))
    chat = NewsChatEngine(llm_answerer, "conv-2")

    response = chat.stream_chat(QUESTION)
    assert isinstance(response, StreamingAgentChatResponse)
    assert "".join(response.response_gen).strip() == GOOD.strip()
    assert response.response == response.answer.text and response.answer.mode == "llm"
    check_sources(response.source_nodes, response.answer)

    async def run() -> str:
        streamed = await chat.astream_chat("Where did they meet?")
        return "".join([d async for d in streamed.async_response_gen()]), streamed

    text, streamed = asyncio.run(run())
    assert text and streamed.response == streamed.metadata["answer"].text
    assert len(chat.chat_history) == 4
