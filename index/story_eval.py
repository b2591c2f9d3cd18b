"""How well stories match hand-labelled ones (``stories/dev.jsonl``: members, mentions, near misses).

Pairs of labelled articles are counted over the articles the index holds. A pair with at
least one member that newsdesk puts in one story is right only when both are members of the
same labelled story (a member beside a mention, a near miss or another story's member is
wrong); pairs of mentions, near misses or unlabelled articles only are ignored. Mentions and
near misses are also counted one by one: how many sit in the story that holds most of their
labelled story's members (that should be none).
"""

from __future__ import annotations

import json
from collections import Counter
from itertools import combinations
from pathlib import Path

from index.identity import canonical_url
from index.story_store import StoryMap

ROLES = ("members", "mentions", "near_misses")
STORY_RANKS = (1, 5)


def is_story_record(row: dict) -> bool:
    return isinstance(row, dict) and isinstance(row.get("members"), list)


def load_stories(path: Path | str) -> list[dict]:
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if is_story_record(row):
                rows.append(row)
    return rows


def score_grouping(story_of: dict[str, str], labelled: list[dict], verbose: bool = False) -> dict:
    """``story_of``: canonical URL -> story id for every indexed article."""
    role_of: dict[str, tuple[int, str]] = {}
    for n, story in enumerate(labelled):
        for role in ROLES:
            for url in story.get(role) or []:
                role_of[canonical_url(url)] = (n, role)
    present = {u: story_of[u] for u in role_of if u in story_of}
    tp = fp = fn = 0
    for a, b in combinations(sorted(present), 2):
        (sa, ra), (sb, rb) = role_of[a], role_of[b]
        if ra != "members" and rb != "members":
            continue
        same_label = sa == sb and ra == rb == "members"
        together = present[a] == present[b]
        tp += same_label and together
        fn += same_label and not together
        fp += together and not same_label
    joins = {"mentions": [0, 0], "near_misses": [0, 0]}
    per_story = []
    for n, story in enumerate(labelled):
        members = [present[u] for u in map(canonical_url, story["members"]) if u in present]
        if not members:
            continue
        main, held = Counter(members).most_common(1)[0]
        row = {"id": story.get("id", n), "members": len(members), "in_main": held}
        for role in ("mentions", "near_misses"):
            urls = [u for u in map(canonical_url, story.get(role) or []) if u in present]
            joined = [u for u in urls if present[u] == main]
            joins[role][0] += len(joined)
            joins[role][1] += len(urls)
            row[role] = joined
        per_story.append(row)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    out = {
        "story_pair_precision": round(precision, 4),
        "story_pair_recall": round(recall, 4),
        "story_pair_f1": round(f1, 4),
        "story_mention_joins": _share(*joins["mentions"]),
        "story_near_miss_joins": _share(*joins["near_misses"]),
        "n_stories": len(per_story),
        "n_labelled_present": len(present),
    }
    if verbose:
        out["per_story"] = per_story
    return out


def _share(num: int, den: int) -> float:
    return round(num / den, 4) if den else 0.0


class StoryTally:
    """Question-level story figures: a cited or ranked article counts when it shares a story
    with a gold article (another outlet's report of the same event is as good a source)."""

    def __init__(self, stories: StoryMap) -> None:
        self.stories = stories
        self.hits = dict.fromkeys(STORY_RANKS, 0)
        self.n = self.cited = self.cited_right = 0

    def add(self, gold_urls: set[str], hits: list, citations: list) -> None:
        gold = {s for u in gold_urls if (s := self.stories.story_of_url(u))}
        ranks = [i for i, h in enumerate(hits) if (h.story_id or h.article_id) in gold]
        self.n += 1
        for r in STORY_RANKS:
            self.hits[r] += bool(ranks) and ranks[0] < r
        self.cited += len(citations)
        self.cited_right += sum(
            (c.story_id or self.stories.story_of(c.article_id)) in gold for c in citations
        )

    def figures(self) -> dict:
        return {
            "story_citation_precision": _share(self.cited_right, self.cited),
            **{f"story_hit@{r}": _share(self.hits[r], self.n) for r in STORY_RANKS},
        }


def score_index(stories: StoryMap, labelled: list[dict]) -> dict:
    """Grouping figures for the labelled stories, over what the index holds."""
    return score_grouping(stories.stories_by_url(), labelled)
