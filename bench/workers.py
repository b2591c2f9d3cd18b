"""Measurements that must run in a fresh interpreter, started by the benchmarks.

    python bench/workers.py raw-embed --corpus FILE --out RESULT.json
    python bench/workers.py starter --corpus FILE --dir CHROMA_DIR --out RESULT.json

``raw-embed``: the embedding floor. Chunks FILE exactly as ``newsdesk index`` does (same
reader, same ``Chunker``, same embedder settings, same groups of ``BATCH_CHUNKS`` chunks per
``embed()`` call) and times only the ``embed()`` calls: no model load, chunking or writes.

``starter``: LlamaIndex's starter path with the same embedder, timed from reading the file
to the end of ``VectorStoreIndex.from_documents`` into a Chroma ``PersistentClient``.

Each writes one JSON object to ``--out`` (stdout is left to library chatter); the caller
samples wall time and peak RSS from outside.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

STARTER_COLLECTION = "starter"
STARTER_MARKER = "bench-starter.json"  # what a starter dir holds, so it is reused knowingly


def _articles(path: Path, settings: object) -> list:
    """Articles as the indexer sees them: bad records skipped, first copy of an id wins."""
    from index.corpus import iter_articles
    from index.models import LoadError

    seen: set[str] = set()
    out = []
    for item in iter_articles(
        path,
        max_file_bytes=settings.max_file_bytes,  # type: ignore[attr-defined]
        max_article_chars=settings.max_article_chars,  # type: ignore[attr-defined]
    ):
        if isinstance(item, LoadError) or item.id in seen:
            continue
        seen.add(item.id)
        out.append(item)
    return out


def raw_embed(corpus: Path) -> dict:
    from index.chunk import Chunker
    from index.embed import get_embedder
    from index.ingest import BATCH_CHUNKS
    from index.settings import Settings

    settings = Settings()
    started = time.perf_counter()
    embedder = get_embedder(settings)
    load_s = time.perf_counter() - started

    started = time.perf_counter()
    articles = _articles(corpus, settings)
    chunker = Chunker(embedder, settings.chunk_tokens, settings.chunk_overlap)
    origin = str(corpus.resolve())
    # Same grouping as index.ingest._batches: whole articles until >= BATCH_CHUNKS chunks,
    # so each embed() call sorts and pads exactly the texts the indexer's call would.
    groups: list[list[str]] = [[]]
    for article in articles:
        if len(groups[-1]) >= BATCH_CHUNKS:
            groups.append([])
        groups[-1].extend(chunker.embed_text(n) for n in chunker.nodes(article, origin))
    groups = [g for g in groups if g]
    chunk_s = time.perf_counter() - started
    tokens = sum(embedder.count_tokens(t) for g in groups for t in g)

    embed_s = 0.0
    for texts in groups:
        started = time.perf_counter()
        embedder.embed(texts)
        embed_s += time.perf_counter() - started
    chunks = sum(len(g) for g in groups)
    return {
        "articles": len(articles),
        "chunks": chunks,
        "calls": len(groups),
        "tokens": tokens,
        "embed_seconds": embed_s,
        "chunk_seconds": chunk_s,
        "load_seconds": load_s,
        "embedder": embedder.name,
        "batch_size": getattr(embedder, "batch_size", None),
    }


def starter(corpus: Path, folder: Path, marker: dict) -> dict:
    import chromadb
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.core import Settings as LlamaSettings
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.schema import MetadataMode
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from index.embed import get_embedder
    from index.engine import LlamaEmbedding
    from index.settings import Settings

    settings = Settings()
    LlamaSettings.llm = None  # the starter with no LLM; nothing else is changed
    started = time.perf_counter()
    docs = [
        Document(
            text=a.text,
            metadata={
                "title": a.title,
                "url": a.url,
                "source": a.source,
                "published": a.published,
            },
        )
        for a in _articles(corpus, settings)
    ]
    collection = chromadb.PersistentClient(path=str(folder)).get_or_create_collection(
        STARTER_COLLECTION
    )
    # The same LocalEmbedder configuration newsdesk uses (batch size, threads), so the
    # comparison is about the pipeline, not the model settings.
    embed_model = LlamaEmbedding(get_embedder(settings))
    VectorStoreIndex.from_documents(
        docs,
        storage_context=StorageContext.from_defaults(
            vector_store=ChromaVectorStore(chroma_collection=collection)
        ),
        embed_model=embed_model,
    )
    seconds = time.perf_counter() - started
    chunks = collection.count()

    # Untimed: how much of each default-size chunk the 256-token model actually reads.
    embedder = get_embedder(settings)
    window = 254  # 256 minus [CLS] and [SEP]
    lengths = [
        embedder.count_tokens(n.get_content(metadata_mode=MetadataMode.EMBED))
        for n in SentenceSplitter().get_nodes_from_documents(docs)
    ]
    total = sum(lengths) or 1
    (folder / STARTER_MARKER).write_text(json.dumps({**marker, "chunks": chunks}))
    return {
        "articles": len(docs),
        "chunks": chunks,
        "seconds": seconds,
        "tokens": sum(lengths),
        "embedded_tokens": sum(min(n, window) for n in lengths),
        "truncated_chunks": sum(n > window for n in lengths),
        "dropped_token_share": sum(max(0, n - window) for n in lengths) / total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="worker", required=True)
    raw = sub.add_parser("raw-embed", help="time embed() over newsdesk's chunk texts")
    raw.add_argument("--corpus", type=Path, required=True)
    raw.add_argument("--out", type=Path, required=True)
    st = sub.add_parser("starter", help="build LlamaIndex's starter index, timed")
    st.add_argument("--corpus", type=Path, required=True)
    st.add_argument("--dir", type=Path, required=True, help="Chroma folder for the index")
    st.add_argument("--marker", default="{}", help="JSON saved in the folder, for reuse checks")
    st.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.worker == "raw-embed":
        result = raw_embed(args.corpus)
    else:
        args.dir.mkdir(parents=True, exist_ok=True)
        result = starter(args.corpus, args.dir, json.loads(args.marker))
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
