"""A fake OpenAI-compatible HTTP server on 127.0.0.1 for tests.

It speaks the real wire protocol (JSON bodies, SSE streaming, OpenAI-shaped errors), so the
code under test talks to it through the real `openai` client / LlamaIndex exactly as it would
talk to a real provider. Tests script what the "model" does next:

    with FakeOpenAI() as fake:
        fake.script(Error(429), Reply("Answer [1]"))
        client = openai.OpenAI(base_url=fake.base_url, api_key="test")
        ...
        assert fake.chat_requests[-1]["json"]["messages"][0]["role"] == "system"
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import socket
import struct
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "Error",
    "FakeOpenAI",
    "Hang",
    "Malformed",
    "Reply",
    "Scripted",
    "Slow",
]


@dataclass(frozen=True)
class Reply:
    """A normal answer. When streamed, it is sent as chunks of `chunk_words` words."""

    text: str
    finish_reason: str = "stop"
    chunk_words: int = 3


@dataclass(frozen=True)
class Error:
    """An HTTP error. `body=None` gives OpenAI's error JSON; a dict is sent as JSON, str/bytes raw.

    A 429 without explicit headers carries `retry-after: 0` plus `retry-after-ms: 5`, so clients
    that honour the header (the openai SDK does) retry at once instead of backing off ~0.5 s.
    """

    status: int
    body: Mapping[str, Any] | str | bytes | None = None
    headers: Mapping[str, str] | None = None
    message: str | None = None


@dataclass(frozen=True)
class Slow:
    """Answer `text` late: non-streaming waits `delay` before sending anything; streaming sends
    the headers and the role chunk at once, then waits `delay` before every content chunk."""

    text: str
    delay: float
    chunk_words: int = 3


@dataclass(frozen=True)
class Hang:
    """Accept the request and never answer (until the server shuts down)."""


@dataclass(frozen=True)
class Malformed:
    """HTTP 200 with a broken body: invalid JSON, or for streams an SSE event with broken JSON."""

    body: str | None = None


Scripted = Reply | Error | Slow | Hang | Malformed
# A responder may also return a plain string, taken as Reply(text).
Responder = Callable[[dict[str, Any]], "Scripted | str"]

_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_denied", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_exceeded", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("server_error", None),
    503: ("server_error", None),
}


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    """OpenAI's error envelope for `status`."""
    kind, code = _ERROR_KINDS.get(status, ("api_error", None))
    if message is None:
        try:
            message = f"Fake server error: {HTTPStatus(status).phrase}"
        except ValueError:
            message = f"Fake server error {status}"
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def split_words(text: str, per_chunk: int) -> list[str]:
    """Split into pieces of `per_chunk` words; "".join(pieces) == text always holds."""
    tokens = re.findall(r"\S+\s*|\s+", text)
    step = max(1, per_chunk)
    return ["".join(tokens[i : i + step]) for i in range(0, len(tokens), step)]


def fake_embedding(text: str, dim: int) -> list[float]:
    """Deterministic unit vector derived from sha256(text): same text -> same vector."""
    raw = b""
    counter = 0
    while len(raw) < dim * 4:
        raw += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    values = [
        (int.from_bytes(raw[i * 4 : i * 4 + 4], "big") / 0xFFFFFFFF) * 2 - 1 for i in range(dim)
    ]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [v / norm for v in values]


def _count_tokens(value: Any) -> int:
    # Word count is a good-enough stand-in for tokens: tests only need plausible usage numbers.
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, Mapping):
        return sum(_count_tokens(v) for v in value.values())
    if isinstance(value, list):
        return sum(_count_tokens(v) for v in value)
    return 0


class _AbortedError(Exception):
    """Raised inside a handler when the server shuts down while it waits."""


class _Server(ThreadingHTTPServer):
    # Non-daemon handler threads + block_on_close: server_close() joins them, so nothing leaks
    # past the `with` block. Waits inside handlers abort via `fake._stopping`.
    daemon_threads = False
    block_on_close = True

    def __init__(self, fake: FakeOpenAI) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that gives up mid-response (the malformed-stream and timeout tests do) is
        # expected here; socketserver would print a traceback outside pytest's capture.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive + chunked transfer for SSE, like the real API
    server: _Server
    timeout = 30  # a safety net for half-open client sockets

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        try:
            self.server.fake._handle(self)
        except (_AbortedError, BrokenPipeError, ConnectionResetError):
            # Client gave up (e.g. its timeout fired) or we are shutting down: drop the socket.
            self.close_connection = True

    # --- small response helpers used by FakeOpenAI._handle ---

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_bytes(
        self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:24]}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_json(
        self, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        self.send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

    def start_sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:24]}")
        self.end_headers()

    def send_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


