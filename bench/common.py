"""Shared helpers for the benchmarks in this folder.

- locating the RealTimeQA data (``REPO.parent / "shared/data/realtimeqa"``) and skipping
  cleanly when it is absent;
- temporary JSONL subsets (first N articles), always outside the repository;
- running a command in a subprocess while sampling its peak RSS (children included) and
  wall time;
- percentiles, number formatting, and ``update_results``, which rewrites one
  ``## section`` of ``bench/RESULTS.md`` so that each benchmark owns its own section.

Nothing here is timed itself; the scripts import it (``python bench/index_bench.py``
puts this folder on ``sys.path``).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DATA = REPO.parent / "shared" / "data" / "realtimeqa"
RESULTS = BENCH / "RESULTS.md"
# The tests' helpers (a real `chroma run`, the fake Bot API) serve the benchmarks too.
sys.path.insert(0, str(REPO / "tests"))
from chroma_run import ChromaRun  # noqa: E402, F401  (re-exported for the scripts)

RESULTS_HEADER = (
    "# Benchmark results\n\n"
    "Written by the scripts in `bench/`; each script rewrites only its own section.\n"
)

# Settings that would take newsdesk off the offline, embedded path the targets are stated for.
_DROP_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "NEWSDESK_OPENAI_API_KEY",
    "NEWSDESK_OPENAI_BASE_URL",
    "NEWSDESK_CHROMA_HOST",
    "NEWSDESK_CHROMA_PORT",
    "NEWSDESK_EMBEDDER",
)


# --- data ---------------------------------------------------------------------------------
def data_file(name: str) -> Path:
    """``name`` inside the shared data folder; an existing path is taken as given."""
    path = Path(name)
    if path.is_absolute() or path.exists():
        return path
    return DATA / name


def require_data(*names: str) -> list[Path]:
    """The data files, or a clear message and exit status 0 (the benchmark is skipped)."""
    paths = [data_file(n) for n in names]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        print(
            "benchmark skipped: data not found: "
            + ", ".join(str(p) for p in missing)
            + f"\n(expected the RealTimeQA files under {DATA})"
        )
        sys.exit(0)
    return paths


def subset_jsonl(source: Path, limit: int, folder: Path) -> Path:
    """The first ``limit`` article lines of ``source`` as a new file in ``folder``
    (``limit`` 0 returns ``source`` itself: nothing is copied)."""
    if limit <= 0:
        return source
    target = folder / f"{source.stem}-first{limit}.jsonl"
    kept = 0
    with source.open("rb") as src, target.open("wb") as dst:
        for line in src:
            if not line.strip():
                continue
            dst.write(line if line.endswith(b"\n") else line + b"\n")
            kept += 1
            if kept >= limit:
                break
    return target


def count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


@contextlib.contextmanager
def temp_dir(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A scratch folder in the system temp dir (never in the repo), removed unless ``keep``."""
    if keep:
        yield Path(tempfile.mkdtemp(prefix=prefix))
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        yield Path(name)


# --- subprocesses ---------------------------------------------------------------------------
def newsdesk_cmd() -> list[str]:
    """The installed ``newsdesk`` entry point beside this interpreter, else ``-m bot.cli``."""
    script = Path(sys.executable).parent / "newsdesk"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "bot.cli"]


