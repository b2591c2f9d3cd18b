"""Sentence-aware chunks measured in the embedder's own tokens.

all-MiniLM-L6-v2 reads 256 word pieces ([CLS] and [SEP] included) and silently drops the
rest, so every chunk's *embedded* text -- the title/source/date header plus the body -- is
measured with the model's tokenizer and must fit. LlamaIndex's SentenceSplitter does the
splitting (metadata-aware); a final guard re-splits anything its estimate let through.
"""

from __future__ import annotations

from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import MetadataMode, NodeRelationship, RelatedNodeInfo, TextNode

from index.embed import Embedder
from index.identity import chunk_id
from index.models import Article

EMBED_KEYS = ("title", "source", "published")  # what the embedded text carries besides the body
SPECIAL_TOKENS = 2  # [CLS] and [SEP]
_MARGIN = 6  # the splitter sums piece sizes; joining pieces can add a token or two
_FIELD_TOKENS = 64  # a longer title/source is bad input: cut in the chunks so the header fits


class Chunker:
    def __init__(self, embedder: Embedder, chunk_tokens: int = 256, overlap: int = 24) -> None:
        self.embedder = embedder
        self.limit = chunk_tokens - SPECIAL_TOKENS
        self.splitter = SentenceSplitter(
            chunk_size=self.limit - _MARGIN,
            chunk_overlap=overlap,
            tokenizer=embedder.tokens,
            paragraph_separator="\n\n",
        )

    def nodes(self, article: Article, origin: str = "") -> list[TextNode]:
        meta = {
            "article_id": article.id,
            "doc_hash": article.hash,
            "title": self._cap(article.title),
            "url": article.url,
            "source": self._cap(article.source),
            "published": article.published,
            "published_ts": article.published_ts,
            "authors": ", ".join(article.authors),
            "origin": origin,
            "file": article.path,
        }
        probe = TextNode(text="", metadata=meta, **_exclusions(meta))
        header = probe.get_metadata_str(mode=MetadataMode.EMBED)
        pieces = self.splitter.split_text_metadata_aware(article.text, header)
        pieces = [p for piece in pieces for p in self._fit(piece, header)]
        nodes = []
        for position, text in enumerate(pieces):
            node_meta = {**meta, "position": position, "n_chunks": len(pieces)}
            node = TextNode(
                id_=chunk_id(article.id, article.hash, position),
                text=text,
                metadata=node_meta,
                **_exclusions(node_meta),
            )
            node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=article.id)
            nodes.append(node)
        return nodes

    def embed_text(self, node: TextNode) -> str:
        return node.get_content(metadata_mode=MetadataMode.EMBED)

    def _cap(self, value: str) -> str:
        """``value`` cut to ``_FIELD_TOKENS`` tokens: a header longer than the window would
        make the splitter raise and stop the whole run."""
        if self.embedder.count_tokens(value) <= _FIELD_TOKENS:
            return value
        lo, hi = 0, len(value)
        while lo < hi:  # longest prefix that fits, with room for the ellipsis
            mid = (lo + hi + 1) // 2
            if self.embedder.count_tokens(value[:mid]) < _FIELD_TOKENS:
                lo = mid
            else:
                hi = mid - 1
        return value[:lo].rstrip() + "…"

    def _fit(self, piece: str, header: str) -> list[str]:
        """Halve by words until header + piece fits the window; rare, so simple is fine."""
        full = f"{header}\n\n{piece}" if header else piece
        if self.embedder.count_tokens(full) <= self.limit:
            return [piece]
        words = piece.split()
        if len(words) < 2:
            return [piece]  # one giant token run: the model truncates, nothing better to do
        mid = len(words) // 2
        return self._fit(" ".join(words[:mid]), header) + self._fit(" ".join(words[mid:]), header)


def _exclusions(meta: dict) -> dict:
    hidden = [k for k in meta if k not in EMBED_KEYS]
    return {"excluded_embed_metadata_keys": hidden, "excluded_llm_metadata_keys": hidden}
