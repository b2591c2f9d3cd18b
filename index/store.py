"""The Chroma store: one client, the chunk collection, and a small article manifest.

Chroma is the single source of truth for what is indexed. Chunks carry their article's id
and content hash; the manifest collection (one record per article, plus a ``__state__``
record) exists so that a no-op re-index need not page through every chunk, and so that every
process sharing a Chroma server sees the same index version.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from index.errors import EmbedderMismatch, EmptyIndex, StoreError
from index.identity import chunk_id
from index.settings import Settings

log = logging.getLogger(__name__)

STATE_ID = "__state__"
_PAGE = 5000  # Chroma caps how many records one get() returns in server mode; page through.


def make_client(settings: Settings) -> Any:
    """Embedded PersistentClient by default; HttpClient when a Chroma host is configured."""
    # Imported here, not above: what this module says about an index (whether it exists,
    # where it lives) is needed before anything heavy loads, e.g. by the REPL's first prompt.
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=True)
    if settings.chroma_host:
        try:
            return chromadb.HttpClient(
                host=settings.chroma_host,
                port=settings.chroma_port,
                ssl=settings.chroma_ssl,
                settings=chroma_settings,
            )
        except Exception as exc:  # chromadb raises bare ValueError/ConnectError here
            raise StoreError(
                f"index unavailable: cannot reach Chroma at "
                f"{settings.chroma_host}:{settings.chroma_port} ({exc})"
            ) from exc
    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_dir), settings=chroma_settings)


def index_exists(settings: Settings) -> bool:
    """Whether there is an index to open, without creating one: the embedded store's folder
    exists (a Chroma server is asked instead, so there it counts as existing)."""
    return settings.server_mode or settings.chroma_dir.is_dir()


def describe_index(settings: Settings) -> str:
    """Where the index lives, for messages: the data dir, or the server and collection."""
    if settings.server_mode:
        return (
            f"collection {settings.collection!r} on the Chroma server at "
            f"{settings.chroma_host}:{settings.chroma_port}"
        )
    return f"{settings.data_dir} (NEWSDESK_DATA_DIR)"


def empty_index(settings: Settings) -> EmptyIndex:
    """The error for a question that meets an empty (or never built) index."""
    elsewhere = "" if settings.server_mode else ", or set NEWSDESK_DATA_DIR to your index's folder"
    return EmptyIndex(
        f"no articles are indexed in {describe_index(settings)}: "
        f"add some with `newsdesk index PATH`{elsewhere}"
    )


@dataclass
class IndexState:
    version: int = 0
    dirty: bool = False
    embedder: str = ""
    updated_at: float = 0.0


class Store:
    """Both collections of one index, opened lazily."""

    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        self.settings = settings
        self.client = client or make_client(settings)
        try:
            self._open_collections()
        except StoreError:
            raise
        except Exception as exc:
            if not settings.chroma_host:
                raise
            raise StoreError(f"index unavailable: {type(exc).__name__}: {exc}"[:300]) from exc

    def _open_collections(self) -> None:
        settings = self.settings
        self.chunks = self.client.get_or_create_collection(
            settings.collection,
            metadata={"hnsw:space": "cosine"},
            embedding_function=None,
        )
        # Manifest records hold no meaningful vector; a 1-d constant keeps Chroma happy.
        self.articles = self.client.get_or_create_collection(
            f"{settings.collection}_articles",
            metadata={"hnsw:space": "l2"},
            embedding_function=None,
        )

    # --- state ----------------------------------------------------------------------------
    def warm_up(self) -> threading.Thread:
        """Load the vector index in a background thread. The first search of an embedded
        collection reads it from disk (0.3-1.6 s at 45k chunks); started before the heavy
        imports, that load overlaps them (Chroma's search releases the GIL)."""

        def run() -> None:
            try:
                one = self.chunks.get(limit=1, include=["embeddings"])
                if len(one["ids"]):
                    self.chunks.query(query_embeddings=[one["embeddings"][0]], n_results=1)
            except Exception as exc:  # only a head start: the real search reports errors
                log.debug("warm-up search failed: %s", exc)

        thread = threading.Thread(target=run, name="chroma-warm-up", daemon=True)
        thread.start()
        return thread

    def state(self) -> IndexState:
        got = self.articles.get(ids=[STATE_ID], include=["metadatas"])
        if not got["ids"]:
            return IndexState()
        meta = got["metadatas"][0] or {}
        return IndexState(
            version=int(meta.get("version", 0)),
            dirty=bool(meta.get("dirty", False)),
            embedder=str(meta.get("embedder", "")),
            updated_at=float(meta.get("updated_at", 0.0)),
        )

    def set_state(self, state: IndexState) -> None:
        self.articles.upsert(
            ids=[STATE_ID],
            embeddings=[[0.0]],
            metadatas=[
                {
                    "kind": "state",
                    "version": state.version,
                    "dirty": state.dirty,
                    "embedder": state.embedder,
                    "updated_at": state.updated_at,
                }
            ],
        )

    def next_version(self) -> int:
        """Versions only grow, even across ``--rebuild``, so caches keyed by them never lie."""
        return max(self.state().version + 1, time.time_ns())

    def check_embedder(self, name: str) -> None:
        """Vectors of different embedders never mix in one collection."""
        current = self.state().embedder
        if current and current != name and self.chunks.count() > 0:
            raise EmbedderMismatch(
                f"the index was built with {current} but {name} is configured: "
                "run `newsdesk index --rebuild`"
            )

    # --- manifest ---------------------------------------------------------------------------
    def manifest(self) -> dict[str, dict]:
        """article id -> manifest metadata (hash, n_chunks, origin, file, title, ...)."""
        out: dict[str, dict] = {}
        for ids, metas in self._pages(self.articles, where={"kind": "article"}):
            out.update(zip(ids, metas))
        return out

    def put_articles(self, records: dict[str, dict]) -> None:
        if not records:
            return
        ids = list(records)
        metas = [{"kind": "article", **records[i]} for i in ids]
        for start in range(0, len(ids), _PAGE):
            part = slice(start, start + _PAGE)
            self.articles.upsert(
                ids=ids[part], embeddings=[[0.0]] * len(ids[part]), metadatas=metas[part]
            )

    def delete_articles(self, ids: list[str]) -> None:
        for start in range(0, len(ids), _PAGE):
            self.articles.delete(ids=ids[start : start + _PAGE])

    def article_text(self, article_id: str) -> str:
        """An article's text as its chunks hold it (overlaps repeated): enough to check what
        it says, e.g. whether a cited article contains an expected answer. The version the
        manifest lists is read by its chunk ids: a ``where`` on the article id scans the
        collection (~10 ms at 45k chunks), and would mix in the other version's chunks
        while an index run replaces the article."""
        listed = self.articles.get(ids=[article_id], include=["metadatas"])
        meta = (listed["metadatas"][0] or {}) if listed["ids"] else {}
        got: dict = {"ids": []}
        if meta.get("hash") and meta.get("n_chunks") is not None:
            content = str(meta["hash"])
            ids = [chunk_id(article_id, content, i) for i in range(int(meta["n_chunks"]))]
            got = self.chunks.get(ids=ids, include=["documents", "metadatas"])
        if not got["ids"]:  # not in the manifest (yet): whatever chunks carry its id
            got = self.chunks.get(
                where={"article_id": article_id}, include=["documents", "metadatas"]
            )
        parts = sorted(
            zip(got["metadatas"], got["documents"]),
            key=lambda md: int((md[0] or {}).get("position", 0)),
        )
        return "\n".join(doc or "" for _, doc in parts)

    def chunk_keys(self) -> list[tuple[str, str, str]]:
        """(chunk id, article id, content hash) of every chunk: the ground truth for repair."""
        out = []
        for ids, metas in self._pages(self.chunks):
            out.extend(
                (i, str(m.get("article_id", "")), str(m.get("doc_hash", "")))
                for i, m in zip(ids, metas)
            )
        return out

    def _pages(self, collection: Any, where: dict | None = None):
        offset = 0
        while True:
            got = collection.get(where=where, include=["metadatas"], limit=_PAGE, offset=offset)
            if not got["ids"]:
                return
            yield got["ids"], [m or {} for m in got["metadatas"]]
            if len(got["ids"]) < _PAGE:
                return
            offset += _PAGE

    # --- maintenance -----------------------------------------------------------------------
    def reset(self) -> None:
        """Drop both collections (``--rebuild``) and recreate them empty."""
        for name in (self.settings.collection, f"{self.settings.collection}_articles"):
            with contextlib.suppress(Exception):  # absent already: nothing to drop
                self.client.delete_collection(name)
        self.__init__(self.settings, self.client)  # type: ignore[misc]

    def stats(self) -> dict:
        state = self.state()
        manifest = self.manifest()
        dates = sorted(m.get("published", "") for m in manifest.values() if m.get("published"))
        return {
            "articles": len(manifest),
            "chunks": self.chunks.count(),
            "first_published": dates[0] if dates else None,
            "last_published": dates[-1] if dates else None,
            "version": state.version,
            "updated_at": state.updated_at,
            "embedder": state.embedder,
            "last_indexed": (
                time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(state.updated_at))
                if state.updated_at
                else None
            ),
        }