def bench_env(data_dir: Path | None = None, **extra: str) -> dict[str, str]:
    """The caller's environment, minus what would select an LLM, a Chroma server or another
    embedder, plus ``NEWSDESK_DATA_DIR``."""
    env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
    if data_dir is not None:
        env["NEWSDESK_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


def newsdesk_overrides() -> dict[str, str]:
    """``NEWSDESK_*`` settings the benchmark inherits from the environment (reported)."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith("NEWSDESK_")}


@dataclass
class RunResult:
    cmd: list[str]
    returncode: int
    seconds: float  # wall time from spawn to exit
    peak_rss: int  # bytes, the process plus all its children, sampled
    stdout: str
    stderr: str
    samples: int = 0
    # user + system CPU of the process and the children it waited for: steadier than the
    # wall time on a loaded machine, and it counts work done in parallel threads twice.
    cpu_seconds: float = 0.0

    def json(self) -> dict:
        """The last stdout line that parses as a JSON object (tools may print before it)."""
        for line in reversed(self.stdout.strip().splitlines()):
            line = line.strip()
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    return json.loads(line)
        raise RuntimeError(f"no JSON object in the output of {shlex.join(self.cmd)}")

    def check(self, ok: Sequence[int] = (0,)) -> RunResult:
        if self.returncode not in ok:
            tail = "\n".join(self.stderr.strip().splitlines()[-20:])
            raise RuntimeError(f"`{shlex.join(self.cmd)}` exited with {self.returncode}:\n{tail}")
        return self


def run_measured(
    cmd: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    interval: float = 0.05,
) -> RunResult:
    """Run ``cmd`` to completion, sampling RSS of the process tree every ``interval`` s.

    Sampling (not ``getrusage``) because ru_maxrss of children is the max of any single
    child, while the tree's *sum* is what the machine has to hold."""
    cmd = [str(c) for c in cmd]
    peak = 0
    samples = 0
    done = threading.Event()
    started = time.perf_counter()
    proc = psutil.Popen(
        cmd,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def sample() -> None:
        nonlocal peak, samples
        while not done.is_set():
            total = 0
            try:
                procs = [proc, *proc.children(recursive=True)]
            except psutil.Error:
                break  # the process is gone
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
            peak = max(peak, total)
            samples += 1
            done.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # Children's rusage grows as each one is reaped: with one run at a time (as in the
    # start-up rounds), its change over this run is this command's.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        stdout, stderr = proc.communicate()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return RunResult(cmd, proc.returncode, seconds, peak, stdout, stderr, samples, cpu)


def run_worker(name: str, args: Sequence[str], *, env: dict[str, str], cwd: Path) -> RunResult:
    """``bench/workers.py NAME ARGS`` in a fresh interpreter (fresh model load, own RSS)."""
    cmd = [sys.executable, str(BENCH / "workers.py"), name, *args]
    return run_measured(cmd, env=env, cwd=cwd).check()


# --- numbers --------------------------------------------------------------------------------
def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile, the same definition ``newsdesk eval`` uses."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:,.0f} MB"


def secs(value: float) -> str:
    return f"{value:,.2f} s" if value < 100 else f"{value:,.0f} s"


def verdict(ok: bool) -> str:
    return "**pass**" if ok else "**FAIL**"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (also readable when printed to a terminal)."""
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"

    rule = "| " + " | ".join("-" * w for w in widths) + " |"
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


# --- machine and results ----------------------------------------------------------------------
def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _pkg(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "-"


@dataclass
class Machine:
    """Facts recorded when a benchmark starts (load average: other jobs skew timings)."""

    cores: int = field(default_factory=lambda: os.cpu_count() or 0)
    cpu: str = field(default_factory=cpu_model)
    python: str = field(default_factory=platform.python_version)
    ram: int = field(default_factory=lambda: psutil.virtual_memory().total)
    load: tuple[float, float, float] = field(default_factory=os.getloadavg)

    def markdown(self) -> str:
        load = ", ".join(f"{x:.2f}" for x in self.load)
        pkgs = ", ".join(
            f"{p} {_pkg(p)}"
            for p in ("llama-index-core", "chromadb", "onnxruntime", "bm25s", "tokenizers")
        )
        return (
            f"- machine: {self.cores} cores, {self.cpu}, {self.ram / 2**30:.1f} GiB RAM, "
            f"Python {self.python}, {platform.system()} {platform.release()}\n"
            f"- load average at start (1/5/15 min): {load}\n"
            f"- packages: {pkgs}"
        )


def command_line() -> str:
    """How this script was invoked, with paths inside the repo made relative to it."""

    def rel(arg: str) -> str:
        with contextlib.suppress(ValueError):
            return str(Path(arg).resolve().relative_to(REPO)) if "/" in arg else arg
        return arg

    return shlex.join([rel(sys.executable), rel(sys.argv[0]), *sys.argv[1:]])


def section_preamble(machine: Machine, started: datetime) -> str:
    overrides = newsdesk_overrides()
    env = (
        "- newsdesk settings from the environment: "
        + ", ".join(f"`{k}={v}`" for k, v in overrides.items())
        if overrides
        else "- newsdesk settings: defaults (offline answers, embedded Chroma, local embedder)"
    )
    return (
        f"- date: {started:%Y-%m-%d %H:%M} (took {_elapsed(started)}; load average at end "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())})\n"
        f"{machine.markdown()}\n"
        f"{env}\n"
        f"- command: `{command_line()}` (from the repository root)\n"
    )


def _elapsed(started: datetime) -> str:
    seconds = (datetime.now() - started).total_seconds()
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def update_results(section_title: str, markdown: str, path: Path = RESULTS) -> None:
    """Replace the ``## section_title`` section of ``path`` with ``markdown`` (or append it).

    ``markdown`` should start with ``section_preamble(...)``. The file is locked while it is
    rewritten so two benchmarks finishing together don't drop each other's section."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        text = fh.read() or RESULTS_HEADER
        new = f"## {section_title}\n\n{markdown.strip()}\n"
        # A section runs from its heading to the next "## " heading (or the end).
        pattern = re.compile(
            rf"^## {re.escape(section_title)}[ \t]*\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL
        )
        if pattern.search(text):
            text = pattern.sub(lambda _: new + "\n", text, count=1)
        else:
            text = text.rstrip("\n") + "\n\n" + new
        fh.seek(0)
        fh.truncate()
        fh.write(text.rstrip("\n") + "\n")
        fh.flush()
        fcntl.flock(fh, fcntl.LOCK_UN)


# --- helpers for the load and growth benchmarks -----------------------------------------------
def read_jsonl(path: Path, limit: int = 0) -> list[dict]:
    """The JSON objects of ``path``, one per non-empty line (first ``limit``; 0 = all)."""
    rows: list[dict] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            rows.append(json.loads(line))
            if limit and len(rows) >= limit:
                break
    return rows


def dir_size(path: Path) -> int:
    """Bytes allocated on disk by the files under ``path`` (like ``du``; sparse files count
    only what they use)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(root, name))
                total += st.st_blocks * 512 if hasattr(st, "st_blocks") else st.st_size
    return total


class RssSampler:
    """Samples the RSS of one process (by default this one; ``children`` adds its
    descendants) every ``interval`` s in a daemon thread. ``peak`` since the last
    ``reset_peak()``; ``current()`` reads it now. Use as a context manager."""

    def __init__(
        self, pid: int | None = None, *, children: bool = False, interval: float = 0.05
    ) -> None:
        self.process = psutil.Process(pid)
        self.children = children
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def current(self) -> int:
        procs = [self.process]
        if self.children:
            with contextlib.suppress(psutil.Error):
                procs += self.process.children(recursive=True)
        total = 0
        for p in procs:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def reset_peak(self) -> int:
        """Start a new peak from the current RSS; returns it."""
        self.peak = self.current()
        return self.peak

    def _run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self.current())
            self.samples += 1
            self._done.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.reset_peak()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()


def report(parts: list[tuple[str, str]], notes: list[str]) -> str:
    """A RESULTS.md section body: each (heading, markdown) part, then the notes as a list."""
    body = [f"### {heading}\n\n{markdown}" for heading, markdown in parts]
    body.append("### Notes\n\n" + "\n".join(f"- {n}" for n in notes))
    return "\n\n".join(body)


# --- command line and publishing -------------------------------------------------------------
def log(message: str) -> None:
    """Progress for the person running a benchmark: stderr, so stdout stays the report."""
    print(message, file=sys.stderr, flush=True)


def add_output_options(parser: argparse.ArgumentParser, keep_help: str = "") -> None:
    """--keep, --no-write and --results, the same in every benchmark."""
    parser.add_argument("--keep", action="store_true", help=keep_help or "keep the temp folder")
    parser.add_argument(
        "--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        help="Markdown file whose section is rewritten (default bench/RESULTS.md)",
    )


def publish(
    section: str, body: str, machine: Machine, started: datetime, args: argparse.Namespace
) -> None:
    """Print a benchmark's report and, unless --no-write, make it its RESULTS.md section."""
    print(body)
    if not args.no_write:
        update_results(section, section_preamble(machine, started) + "\n" + body, args.results)
        log(f"written to the '{section}' section of {args.results}")
