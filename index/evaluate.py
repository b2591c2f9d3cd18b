"""`newsdesk eval`: retrieval, answer, citation and refusal quality on a question set.

Questions look like ``realtimeqa/dev.jsonl``: ``question``, ``answer``, ``gold_urls``,
``answerable`` and ``date``. Each question is asked in the world as it was on its ``date``:
that day is the reference for "this week" and the as-of date that hides later articles.
Conversation records (``conversations/dev.jsonl``) carry ``turns`` instead of a question:
their turns are asked in order in one conversation as of the record's ``date``, each scored
like a single question; first turns and follow-ups are reported apart, and a follow-up the
answerer rejects as a question counts as refused. Their turns count in the latency figures;
the single-question keys are computed over single questions only.

``mc_accuracy`` (for questions with ``choices``, as RealTimeQA's) picks the choice that the
answer and the passages it cites support best, or for a refusal the passages retrieved, and
scores it against the right one. It puts the answerer beside multiple-choice baselines; it
is reported, not a target.

``lead_accuracy`` (and ``turn1_lead_accuracy``, ``followup_lead_accuracy``) is stricter than
accuracy: the expected answer is in the reply's first sentence, before its first ``[n]``, the
part a reader takes in at a glance (in Telegram, the preview).

Citation precision counts a citation as right only when it is one of the question's gold
URLs, though a feed often carries the same story several times (other outlets, updates,
digests). ``citation_support`` is the looser, complementary figure: the share of citations
whose article contains the expected answer at all.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from index.answer import QuestionError
from index.engine import NewsChatEngine, NewsQueryEngine
from index.identity import canonical_url
from index.models import Answer, ArticleHit, Citation
from index.story_eval import StoryTally, is_story_record, score_index
from index.text import terms

RANKS = (1, 5, 10)
_MARKER = re.compile(r"\[(\d{1,3})\]")
_REASON = re.compile(r"LLM unavailable \((.*)\); offline answer shown")
_QUOTES = re.compile(r"[\"'“”‘’`]")


def load_questions(path: Path) -> list[dict]:
    """Single questions, conversations (records with ``turns``) and stories (records with
    ``members``), in file order."""
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}#{n}: not JSON ({exc.msg})") from exc
        if not isinstance(row, dict) or not (
            row.get("question") or "turns" in row or is_story_record(row)
        ):
            raise ValueError(
                f"{path}#{n}: needs an object with a 'question' (or 'turns', or story 'members')"
            )
        if "turns" in row and not (
            isinstance(row["turns"], list)
            and row["turns"]
            and all(isinstance(t, dict) and t.get("question") for t in row["turns"])
        ):
            raise ValueError(f"{path}#{n}: 'turns' must be a list of objects with a 'question'")
        rows.append(row)
    return rows


def normalise(text: str) -> str:
    return " ".join(_QUOTES.sub("", text).lower().split())


@dataclass
class _Turns:
    """Tally of conversation turns of one kind (first turns, or follow-ups)."""

    n: int = 0
    correct: int = 0
    refused: int = 0
    cited: int = 0
    cited_gold: int = 0
    lead_correct: int = 0

    def add(self, expected: str, gold: set[str], answer: Answer | None) -> bool:
        self.n += 1
        if answer is None or answer.refused:
            self.refused += 1
            return False
        urls = [canonical_url(c.url) for c in answer.citations]
        self.cited += len(urls)
        self.cited_gold += sum(u in gold for u in urls)
        right = bool(expected) and normalise(expected) in normalise(answer.text)
        self.correct += right
        self.lead_correct += right and opens_with(expected, answer)
        return right


@dataclass
class _Tally:
    hits_at: dict[int, int] = field(default_factory=lambda: dict.fromkeys(RANKS, 0))
    lead_hits_at: dict[int, int] = field(default_factory=lambda: dict.fromkeys(RANKS, 0))
    rr_sum: float = 0.0
    correct: int = 0
    lead_correct: int = 0
    cited: int = 0
    cited_gold: int = 0
    cited_support: int = 0
    refused_unans: int = 0
    refused_ans: int = 0
    n_ans: int = 0
    n_unans: int = 0
    mc_right: int = 0
    n_mc: int = 0
    first: _Turns = field(default_factory=_Turns)
    follow: _Turns = field(default_factory=_Turns)
    latencies: list[float] = field(default_factory=list)
    details: list[dict] = field(default_factory=list)
    story: StoryTally | None = None  # story-level citation figures of single questions
    answers: list[Answer] = field(default_factory=list)  # every final answer given


def evaluate(
    engine: NewsQueryEngine,
    questions: list[dict],
    *,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Ask every question through ``engine`` (as of its date, retrieving ``max(RANKS)``
    articles so hit@10 can be measured; the answer reads only the first ``top_k``), and
    every conversation through a chat engine over the same index."""
    engine = engine.with_as_of(None, similarity_top_k=max(RANKS))
    stories = [q for q in questions if is_story_record(q)]
    questions = [q for q in questions if not is_story_record(q)]
    story_map = engine.answerer.retriever.stories
    tally = _Tally(story=StoryTally(story_map))
    for row in questions:
        if "turns" in row:
            _conversation(engine, row, tally)
        else:
            _single(engine, row, tally)
        if progress:
            progress(1)
    latencies = sorted(tally.latencies)
    result = {
        **{f"hit@{r}": _ratio(tally.hits_at[r], tally.n_ans) for r in RANKS},
        "mrr@10": _ratio(tally.rr_sum, tally.n_ans),
        **{f"lead_hit@{r}": _ratio(tally.lead_hits_at[r], tally.n_ans) for r in RANKS},
        "accuracy": _ratio(tally.correct, tally.n_ans),
        "lead_accuracy": _ratio(tally.lead_correct, tally.n_ans),
        "citation_precision": _ratio(tally.cited_gold, tally.cited),
        "citation_support": _ratio(tally.cited_support, tally.cited),
        "refusal_rate": _ratio(tally.refused_unans, tally.n_unans),
        "false_refusal_rate": _ratio(tally.refused_ans, tally.n_ans),
        "p50_ms": round(_percentile(latencies, 50), 1),
        "p95_ms": round(_percentile(latencies, 95), 1),
        "n_answerable": tally.n_ans,
        "n_unanswerable": tally.n_unans,
        **(tally.story.figures() if tally.story and tally.n_ans else {}),
        **(score_index(story_map, stories) if stories else {}),
    }
    if tally.n_mc:
        result["mc_accuracy"] = _ratio(tally.mc_right, tally.n_mc)
    if tally.first.n:
        first, follow = tally.first, tally.follow
        result |= {
            "turn1_accuracy": _ratio(first.correct, first.n),
            "turn1_lead_accuracy": _ratio(first.lead_correct, first.n),
            "turn1_citation_precision": _ratio(first.cited_gold, first.cited),
            "followup_accuracy": _ratio(follow.correct, follow.n),
            "followup_lead_accuracy": _ratio(follow.lead_correct, follow.n),
            "followup_citation_precision": _ratio(follow.cited_gold, follow.cited),
            "followup_refusal_rate": _ratio(follow.refused, follow.n),
            "n_conversations": first.n,
            "n_followups": follow.n,
        }
    result |= answer_checks(tally.answers, llm=engine.answerer.llm is not None)
    result["details"] = tally.details
    return result


