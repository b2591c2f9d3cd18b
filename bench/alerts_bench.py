"""Alerts benchmark: replay the full feed one publication day per cycle, with the 30 labelled
stories of ``../shared/data/stories/dev.jsonl`` as follows.

The feed is not embedded again: the bench reuses a built index (``--data-dir``, default the
lead's ``/work/bench-cache/ndfull``), copied to a temp folder, and replays it *as of* each day:
day D's articles are the cycle's new articles, and retrieval sees only articles published on
or before D (``Query.end``), as it would have on that day. Stories are assigned by the
index's own story pass first (``index.story_store.assign_stories``, no re-embedding).

Follows are the stories' labels without their trailing "(dates)": what a reader would type.
Each cycle runs the real matcher (``index.alerts.FollowMatcher``: dense and lexical
pre-checks, then the question retrieval) and the real alert rules (``alerts_for``: one alert
per story and chat).

- An alert is right when its article is a member of that follow's story.
- A story is caught when an alert for it arrives on the day its first member was published.
- Alerts per story per day: alerts for a follow on a day it got any.
Targets: precision >= 0.80, recall >= 0.80, at most 1 alert per story per day.

Calibration is held out: ``alert_top_k`` and ``alert_min_score`` are chosen on the stories
of the even lines of the file (the highest recall at precision >= 0.80, at most one alert
per story and day) and measured on the odd lines; each half is its own chat, so one half's
alerts cannot hide the other's. The sweep over both halves together is shown as well.

Before -> after, in the same run: every cycle is matched twice, by the matcher and by
``Baseline`` (a per-topic dense check, then retrieval that embeds the topic again and reads
the index version once per candidate article: the matcher as it was), and the two must give
the same alerts at every point of the sweep.

Without a full index, ``--make-subset FEED.jsonl`` writes a smaller feed (the labelled
articles and 340 others of the same days, texts cut to ~1,500 characters: ~10 min to index on
two busy cores) to index with ``newsdesk index`` and pass as ``--data-dir``.

Then the cost: one cycle's matching time with 1,000 follows (the 30 labels and 970 headlines
of other articles as topics) on ``--timing-days`` days, before and after, against the time
embedding that day's new chunks takes (measured embedding rate x the day's chunks).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import random
import re
import shutil
import statistics
import time
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path

import numpy as np
from common import DATA, Machine, add_output_options, log, publish, report, table, temp_dir
from conftest import make_settings

from index.alerts import FollowMatcher, Matched, MatchRun, alerts_for, best_sentence
from index.embed import get_embedder
from index.follow import Chat, FollowStore
from index.identity import article_id, canonical_url
from index.models import Query
from index.retrieve import Retriever
from index.settings import Settings
from index.store import Store
from index.story_store import StoryMap, assign_stories

SECTION = "Alerts (bench/alerts_bench.py)"
STORIES = DATA.parent / "stories" / "dev.jsonl"
DEFAULT_INDEX = Path("/work/bench-cache/ndfull")
SWEEP = [0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80]
TOP_KS = [1, 3, 5]
DEFAULT = round(Settings.model_fields["alert_min_score"].default, 2)
DEFAULT_K = Settings.model_fields["alert_top_k"].default
TARGET_PRECISION, TARGET_RECALL, TARGET_PER_DAY = 0.80, 0.80, 1.0
_RUNS = itertools.count()


def label_topic(label: str) -> str:
    return re.sub(r"\s*\([^)]*\)\s*$", "", label).strip()


class PerArticleStories(StoryMap):
    """The story map as retrieval used it before: the index version read per candidate."""

    def lookup(self):
        return self.story_of


class Baseline:
    """The matcher before this change, kept as the reference: a topic whose best new chunk
    reaches the threshold is retrieved for with the plain retriever (the topic embedded again,
    the story map checked per candidate); the gate after retrieval is the same."""

    def __init__(self, settings: Settings, retriever: Retriever, matcher: FollowMatcher) -> None:
        self.settings = settings
        self.retriever = copy.copy(retriever)
        self.retriever.stories = PerArticleStories(retriever.store)
        self.matcher = matcher  # for its stored-chunk reads and cached topic vectors

    def match(self, topics: list[str], new_ids: list[str], *, as_of: date) -> MatchRun:
        run = MatchRun()
        started = time.perf_counter()
        topics = sorted(set(topics))
        chunks = self.matcher.new_chunks(sorted(set(new_ids)))
        if not topics or not chunks.articles:
            return run
        sims = _unit(self.matcher.topic_vectors(topics)) @ _unit(chunks.vectors).T
        best = np.maximum.reduceat(sims, chunks.starts, axis=1)
        column = {aid: n for n, aid in enumerate(chunks.articles)}
        threshold = self.settings.alert_min_score
        for row, topic in enumerate(topics):
            if float(best[row].max()) < threshold:
                continue
            run.retrieved += 1
            hits = self.retriever.retrieve(
                Query(text=topic, end=as_of, reference=as_of), k=self.settings.alert_top_k
            )
            found = [
                Matched(hit.article_id, hit.title, hit.url, hit.source, hit.published,
                        float(best[row, column[hit.article_id]]), rank,
                        chunks.stories.get(hit.article_id, hit.article_id),
                        best_sentence(topic, [p.text for p in hit.passages]))
                for rank, hit in enumerate(hits)
                if hit.article_id in column and best[row, column[hit.article_id]] >= threshold
            ]  # fmt: skip
            if found:
                run.matches[topic] = found
        run.retrieval_seconds = time.perf_counter() - started
        return run


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_INDEX, help="a full index")
    parser.add_argument("--start", default="2022-05-25", help="first replayed day")
    parser.add_argument("--end", default="2022-12-04", help="last replayed day")
    parser.add_argument("--timing-days", type=int, default=8, help="days timed at 1,000 follows")
    parser.add_argument(
        "--baseline-every",
        type=int,
        default=1,
        help="replay the baseline matcher on every Nth day only (it doubles the replay's time)",
    )
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
        baseline = Baseline(settings, retriever, matcher)

        members = {}
        first_day = {}
        halves: dict[str, list[str]] = {"calibration": [], "held-out": []}
        missing = 0
        for line, s in enumerate(stories):
            ids = {article_id(canonical_url(u), "", None) for u in s["members"]}
            missing += len(ids - set(manifest))
            ids &= set(manifest)
            if not ids:
                continue  # none of its reports in this index (a subset): not followed
            topic = label_topic(s["label"])
            members[topic] = ids
            first_day[topic] = min(str(manifest[i].get("published")) for i in ids)
            halves["calibration" if line % 2 == 0 else "held-out"].append(topic)
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
        matcher.topic_vectors(topics)  # embedded once, before any cycle is timed
        candidates: dict[str, dict[str, list]] = {}
        reference: dict[str, dict[str, list]] = {}
        cycle_seconds: dict[str, float] = {}
        baseline_seconds: dict[str, float] = {}
        for n, day in enumerate(days, 1):
            as_of = date.fromisoformat(day)
            t0 = time.perf_counter()
            candidates[day] = matcher.match(topics, by_day[day], as_of=as_of).matches
            cycle_seconds[day] = time.perf_counter() - t0
            if n % args.baseline_every == 0:
                t0 = time.perf_counter()
                reference[day] = baseline.match(topics, by_day[day], as_of=as_of).matches
                baseline_seconds[day] = time.perf_counter() - t0
            if n % 20 == 0:
                log(f"  {n}/{len(days)} days")

        sweep = []
        differ = 0
        for top_k in TOP_KS:
            for threshold in SWEEP:
                point = {"top_k": top_k, "threshold": threshold}
                for name, part in [("all", topics), *halves.items()]:
                    sub = {t: members[t] for t in part}
                    point[name] = simulate(candidates, days, sub, first_day, threshold, top_k,
                                           tmp, settings, manifest)  # fmt: skip
                # Compared on the days the baseline ran: the rest get the matcher's own matches.
                before = simulate({**candidates, **reference}, days, members, first_day, threshold,
                                  top_k, tmp, settings, manifest)  # fmt: skip
                differ += before["alerts"] != point["all"]["alerts"]
                sweep.append(point)
        chosen = calibrate(sweep)

        # --- cost at 1,000 follows ---------------------------------------------------------
        rng = random.Random(14)
        others = sorted({str(m.get("title")) for m in manifest.values() if m.get("title")})
        # Headlines as topics; a small index repeats them (the cost is the same per topic).
        many = topics + [others[i % len(others)] + f" {i // len(others) or ''}".rstrip()
                         for i in rng.sample(range(10_000), 1000 - len(topics))]  # fmt: skip
        timing_days = rng.sample(days, min(args.timing_days, len(days)))
        sample = [
            doc for doc in store.chunks.get(limit=100, include=["documents"])["documents"] if doc
        ]
        t0 = time.perf_counter()
        embedder.embed(sample)
        embed_rate = len(sample) / (time.perf_counter() - t0)
        at_default = settings.model_copy(
            update={"alert_min_score": DEFAULT, "alert_top_k": DEFAULT_K}
        )
        after = FollowMatcher(at_default, retriever)
        before_m = Baseline(at_default, retriever, after)
        t0 = time.perf_counter()
        after.topic_vectors(many)
        topic_seconds = time.perf_counter() - t0
        timing = []
        for day in timing_days:
            chunks = sum(int(manifest[a].get("n_chunks", 1)) for a in by_day[day])
            as_of = date.fromisoformat(day)
            runs, seconds = {}, {}
            # Alternate which goes first, so neither always finds the other's reads cached.
            for name in ("before", "after")[:: 1 if len(timing) % 2 == 0 else -1]:
                t0 = time.perf_counter()
                runs[name] = (before_m if name == "before" else after).match(
                    many, by_day[day], as_of=as_of
                )
                seconds[name] = time.perf_counter() - t0
            old, new, old_s, new_s = (
                runs["before"],
                runs["after"],
                seconds["before"],
                seconds["after"],
            )
            same = _pairs(old) == _pairs(new)
            timing.append({"day": day, "articles": len(by_day[day]), "chunks": chunks,
                           "before_topics": old.retrieved, "before_s": old_s,
                           "dense": new.dense_pairs, "lexical": new.lexical_pairs,
                           "after_topics": new.retrieved, "prefilter_s": new.prefilter_seconds,
                           "after_s": new_s, "embed_s": chunks / embed_rate, "same": same})  # fmt: skip
            log(f"  {day}: before {old_s:.2f} s, after {new_s:.2f} s, same matches: {same}")

    body = render(sweep, chosen, differ, cycle_seconds, baseline_seconds, timing, topic_seconds,
                  embed_rate, len(days), missing, grouped.stories, halves,
                  f"{args.data_dir}: {len(manifest)} articles. {args.about}".strip())  # fmt: skip
    publish(SECTION, body, machine, started, args)


def _pairs(run: MatchRun) -> set[tuple[str, str, int]]:
    return {(t, m.article_id, m.rank) for t, ms in run.matches.items() for m in ms}


def calibrate(sweep: list[dict]) -> dict:
    """The sweep point chosen on the calibration half: the highest recall at precision >= the
    target and at most one alert per story and day (then the higher precision)."""

    def key(point: dict) -> tuple:
        cal = point["calibration"]
        ok = cal["precision"] >= TARGET_PRECISION and cal["per_day_max"] <= TARGET_PER_DAY
        return (ok, cal["recall"] if ok else cal["precision"], cal["precision"])

    return max(sweep, key=key)


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
    path = tmp / f"follows-{next(_RUNS)}.sqlite3"  # each run its own chat history
    follows = FollowStore(settings.model_copy(update={"max_follows": 1000}), path)
    every = [follows.add(Chat(1, 0), 1, topic) for topic in topics]
    for follow in every:
        follow.created = 0.0
    right = total = 0
    sent: list[tuple[str, str, str]] = []
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
            sent.append((day, alert.topic, alert.article_id))
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
        "alerts": sent,
        "precision": right / total if total else 0.0,
        "recall": len(caught) / len(topics) if topics else 0.0,
        "per_day_mean": statistics.mean(counts) if counts else 0.0,
        "per_day_max": max(counts) if counts else 0,
    }


def render(sweep, chosen, differ, cycle_seconds, baseline_seconds, timing, topic_seconds,
           embed_rate, n_days, missing, n_stories, halves, about) -> str:  # fmt: skip
    def cells(r: dict) -> list[str]:
        return [f"{r['precision']:.2f}", f"{r['recall']:.2f}"]

    rows = []
    for p in sweep:
        mark = " ←" if p is chosen else ""
        a = p["all"]
        rows.append([p["top_k"], f"{p['threshold']:.2f}{mark}", *cells(p["calibration"]),
                     *cells(p["held-out"]), len(a["alerts"]), *cells(a),
                     f"{a['per_day_mean']:.2f}, {a['per_day_max']}"])  # fmt: skip
    sweep_table = table(
        ["alert_top_k", "alert_min_score", "calibration P", "calibration R", "held-out P",
         "held-out R", "all: alerts", "all: P", "all: R", "all: alerts/story/day (mean, max)"],
        rows,
    )  # fmt: skip
    cost = table(
        ["day", "new articles", "new chunks", "before: topics retrieved", "before s",
         "after: dense pairs", "after: + lexical", "after: topics retrieved", "after: pre-check s",
         "after s", "embedding s", "same matches"],
        [[t["day"], t["articles"], t["chunks"], t["before_topics"], f"{t['before_s']:.2f}",
          t["dense"], t["lexical"], t["after_topics"], f"{t['prefilter_s']:.3f}",
          f"{t['after_s']:.2f}", f"{t['embed_s']:.1f}", "yes" if t["same"] else "NO"]
         for t in timing],
    )  # fmt: skip
    before = statistics.mean(t["before_s"] for t in timing) if timing else 0.0
    after = statistics.mean(t["after_s"] for t in timing) if timing else 0.0
    embed = statistics.mean(t["embed_s"] for t in timing) if timing else 0.0
    c, h, a = chosen["calibration"], chosen["held-out"], chosen["all"]
    before_days = list(baseline_seconds.values())
    after_days = [cycle_seconds[day] for day in baseline_seconds]
    default = next(p for p in sweep if p["top_k"] == DEFAULT_K and p["threshold"] == DEFAULT)
    notes = [
        f"Calibrated on the {len(halves['calibration'])} stories of the even lines: alert_top_k "
        f"{chosen['top_k']}, alert_min_score {chosen['threshold']:.2f} (calibration precision "
        f"{c['precision']:.2f}, recall {c['recall']:.2f}). On the {len(halves['held-out'])} "
        f"held-out stories: precision {h['precision']:.2f}, recall {h['recall']:.2f}, alerts per "
        f"story per day max {h['per_day_max']}. All {len(halves['calibration']) + len(halves['held-out'])}: "
        f"precision {a['precision']:.2f}, recall {a['recall']:.2f}, max {a['per_day_max']} per "
        f"story per day (targets >= {TARGET_PRECISION}, >= {TARGET_RECALL}, <= {TARGET_PER_DAY:g}).",
        f"The settings' defaults (alert_top_k {DEFAULT_K}, alert_min_score {DEFAULT:.2f}): held-out "
        f"precision {default['held-out']['precision']:.2f}, recall {default['held-out']['recall']:.2f}; "
        f"all: precision {default['all']['precision']:.2f}, recall {default['all']['recall']:.2f}.",
        f"Index: {about}",
        f"{n_days} days replayed, one cycle each; {len(halves['calibration']) + len(halves['held-out'])} "
        f"follows; {missing} member URLs of the stories are not in the index; {n_stories} stories "
        "after the story pass.",
        f"Before -> after, same alerts: {len(sweep) - differ} of {len(sweep)} sweep points give "
        f"identical alerts (all follows; the baseline replayed {len(baseline_seconds)} of {n_days} "
        "days), "
        "and the 1,000-follow days' matches are "
        + ("identical." if all(t["same"] for t in timing) else "NOT identical (see the table)."),
        (
            f"Replay with the 30 follows, on the days both ran: median "
            f"{statistics.median(before_days):.3f} -> {statistics.median(after_days):.3f} s per "
            f"cycle, max {max(before_days):.2f} -> {max(after_days):.2f} s."
            if before_days
            else "Replay with the 30 follows: the baseline ran on no replayed day "
            "(--baseline-every is larger than the days replayed)."
        ),
        f"Matching with 1,000 follows: mean {before:.2f} s -> {after:.2f} s per cycle, against "
        f"{embed:.1f} s of embedding for the same day's new chunks ({embed_rate:.1f} chunks/s "
        f"measured here); embedding the 1,000 topics once (cached afterwards) took {topic_seconds:.1f} s.",
    ]
    return report(
        [("Threshold sweep: calibration half, held-out half, all (one cycle per day)", sweep_table),
         ("Cost of matching per cycle at 1,000 follows, before -> after", cost)],
        notes,
    )  # fmt: skip


if __name__ == "__main__":
    main()
