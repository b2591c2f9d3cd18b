"""LLM answers through LlamaIndex's OpenAI LLMs: OpenAI itself, or any OpenAI-compatible server.

The LLM sees the top ``settings.top_k`` articles as numbered ``<source>`` blocks and must
answer only from them, citing [n]; ``index.cite`` then checks every citation. Anything that
goes wrong -- connection, HTTP status, timeout, a malformed or unsupported answer -- becomes
``LLMUnavailable`` with a one-line reason, and the caller shows the offline answer instead.

Retries: the openai client retries 429/5xx/timeouts itself (exponential backoff, honouring
retry-after up to ``llm_timeout`` seconds), ``settings.llm_max_retries`` times. LlamaIndex
would wrap its own retry loop around that one (attempts multiplied, 1-20 s sleeps), so its
``max_retries`` is 0 and the clients are built here. Time: each attempt is bounded by
``llm_timeout`` (httpx timeouts); a stream is abandoned ``llm_timeout`` seconds after it
started, whatever it is doing.
"""

from __future__ import annotations

import asyncio
import html
import logging
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import httpx
import openai
from llama_index.core.llms import LLM, ChatMessage, MessageRole

from index.cite import Unsupported, check_citations, is_refusal
from index.history import Turn
from index.models import Answer, ArticleHit, Resolved
from index.prompts import REFUSAL, load_prompt
from index.settings import Settings

log = logging.getLogger(__name__)

OPENAI_API_BASE = "https://api.openai.com/v1"
MAX_PASSAGES = 3  # per source, as retrieval keeps them
CONDENSE_ANSWER_CHARS = 1_000  # the previous answer is context for the rewrite, not evidence

T = TypeVar("T")


class LLMUnavailable(RuntimeError):
    """The LLM gave no usable answer; the message is a short reason for the user's note."""


# --- the model -----------------------------------------------------------------------------------
def make_llm(settings: Settings) -> LLM:
    """OpenAILike for an OpenAI-compatible base URL, else OpenAI (an API key alone)."""
    from llama_index.llms.openai import OpenAI
    from llama_index.llms.openai.utils import openai_modelname_to_contextsize
    from llama_index.llms.openai_like import OpenAILike

    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
    if not key and not settings.openai_base_url:
        raise ValueError("LLM answers need NEWSDESK_OPENAI_API_KEY or NEWSDESK_OPENAI_BASE_URL")
    base_url = settings.openai_base_url or OPENAI_API_BASE
    key = key or "not-needed"  # local servers ignore it, the openai client insists on one
    client_options = {
        "api_key": key,
        "base_url": base_url,  # explicit: the openai client would otherwise read the env
        "timeout": settings.llm_timeout,
        "max_retries": settings.llm_max_retries,
    }
    limit = settings.llm_timeout
    common = {
        "model": settings.llm_model,
        "api_key": key,
        "api_base": base_url,
        "timeout": settings.llm_timeout,
        "max_retries": 0,  # see the module docstring: the openai client does the retrying
        "temperature": settings.llm_temperature,
        "max_tokens": settings.llm_max_tokens,
        "openai_client": openai.OpenAI(
            **client_options,
            http_client=openai.DefaultHttpxClient(
                event_hooks={"response": [lambda r: _bound_retry_after(r, limit)]}
            ),
        ),
        # No keep-alive for the async client: the REPL runs each question in its own event
        # loop, and a pooled connection from a closed loop fails the next request.
        "async_openai_client": openai.AsyncOpenAI(
            **client_options,
            http_client=openai.DefaultAsyncHttpxClient(
                limits=httpx.Limits(max_keepalive_connections=0),
                event_hooks={"response": [_async_bound_retry_after(limit)]},
            ),
        ),
    }
    if not settings.openai_base_url:
        try:
            openai_modelname_to_contextsize(settings.llm_model)
            return OpenAI(**common)
        except ValueError:
            pass  # a model LlamaIndex's table does not know yet: talk to it as OpenAI-like
    return OpenAILike(is_chat_model=True, context_window=settings.llm_context_window, **common)


def _bound_retry_after(response: httpx.Response, limit: float) -> None:
    """The openai client sleeps as long as a 429/503's retry-after says (up to two minutes)
    before retrying, whatever the request timeout: wait at most ``limit`` seconds instead."""
    for name, unit in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = response.headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * unit
        except ValueError:
            seconds = math.inf  # an HTTP date (or junk): no later than the limit either
        if not (math.isfinite(seconds) and seconds <= limit):
            response.headers[name] = f"{limit / unit:g}"


