"""`newsdesk eval`: retrieval, answer, citation and refusal quality on a question set.

Questions look like ``realtimeqa/dev.jsonl``: ``question``, ``answer``, ``gold_urls``,
``answerable`` and ``date``. Each question is asked in the world as it was on its ``date``:
that day is the reference for "this week" and the as-of date that hides later articles.

Citation precision counts a citation as right only when it is one of the question's gold
URLs, though a feed often carries the same story several times (other outlets, updates,
digests). ``citation_support`` is the looser, complementary figure: the share of citations
whose article contains the expected answer at all.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from index.engine import NewsQueryEngine
from index.identity import canonical_url
from index.models import Citation
from index.story_eval import StoryTally, is_story_record, score_index

RANKS = (1, 5, 10)
_QUOTES = re.compile(r"[\"'“”‘’`]")


def load_questions(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}#{n}: not JSON ({exc.msg})") from exc
        if not isinstance(row, dict) or not (row.get("question") or is_story_record(row)):
            raise ValueError(f"{path}#{n}: needs an object with a 'question' (or story 'members')")
        rows.append(row)
    return rows


def normalise(text: str) -> str:
    return " ".join(_QUOTES.sub("", text).lower().split())


def evaluate(
    engine: NewsQueryEngine,
    questions: list[dict],
    *,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Ask every question through ``engine`` (as of its date, retrieving ``max(RANKS)``
    articles so hit@10 can be measured; the answer reads only the first ``top_k``)."""
    engine = engine.with_as_of(None, similarity_top_k=max(RANKS))
    stories = [q for q in questions if is_story_record(q)]
    questions = [q for q in questions if not is_story_record(q)]
    story_map = engine.answerer.retriever.stories
    story_tally = StoryTally(story_map)
    hits_at = dict.fromkeys(RANKS, 0)
    rr_sum = 0.0
    correct = cited = cited_gold = cited_support = refused_unans = refused_ans = 0
    n_ans = n_unans = 0
    latencies: list[float] = []
    details = []
    for q in questions:
        as_of = date.fromisoformat(q["date"][:10]) if q.get("date") else None
        answerable = bool(q.get("answerable", True))
        gold = {canonical_url(u) for u in q.get("gold_urls") or []}
        started = time.perf_counter()
        response = engine.with_as_of(as_of).query(q["question"])
        resolved, answer = response.metadata["resolved"], response.metadata["answer"]
        latencies.append((time.perf_counter() - started) * 1000)
        ranked = [canonical_url(h.url) for h in resolved.hits]
        first = next((i for i, url in enumerate(ranked) if url in gold), None)
        if answerable:
            n_ans += 1
            for r in RANKS:
                hits_at[r] += first is not None and first < r
            rr_sum += 1.0 / (first + 1) if first is not None and first < 10 else 0.0
            refused_ans += answer.refused
            story_tally.add(gold, resolved.hits, [] if answer.refused else answer.citations)
            if not answer.refused:
                correct += normalise(str(q.get("answer", ""))) in normalise(answer.text)
                urls = [canonical_url(c.url) for c in answer.citations]
                cited += len(urls)
                cited_gold += sum(u in gold for u in urls)
                expected = normalise(str(q.get("answer", "")))
                cited_support += sum(
                    bool(expected) and expected in normalise(_article_text(engine, c))
                    for c in answer.citations
                )
        else:
            n_unans += 1
            refused_unans += answer.refused
        details.append(
            {
                "id": q.get("id"),
                "answerable": answerable,
                "refused": answer.refused,
                "gold_rank": first,
                "answer": answer.text,
            }
        )
        if progress:
            progress(1)
    latencies.sort()
    story_figures = {
        **(story_tally.figures() if n_ans else {}),
        **(score_index(story_map, stories) if stories else {}),
    }
    return {
        **{f"hit@{r}": _ratio(hits_at[r], n_ans) for r in RANKS},
        "mrr@10": _ratio(rr_sum, n_ans),
        "accuracy": _ratio(correct, n_ans),
        "citation_precision": _ratio(cited_gold, cited),
        "citation_support": _ratio(cited_support, cited),
        "refusal_rate": _ratio(refused_unans, n_unans),
        "false_refusal_rate": _ratio(refused_ans, n_ans),
        "p50_ms": round(_percentile(latencies, 50), 1),
        "p95_ms": round(_percentile(latencies, 95), 1),
        "n_answerable": n_ans,
        "n_unanswerable": n_unans,
        **story_figures,
        "details": details,
    }


def _article_text(engine: NewsQueryEngine, citation: Citation) -> str:
    if not citation.article_id:
        return citation.quote
    store = engine.answerer.retriever.store
    return f"{citation.title}\n{store.article_text(citation.article_id)}"


def _ratio(num: float, den: int) -> float:
    return round(num / den, 4) if den else 0.0


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    index = min(len(values) - 1, max(0, round(pct / 100 * (len(values) - 1))))
    return values[index]
