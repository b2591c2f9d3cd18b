"""newsdesk the LlamaIndex way: a retriever, a query engine and a chat engine.

    from index.engine import build_query_engine, build_chat_engine

    engine = build_query_engine()                      # Settings from the environment / .env
    response = engine.query("What did the council decide?")
    response.response                                  # answer text with [n] markers
    response.source_nodes[0].node.metadata["title"]    # cited passages, in citation order
    response.metadata["answer"]                        # the typed index.models.Answer

    chat = build_chat_engine(conversation_id="me")     # follow-ups; history in SQLite
    chat.chat("Who won?"); chat.chat("and what did he say?")

The parts, each replaceable on its own:

* ``ArticleRetriever`` (a ``BaseRetriever``): hybrid, time-aware retrieval, one
  ``NodeWithScore`` per article; it works inside any LlamaIndex pipeline, e.g. a
  ``RetrieverQueryEngine`` with LlamaIndex's own synthesizers.
* synthesis is the query layer's own step (``index.answer.Answerer``): the offline extractive
  answer, or the LLM's answer with every citation checked against its source (``index.cite``),
  falling back to the offline answer when the LLM fails. A refusal is a normal response whose
  ``Answer.refused`` is true.
* ``NewsQueryEngine`` / ``NewsChatEngine`` (``BaseQueryEngine`` / ``BaseChatEngine``): the
  one path every front end takes (``newsdesk ask``, ``search`` and ``eval``, the REPL,
  Telegram).
  Streaming yields the text as the LLM writes it; the response then ends with the checked
  answer (its ``response`` text, ``source_nodes`` and ``metadata["answer"]`` are set when
  the stream ends).

The engines add nothing measurable to an answer's latency: they wrap its result in
LlamaIndex's response types and build one node per citation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator, Iterator
from datetime import date
from typing import Any

from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.base.response.schema import (
    AsyncStreamingResponse,
    Response,
    StreamingResponse,
)
from llama_index.core.chat_engine.types import (
    AgentChatResponse,
    BaseChatEngine,
    StreamingAgentChatResponse,
)
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from pydantic import PrivateAttr

from index.answer import Answerer
from index.embed import Embedder
from index.models import Answer, ArticleHit, Citation, Resolved
from index.prompts import load_prompt
from index.settings import Settings, get_settings

#: Engine options that are not Settings fields.
ENGINE_OPTIONS = ("streaming", "as_of", "similarity_top_k")
#: Parts an engine may share with code that already loaded them (else built from settings).
PARTS = ("store", "embedder", "history", "llm")
PROMPTS = ("answer", "condense")  # what the LLM is asked: an answer, a standalone follow-up


# --- building ------------------------------------------------------------------------------------
def build_query_engine(settings: Settings | None = None, **overrides: Any) -> NewsQueryEngine:
    """A query engine over the index that ``settings`` name (default: ``get_settings()``).

    ``overrides``: ``streaming`` (bool), ``as_of`` (a ``date``: answer as of that day),
    ``similarity_top_k`` (articles retrieved), parts already loaded (``store``, ``embedder``,
    ``history``, ``llm``), and any ``Settings`` field by name (``top_k=3``, ...).
    """
    options = _take(overrides, ENGINE_OPTIONS)
    parts = _take(overrides, PARTS)
    return NewsQueryEngine(Answerer(_settings(settings, overrides), **parts), **options)


def build_chat_engine(
    settings: Settings | None = None, conversation_id: str | None = None, **overrides: Any
) -> NewsChatEngine:
    """A chat engine: follow-ups are resolved against the conversation's earlier turns,
    kept in the SQLite history under ``conversation_id`` (None: a fresh, unsaved one).
    ``overrides`` as for ``build_query_engine``, but for the query options."""
    parts = _take(overrides, PARTS)
    return NewsChatEngine(Answerer(_settings(settings, overrides), **parts), conversation_id)


def _take(overrides: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: overrides.pop(name) for name in names if name in overrides}


def _settings(settings: Settings | None, overrides: dict[str, Any]) -> Settings:
    settings = settings or get_settings()
    unknown = sorted(set(overrides) - set(Settings.model_fields))
    if unknown:
        raise TypeError(f"unknown engine option(s): {', '.join(unknown)}")
    return settings.model_copy(update=overrides) if overrides else settings


# --- nodes ---------------------------------------------------------------------------------------
def article_node(hit: ArticleHit) -> NodeWithScore:
    """One retrieved article as a node: its best passages in reading order, scored by fusion."""
    passages = sorted(hit.passages, key=lambda p: p.position)
    node = TextNode(
        id_=hit.article_id,
        text="\n\n".join(p.text for p in passages),
        metadata={
            "article_id": hit.article_id,
            "title": hit.title,
            "url": hit.url,
            "source": hit.source,
            "published": hit.published,
            "story_id": hit.story_id,
        },
        excluded_embed_metadata_keys=["article_id", "story_id"],
        excluded_llm_metadata_keys=["article_id", "story_id"],
    )
    return NodeWithScore(node=node, score=hit.score)


def cited_node(citation: Citation) -> NodeWithScore:
    """One citation as a node: the passage the answer quotes, and where it comes from."""
    node = TextNode(
        id_=f"{citation.article_id or 'citation'}#{citation.n}",
        text=citation.quote,
        metadata={
            "n": citation.n,
            "title": citation.title,
            "url": citation.url,
            "source": citation.source,
            "published": citation.published,
            "article_id": citation.article_id,
            "story_id": citation.story_id,
        },
        excluded_embed_metadata_keys=["n", "article_id", "story_id"],
        excluded_llm_metadata_keys=["article_id", "story_id"],
    )
    return NodeWithScore(node=node, score=None)


def source_nodes(answer: Answer) -> list[NodeWithScore]:
    """The cited passages in citation order (none for a refusal)."""
    return [cited_node(c) for c in sorted(answer.citations, key=lambda c: c.n)]


def _metadata(answer: Answer, resolved: Resolved | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"answer": answer}
    if resolved is not None:
        metadata["resolved"] = resolved  # the standalone question and every article retrieved
    return metadata


# --- the retriever -------------------------------------------------------------------------------
class ArticleRetriever(BaseRetriever):
    """Hybrid (dense + BM25), time-aware retrieval: one ``NodeWithScore`` per article.

    Dates in the question narrow the search ("in June 2022", "last week"); ``as_of`` hides
    later articles and makes that day "today"."""

    def __init__(
        self,
        answerer: Answerer,
        *,
        as_of: date | None = None,
        similarity_top_k: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.answerer = answerer
        self.as_of = as_of
        self.similarity_top_k = similarity_top_k

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        resolved = self.answerer.resolve(
            query_bundle.query_str, as_of=self.as_of, k=self.similarity_top_k
        )
        return [article_node(hit) for hit in resolved.hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)


# --- the embedder ---------------------------------------------------------------------------------
class LlamaEmbedding(BaseEmbedding):
    """newsdesk's embedder as a LlamaIndex ``BaseEmbedding``, so LlamaIndex's own indexes and
    retrievers (the starter baseline in bench/) embed exactly as newsdesk does."""

    _embedder: Any = PrivateAttr()

    def __init__(self, embedder: Embedder, **kwargs: Any) -> None:
        super().__init__(model_name=embedder.name, embed_batch_size=256, **kwargs)
        self._embedder = embedder

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embedder.embed([query])[0].tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embedder.embed([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.embed(texts).tolist()


# --- the query engine ----------------------------------------------------------------------------
class NewsQueryEngine(BaseQueryEngine):
    """Questions in, cited answers out: ``Response`` (or ``StreamingResponse``) with the
    typed ``Answer`` in ``metadata["answer"]``. Stateless: each question stands alone."""

    def __init__(
        self,
        answerer: Answerer,
        *,
        streaming: bool = False,
        as_of: date | None = None,
        similarity_top_k: int | None = None,
        callback_manager: Any = None,
    ) -> None:
        super().__init__(callback_manager)
        self.answerer = answerer
        self.streaming = streaming
        self.as_of = as_of
        self.similarity_top_k = similarity_top_k
        self.retriever = ArticleRetriever(answerer, as_of=as_of, similarity_top_k=similarity_top_k)

    def _get_prompts(self) -> dict[str, Any]:
        """The LLM prompts (``PromptTemplate``s from ``prompts/*.txt``)."""
        return {name: load_prompt(name) for name in PROMPTS}

    def _get_prompt_modules(self) -> dict[str, Any]:
        return {}

    def _update_prompts(self, prompts: dict[str, Any]) -> None:
        raise NotImplementedError("newsdesk's prompts are the files in prompts/; edit those")

    def with_as_of(self, as_of: date | None, **options: Any) -> NewsQueryEngine:
        """The same engine (same index, models and caches), answering as of ``as_of``;
        ``options`` (``streaming``, ``similarity_top_k``) change those too."""
        current = {"streaming": self.streaming, "similarity_top_k": self.similarity_top_k}
        return NewsQueryEngine(
            self.answerer,
            as_of=as_of,
            callback_manager=self.callback_manager,
            **{**current, **options},
        )

    def retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self.retriever.retrieve(query_bundle)

    def _query(self, query_bundle: QueryBundle) -> Response | StreamingResponse:
        question = query_bundle.query_str
        if self.streaming:
            return CheckedStreamingResponse.of(self._stream(question))
        resolved, answer = self.answerer.respond(
            question, as_of=self.as_of, k=self.similarity_top_k
        )
        return Response(answer.text, source_nodes(answer), _metadata(answer, resolved))

    async def _aquery(self, query_bundle: QueryBundle) -> Response | AsyncStreamingResponse:
        question = query_bundle.query_str
        if self.streaming:
            return CheckedAsyncStreamingResponse.of(self._stream(question))
        resolved, answer = await asyncio.to_thread(
            self.answerer.respond, question, as_of=self.as_of, k=self.similarity_top_k
        )
        return Response(answer.text, source_nodes(answer), _metadata(answer, resolved))

    def _stream(self, question: str) -> AsyncIterator[str | Answer]:
        return self.answerer.astream(question, as_of=self.as_of, k=self.similarity_top_k)


# --- streaming responses -------------------------------------------------------------------------
def _sync_items(items: AsyncIterator[str | Answer]) -> Iterator[str | Answer]:
    """An async stream driven from synchronous code, on an event loop of its own."""
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(items.__anext__())
            except StopAsyncIteration:
                return
    finally:
        loop.run_until_complete(items.aclose())  # type: ignore[attr-defined]
        loop.run_until_complete(loop.shutdown_default_executor())  # to_thread's workers
        loop.close()


class CheckedStreamingResponse(StreamingResponse):
    """A ``StreamingResponse`` whose text, once the stream ends, is the checked answer."""

    @classmethod
    def of(cls, items: AsyncIterator[str | Answer]) -> CheckedStreamingResponse:
        response = cls(response_gen=None)  # type: ignore[arg-type]
        response.response_gen = response._deltas(_sync_items(items))
        return response

    def _deltas(self, items: Iterator[str | Answer]) -> Generator[str, None, None]:
        for item in items:
            if isinstance(item, Answer):
                self.response_txt = item.text
                self.source_nodes = source_nodes(item)
                self.metadata = _metadata(item)
            else:
                yield item

    def _finish(self) -> None:
        for _ in self.response_gen:
            pass

    def __str__(self) -> str:
        self._finish()
        return self.response_txt or ""

    def get_response(self) -> Response:
        self._finish()
        return Response(self.response_txt, self.source_nodes, self.metadata)

    def print_response_stream(self) -> None:
        for delta in self.response_gen:
            print(delta, end="", flush=True)


class CheckedAsyncStreamingResponse(AsyncStreamingResponse):
    """An ``AsyncStreamingResponse`` whose text, once the stream ends, is the checked answer."""

    @classmethod
    def of(cls, items: AsyncIterator[str | Answer]) -> CheckedAsyncStreamingResponse:
        response = cls(response_gen=None)  # type: ignore[arg-type]
        response.response_gen = response._deltas(items)
        return response

    async def _deltas(self, items: AsyncIterator[str | Answer]) -> AsyncIterator[str]:
        async for item in items:
            if isinstance(item, Answer):
                self.response_txt = item.text
                self.source_nodes = source_nodes(item)
                self.metadata = _metadata(item)
            else:
                yield item

    async def _yield_response(self) -> AsyncIterator[str]:
        # What every reader of the response (async_response_gen, get_response, str) reads:
        # the deltas once; ``_deltas`` sets the checked text and sources when they end.
        async with self._lock:
            async for delta in self.response_gen:
                yield delta


class CheckedStreamingChatResponse(StreamingAgentChatResponse):
    """A streaming chat response whose ``response``, once the stream ends, is the checked
    answer; ``metadata["answer"]`` holds the typed ``Answer`` then."""

    metadata: dict[str, Any] | None = None
    _answer: Answer | None = None

    @classmethod
    def of(cls, items: AsyncIterator[str | Answer]) -> CheckedStreamingChatResponse:
        response = cls(is_writing_to_memory=False)
        response.achat_stream = response._achat(items)
        return response

    @classmethod
    def of_sync(cls, items: AsyncIterator[str | Answer]) -> CheckedStreamingChatResponse:
        response = cls(is_writing_to_memory=False)
        response.chat_stream = response._chat(_sync_items(items))
        return response

    def _set(self, answer: Answer | None) -> None:
        if answer is None:
            raise RuntimeError("the answer stream ended without an Answer")
        self.response = answer.text
        self.source_nodes = source_nodes(answer)
        self.metadata = _metadata(answer)

    def _chat(self, items: Iterator[str | Answer]) -> Generator[ChatResponse, None, None]:
        for item in items:
            if isinstance(item, Answer):
                self._answer = item
            else:
                yield _delta(item)

    async def _achat(self, items: AsyncIterator[str | Answer]) -> AsyncIterator[ChatResponse]:
        async for item in items:
            if isinstance(item, Answer):
                self._answer = item
            else:
                yield _delta(item)

    @property
    def response_gen(self) -> Generator[str, None, None]:
        yield from StreamingAgentChatResponse.response_gen.fget(self)  # type: ignore[attr-defined]
        self._set(self._answer)

    async def async_response_gen(self) -> AsyncIterator[str]:
        async for delta in super().async_response_gen():
            yield delta
        self._set(self._answer)

    @property
    def answer(self) -> Answer | None:
        """The checked answer, once the stream has ended."""
        return (self.metadata or {}).get("answer")


def _delta(text: str) -> ChatResponse:
    return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=text)


# --- the chat engine -----------------------------------------------------------------------------
class NewsChatEngine(BaseChatEngine):
    """A conversation: each message may be a follow-up ("and what did he say?", "more about
    [2]"), resolved against the turns before it. Turns live in the SQLite history, so a
    conversation survives restarts and is shared by processes using the same data dir (so
    the ``chat_history`` argument of ``chat``/``stream_chat`` is not used)."""

    def __init__(
        self,
        answerer: Answerer,
        conversation_id: str | None = None,
        *,
        as_of: date | None = None,
    ) -> None:
        self.answerer = answerer
        self.conversation_id = conversation_id
        self.as_of = as_of  # answer as of that day (``newsdesk eval`` replays dated chats)

    def for_conversation(self, conversation_id: str | None) -> NewsChatEngine:
        """The same engine (same index, models and caches) for another conversation."""
        return NewsChatEngine(self.answerer, conversation_id, as_of=self.as_of)

    def reset(self) -> None:
        if self.conversation_id:
            self.answerer.reset(self.conversation_id)

    @property
    def chat_history(self) -> list[ChatMessage]:
        if not self.conversation_id:
            return []
        messages = []
        for turn in self.answerer.history.turns(self.conversation_id):
            messages.append(ChatMessage(role=MessageRole.USER, content=turn.question))
            messages.append(ChatMessage(role=MessageRole.ASSISTANT, content=turn.answer))
        return messages

    def chat(
        self, message: str, chat_history: list[ChatMessage] | None = None
    ) -> AgentChatResponse:
        resolved, answer = self.answerer.respond(message, self.conversation_id, as_of=self.as_of)
        return AgentChatResponse(
            response=answer.text,
            source_nodes=source_nodes(answer),
            metadata=_metadata(answer, resolved),
        )

    async def achat(
        self, message: str, chat_history: list[ChatMessage] | None = None
    ) -> AgentChatResponse:
        return await asyncio.to_thread(self.chat, message, chat_history)

    def stream_chat(
        self, message: str, chat_history: list[ChatMessage] | None = None
    ) -> CheckedStreamingChatResponse:
        return CheckedStreamingChatResponse.of_sync(
            self.answerer.astream(message, self.conversation_id, as_of=self.as_of)
        )

    async def astream_chat(
        self, message: str, chat_history: list[ChatMessage] | None = None
    ) -> CheckedStreamingChatResponse:
        return CheckedStreamingChatResponse.of(
            self.answerer.astream(message, self.conversation_id, as_of=self.as_of)
        )
