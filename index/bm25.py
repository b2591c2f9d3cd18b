"""Keyword side of hybrid retrieval: a bm25s index over the same chunks as Chroma.

It is built from the Chroma collection itself, persisted under the data dir keyed by the
index version the indexer bumps, and rebuilt by whichever process first sees a newer
version. So every process sharing one Chroma server converges on the same BM25 index, and
it is never rebuilt per question.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

from index.errors import StoreError
from index.settings import Settings
from index.store import Store
from index.text import one_spelling, sentences

log = logging.getLogger(__name__)
# bm25s sets its own logger to DEBUG at import, which would print through any handler the
# entry point configures; put it back to the library default.
logging.getLogger("bm25s").setLevel(logging.WARNING)

_STEMMER = Stemmer.Stemmer("english")
_PAGE = 5000
BOILERPLATE_ARTICLES = 4  # a sentence in this many articles is furniture, not news
IDF_MIN_CHUNKS = 1000  # a few days of news: fewer chunks than this give no word statistics
CHECK_EVERY = 1.0  # seconds between version checks; a query in between uses what it has
# Bump when what is saved (or how text becomes tokens) changes: old folders are then rebuilt
# from the collection, not misread. 3: one spelling per word (index.text.one_spelling).
FORMAT = 3


def tokenize(texts: list[str]) -> list[list[str]]:
    return bm25s.tokenize(
        [one_spelling(t) for t in texts],
        stopwords="en",
        stemmer=_STEMMER,
        return_ids=False,
        show_progress=False,
    )


@dataclass
class Bm25Index:
    version: int
    retriever: bm25s.BM25 | None
    ids: list[str]
    article_ids: list[str]
    published_ts: np.ndarray
    boilerplate: frozenset[str] = frozenset()  # keys of sentences repeated across articles
    _idf: dict[str, float] | None = None
    _rows: dict[str, int] | None = None

    def rows(self) -> dict[str, int]:
        """chunk id -> its row in ``ids``, ``article_ids`` and ``published_ts``."""
        if self._rows is None:
            self._rows = {cid: row for row, cid in enumerate(self.ids)}
        return self._rows

    def idf(self) -> dict[str, float]:
        """Inverse document frequency per stemmed term, from the index's own postings."""
        if self._idf is None:
            table: dict[str, float] = {}
            if self.retriever is not None:
                df = np.diff(np.asarray(self.retriever.scores["indptr"]))
                # A handful of chunks says nothing about which words are rare: in the
                # seed article every chunk says "Pakistan" (IDF ~0.1), so a question's
                # words absent from it outweighed all of its own. Counted as if among
                # IDF_MIN_CHUNKS chunks, words of a small collection are rare, as in news.
                n = max(len(self.ids), IDF_MIN_CHUNKS)
                values = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
                vocab = self.retriever.vocab_dict
                table = {t: float(values[i]) for t, i in vocab.items() if i < len(values)}
            self._idf = table
        return self._idf

    def search(self, query: str, k: int, mask: np.ndarray | None = None) -> list[tuple[str, float]]:
        """Top ``k`` chunk ids with BM25 scores; ``mask`` (0/1 per chunk) applies date filters."""
        if self.retriever is None or not self.ids:
            return []
        tokens = tokenize([query])
        if not tokens or not tokens[0]:
            return []
        k = min(k, len(self.ids))
        # n_threads=0: scored in this thread (1 starts a worker thread per query, ~2 ms).
        docs, scores = self.retriever.retrieve(
            tokens, k=k, weight_mask=mask, show_progress=False, n_threads=0
        )
        return [(self.ids[d], float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]

    def date_mask(self, start_ts: int | None, end_ts: int | None) -> np.ndarray | None:
        if start_ts is None and end_ts is None:
            return None
        ts = self.published_ts
        mask = np.ones(len(ts), dtype=np.float32)
        if start_ts is not None:
            mask[ts < start_ts] = 0.0
        if end_ts is not None:
            mask[(ts > end_ts) | (ts < 0)] = 0.0
        return mask


def _dir(settings: Settings) -> Path:
    return settings.data_dir / "bm25" / settings.collection


def build(store: Store, version: int) -> Bm25Index:
    ids: list[str] = []
    article_ids: list[str] = []
    stamps: list[int] = []
    texts: list[str] = []
    offset = 0
    while True:
        got = store.chunks.get(include=["documents", "metadatas"], limit=_PAGE, offset=offset)
        for cid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"]):
            meta = meta or {}
            ids.append(cid)
            article_ids.append(str(meta.get("article_id", "")))
            stamps.append(int(meta.get("published_ts", -1)))
            # Title words matter for keyword search; the chunk text alone may not repeat them.
            texts.append(f"{meta.get('title', '')}\n{doc or ''}")
        if len(got["ids"]) < _PAGE:
            break
        offset += _PAGE
    retriever = None
    if texts:
        retriever = bm25s.BM25()
        retriever.index(tokenize_ids(texts), show_progress=False)
    return Bm25Index(
        version,
        retriever,
        ids,
        article_ids,
        np.asarray(stamps, dtype=np.int64),
        find_boilerplate(texts, article_ids),
    )


def sentence_key(sentence: str) -> str:
    return hashlib.blake2b(" ".join(sentence.lower().split()).encode(), digest_size=8).hexdigest()


def find_boilerplate(texts: list[str], article_ids: list[str]) -> frozenset[str]:
    """Sentences found in several different articles are page furniture ("How relevant is
    this ad to you?"), not news: the answerer never quotes them."""
    seen: dict[str, str] = {}
    repeated: dict[str, set[str]] = {}
    for text, article in zip(texts, article_ids):
        for sentence in sentences(text):
            key = sentence_key(sentence)
            first = seen.setdefault(key, article)
            if first != article:
                repeated.setdefault(key, {first}).add(article)
    return frozenset(k for k, arts in repeated.items() if len(arts) >= BOILERPLATE_ARTICLES)


def tokenize_ids(texts: list[str]) -> bm25s.tokenization.Tokenized:
    texts = [one_spelling(t) for t in texts]
    return bm25s.tokenize(texts, stopwords="en", stemmer=_STEMMER, show_progress=False)


def save(index: Bm25Index, settings: Settings) -> None:
    """Write to a temporary folder, then rename: readers never see half an index."""
    root = _dir(settings)
    for folder in (root.parent, root):
        if folder.exists() and not folder.is_dir():
            raise StoreError(
                f"the keyword index folder {folder} is a file, not a folder: move it away"
            )
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"v{index.version}-f{FORMAT}"
    tmp = root / f".v{index.version}.{time.time_ns()}"
    tmp.mkdir()
    if index.retriever is not None:
        index.retriever.save(str(tmp / "bm25"))
    (tmp / "ids.json").write_text(
        json.dumps(
            {
                "ids": index.ids,
                "articles": index.article_ids,
                "boilerplate": sorted(index.boilerplate),
            }
        )
    )
    np.save(tmp / "ts.npy", index.published_ts)
    try:
        tmp.rename(final)
    except OSError:  # another process saved the same version first: theirs is as good
        shutil.rmtree(tmp, ignore_errors=True)
    for old in root.iterdir():
        if old.name != final.name and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)