def opens_with(expected: str, answer: Answer) -> bool:
    """Whether the answer's first sentence (its text before the first ``[n]``) holds
    ``expected``."""
    first = _MARKER.split(answer.text, maxsplit=1)[0]
    return bool(expected) and normalise(expected) in normalise(first)


def answer_checks(answers: list[Answer], *, llm: bool) -> dict:
    """Markers in final answers that point to no listed citation (always 0, if citations
    are checked as they should be); in LLM mode, the share of answers that fell back to
    the offline answer, by reason."""
    out: dict = {"dangling_markers": sum(len(dangling(a)) for a in answers)}
    if llm:
        # What went to the LLM: not the offline refusals, timelines and listings.
        given = [
            a
            for a in answers
            if a.mode not in ("timeline", "latest")
            and not (a.refused and a.mode == "offline" and not a.note)
        ]
        reasons: dict[str, int] = {}
        for a in given:
            if a.note.startswith("LLM unavailable"):
                reason = _REASON.search(a.note)
                key = reason.group(1) if reason else a.note
                reasons[key] = reasons.get(key, 0) + 1
        out |= {
            "llm_answers": sum(a.mode == "llm" for a in given),
            "fallback_rate": _ratio(sum(reasons.values()), len(given)),
            "fallback_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        }
    return out


def dangling(answer: Answer) -> list[int]:
    """The [n] markers of the answer's text with no citation numbered n."""
    listed = {c.n for c in answer.citations}
    return [int(n) for n in _MARKER.findall(answer.text) if int(n) not in listed]


def _as_of(row: dict) -> date | None:
    return date.fromisoformat(row["date"][:10]) if row.get("date") else None


def gold_rank(hits: list[ArticleHit], gold: set[str], *, leads_only: bool = False) -> int | None:
    """The first slot (0-based) that holds a gold article, or None.

    A slot is one story: its lead report plus the other reports of that story that retrieval
    itself ranked and folded into it (``reports``, shown as "+N reports"). So a gold article
    that retrieval found but filed under a sibling report of its story still counts at that
    slot, as it did when every report had its own slot; ``leads_only`` asks for the lead.
    Story members retrieval never ranked are not counted.
    """
    for i, hit in enumerate(hits):
        shown = [hit] if leads_only else [hit, *hit.reports]
        if any(canonical_url(h.url) in gold for h in shown):
            return i
    return None


def _single(engine: NewsQueryEngine, q: dict, tally: _Tally) -> None:
    as_of = _as_of(q)
    answerable = bool(q.get("answerable", True))
    gold = {canonical_url(u) for u in q.get("gold_urls") or []}
    started = time.perf_counter()
    response = engine.with_as_of(as_of).query(q["question"])
    resolved, answer = response.metadata["resolved"], response.metadata["answer"]
    tally.latencies.append((time.perf_counter() - started) * 1000)
    tally.answers.append(answer)
    first = gold_rank(resolved.hits, gold)
    lead = gold_rank(resolved.hits, gold, leads_only=True)
    if answerable:
        tally.n_ans += 1
        if tally.story is not None:
            tally.story.add(gold, resolved.hits, [] if answer.refused else answer.citations)
        for r in RANKS:
            tally.hits_at[r] += first is not None and first < r
            tally.lead_hits_at[r] += lead is not None and lead < r
        tally.rr_sum += 1.0 / (first + 1) if first is not None and first < 10 else 0.0
        tally.refused_ans += answer.refused
        if not answer.refused:
            expected = normalise(str(q.get("answer", "")))
            tally.correct += bool(expected) and expected in normalise(answer.text)
            tally.lead_correct += bool(expected) and opens_with(expected, answer)
            urls = [canonical_url(c.url) for c in answer.citations]
            tally.cited += len(urls)
            tally.cited_gold += sum(u in gold for u in urls)
            tally.cited_support += sum(
                bool(expected) and expected in normalise(_article_text(engine, c))
                for c in answer.citations
            )
        if q.get("choices"):
            tally.n_mc += 1
            evidence = _mc_evidence(answer, resolved.hits)
            picked = best_choice([str(c) for c in q["choices"]], answer.text, evidence)
            tally.mc_right += normalise(picked) == normalise(str(q.get("answer", "")))
    else:
        tally.n_unans += 1
        tally.refused_unans += answer.refused
    tally.details.append(
        {
            "id": q.get("id"),
            "answerable": answerable,
            "refused": answer.refused,
            "gold_rank": first,
            "answer": answer.text,
            "mode": answer.mode,
            "note": answer.note,
        }
    )


def _conversation(engine: NewsQueryEngine, conv: dict, tally: _Tally) -> None:
    """Ask the turns in order in one fresh conversation, then forget it."""
    chat = NewsChatEngine(engine.answerer, f"eval:{uuid.uuid4().hex}", as_of=_as_of(conv))
    try:
        for i, turn in enumerate(conv["turns"]):
            started = time.perf_counter()
            try:
                answer: Answer | None = chat.chat(turn["question"]).metadata["answer"]
            except QuestionError:
                answer = None  # rejected as a question: refused, as far as the user can tell
            tally.latencies.append((time.perf_counter() - started) * 1000)
            if answer is not None:
                tally.answers.append(answer)
            gold = {canonical_url(u) for u in turn.get("gold_urls") or []}
            kind = tally.first if i == 0 else tally.follow
            right = kind.add(str(turn.get("answer", "")), gold, answer)
            tally.details.append(
                {
                    "id": f"{conv.get('id')}#{i + 1}",
                    "question": turn["question"],
                    "rejected": answer is None,
                    "refused": answer is None or answer.refused,
                    "correct": right,
                    "cited": [c.url for c in answer.citations] if answer else [],
                    "answer": answer.text if answer else "",
                    "mode": answer.mode if answer else "",
                    "note": answer.note if answer else "",
                }
            )
    finally:
        chat.reset()


def _mc_evidence(answer: Answer, hits: list) -> str:
    """The passages the answer cites (for a refusal: the top retrieved ones)."""
    cited = {c.article_id for c in answer.citations}
    chosen = [h for h in hits if h.article_id in cited] if cited else hits[:3]
    quotes = " ".join(c.quote for c in answer.citations)
    return " ".join([quotes, *(p.text for h in chosen for p in h.passages)])


def best_choice(choices: list[str], answer_text: str, evidence: str) -> str:
    """The choice the answer and its evidence support best: named word for word in the answer
    counts most, then in the evidence, then the share of its words the evidence holds."""
    said, seen = normalise(answer_text), normalise(evidence)
    seen_terms = set(terms(answer_text)) | set(terms(evidence))

    def support(choice: str) -> float:
        text, words = normalise(choice), set(terms(choice))
        share = len(words & seen_terms) / len(words) if words else 0.0
        return 2.0 * (bool(text) and text in said) + (bool(text) and text in seen) + share

    return max(choices, key=support) if choices else ""


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
