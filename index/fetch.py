"""A polite HTTP client for feeds and article pages.

Politeness, in the order a request meets it: ``robots.txt`` (fetched once per host and run;
a 4xx allows all, a 5xx or an unreachable file disallows all, as RFC 9309 says), at most
``fetch_host_concurrency`` requests in flight per host, started at least ``fetch_host_delay``
apart, a conditional GET when a validator (ETag / Last-Modified) is remembered, gzip, a
bounded number of redirects, a timeout, and a size limit on the decoded body (so a gzip bomb
stops at the limit too). Every failure is a ``FetchError`` whose message is one line.

Validators live in ``fetch.sqlite`` in the data dir. They are written by ``commit()`` only
after the articles they describe are indexed: a crash between fetching and indexing leaves
the old validators, so the next run fetches the pages again instead of trusting a 304.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

import httpx

from index.settings import Settings

ROBOTS_AGENT = "newsdesk"  # the product token robots.txt rules name


class FetchError(Exception):
    """A URL that could not be fetched; ``str()`` is the one-line reason."""


@dataclass
class Page:
    """A fetched response body, or ``not_modified`` for a 304."""

    url: str  # the URL asked for
    final_url: str  # after redirects
    status: int
    content_type: str = ""
    body: bytes = b""
    etag: str = ""
    last_modified: str = ""

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass
class Validators:
    etag: str = ""
    last_modified: str = ""
    stamp: str = ""  # what a feed said about the item last time (its updated date, title)


class FetchCache:
    """URL -> validators and feed stamp, in SQLite; changes stay pending until ``commit``."""

    def __init__(self, path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS fetched (url TEXT PRIMARY KEY, etag TEXT, "
            "last_modified TEXT, stamp TEXT, fetched_at REAL)"
        )
        self._db.commit()
        self._pending: dict[str, Validators] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> Validators | None:
        with self._lock:
            if url in self._pending:
                return self._pending[url]
            row = self._db.execute(
                "SELECT etag, last_modified, stamp FROM fetched WHERE url = ?", (url,)
            ).fetchone()
        return Validators(*row) if row else None

    def put(self, url: str, validators: Validators) -> None:
        with self._lock:
            self._pending[url] = validators

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
            self._db.execute("DELETE FROM fetched")
            self._db.commit()

    def commit(self) -> None:
        with self._lock:
            now = time.time()
            self._db.executemany(
                "INSERT OR REPLACE INTO fetched VALUES (?, ?, ?, ?, ?)",
                [(u, v.etag, v.last_modified, v.stamp, now) for u, v in self._pending.items()],
            )
            self._db.commit()
            self._pending.clear()

    def close(self) -> None:
        self._db.close()


class _Host:
    """Per-host politeness: a slot semaphore and the earliest start of the next request."""

    def __init__(self, concurrency: int) -> None:
        self.slots = threading.BoundedSemaphore(concurrency)
        self.lock = threading.Lock()
        self.next_start = 0.0
        self.robots: RobotFileParser | None = None
        self.robots_error = ""


class Fetcher:
    """One polite client for a run; thread-safe, so pages of many hosts load in parallel."""

    def __init__(self, settings: Settings, cache: FetchCache | None = None) -> None:
        self.settings = settings
        self.cache = cache or FetchCache(settings.data_dir / "fetch.sqlite")
        self.user_agent = settings.fetch_user_agent
        self._client = httpx.Client(
            headers={"User-Agent": self.user_agent, "Accept-Encoding": "gzip, deflate"},
            timeout=httpx.Timeout(settings.fetch_timeout),
            follow_redirects=True,
            max_redirects=settings.fetch_max_redirects,
        )
        self._hosts: dict[str, _Host] = {}
        self._hosts_lock = threading.Lock()

    def close(self) -> None:
        self._client.close()
        self.cache.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests ------------------------------------------------------------------------
    def get(self, url: str, known: Validators | None = None, accept: str = "*/*") -> Page:
        """GET ``url`` politely, conditionally when ``known`` has validators; a 304 comes back
        as a ``Page`` with ``not_modified``.

        Raises ``FetchError`` for robots.txt disallows, HTTP errors, timeouts, redirect
        loops and bodies over the size limit."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise FetchError("not an http(s) URL")
        if not self.allowed(url):
            raise FetchError(f"disallowed by robots.txt{self._robots_note(url)}")
        headers = {"Accept": accept}
        if known and known.etag:
            headers["If-None-Match"] = known.etag
        if known and known.last_modified:
            headers["If-Modified-Since"] = known.last_modified
        return self._request(url, headers)

    def remember(self, key: str, page: Page | None, stamp: str = "") -> None:
        """Keep ``page``'s validators (and a feed's stamp for the item) under ``key`` for the
        next run; a 304 keeps the validators it was asked with."""
        old = self.cache.get(key) or Validators()
        if page is None or page.not_modified:
            self.cache.put(key, Validators(old.etag, old.last_modified, stamp or old.stamp))
        else:
            self.cache.put(key, Validators(page.etag, page.last_modified, stamp))

    def _request(self, url: str, headers: dict[str, str]) -> Page:
        host = self._host(url)
        with host.slots:
            self._wait_turn(host)
            try:
                with self._client.stream("GET", url, headers=headers) as response:
                    if response.status_code == 304:
                        return Page(url, str(response.url), 304)
                    if response.status_code >= 400:
                        raise FetchError(f"HTTP {response.status_code} {response.reason_phrase}")
                    body = self._read_limited(response)
                    return Page(
                        url=url,
                        final_url=str(response.url),
                        status=response.status_code,
                        content_type=response.headers.get("content-type", "").lower(),
                        body=body,
                        etag=response.headers.get("etag", ""),
                        last_modified=response.headers.get("last-modified", ""),
                    )
            except httpx.TooManyRedirects:
                raise FetchError(
                    f"too many redirects (over {self.settings.fetch_max_redirects}; a loop?)"
                ) from None
            except httpx.TimeoutException:
                raise FetchError(f"timed out after {self.settings.fetch_timeout:g} s") from None
            except httpx.DecodingError as exc:
                raise FetchError(f"cannot decode the response: {exc}") from None
            except httpx.HTTPError as exc:
                raise FetchError(f"{type(exc).__name__}: {exc}"[:200]) from None

    def _read_limited(self, response: httpx.Response) -> bytes:
        limit = self.settings.fetch_max_bytes
        declared = response.headers.get("content-length", "")
        encoded = response.headers.get("content-encoding", "")
        if declared.isdigit() and int(declared) > limit and not encoded:
            raise FetchError(f"response is {int(declared):,} bytes, over the {limit:,} limit")
        chunks, size = [], 0
        for chunk in response.iter_bytes():  # decoded: the limit holds for gzip too
            size += len(chunk)
            if size > limit:
                raise FetchError(f"response is over the {limit:,}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)

    def _host(self, url: str) -> _Host:
        key = urlsplit(url).netloc.lower()
        with self._hosts_lock:
            if key not in self._hosts:
                self._hosts[key] = _Host(self.settings.fetch_host_concurrency)
            return self._hosts[key]

    def _wait_turn(self, host: _Host) -> None:
        with host.lock:
            start = max(time.monotonic(), host.next_start)
            host.next_start = start + self.settings.fetch_host_delay
        time.sleep(max(0.0, start - time.monotonic()))

    # --- robots.txt ---------------------------------------------------------------------
    def allowed(self, url: str) -> bool:
        host = self._host(url)
        with host.lock:
            loaded = host.robots is not None
        if not loaded:
            self._load_robots(url, host)
        return host.robots.can_fetch(ROBOTS_AGENT, url)  # type: ignore[union-attr]

    def _robots_note(self, url: str) -> str:
        error = self._host(url).robots_error
        return f" ({error})" if error else ""

    def _load_robots(self, url: str, host: _Host) -> None:
        parts = urlsplit(url)
        robots_url = f"{parts.scheme}://{parts.netloc}/robots.txt"
        parser = RobotFileParser(robots_url)
        error = ""
        try:
            page = self._request(robots_url, {"Accept": "text/plain"})
            parser.parse(page.body.decode("utf-8", errors="replace").splitlines())
        except FetchError as exc:
            text = str(exc)
            if text.startswith("HTTP 4"):
                parser.allow_all = True  # no robots.txt: everything is allowed
            else:
                parser.disallow_all = True  # a server error or no answer: nothing is
                error = f"robots.txt unavailable: {text}"
        with host.lock:
            host.robots, host.robots_error = parser, error
