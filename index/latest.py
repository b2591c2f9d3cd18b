""" "What's the latest?" and "what's new on X?": the newest articles, newest first.

Such a question asks for no fact, so sentence matching would refuse it. It is answered by
a listing instead: the newest articles (as of the question's date), or the newest of those
retrieval finds about X, each with its date, its lead sentence and its citation.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date

import numpy as np

from index.bm25 import sentence_key
from index.cite import strip_markers
from index.models import Answer, ArticleHit, Query, citation_for
from index.retrieve import Retriever, day_ts
from index.text import sentences, terms

SHOWN = 5
_LATEST = re.compile(
    r"^\s*(?:so,?\s+|and\s+|ok,?\s+)?(?:what(?:'s|’s| is| are)|what|any|anything|give me|"
    r"show me|tell me|get me)?\s*(?:the\s+)?(?:very\s+)?"
    r"(?:latest|newest|most recent|recent|new|fresh|breaking)\s*"
    r"(?:news|headlines?|stories|story|articles?|updates?|developments?|reports?)?\s*"
    r"(?:(?:on|about|in|with|from|for|regarding|concerning)\s+(?P<topic>.+?))?\s*[?.!]*\s*$",
    re.IGNORECASE,
)
_TODAY = re.compile(r"\b(?:today|this week|now|so far)\b", re.IGNORECASE)


def latest_topic(question: str) -> str | None:
    """The topic of a "latest news" question ("" for no topic); None for any other question."""
    m = _LATEST.match(_TODAY.sub("", question))
    if not m:
        return None
    return (m.group("topic") or "").strip()


def newest_hits(retriever: Retriever, query: Query, topic: str, k: int = SHOWN) -> list[ArticleHit]:
    """The newest articles up to the query's end date; with a topic, the newest of those
    retrieval ranks about it."""
    if topic:
        # Retrieval ranks every article by closeness, so a short topic ("Artemis") pulls in
        # unrelated ones after the few that name it: only those that do are listed, the k
        # most relevant of them, newest first.
        found = retriever.retrieve(replace(query, text=topic, recency=True), k=k * 4)
        about = [hit for hit in found if mentions(hit, topic)][:k]
        return sorted(about, key=lambda h: h.published_ts, reverse=True)
    index = retriever.keyword_index()
    end = day_ts(query.end, end_of_day=True) if query.end else None
    ts = index.published_ts
    keep = np.ones(len(ts), dtype=bool) if end is None else (ts <= end)
    newest: list[str] = []
    for i in np.argsort(-ts, kind="stable"):
        if not keep[i]:
            continue
        aid = index.article_ids[i]
        if aid not in newest:
            newest.append(aid)
        if len(newest) >= k:
            break
    if not newest:
        return []
    hits = retriever.retrieve(replace(query, text="news", restrict_to=newest), k=k)
    return sorted(hits, key=lambda h: h.published_ts, reverse=True)


def mentions(hit: ArticleHit, topic: str) -> bool:
    """Whether the article's headline or retrieved passages name the topic: all its words,
    or all but one of three or more ("the war in Ukraine" is also "Ukraine's war")."""
    wanted = set(terms(topic))
    said = set(terms(hit.title)).union(*(terms(p.text) for p in hit.passages))
    missing = len(wanted - said)
    return missing == 0 or (len(wanted) >= 3 and missing == 1)


def compose_latest(
    hits: list[ArticleHit],
    topic: str,
    as_of: date | None,
    boilerplate: frozenset[str] = frozenset(),
) -> Answer:
    """One line per article, newest first: date, headline, lead sentence, citation.
    ``boilerplate`` holds the keys of sentences repeated across articles (newsletter
    sign-ups), which are no article's lead."""
    about = f" on {topic}" if topic else ""
    when = f" as of {as_of.isoformat()}" if as_of else ""
    if not hits:
        if topic:
            text = f"No indexed article mentions {topic}{when}."
        else:
            text = f"No articles are indexed{when}."
        # A listing, even an empty one: nothing for an LLM to write.
        return Answer(text=text, question=topic, mode="latest")
    lines = [f"The newest articles{about}{when}, newest first:"]
    citations = []
    for n, hit in enumerate(hits, 1):
        lead = strip_markers(_lead(hit, boilerplate))  # an article's own "[9]" is not a citation
        day = hit.published or "undated"
        title = strip_markers(hit.title.strip())
        lines.append(f"{n}. {day}: {title}. {lead} [{n}]".replace(". . ", ". "))
        citations.append(citation_for(n, hit, lead))
    return Answer(text="\n".join(lines), citations=citations, question=topic, mode="latest")


def _lead(hit: ArticleHit, boilerplate: frozenset[str] = frozenset()) -> str:
    """The article's first sentence among its passages (its lead, when retrieval kept it),
    past datelines ("New York CNN Business —") and sentences every article repeats."""
    if not hit.passages:
        return ""
    first = min(hit.passages, key=lambda p: p.position)
    parts = [
        s
        for s in sentences(first.text)
        if len(s.split()) >= 5
        and not s.rstrip().endswith(("—", "–", ":"))
        and sentence_key(s) not in boilerplate
    ]
    return parts[0] if parts else ""
