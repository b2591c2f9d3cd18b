"""One indexer at a time per collection: a lease kept in Chroma itself.

Watchers (``newsdesk watch``, the bot's schedule) on several machines may share one Chroma
server. Two indexing runs at once would interleave their dirty marks and version bumps, so a
run first takes the lease: a record in the ``<collection>_lease`` collection naming its owner
and an expiry. Chroma has no compare-and-swap, so taking it is write-then-verify: write our
token, wait ``SETTLE`` seconds, read it back; of two writers racing, only the one whose write
landed last sees its own token. (A racer would need more than ``SETTLE`` between its read and
its write to slip through; Chroma round trips are milliseconds.) A holder renews the lease
from a background thread; a crashed holder's lease expires after ``ttl`` seconds.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

LEASE_ID = "indexer"
SETTLE = 0.3  # seconds between writing a claim and checking that it stuck
DEFAULT_TTL = 120.0


@dataclass
class Holder:
    owner: str
    token: str
    expires: float


class LeaseBusy(Exception):
    """Another indexer holds the lease; ``str()`` names it."""


class IndexLease:
    """``with IndexLease(store): ...`` runs the block as the collection's only indexer."""

    def __init__(self, store: Any, *, ttl: float = DEFAULT_TTL, owner: str = "") -> None:
        self.ttl = ttl
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.token = uuid.uuid4().hex
        self._collection = store.client.get_or_create_collection(
            f"{store.settings.collection}_lease", embedding_function=None
        )
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def holder(self) -> Holder | None:
        got = self._collection.get(ids=[LEASE_ID], include=["metadatas"])
        if not got["ids"]:
            return None
        meta = got["metadatas"][0] or {}
        return Holder(
            str(meta.get("owner", "")), str(meta.get("token", "")), float(meta.get("expires", 0))
        )

    def acquire(self) -> None:
        """Take the lease or raise ``LeaseBusy``."""
        current = self.holder()
        if current and current.token != self.token and current.expires > time.time():
            raise LeaseBusy(f"another indexer ({current.owner}) is running")
        self._write(time.time() + self.ttl)
        time.sleep(SETTLE)
        current = self.holder()
        if current is None or current.token != self.token:
            raise LeaseBusy(f"another indexer ({current.owner if current else '?'}) took over")
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew, name="newsdesk-lease", daemon=True)
        self._renewer.start()

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        current = self.holder()
        if current is not None and current.token == self.token:
            self._collection.delete(ids=[LEASE_ID])

    def _write(self, expires: float) -> None:
        self._collection.upsert(
            ids=[LEASE_ID],
            embeddings=[[0.0]],
            metadatas=[{"owner": self.owner, "token": self.token, "expires": expires}],
        )

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                current = self.holder()
                if current is None or current.token != self.token:
                    log.error("the index lease was taken over by %s", current and current.owner)
                    return
                self._write(time.time() + self.ttl)
            except Exception as exc:  # the server may be down a moment: the run reports it
                log.warning("could not renew the index lease: %s", exc)

    def __enter__(self) -> IndexLease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