def _async_bound_retry_after(limit: float) -> Callable[[httpx.Response], Awaitable[None]]:
    async def hook(response: httpx.Response) -> None:
        _bound_retry_after(response, limit)

    return hook


# --- answering -----------------------------------------------------------------------------------
def complete(llm: LLM, resolved: Resolved, settings: Settings) -> Answer:
    """One chat request; the reply with its citations checked."""
    hits = sources_for(resolved, settings)
    try:
        response = llm.chat(answer_messages(resolved, settings))
        text = response.message.content
    except Exception as exc:
        raise _unavailable(exc, settings) from None
    return _checked(text, hits)


async def stream(llm: LLM, resolved: Resolved, settings: Settings) -> AsyncIterator[str | Answer]:
    """Text deltas as the LLM writes them, then the checked ``Answer``.

    The whole stream, retries included, must finish within ``settings.llm_timeout``.
    """
    hits = sources_for(resolved, settings)
    messages = answer_messages(resolved, settings)
    deadline = asyncio.get_running_loop().time() + settings.llm_timeout
    parts: list[str] = []
    try:
        responses = await _before(llm.astream_chat(messages), deadline)
        while True:
            try:
                response = await _before(responses.__anext__(), deadline)
            except StopAsyncIteration:
                break
            delta = response.delta or ""
            if delta:
                parts.append(delta)
                yield delta
    except Exception as exc:
        raise _unavailable(exc, settings) from None
    yield _checked("".join(parts), hits)


def condense(llm: LLM, question: str, previous_turn: Turn, settings: Settings) -> str | None:
    """The follow-up ``question`` rewritten as a standalone one, or None (then the offline
    follow-up resolution is used; the caller also checks a rewrite keeps what the follow-up
    refers to, with ``followup.lost_in_rewrite``)."""
    prompt = load_prompt("condense").format(
        previous_question=_escape(previous_turn.standalone or previous_turn.question),
        previous_answer=_escape(previous_turn.answer[:CONDENSE_ANSWER_CHARS]),
        question=_escape(question),
    )
    try:
        response = llm.chat([ChatMessage(role=MessageRole.USER, content=prompt)])
        text = response.message.content or ""
    except Exception as exc:
        reason = _unavailable(exc, settings)
        log.warning("could not condense the follow-up (%s); resolving it offline", reason)
        return None
    return _clean_question(text, settings)


# --- prompts -------------------------------------------------------------------------------------
def sources_for(resolved: Resolved, settings: Settings) -> list[ArticleHit]:
    """The articles the LLM sees, in rank order: source n is ``hits[n - 1]``. Each story
    holds one slot; the top story's next report comes last, so the LLM can see (and say)
    where two reports of the main event disagree."""
    hits = resolved.hits[: settings.top_k]
    return hits + hits[0].reports[:1] if hits else hits


def answer_messages(resolved: Resolved, settings: Settings) -> list[ChatMessage]:
    system = load_prompt("answer").format(refusal=REFUSAL)
    hits = sources_for(resolved, settings)
    blocks = "\n\n".join(source_block(n, hit) for n, hit in enumerate(hits, start=1))
    parts = [f"Sources:\n\n{blocks}"]
    if resolved.query.reference:
        parts.append(f"Today's date: {resolved.query.reference.isoformat()}")
    parts.append(f"Question: {_escape(resolved.standalone)}")
    return [
        ChatMessage(role=MessageRole.SYSTEM, content=system),
        ChatMessage(role=MessageRole.USER, content="\n\n".join(parts)),
    ]


def source_block(n: int, hit: ArticleHit) -> str:
    """One article as a ``<source>`` block its own text cannot close or fake."""
    passages = sorted(hit.passages[:MAX_PASSAGES], key=lambda p: p.position)
    text = "\n\n".join(_escape(p.text.strip()) for p in passages)
    attrs = " ".join(
        f'{name}="{html.escape(value or "", quote=True)}"'
        for name, value in (
            ("id", str(n)),
            ("title", hit.title),
            ("source", hit.source),
            ("published", hit.published),
            ("story", hit.story_id),
        )
    )
    return f"<source {attrs}>\n{text}\n</source>"


def _escape(text: str) -> str:
    # Only angle brackets matter: with them gone, no text can open or close a tag.
    return text.replace("<", "&lt;").replace(">", "&gt;")


