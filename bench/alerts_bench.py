"""Alerts benchmark: replay the full feed one publication day per cycle, with the 30 labelled
stories of ``../shared/data/stories/dev.jsonl`` as follows.

The feed is not embedded again: the bench reuses a built index (``--data-dir``, default the
lead's ``/work/bench-cache/ndfull``), copied to a temp folder, and replays it *as of* each day:
day D's articles are the cycle's new articles, and retrieval sees only articles published on
or before D (``Query.end``), as it would have on that day. Stories are assigned by the
index's own story pass first (``index.story_store.assign_stories``, no re-embedding).

Follows are the stories' labels without their trailing "(dates)": what a reader would type.
Each cycle runs the real matcher (``index.alerts.FollowMatcher``: vector pre-check, then the
question retrieval) and the real alert rules (``alerts_for``: one alert per story and chat).

- An alert is right when its article is a member of that follow's story.
- A story is caught when an alert for it arrives on the day its first member was published.
- Alerts per story per day: alerts for a follow on a day it got any.
Targets: precision >= 0.80, recall >= 0.80, at most 1 alert per story per day. The threshold
``alert_min_score`` is swept, and the settings' value is reported.

Without a full index, ``--make-subset FEED.jsonl`` writes a smaller feed (the labelled
articles and 340 others of the same days, texts cut to ~1,500 characters: ~10 min to index on
two busy cores) to index with ``newsdesk index`` and pass as ``--data-dir``.

Then the cost: one cycle's matching time with 1,000 follows (the 30 labels and 970 headlines
of other articles as topics) on ``--timing-days`` days, against the time embedding that day's
new chunks takes (measured embedding rate x the day's chunks).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import statistics
import time
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path

from common import DATA, Machine, add_output_options, log, publish, report, table, temp_dir
from conftest import make_settings

from index.alerts import FollowMatcher, alerts_for
from index.embed import get_embedder
from index.follow import Chat, FollowStore
from index.identity import article_id, canonical_url
from index.retrieve import Retriever
from index.settings import Settings
from index.store import Store
from index.story_store import assign_stories

SECTION = "Alerts (bench/alerts_bench.py)"
STORIES = DATA.parent / "stories" / "dev.jsonl"
DEFAULT_INDEX = Path("/work/bench-cache/ndfull")
SWEEP = [0.50, 0.55, 0.60, 0.65, 0.70, 0.75]
TOP_KS = [1, 3, 5]
DEFAULT = round(Settings.model_fields["alert_min_score"].default, 2)
DEFAULT_K = Settings.model_fields["alert_top_k"].default
TARGET_PRECISION, TARGET_RECALL, TARGET_PER_DAY = 0.80, 0.80, 1.0


def label_topic(label: str) -> str:
    return re.sub(r"\s*\([^)]*\)\s*$", "", label).strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_INDEX, help="a full index")
    parser.add_argument("--start", default="2022-05-25", help="first replayed day")
    parser.add_argument("--end", default="2022-12-04", help="last replayed day")
    parser.add_argument("--timing-days", type=int, default=8, help="days timed at 1,000 follows")
    parser.add_argument("--about", default="", help="a note on the index used, for the report")
    parser.add_argument(
        "--make-subset",
        type=Path,
        help="write a smaller feed to index instead (labelled articles + 340 of the same days, "
        "texts cut to ~1,500 characters) and exit",
    )
    add_output_options(parser)
    args = parser.parse_args()
    if args.make_subset:
        make_subset(args.make_subset)
        return
    machine, started = Machine(), datetime.now()
    if not (args.data_dir / "chroma").exists() or not STORIES.exists():
        raise SystemExit(f"needs a full index in {args.data_dir} and {STORIES}")

    stories = [json.loads(line) for line in STORIES.read_text().splitlines() if line.strip()]
    with temp_dir("newsdesk-alerts-bench", keep=args.keep) as tmp:
        log(f"copying {args.data_dir} ...")
        shutil.copytree(args.data_dir, tmp / "data")
        settings = make_settings(tmp, alert_min_score=min(SWEEP), alert_top_k=max(TOP_KS))
        store = Store(settings)
        embedder = get_embedder(settings)
        t0 = time.perf_counter()
        grouped = assign_stories(store)
        log(f"story pass: {grouped.stories} stories in {time.perf_counter() - t0:.1f} s")
        manifest = store.manifest()
        retriever = Retriever(settings, store=store, embedder=embedder)
        matcher = FollowMatcher(settings, retriever)

        members = {}
        first_day = {}
        missing = 0
        for s in stories:
            ids = {article_id(canonical_url(u), "", None) for u in s["members"]}
            missing += len(ids - set(manifest))
            ids &= set(manifest)
            if not ids:
                continue  # none of its reports in this index (a subset): not followed
            members[label_topic(s["label"])] = ids
            first_day[label_topic(s["label"])] = min(str(manifest[i].get("published")) for i in ids)
        topics = sorted(members)
        by_day: dict[str, list[str]] = defaultdict(list)
        for aid, meta in manifest.items():
            day = str(meta.get("published") or "")
            if args.start <= day <= args.end:
                by_day[day].append(aid)
        days = sorted(by_day)
        log(f"replaying {len(days)} days, {sum(map(len, by_day.values()))} articles, "
            f"{len(topics)} follows")  # fmt: skip

        # --- the replay: candidates at the lowest threshold, kept for the sweep ---------------
        candidates: dict[str, dict[str, list]] = {}
        cycle_seconds = []
        for n, day in enumerate(days, 1):
            t0 = time.perf_counter()
            matches, _ = matcher.match(topics, by_day[day], as_of=date.fromisoformat(day))
            cycle_seconds.append(time.perf_counter() - t0)
            candidates[day] = matches
            if n % 20 == 0:
                log(f"  {n}/{len(days)} days")

        rows = []
        chosen = None
        for top_k in TOP_KS:
            for threshold in SWEEP:
                result = simulate(
                    candidates, days, members, first_day, threshold, top_k, tmp, settings, manifest
                )
                rows.append(result)
                if threshold == DEFAULT and top_k == DEFAULT_K:
                    chosen = result

        # --- cost at 1,000 follows ---------------------------------------------------------
        rng = random.Random(14)
        others = sorted({str(m.get("title")) for m in manifest.values() if m.get("title")})
        # Headlines as topics; a small index repeats them (the cost is the same per topic).
        many = topics + [others[i % len(others)] + f" {i // len(others) or ''}".rstrip()
                         for i in rng.sample(range(10_000), 1000 - len(topics))]  # fmt: skip
        timing_days = rng.sample(days, min(args.timing_days, len(days)))
        sample = [
            doc for doc in store.chunks.get(limit=200, include=["documents"])["documents"] if doc
        ]
        t0 = time.perf_counter()
        embedder.embed(sample)
        embed_rate = len(sample) / (time.perf_counter() - t0)
        embed_rate_batched = embed_rate
        default = FollowMatcher(settings.model_copy(update={"alert_min_score": DEFAULT}), retriever)
        t0 = time.perf_counter()
        default.topic_vectors(many)
        topic_seconds = time.perf_counter() - t0
        timing = []
        for day in timing_days:
            chunks = sum(int(manifest[a].get("n_chunks", 1)) for a in by_day[day])
            t0 = time.perf_counter()
            _, retrieved = default.match(many, by_day[day], as_of=date.fromisoformat(day))
            seconds = time.perf_counter() - t0
            timing.append((day, len(by_day[day]), chunks, retrieved, seconds, chunks / embed_rate))

    body = render(rows, chosen, cycle_seconds, timing, topic_seconds, embed_rate_batched,
                  len(days), missing, grouped.stories, len(topics),
                  f"{args.data_dir}: {len(manifest)} articles. {args.about}".strip())  # fmt: skip
    publish(SECTION, body, machine, started, args)


def make_subset(path: Path, others: int = 340, chars: int = 1500) -> None:
    """The stories' labelled articles and ``others`` random articles of the same days."""
    stories = [json.loads(line) for line in STORIES.read_text().splitlines() if line.strip()]
    labelled = {
        canonical_url(u)
        for s in stories
        for k in ("members", "mentions", "near_misses")
        for u in s[k]
    }
    rows = [json.loads(line) for line in (DATA / "corpus-full.jsonl").open()]
    chosen = [r for r in rows if canonical_url(r["url"]) in labelled]
    days = {r["published"][:10] for r in chosen}
    rest = [
        r for r in rows if r["published"][:10] in days and canonical_url(r["url"]) not in labelled
    ]
    random.Random(14).shuffle(rest)
    with path.open("w") as out:
        for r in chosen + rest[:others]:
            text = r["text"]
            if len(text) > chars:  # whole sentences, at least 800 characters
                cut = text[:chars]
                text = cut[: max(cut.rfind(". ") + 1, 800)]
            out.write(json.dumps({**r, "text": text}) + "\n")
    log(f"wrote {len(chosen) + min(others, len(rest))} articles to {path}")


