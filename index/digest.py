"""Digests: the main stories of a time window, one cited sentence each, newest first.

An article belongs to the window by its publication day (articles without a date: by when
they were indexed). Reports of one story (same story id, or near-duplicate headlines) are
one item, led by the newest report; the stories with the most reports are the main ones.
Each item's sentence is its lead report's opening sentence, as the index holds it.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone

from index.alerts import near_duplicate
from index.follow import Chat, FollowStore
from index.identity import chunk_id
from index.text import sentences

DAY = 86_400
_SPAN = re.compile(r"^\s*(\d+)\s*([hd])\s*$", re.IGNORECASE)


class SinceError(ValueError):
    """A --since value that is not Nh, Nd or a date."""


@dataclass
class DigestItem:
    title: str
    source: str
    published: str
    url: str
    sentence: str
    reports: int  # articles about this story in the window
    article_id: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def parse_since(value: str, now: float) -> float:
    """Unix time a window starts at: ``24h``, ``7d`` back from ``now``, or a date."""
    if match := _SPAN.match(value):
        hours = int(match[1]) * (24 if match[2].lower() == "d" else 1)
        return now - hours * 3600
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise SinceError(
            f"{value!r} is not a time span or a date: use e.g. 24h, 3d or 2022-06-04"
        ) from None
    return float(calendar.timegm(day.timetuple()))


def build_digest(
    manifest: dict[str, dict],
    store,
    since: float,
    until: float,
    limit: int,
    *,
    by_indexed: bool = False,
) -> list[DigestItem]:
    """Up to ``limit`` main stories published (or, ``by_indexed``, indexed: what a chat has
    not seen yet) in [since, until], newest first."""
    first_day = since - since % DAY  # publication dates are days: the window's first day counts
    window = []
    for aid, meta in manifest.items():
        ts = int(meta.get("published_ts", -1))
        indexed = float(meta.get("indexed_at", 0))
        if by_indexed:
            keep = since < indexed <= until
        else:
            keep = first_day <= ts <= until if ts >= 0 else since <= indexed <= until
        if keep:
            window.append((aid, meta, float(ts) if ts >= 0 else indexed))
    window.sort(key=lambda row: (row[2], float(row[1].get("indexed_at", 0))), reverse=True)
    stories: list[list[tuple[str, dict, float]]] = []
    for row in window:
        for story in stories:
            lead = story[0][1]
            same_id = lead.get("story_id") and lead.get("story_id") == row[1].get("story_id")
            if same_id or near_duplicate(str(lead.get("title", "")), str(row[1].get("title", ""))):
                story.append(row)
                break
        else:
            stories.append([row])
    main = sorted(stories, key=lambda s: (len(s), s[0][2]), reverse=True)[:limit]
    main.sort(key=lambda s: s[0][2], reverse=True)
    openings = _openings(store, [s[0][0] for s in main], manifest)
    return [
        DigestItem(
            title=str(s[0][1].get("title", "")),
            source=str(s[0][1].get("source", "")),
            published=str(s[0][1].get("published", "")),
            url=str(s[0][1].get("url", "")),
            sentence=openings.get(s[0][0], ""),
            reports=len(s),
            article_id=s[0][0],
        )
        for s in main
    ]


def chat_digest(
    follows: FollowStore, store, chat: Chat, user_id: int, now: float, limit: int
) -> tuple[list[DigestItem], float]:
    """A chat's digest: what was indexed since its last digest (or in the last 24 h), and
    where that window starts; the digest is remembered as sent at ``now``."""
    last = follows.digest_plan(chat).last
    since = last if last else now - DAY
    items = build_digest(store.manifest(), store, since, now, limit, by_indexed=True)
    follows.set_last_digest(chat, user_id, now)
    return items, since


def window_end(reference: date | None) -> float:
    """'Now' for a digest: the end of the reference day when one is set, else the clock."""
    if reference is None:
        return time.time()
    end = datetime(reference.year, reference.month, reference.day, tzinfo=timezone.utc)
    return end.timestamp() + DAY - 1


def _openings(store, article_ids: list[str], manifest: dict[str, dict]) -> dict[str, str]:
    ids = [chunk_id(aid, str(manifest[aid].get("hash", "")), 0) for aid in article_ids]
    if not ids:
        return {}
    got = store.chunks.get(ids=ids, include=["documents", "metadatas"])
    out = {}
    for doc, meta in zip(got["documents"], got["metadatas"]):
        found = [s for s in sentences(doc or "") if len(s) > 30] or sentences(doc or "")
        if found:
            out[str((meta or {}).get("article_id", ""))] = " ".join(found[0].split())[:300]
    return out