# --- helpers -------------------------------------------------------------------------------------
async def _before(awaitable: Awaitable[T], deadline: float) -> T:
    remaining = deadline - asyncio.get_running_loop().time()
    return await asyncio.wait_for(awaitable, timeout=max(remaining, 0.0))


# What small models echo from the prompt or from answer formats they were trained on: its
# <source> tags, their chat template's tokens, an "Answer:" label (at the start or after a
# claim the check may drop), list bullets, and the "Question: ..." they go on to ask.
_ECHO_TAGS = re.compile(
    r"</?source\b[^>]*>|\[/?INST\]|<</?SYS>>|<\|[a-z_]+\|>|</?(?:start|end)_of_turn>|</?s>",
    re.I,
)
_ANSWER_LABEL = re.compile(
    r"(?:^|(?<=[.!?\]])|(?<=\n))[ \t]*(?:\*\*)?(?:final )?answer\s*:\s*(?:\*\*)?[ \t]*", re.I
)
_QUESTION_ECHO = re.compile(r"(?:^|(?<=[.!?\]])|\s)(?:\*\*)?(?:Question|QUESTION)\s*:.*$", re.S)
_BULLET = re.compile(r"(?m)^[ \t]*(?:[*•]|-(?=\s))[ \t]*")
_LONE_BULLET = re.compile(r"(?<!\S)[*•]+(?!\S)")


def strip_echoes(text: str) -> str:
    """The answer without what the model repeated of its prompt:
    'Answer: Yellowstone <source> </source> [1] Question: Which park...' -> 'Yellowstone [1]',
    '* A ban on assault weapons. [1] *' -> 'A ban on assault weapons. [1]'. Line breaks stay:
    a list's items are sentences even without full stops."""
    text = _ECHO_TAGS.sub(" ", text)
    text = _QUESTION_ECHO.sub("", text)
    text = _ANSWER_LABEL.sub(" ", text)
    text = _LONE_BULLET.sub(" ", _BULLET.sub("", text))
    return "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())


def _checked(text: object, hits: list[ArticleHit]) -> Answer:
    if not isinstance(text, str):
        raise LLMUnavailable("malformed response")
    text = strip_echoes(text)
    if not text.strip():
        raise LLMUnavailable("empty response")
    try:
        return check_citations(text, hits)
    except Unsupported:
        raise LLMUnavailable("no claim in the LLM answer was supported by the sources") from None


def _unavailable(exc: BaseException, settings: Settings) -> LLMUnavailable:
    """A short reason, never the exception's text (it may quote request details)."""
    log.debug("LLM request failed: %s", type(exc).__name__)
    if isinstance(exc, LLMUnavailable):
        return exc
    retries = settings.llm_max_retries
    after = f" after {retries} {'retry' if retries == 1 else 'retries'}" if retries else ""
    if isinstance(exc, (openai.APITimeoutError, httpx.TimeoutException, asyncio.TimeoutError)):
        return LLMUnavailable(f"timed out after {settings.llm_timeout:g}s")
    if isinstance(exc, openai.APIConnectionError):
        refused = _refused(exc)
        return LLMUnavailable(f"{'connection refused' if refused else 'connection failed'}{after}")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retried = status in (408, 409, 429) or status >= 500  # what the openai client retries
        return LLMUnavailable(f"HTTP {status}{after if retried else ''}")
    if isinstance(exc, (openai.APIResponseValidationError, ValueError, TypeError, LookupError)):
        return LLMUnavailable("malformed response")  # bad JSON, or JSON of the wrong shape
    if isinstance(exc, AttributeError):
        return LLMUnavailable("malformed response")
    return LLMUnavailable(f"unexpected error ({type(exc).__name__})")


def _refused(exc: BaseException) -> bool:
    # The sync client's cause says "Connection refused"; the async one's says "All connection
    # attempts failed", with the ConnectionRefusedError further down the chain.
    seen: BaseException | None = exc.__cause__
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ConnectionRefusedError) or "refused" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _clean_question(text: str, settings: Settings) -> str | None:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None
    line = lines[0]
    for prefix in ("standalone question:", "question:"):
        if line.lower().startswith(prefix):
            line = line[len(prefix) :].strip()
    line = " ".join(line.strip("\"'“”‘’`*").split())
    if not line or len(line) > settings.max_question_chars or is_refusal(line):
        return None
    return line