def load(settings: Settings, version: int) -> Bm25Index | None:
    """The saved index of ``version``, or None when there is none or it cannot be trusted
    (unreadable, or parts that disagree: a crash, a disk error or a hand edit). A bad one is
    removed so the rebuild that follows can save in its place."""
    path = _dir(settings) / f"v{version}-f{FORMAT}"
    try:
        meta = json.loads((path / "ids.json").read_text())
        ts = np.load(path / "ts.npy")
        retriever = (
            bm25s.BM25.load(str(path / "bm25"), mmap=True) if (path / "bm25").exists() else None
        )
        index = Bm25Index(
            version,
            retriever,
            meta["ids"],
            meta["articles"],
            ts,
            frozenset(meta.get("boilerplate", [])),
        )
        problem = _inconsistency(index)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        problem = f"unreadable: {type(exc).__name__}: {exc}"
    if problem is None:
        return index
    if path.exists():
        log.warning("BM25 index at %s %s; rebuilding it", path, problem)
        shutil.rmtree(path, ignore_errors=True)
    return None


def _inconsistency(index: Bm25Index) -> str | None:
    """Why the parts of a loaded index disagree, or None when they agree."""
    ids, articles, ts = index.ids, index.article_ids, index.published_ts
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return "has chunk ids that are not a list of strings"
    if not isinstance(articles, list) or len(articles) != len(ids):
        return f"has {len(articles)} article ids for {len(ids)} chunks"
    if ts.ndim != 1 or len(ts) != len(ids) or not np.issubdtype(ts.dtype, np.integer):
        return f"has {ts.shape} dates of type {ts.dtype} for {len(ids)} chunks"
    docs = 0 if index.retriever is None else int(index.retriever.scores.get("num_docs", -1))
    if docs != len(ids):
        return f"has {docs} keyword documents for {len(ids)} chunks"
    return None


class Bm25Cache:
    """The process's current BM25 index, refreshed when the store's version moves."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._index: Bm25Index | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """Check the store's version on the next call (e.g. right after this process indexed)."""
        self._checked = 0.0

    def get(self) -> Bm25Index:
        now = time.monotonic()
        if self._index is not None and now - self._checked < CHECK_EVERY:
            return self._index
        with self._lock:
            version = self.store.state().version
            self._checked = time.monotonic()
            if self._index is None or self._index.version != version:
                index = load(self.settings, version)
                if index is None:
                    index = build(self.store, version)
                    save(index, self.settings)
                self._index = index
            return self._index
