"""Why answers miss: every conversation turn and RealTimeQA question, scored per half, and
each miss put down to a cause. A diagnostic beside `newsdesk eval`, not a benchmark: it
writes no section of RESULTS.md.

    NEWSDESK_DATA_DIR=/path/to/indexed-218 python bench/answer_causes.py --out causes.json

Halves are the records on even and odd lines of each file: a change to the answerer should
help both, never one at the other's cost. Causes of a miss (the expected answer is not in the
reply):
- ``refused``: the reply is a refusal (``rejected``: not accepted as a question at all);
- ``not retrieved``: no gold article among those retrieved;
- ``other article``: a gold article was retrieved but another one is cited;
- ``neighbour``: the answer is in the cited article, in a sentence next to one quoted;
- ``passage read`` / ``passage not read``: the answer is in the cited article, in a passage
  retrieval kept (the wrong sentence was chosen) or in one it did not;
- ``not in words``: the cited gold article does not hold the expected answer verbatim.

Each RealTimeQA citation is also put down to whether its article holds the expected answer
(``citation_support`` in `newsdesk eval`) and, when not, whether a gold article does: where
none does, no citation of a gold article can be supported, which bounds the figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections import Counter
from datetime import date
from pathlib import Path

from common import DATA, require_data

from index.answer import QuestionError
from index.engine import NewsChatEngine, NewsQueryEngine, build_query_engine
from index.evaluate import normalise
from index.identity import canonical_url
from index.models import Answer, Resolved
from index.text import sentences

CONVERSATIONS = DATA.parent / "conversations" / "dev.jsonl"


def cause(engine: NewsQueryEngine, expected: str, gold: set[str], resolved, answer) -> str:
    """Why ``answer`` (None: rejected) misses ``expected``, or "ok"."""
    if answer is None:
        return "rejected"
    want = normalise(expected)
    if not answer.refused and want and want in normalise(answer.text):
        return "ok"
    if answer.refused:
        return "refused"
    urls = [canonical_url(h.url) for h in resolved.hits]
    if not gold & set(urls):
        return "not retrieved"
    store = engine.answerer.retriever.store
    cited = {c.article_id for c in answer.citations}
    for hit in (h for h in resolved.hits if h.article_id in cited):
        parts = [normalise(s) for s in sentences(store.article_text(hit.article_id) or "")]
        where = [i for i, s in enumerate(parts) if want in s]
        if not where:
            continue
        quotes = [normalise(c.quote) for c in answer.citations]
        quoted = {i for i, s in enumerate(parts) if any(s and s in q for q in quotes)}
        if any(i - 1 in quoted or i + 1 in quoted for i in where):
            return "neighbour"
        read = any(want in normalise(p.text) for p in hit.passages)
        return "passage read" if read else "passage not read"
    if any(canonical_url(c.url) in gold for c in answer.citations):
        return "not in words"
    return "other article"


def supports(engine: NewsQueryEngine, expected: str, gold: set[str], answer: Answer) -> list[str]:
    """Per citation: "holds" (its article holds ``expected``), else whether a gold article
    does ("gold holds it") or not ("gold lacks it")."""
    store = engine.answerer.retriever.store
    want = normalise(expected)

    def holds(article_id: str | None, title: str) -> bool:
        return bool(article_id) and want in normalise(f"{title}\n{store.article_text(article_id)}")

    golds = [(aid, str(m.get("title", ""))) for aid, m in store.manifest().items()
             if canonical_url(str(m.get("url", ""))) in gold]  # fmt: skip
    gold_holds = any(holds(aid, title) for aid, title in golds)
    return [
        "holds" if holds(c.article_id, c.title) else
        "gold holds it" if gold_holds else "gold lacks it"
        for c in answer.citations
    ]  # fmt: skip


def ask_conversations(engine: NewsQueryEngine, path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        conv = json.loads(line)
        as_of = date.fromisoformat(conv["date"][:10])
        chat = NewsChatEngine(engine.answerer, f"causes:{uuid.uuid4().hex}", as_of=as_of)
        try:
            for i, turn in enumerate(conv["turns"]):
                resolved: Resolved | None = None
                answer: Answer | None = None
                try:
                    meta = chat.chat(turn["question"]).metadata
                    resolved, answer = meta["resolved"], meta["answer"]
                except QuestionError:
                    pass
                gold = {canonical_url(u) for u in turn["gold_urls"]}
                rows.append(
                    _row(f"{conv['id']}#{i + 1}", n % 2, "turn 1" if i == 0 else "follow-up",
                         turn, cause(engine, turn["answer"], gold, resolved, answer), answer)
                )  # fmt: skip
        finally:
            chat.reset()
    return rows


def ask_questions(engine: NewsQueryEngine, path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        q = json.loads(line)
        response = engine.with_as_of(date.fromisoformat(q["date"][:10])).query(q["question"])
        resolved, answer = response.metadata["resolved"], response.metadata["answer"]
        if not q.get("answerable", True):
            why = "refused" if answer.refused else "answered"
            rows.append(_row(q["id"], n % 2, "unanswerable", q, why, answer))
            continue
        gold = {canonical_url(u) for u in q["gold_urls"]}
        rows.append(
            _row(q["id"], n % 2, "question", q, cause(engine, q["answer"], gold, resolved, answer),
                 answer)
        )  # fmt: skip
        if not answer.refused:
            rows[-1]["support"] = supports(engine, q["answer"], gold, answer)
    return rows


def _row(key: str, half: int, kind: str, record: dict, why: str, answer: Answer | None) -> dict:
    return {
        "id": key,
        "half": half,
        "kind": kind,
        "question": record["question"],
        "expected": record.get("answer", ""),
        "cause": why,
        "reply": answer.text if answer else "",
        "cited": [c.url for c in answer.citations] if answer else [],
    }


def summary(rows: list[dict]) -> str:
    lines = []
    for kind in ("turn 1", "follow-up", "question", "unanswerable"):
        chosen = [r for r in rows if r["kind"] == kind]
        if not chosen:
            continue
        right = "refused" if kind == "unanswerable" else "ok"
        shares = []
        for half in (0, 1):
            part = [r for r in chosen if r["half"] == half]
            shares.append(f"half {half} {sum(r['cause'] == right for r in part) / len(part):.3f}")
        overall = sum(r["cause"] == right for r in chosen) / len(chosen)
        causes = Counter(r["cause"] for r in chosen if r["cause"] != right)
        label = "refused" if kind == "unanswerable" else "accuracy"
        lines.append(f"{kind}: {label} {overall:.3f} ({', '.join(shares)}; n={len(chosen)})")
        lines.append("  misses: " + ", ".join(f"{c} {k}" for c, k in causes.most_common()))
    cited = [s for r in rows for s in r.get("support", [])]
    if cited:
        held, lacks = cited.count("holds"), cited.count("gold lacks it")
        lines.append(
            f"citation support {held / len(cited):.3f} ({held} of {len(cited)} citations); "
            f"unsupported: gold holds it {cited.count('gold holds it')}, gold lacks it {lacks} "
            f"(all others held: {(len(cited) - lacks) / len(cited):.3f})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", default=str(CONVERSATIONS))
    parser.add_argument("--questions", default=str(DATA / "dev.jsonl"))
    parser.add_argument("--out", type=Path, help="write every row (reply, cause) as JSON here")
    args = parser.parse_args(argv)
    conversations, questions = require_data(args.conversations, args.questions)
    engine = build_query_engine().with_as_of(None, similarity_top_k=10)
    rows = ask_conversations(engine, conversations) + ask_questions(engine, questions)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    print(summary(rows))


if __name__ == "__main__":
    sys.exit(main())