@dataclass
class FakeOpenAI:
    """Fake OpenAI API on 127.0.0.1:<free port>. Use as a context manager (or start()/stop()).

    Attributes tests use:
      base_url        "http://127.0.0.1:PORT/v1", for `openai.OpenAI(base_url=...)`.
      requests        every request: {"method", "path", "headers" (lower-cased), "json", "body"}.
      responder       optional callable(request_json) -> Scripted | str, used when the script
                      queue is empty; otherwise `Reply(default_reply)` is sent.
      api_key         when set, requests must carry "Authorization: Bearer <api_key>" (else 401).
    """

    default_reply: str = "This is a fake reply."
    embedding_dim: int = 8
    models: tuple[str, ...] = ("fake-model",)
    api_key: str | None = None
    responder: Responder | None = None
    requests: list[dict[str, Any]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._chat_script: deque[Scripted] = deque()
        self._embedding_script: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---

    def start(self) -> FakeOpenAI:
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-openai",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes Slow/Hang handlers
        server.shutdown()
        # Idle keep-alive connections sit in readline(); shutting the sockets down unblocks them
        # so server_close() can join every handler thread promptly.
        with server.connections_lock:
            conns = list(server.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeOpenAI is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # --- scripting & inspection ---

    def script(self, *items: Scripted) -> None:
        """Queue what the next chat completions return, in order."""
        with self._lock:
            self._chat_script.extend(items)

    def script_embeddings(self, *items: Scripted) -> None:
        """Queue outcomes for the next embeddings calls (a Reply there means "normal vectors")."""
        with self._lock:
            self._embedding_script.extend(items)

    @property
    def pending(self) -> int:
        """Scripted chat items not consumed yet."""
        with self._lock:
            return len(self._chat_script)

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["path"].endswith("/chat/completions")]

    @property
    def embedding_requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["path"].endswith("/embeddings")]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._chat_script.clear()
            self._embedding_script.clear()

    # --- request handling (runs in handler threads) ---

    def _wait(self, seconds: float | None) -> None:
        """Sleep `seconds` (None: forever) unless the server stops first."""
        if self._stopping.wait(seconds):
            raise _AbortedError

    def _pop(self, queue: deque[Scripted]) -> Scripted | None:
        with self._lock:
            return queue.popleft() if queue else None

    def _next_chat(self, request_json: dict[str, Any]) -> Scripted:
        scripted = self._pop(self._chat_script)
        if scripted is not None:
            return scripted
        outcome = self.responder(request_json) if self.responder else self.default_reply
        return Reply(outcome) if isinstance(outcome, str) else outcome

    def _handle(self, h: _Handler) -> None:
        raw = h.read_body()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        path = h.path.split("?", 1)[0]
        record = {
            "method": h.command,
            "path": path,
            "headers": {k.lower(): v for k, v in h.headers.items()},
            "json": body,
            "body": raw,
        }
        with self._lock:
            self.requests.append(record)

        if self.api_key is not None and h.headers.get("Authorization") != f"Bearer {self.api_key}":
            h.send_json(401, error_body(401, "Incorrect API key provided."))
            return

        route = (h.command, path.rstrip("/"))
        if route == ("POST", "/v1/chat/completions"):
            self._chat(h, body)
        elif route == ("POST", "/v1/embeddings"):
            self._embeddings(h, body)
        elif route == ("GET", "/v1/models"):
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models
            ]
            h.send_json(200, {"object": "list", "data": data})
        else:
            h.send_json(404, error_body(404, f"Invalid URL ({h.command} {path})"))

    def _send_error(self, h: _Handler, err: Error) -> None:
        headers = dict(err.headers) if err.headers is not None else {}
        if err.status == 429 and err.headers is None:
            headers = {"retry-after": "0", "retry-after-ms": "5"}
        if err.body is None:
            h.send_json(err.status, error_body(err.status, err.message), headers)
        elif isinstance(err.body, Mapping):
            h.send_json(err.status, dict(err.body), headers)
        else:
            data = err.body.encode() if isinstance(err.body, str) else err.body
            h.send_bytes(err.status, data, "application/json", headers)

    def _chat(self, h: _Handler, body: Any) -> None:
        if not isinstance(body, dict) or "messages" not in body or "model" not in body:
            h.send_json(400, error_body(400, "'messages' and 'model' are required properties"))
            return
        outcome = self._next_chat(body)
        if self._failed(h, outcome):
            return
        stream = bool(body.get("stream"))
        model = str(body["model"])
        if isinstance(outcome, Malformed):
            if stream:
                h.start_sse()
                broken = (
                    outcome.body or 'data: {"id": "chatcmpl-broken", "choices": [{"delta": {"con'
                )
                h.send_chunk(broken.encode() + b"\n\n")
                h.end_chunks()
            else:
                broken = (
                    outcome.body or '{"id": "chatcmpl-broken", "object": "chat.completion", "cho'
                )
                h.send_bytes(200, broken.encode(), "application/json")
            return

        delay = outcome.delay if isinstance(outcome, Slow) else 0.0
        prompt_tokens = _count_tokens(body.get("messages"))
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if not stream:
            if delay:
                self._wait(delay)
            finish = outcome.finish_reason if isinstance(outcome, Reply) else "stop"
            completion_tokens = _count_tokens(outcome.text)
            h.send_json(
                200,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "system_fingerprint": "fp_fake",
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": outcome.text,
                                "refusal": None,
                            },
                            "logprobs": None,
                            "finish_reason": finish,
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens,
                    },
                },
            )
            return

        options = body.get("stream_options") or {}
        include_usage = bool(options.get("include_usage")) if isinstance(options, dict) else False

        def chunk(choices: list[dict[str, Any]], usage: Any = None) -> None:
            payload: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": choices,
            }
            if include_usage:
                payload["usage"] = usage  # OpenAI sends "usage": null on every chunk but the last
            h.send_chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")

        def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

        h.start_sse()
        chunk(choice({"role": "assistant", "content": "", "refusal": None}))
        for piece in split_words(outcome.text, outcome.chunk_words):
            if delay:
                self._wait(delay)
            chunk(choice({"content": piece}))
        finish = outcome.finish_reason if isinstance(outcome, Reply) else "stop"
        chunk(choice({}, finish))
        if include_usage:
            completion_tokens = _count_tokens(outcome.text)
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
            chunk([], usage)
        h.send_chunk(b"data: [DONE]\n\n")
        h.end_chunks()

    def _failed(self, h: _Handler, outcome: Any) -> bool:
        """Scripted failures every endpoint shares: an HTTP error, or never answering."""
        if isinstance(outcome, Error):
            self._send_error(h, outcome)
            return True
        if isinstance(outcome, Hang):
            self._wait(None)
            return True
        return False

    def _embeddings(self, h: _Handler, body: Any) -> None:
        if not isinstance(body, dict) or "input" not in body or "model" not in body:
            h.send_json(400, error_body(400, "'input' and 'model' are required properties"))
            return
        outcome = self._pop(self._embedding_script) or Reply("")
        if self._failed(h, outcome):
            return
        if isinstance(outcome, Malformed):
            h.send_bytes(
                200, (outcome.body or '{"object": "list", "da').encode(), "application/json"
            )
            return
        if isinstance(outcome, Slow):
            self._wait(outcome.delay)

        inputs = body["input"]
        texts: list[str] = [inputs] if isinstance(inputs, str) else [str(x) for x in inputs]
        dim = int(body.get("dimensions") or self.embedding_dim)
        as_base64 = body.get("encoding_format") == "base64"  # the openai SDK asks for base64
        data = []
        for i, text in enumerate(texts):
            vector = fake_embedding(text, dim)
            encoded: Any = (
                base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode() if as_base64 else vector
            )
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        tokens = _count_tokens(texts)
        h.send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )


def iter_sse_events(raw: bytes) -> Iterator[str]:
    """Split a raw SSE body into its `data:` payloads (handy for tests of raw HTTP callers)."""
    for block in raw.decode().split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                yield line[len("data: ") :]
