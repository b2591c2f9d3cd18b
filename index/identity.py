"""Article identity: the canonical form of a URL, the id an article is stored under, the
content hash that decides whether a re-index must re-embed it, and its chunks' ids.

Indexing, retrieval (dropping copies of a page) and evaluation (matching gold URLs) must
agree on these exactly, so each rule is written once, here.
"""

from __future__ import annotations

import hashlib
import json
import re
from urllib.parse import urlsplit, urlunsplit

from index.models import Article

_TRACKING_PARAMS = frozenset(
    {"fbclid", "gclid", "dclid", "msclkid", "yclid", "igshid", "mc_cid", "mc_eid", "_ga"}
    | {"ref", "ref_src", "cmpid", "s_cid", "ncid", "ocid", "smid", "sr_share", "cid"}
)
_INDEX_PAGE = re.compile(r"/index\.html?/*$", re.IGNORECASE)  # feeds also write ".../index.html/"


def canonical_url(url: str) -> str:
    """The form URLs are stored and compared in; idempotent.

    Lower-cases scheme and host, drops the fragment (``#:~:text=...``), tracking parameters
    (``utm_*``, ``fbclid``, ``ref`` ...) and default ports, a trailing ``/index.html`` (the
    page a folder URL serves: feeds link the same story both ways) and a trailing slash on a
    non-root path. Other query parameters keep their order and encoding.
    """
    url = url.strip()
    parts = urlsplit(url)
    if not (parts.scheme and parts.netloc):
        return url.split("#", 1)[0]
    scheme, host = parts.scheme.lower(), parts.netloc.lower()
    default_port = {"http": ":80", "https": ":443"}.get(scheme)
    if default_port and host.endswith(default_port):
        host = host[: -len(default_port)]
    query = "&".join(
        param
        for param in parts.query.split("&")
        if param and not _is_tracking(param.split("=", 1)[0].lower())
    )
    path = _INDEX_PAGE.sub("", parts.path).rstrip("/") or "/"
    return urlunsplit((scheme, host, path, query, ""))


def _is_tracking(key: str) -> bool:
    return key.startswith("utm_") or key in _TRACKING_PARAMS


def article_id(url: str, relpath: str, record: int | None) -> str:
    """A short stable id: from the canonical URL, else from the path (and record number).

    ``relpath`` is relative to the indexed root, in posix form, so moving the whole corpus
    does not change ids; ``record`` numbers JSON/JSONL records that have no URL.
    """
    if url:
        key = "url:" + canonical_url(url)
    else:
        key = "path:" + relpath + (f"#{record}" if record is not None else "")
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:20]


def content_hash(article: Article) -> str:
    """A hash of what gets embedded and shown; a change means the article must be re-indexed."""
    fields = [article.title, article.text, article.url, article.source, article.published]
    digest = hashlib.sha256()
    for field in [*fields, json.dumps(article.authors, ensure_ascii=False)]:
        data = field.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big"))  # length-prefixed: fields cannot run together
        digest.update(data)
    return digest.hexdigest()[:16]


def chunk_id(article_id: str, content_hash: str, position: int) -> str:
    """Deterministic, so re-running an interrupted index upserts instead of duplicating."""
    return f"{article_id}:{content_hash}:{position}"


def article_version(chunk: str) -> tuple[str, str]:
    """(article id, content hash) of a chunk id that ``chunk_id`` made."""
    article, content, _ = chunk.rsplit(":", 2)
    return article, content