def simulate(
    candidates: dict[str, dict[str, list]],
    days: list[str],
    members: dict[str, set[str]],
    first_day: dict[str, str],
    threshold: float,
    top_k: int,
    tmp: Path,
    settings: Settings,
    manifest: dict[str, dict],
) -> dict:
    """Run the real alert rules over the replay's candidates at one threshold."""
    topics = sorted(members)
    path = tmp / f"follows-{top_k}-{threshold:.2f}.sqlite3"
    follows = FollowStore(settings.model_copy(update={"max_follows": 1000}), path)
    every = [follows.add(Chat(1, 0), 1, topic) for topic in topics]
    for follow in every:
        follow.created = 0.0
    right = total = 0
    caught: set[str] = set()
    per_day: dict[tuple[str, str], int] = defaultdict(int)
    for day in days:
        matches = {
            topic: [m for m in found if m.similarity >= threshold and m.rank < top_k]
            for topic, found in candidates[day].items()
        }
        fresh = {
            m.article_id: {**manifest[m.article_id], "indexed_at": 1.0}
            for ms in matches.values()
            for m in ms
        }
        alerts = alerts_for(follows, every, matches, fresh)
        follows.queue(alerts)
        for alert in alerts:
            total += 1
            ok = alert.article_id in members[alert.topic]
            right += ok
            per_day[(alert.topic, day)] += 1
            if ok and day == first_day[alert.topic]:
                caught.add(alert.topic)
    follows.close()
    counts = list(per_day.values())
    return {
        "top_k": top_k,
        "threshold": threshold,
        "alerts": total,
        "precision": right / total if total else 0.0,
        "recall": len(caught) / len(topics),
        "per_day_mean": statistics.mean(counts) if counts else 0.0,
        "per_day_max": max(counts) if counts else 0,
    }


