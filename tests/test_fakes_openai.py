"""The fake OpenAI server, driven through the real `openai` client and LlamaIndex."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from fakes.openai_server import Error, FakeOpenAI, Hang, Malformed, Reply, Slow

MESSAGES = [
    {"role": "system", "content": "Answer from the articles and cite them."},
    {"role": "user", "content": "What happened in Lisbon?"},
]


def client_for(fake: FakeOpenAI, **kwargs: object) -> openai.OpenAI:
    options: dict = {"base_url": fake.base_url, "api_key": "test", "max_retries": 0}
    options.update(kwargs)
    return openai.OpenAI(**options)


def test_non_streaming_reply_is_shaped_like_openai(fake_openai: FakeOpenAI) -> None:
    fake_openai.script(Reply("The tram line reopened [1]."))
    with client_for(fake_openai) as client:
        completion = client.chat.completions.create(model="fake-model", messages=MESSAGES)

    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "fake-model"
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content == "The tram line reopened [1]."
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_default_reply_and_responder(fake_openai: FakeOpenAI) -> None:
    with client_for(fake_openai) as client:
        first = client.chat.completions.create(model="m", messages=MESSAGES)
        fake_openai.responder = lambda body: f"echo: {body['messages'][-1]['content']}"
        second = client.chat.completions.create(model="m", messages=MESSAGES)
        fake_openai.script(Reply("scripted wins"))
        third = client.chat.completions.create(model="m", messages=MESSAGES)

    assert first.choices[0].message.content == fake_openai.default_reply
    assert second.choices[0].message.content == "echo: What happened in Lisbon?"
    assert third.choices[0].message.content == "scripted wins"


def test_streaming_reassembles_the_scripted_text(fake_openai: FakeOpenAI) -> None:
    text = "Lisbon's tram 28 reopened on Monday after repairs [1], officials said [2]."
    fake_openai.script(Reply(text, chunk_words=2))
    with client_for(fake_openai) as client:
        chunks = list(
            client.chat.completions.create(
                model="fake-model",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
        )

    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) > 1  # really streamed, not one blob
    assert "".join(pieces) == text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert all(f is None for f in finishes[:-1])
    # include_usage: a last chunk with no choices carries the usage.
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None


def test_raw_sse_wire_format(fake_openai: FakeOpenAI) -> None:
    fake_openai.script(Reply("one two three four"))
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    response = httpx.post(f"{fake_openai.base_url}/chat/completions", json=body)

    assert response.headers["content-type"].startswith("text/event-stream")
    events = [block for block in response.text.split("\n\n") if block]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    payloads = [json.loads(e[len("data: ") :]) for e in events[:-1]]
    assert "".join(p["choices"][0]["delta"].get("content") or "" for p in payloads) == (
        "one two three four"
    )


def test_429_then_success_when_the_client_retries(fake_openai: FakeOpenAI) -> None:
    fake_openai.script(Error(429), Reply("after the retry"))
    with client_for(fake_openai, max_retries=1) as client:
        completion = client.chat.completions.create(model="m", messages=MESSAGES)

    assert completion.choices[0].message.content == "after the retry"
    requests = fake_openai.chat_requests
    assert len(requests) == 2
    assert requests[1]["headers"].get("x-stainless-retry-count") == "1"


def test_429_without_retries_surfaces_rate_limit_error(fake_openai: FakeOpenAI) -> None:
    fake_openai.script(Error(429, message="Rate limit reached for fake-model"))
    with client_for(fake_openai) as client, pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES)

    assert caught.value.status_code == 429
    assert caught.value.code == "rate_limit_exceeded"
    assert "Rate limit reached" in caught.value.message
    assert caught.value.response.headers["retry-after"] == "0"


def test_500_surfaces_internal_server_error(fake_openai: FakeOpenAI) -> None:
    fake_openai.script(Error(500))
    with client_for(fake_openai) as client, pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=MESSAGES)


def test_custom_error_body_and_headers(fake_openai: FakeOpenAI) -> None:
    body = {"error": {"message": "context too long", "type": "invalid_request_error", "code": "x"}}
    fake_openai.script(Error(400, body=body, headers={"x-extra": "1"}))
    with client_for(fake_openai) as client, pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES)

    assert caught.value.code == "x"
    assert caught.value.response.headers["x-extra"] == "1"


def test_slow_reply_hits_the_client_timeout(fake_openai: FakeOpenAI) -> None:
    # The server would answer after 30 s; the client gives up after 0.2 s. The fixture's
    # shutdown aborts the sleeping handler, so the test does not wait for it.
    fake_openai.script(Slow("too late", delay=30))
    with client_for(fake_openai, timeout=0.2) as client, pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=MESSAGES)


def test_slow_stream_stalls_between_chunks(fake_openai: FakeOpenAI) -> None:
    fake_openai.script(Slow("first second third", delay=30))
    with client_for(fake_openai, timeout=0.2) as client:
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        first = next(iter(stream))  # role chunk arrives at once
        assert first.choices[0].delta.role == "assistant"
        with pytest.raises((openai.APITimeoutError, httpx.ReadTimeout)):
            next(iter(stream))


def test_hang_never_answers_but_shutdown_is_clean() -> None:
    with FakeOpenAI() as fake:
        fake.script(Hang())
        with client_for(fake, timeout=0.2) as client, pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model="m", messages=MESSAGES)
        port = fake.port
    # The port is free again once the context exits.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/v1/models")


def test_malformed_json_body_raises(fake_openai: FakeOpenAI) -> None:
    fake_openai.script(Malformed())
    with client_for(fake_openai) as client, pytest.raises((openai.APIError, ValueError)):
        client.chat.completions.create(model="m", messages=MESSAGES)


def test_malformed_stream_raises(fake_openai: FakeOpenAI) -> None:
    fake_openai.script(Malformed())
    with client_for(fake_openai) as client, pytest.raises((openai.APIError, ValueError)):
        list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))


def test_requests_are_recorded(fake_openai: FakeOpenAI) -> None:
    with client_for(fake_openai, api_key="sk-recorded") as client:
        client.chat.completions.create(model="gpt-fake", messages=MESSAGES, temperature=0)
        list(client.chat.completions.create(model="gpt-fake", messages=MESSAGES, stream=True))

    plain, streamed = fake_openai.chat_requests
    assert plain["method"] == "POST"
    assert plain["path"] == "/v1/chat/completions"
    assert plain["headers"]["authorization"] == "Bearer sk-recorded"
    assert plain["json"]["model"] == "gpt-fake"
    assert plain["json"]["temperature"] == 0
    assert [m["role"] for m in plain["json"]["messages"]] == ["system", "user"]
    assert plain["json"]["messages"][1]["content"] == "What happened in Lisbon?"
    assert not plain["json"].get("stream")
    assert streamed["json"]["stream"] is True


def test_api_key_can_be_enforced() -> None:
    with FakeOpenAI(api_key="right") as fake:
        with client_for(fake, api_key="wrong") as client, pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(model="m", messages=MESSAGES)
        with client_for(fake, api_key="right") as client:
            assert client.chat.completions.create(model="m", messages=MESSAGES).choices


def test_embeddings_are_deterministic(fake_openai: FakeOpenAI) -> None:
    with client_for(fake_openai) as client:
        # The SDK asks for base64 by default and decodes it; plain floats are served too.
        first = client.embeddings.create(model="emb", input=["alpha", "beta"])
        again = client.embeddings.create(model="emb", input="alpha")
        floats = client.embeddings.create(model="emb", input="alpha", encoding_format="float")

    assert [d.index for d in first.data] == [0, 1]
    assert len(first.data[0].embedding) == fake_openai.embedding_dim
    assert first.data[0].embedding == pytest.approx(again.data[0].embedding, abs=1e-6)
    assert floats.data[0].embedding == pytest.approx(again.data[0].embedding, abs=1e-6)
    assert first.data[0].embedding != pytest.approx(first.data[1].embedding, abs=1e-6)


def test_embeddings_can_fail(fake_openai: FakeOpenAI) -> None:
    fake_openai.script_embeddings(Error(503))
    with client_for(fake_openai) as client, pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="emb", input="x")


def test_models_and_unknown_paths(fake_openai: FakeOpenAI) -> None:
    with client_for(fake_openai) as client:
        assert [m.id for m in client.models.list()] == ["fake-model"]
    response = httpx.post(f"{fake_openai.base_url}/nope", json={})
    assert response.status_code == 404
    assert "error" in response.json()


def test_llamaindex_openai_like_chat_and_stream(fake_openai: FakeOpenAI) -> None:
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.openai_like import OpenAILike

    llm = OpenAILike(
        model="fake",
        api_base=fake_openai.base_url,
        api_key="x",
        is_chat_model=True,
        max_retries=0,
    )
    messages = [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="Hi"),
    ]

    fake_openai.script(Reply("Hello from the fake."))
    assert llm.chat(messages).message.content == "Hello from the fake."

    fake_openai.script(Reply("Streaming works through LlamaIndex too.", chunk_words=1))
    deltas = [r.delta for r in llm.stream_chat(messages)]
    assert len(deltas) > 1
    assert "".join(d or "" for d in deltas) == "Streaming works through LlamaIndex too."

    sent = fake_openai.chat_requests
    assert sent[0]["json"]["model"] == "fake"
    assert sent[0]["json"]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert sent[1]["json"]["stream"] is True
