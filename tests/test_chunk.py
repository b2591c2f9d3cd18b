"""Chunks fit the model's 256-token window (header included) and lose no text."""

from __future__ import annotations

import random
import re

import pytest
from llama_index.core.schema import NodeRelationship
from tokenizers import Tokenizer

from index.chunk import Chunker, chunk_id
from index.embed import MAX_TOKENS, LocalEmbedder, default_model_files
from index.identity import content_hash
from index.models import Article

WORDS = [
    *("the", "minister", "said", "trade", "energy", "defence", "talks", "would", "continue"),
    *("next", "week", "in", "Baku", "while", "officials", "from", "both", "countries"),
    *("reviewed", "cotton", "research", "and", "gas", "storage", "projects"),
]


@pytest.fixture(scope="module")
def model_tokenizer() -> Tokenizer:
    """The model's tokenizer as the model reads text: [CLS] ... [SEP], nothing truncated."""
    tok = Tokenizer.from_file(str(default_model_files()[1]))
    tok.no_truncation()
    tok.no_padding()
    return tok


@pytest.fixture(scope="module")
def chunker(embedder: LocalEmbedder) -> Chunker:
    return Chunker(embedder, chunk_tokens=256, overlap=0)


def make_article(text: str, title: str = "Talks continue in Baku", **fields: object) -> Article:
    article = Article(
        id=str(fields.pop("id", "art-1")),
        text=text,
        title=title,
        url=str(fields.pop("url", "https://example.com/2022/05/01/talks")),
        source=str(fields.pop("source", "example.com")),
        published=str(fields.pop("published", "2022-05-01")),
        published_ts=int(fields.pop("published_ts", 1651363200)),  # type: ignore[arg-type]
        authors=["A. Writer", "B. Editor"],
        path="corpus/talks.md",
    )
    article.hash = content_hash(article)
    return article


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def long_article() -> str:
    rng = random.Random(1)
    return "\n\n".join(
        " ".join(sentence(rng, rng.randint(6, 30)) for _ in range(rng.randint(2, 8)))
        for _ in range(25)
    )


def giant_paragraph() -> str:
    rng = random.Random(2)
    return " ".join(sentence(rng, rng.randint(10, 40)) for _ in range(120))


def no_punctuation() -> str:
    rng = random.Random(3)
    return " ".join(rng.choice(WORDS) for _ in range(2500))


def long_token_run() -> str:
    # No spaces at all, but hundreds of word pieces (punctuation and digits split in BERT).
    run = "".join(f"trade,energy;defence.{i}/" for i in range(400))
    return f"An opening sentence. {run} And a closing sentence."


def cjk_run() -> str:
    return "巴基斯坦与阿塞拜疆同意加强合作" * 200  # every character is a word piece


def long_letters_word() -> str:
    return "Before. " + "abcdefghij" * 800 + " after the giant word."  # one [UNK] to the model


CASES = {
    "long article": long_article,
    "giant paragraph": giant_paragraph,
    "no punctuation": no_punctuation,
    "long token run without spaces": long_token_run,
    "cjk without spaces": cjk_run,
    "one giant letters-only word": long_letters_word,
}


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.mark.parametrize("case", list(CASES))
def test_every_chunk_fits_the_window_and_no_text_falls_off(
    case: str, chunker: Chunker, model_tokenizer: Tokenizer
) -> None:
    article = make_article(CASES[case]())
    nodes = chunker.nodes(article, origin="/corpus")
    assert len(nodes) >= (1 if case == "one giant letters-only word" else 3)
    for node in nodes:
        embedded = chunker.embed_text(node)
        assert embedded.startswith(
            f"title: {article.title}\nsource: {article.source}\npublished: {article.published}"
        )
        assert embedded.endswith(node.text)
        size = len(model_tokenizer.encode(embedded).ids)  # [CLS] and [SEP] included
        assert size <= MAX_TOKENS, (case, node.metadata["position"], size)
    # overlap 0: the bodies, concatenated, are exactly the original text (whitespace aside)
    assert squash("".join(n.text for n in nodes)) == squash(article.text)


def test_huge_title_and_source_still_fit(chunker: Chunker, model_tokenizer: Tokenizer) -> None:
    """A bad record's 400-token title must not stop the run (the splitter raised on it)."""
    article = make_article(
        "Some body text about trade. " * 60,
        title="Headline words go on " * 100,
        source="source " * 300,
    )
    nodes = chunker.nodes(article)
    assert nodes
    for node in nodes:
        assert len(model_tokenizer.encode(chunker.embed_text(node)).ids) <= MAX_TOKENS
        assert node.metadata["title"].startswith("Headline words go on")
        assert node.metadata["title"].endswith("…")
    assert squash("".join(n.text for n in nodes)) == squash(article.text)


def test_overlap_keeps_every_word_in_order(embedder: LocalEmbedder) -> None:
    chunker = Chunker(embedder, chunk_tokens=256, overlap=24)
    article = make_article(long_article())
    nodes = chunker.nodes(article)
    assert len(nodes) >= 3
    original = article.text.split()
    words = iter(" ".join(n.text for n in nodes).split())
    missing = [w for w in original if not any(w == c for c in words)]  # subsequence test
    assert missing == []


def test_small_window_setting_is_respected(
    embedder: LocalEmbedder, model_tokenizer: Tokenizer
) -> None:
    chunker = Chunker(embedder, chunk_tokens=96, overlap=0)
    article = make_article(giant_paragraph())
    nodes = chunker.nodes(article)
    assert all(len(model_tokenizer.encode(chunker.embed_text(n)).ids) <= 96 for n in nodes)
    assert squash("".join(n.text for n in nodes)) == squash(article.text)


def test_metadata_and_embed_text(chunker: Chunker) -> None:
    article = make_article(long_article())
    nodes = chunker.nodes(article, origin="/some/corpus")
    n = len(nodes)
    assert n >= 3
    for position, node in enumerate(nodes):
        meta = node.metadata
        assert meta["article_id"] == article.id
        assert meta["doc_hash"] == article.hash
        assert meta["title"] == article.title
        assert meta["url"] == article.url
        assert meta["source"] == article.source
        assert meta["published"] == "2022-05-01"
        assert meta["published_ts"] == 1651363200
        assert meta["position"] == position
        assert meta["n_chunks"] == n
        assert meta["origin"] == "/some/corpus"
        assert meta["authors"] == "A. Writer, B. Editor"
        assert node.node_id == chunk_id(article.id, article.hash, position)
        assert node.relationships[NodeRelationship.SOURCE].node_id == article.id
        embedded = chunker.embed_text(node)
        # the header carries title/source/date only: ids, urls and paths are not embedded
        assert article.url not in embedded and article.id not in embedded
        assert "doc_hash" not in embedded and "position" not in embedded


def test_chunk_ids_are_deterministic(embedder: LocalEmbedder) -> None:
    article = make_article(long_article())
    first = Chunker(embedder, 256, 0).nodes(article)
    second = Chunker(embedder, 256, 0).nodes(make_article(long_article()))
    assert [n.node_id for n in first] == [n.node_id for n in second]
    assert [n.text for n in first] == [n.text for n in second]
    assert len({n.node_id for n in first}) == len(first)
    assert chunk_id("a", "h", 3) == "a:h:3"
    changed = make_article(long_article() + "\n\nOne more sentence.")
    assert changed.hash != article.hash
    new_ids = {n.node_id for n in Chunker(embedder, 256, 0).nodes(changed)}
    assert new_ids.isdisjoint(n.node_id for n in first)  # old and new versions never collide