def render(rows, chosen, cycle_seconds, timing, topic_seconds, embed_rate, n_days, missing,
           n_stories, n_follows, about) -> str:  # fmt: skip
    sweep = table(
        ["alert_top_k", "alert_min_score", "alerts", "precision", "story recall",
         "alerts/story/day (mean, max)"],
        [
            [r["top_k"], f"{r['threshold']:.2f}", r["alerts"], f"{r['precision']:.2f}", f"{r['recall']:.2f}",
             f"{r['per_day_mean']:.2f}, {r['per_day_max']}"]
            for r in rows
        ],
    )  # fmt: skip
    cost = table(
        ["day", "new articles", "new chunks", "topics past pre-check", "matching s", "embedding s"],
        [[d, a, c, r, f"{s:.2f}", f"{e:.1f}"] for d, a, c, r, s, e in timing],
    )
    match_mean = statistics.mean(t[4] for t in timing) if timing else 0.0
    embed_mean = statistics.mean(t[5] for t in timing) if timing else 0.0
    verdicts = []
    if chosen:
        verdicts = [
            f"At the defaults alert_top_k {chosen['top_k']}, alert_min_score "
            f"{chosen['threshold']:.2f}: precision "
            f"{chosen['precision']:.2f} (target >= {TARGET_PRECISION}), story recall "
            f"{chosen['recall']:.2f} (target >= {TARGET_RECALL}), alerts per story per day "
            f"mean {chosen['per_day_mean']:.2f}, max {chosen['per_day_max']} "
            f"(target <= {TARGET_PER_DAY:g}).",
        ]
    notes = [
        *verdicts,
        f"Index: {about}",
        f"{n_days} days replayed, one cycle each; {n_follows} follows; {missing} member URLs of the "
        f"stories are not in the index; {n_stories} stories after the story pass.",
        f"Matching with {n_follows} follows: median {statistics.median(cycle_seconds):.3f} s per cycle, "
        f"max {max(cycle_seconds):.2f} s.",
        f"Matching with 1,000 follows: mean {match_mean:.2f} s per cycle against "
        f"{embed_mean:.1f} s of embedding for the same day's new chunks "
        f"({embed_rate:.1f} chunks/s measured here); embedding the 1,000 topics once (cached "
        f"afterwards) took {topic_seconds:.1f} s.",
        "Calibration and measurement use the same 30 labelled stories (there is no held-out "
        "story set): the sweep shows how sensitive the figures are to the threshold.",
    ]
    return report(
        [("Threshold sweep (the stories' labels as follows, one cycle per day)", sweep),
         ("Cost of matching per cycle at 1,000 follows", cost)],
        notes,
    )  # fmt: skip


if __name__ == "__main__":
    main()
