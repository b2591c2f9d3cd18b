"""The `newsdesk` command as other tools call it (subprocesses, JSON on stdout, exit codes)
and as a person reads it (in process: status text, --version)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from conftest import OTHER_ARTICLES, SEED, newsdesk

from index.models import Answer, Citation

SEED_TITLE = (
    "Pakistan and Azerbaijan agree to deepen trade, energy and defence cooperation "
    "at Joint Ministerial Commission"
)
SUMMARY_KEYS = {"added", "updated", "unchanged", "removed", "failed", "chunks", "seconds"}


def cli_env(data_dir: Path, corpus_dir: Path, **extra: str) -> dict[str, str]:
    """The caller's environment minus any newsdesk/LLM/Telegram configuration."""
    drop = ("NEWSDESK_", "OPENAI_", "TELEGRAM_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env |= {"NEWSDESK_DATA_DIR": str(data_dir), "NEWSDESK_CORPUS_DIR": str(corpus_dir), **extra}
    return env


@dataclass
class Indexed:
    root: Path
    env: dict[str, str]
    first: subprocess.CompletedProcess[str]  # with one bad file
    second: subprocess.CompletedProcess[str]  # bad file deleted, plain summary


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Indexed:
    root = tmp_path_factory.mktemp("cli")
    corpus = root / "corpus"
    corpus.mkdir()
    shutil.copy(SEED, corpus / SEED.name)
    (corpus / "other.jsonl").write_text(OTHER_ARTICLES + "\n", encoding="utf-8")
    (corpus / "broken.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 20)
    env = cli_env(root / "data", corpus)
    first = newsdesk("index", "--json", env=env, cwd=root)
    (corpus / "broken.md").unlink()
    second = newsdesk("index", env=env, cwd=root)
    return Indexed(root, env, first, second)


def one_json_object(proc: subprocess.CompletedProcess[str]) -> dict:
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stdout
    data = json.loads(lines[0])
    assert isinstance(data, dict)
    return data


def test_index_json_summary_and_exit_1_on_a_failed_file(indexed: Indexed) -> None:
    proc = indexed.first
    assert proc.returncode == 1, proc.stderr
    summary = one_json_object(proc)
    assert summary.keys() >= SUMMARY_KEYS
    assert (summary["added"], summary["updated"], summary["unchanged"]) == (4, 0, 0)
    assert (summary["removed"], summary["failed"]) == (0, 1)
    assert summary["chunks"] >= 5 and type(summary["chunks"]) is int
    assert isinstance(summary["seconds"], float) and summary["seconds"] >= 0
    # one line on stderr names the file and the reason; no traceback
    bad = [line for line in proc.stderr.splitlines() if "broken.md" in line]
    assert len(bad) == 1 and "binary file" in bad[0]
    assert "Traceback" not in proc.stderr


def test_index_rerun_prints_a_summary_and_exits_0(indexed: Indexed) -> None:
    proc = indexed.second
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    for part in ("added 0", "updated 0", "unchanged 4", "removed 0", "failed 0", "0 chunks"):
        assert part in lines[0], lines[0]


def test_status_json(indexed: Indexed) -> None:
    proc = newsdesk("status", "--json", env=indexed.env, cwd=indexed.root)
    assert proc.returncode == 0, proc.stderr
    status = one_json_object(proc)
    first = one_json_object(indexed.first)
    assert type(status["articles"]) is int and type(status["chunks"]) is int
    assert status["articles"] == 4
    assert status["chunks"] == first["chunks"]
    assert status["store_mode"] == "embedded"
    assert status["data_dir"] == str((indexed.root / "data").resolve())
    assert status["embedder"].startswith("onnx:all-MiniLM-L6-v2")
    assert status["last_indexed"]


def test_search_json_finds_the_seed_article(indexed: Indexed) -> None:
    proc = newsdesk("search", "defence MOU", "-k", "2", "--json", env=indexed.env, cwd=indexed.root)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert isinstance(rows, list) and len(rows) == 2  # -k 2 of the 4 articles
    for row in rows:
        assert {"url", "title", "source", "published", "score", "text"} <= row.keys()
        assert isinstance(row["score"], float) and isinstance(row["text"], str)
    top = rows[0]
    assert top["title"] == SEED_TITLE
    assert (top["source"], top["published"], top["url"]) == ("newsdesk seed", "2025-01-24", "")
    assert "MOU" in top["text"]
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert len({r["title"] for r in rows}) == len(rows)  # one row per article


def test_ask_json(indexed: Indexed) -> None:
    proc = newsdesk(
        "ask",
        "What did Pakistan and Azerbaijan agree about defence hardware?",
        "--json",
        env=indexed.env,
        cwd=indexed.root,
    )
    assert proc.returncode == 0, proc.stderr
    answer = one_json_object(proc)
    assert {"text", "refused", "citations"} <= answer.keys()
    assert answer["refused"] is False
    assert isinstance(answer["text"], str) and "[1]" in answer["text"]
    assert answer["citations"][0]["title"] == SEED_TITLE
    assert answer["citations"][0]["published"] == "2025-01-24"


HELP = {
    "": ["index", "search", "status", "ask"],
    "index": ["--rebuild", "--json", "Index articles"],
    "search": ["-k", "--json", "QUERY"],
    "status": ["--json", "indexed"],
    "ask": ["--json", "--as-of", "QUESTION"],
}

# Every command's --help through the real entry point, in one interpreter (start-up is most
# of the cost); the top-level --help also runs as `python -m bot.cli --help` below.
HELP_DRIVER = """
import contextlib, io, json, sys
from bot.cli import main
out = {}
for command in sys.argv[1:]:
    sys.argv = ["newsdesk", *command.split(), "--help"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
    out[command] = [code, buf.getvalue()]
print(json.dumps(out))
"""


def test_help_of_each_command(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data", tmp_path / "corpus") | {"COLUMNS": "200"}
    top = newsdesk("--help", env=env, cwd=tmp_path)
    assert top.returncode == 0, top.stderr
    assert "Usage" in top.stdout and all(word in top.stdout for word in HELP[""])
    proc = subprocess.run(
        [sys.executable, "-c", HELP_DRIVER, *HELP],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.splitlines()[-1])
    for command, words in HELP.items():
        code, text = results[command]
        assert code == 0, (command, text)
        assert "Usage" in text, (command, text)
        for word in words:
            assert word in text, (command, word)
    assert not (tmp_path / "data").exists()  # --help touches nothing


EVAL_KEYS = {
    "hit@1", "hit@5", "hit@10", "mrr@10", "accuracy", "citation_precision", "citation_support",
    "refusal_rate", "false_refusal_rate", "p50_ms", "p95_ms", "n_answerable", "n_unanswerable",
}  # fmt: skip


def test_eval_json_indexes_the_corpus_and_scores_it(tmp_path: Path) -> None:
    feed = tmp_path / "feed.jsonl"
    feed.write_text(OTHER_ARTICLES + "\n", encoding="utf-8")
    questions = [
        {"question": "Why did rail workers in Britain walk out?", "answer": "pay",
         "gold_urls": ["https://example.com/2022/06/10/rail-strike"], "answerable": True,
         "date": "2022-06-11"},
        # The feed holds a copy of this story, not the one the question was written from:
        # citing it is supported (it holds the answer) but not precise (not a gold URL).
        {"question": "What temperature did Seville reach in early July?", "answer": "44 degrees",
         "gold_urls": ["https://elsewhere.example/seville-record"], "answerable": True,
         "date": "2022-07-03"},
        {"question": "Which team won the 2031 Cricket World Cup final?", "answer": "",
         "gold_urls": [], "answerable": False, "date": "2031-12-01"},
        # A conversation: scored turn by turn, apart from the single questions above.
        {"id": "chat", "date": "2022-08-16", "turns": [
            {"question": "Where did the chipmaker open a new plant?", "answer": "Arizona",
             "gold_urls": ["https://example.com/2022/08/15/chip-plant"]},
            {"question": "How many people will it employ?", "answer": "2,000",
             "gold_urls": ["https://example.com/2022/08/15/chip-plant"]},
        ]},
    ]  # fmt: skip
    qfile = tmp_path / "questions.jsonl"
    qfile.write_text("\n".join(json.dumps(q) for q in questions) + "\n", encoding="utf-8")
    env = cli_env(tmp_path / "data", tmp_path / "corpus")

    proc = newsdesk("eval", str(qfile), "--corpus", str(feed), "--json", env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = one_json_object(proc)
    assert result.keys() >= EVAL_KEYS
    assert (result["n_answerable"], result["n_unanswerable"]) == (2, 1)
    assert result["hit@1"] == 0.5 and result["hit@10"] == 0.5  # the copy never counts as a hit
    assert result["accuracy"] == 1.0
    assert result["citation_support"] == 1.0
    assert result["citation_precision"] <= 0.5
    assert (result["refusal_rate"], result["false_refusal_rate"]) == (1.0, 0.0)
    assert 0 < result["p50_ms"] <= result["p95_ms"]
    assert (result["n_conversations"], result["n_followups"]) == (1, 1)
    assert result["turn1_accuracy"] == 1.0 and result["followup_accuracy"] == 1.0
    assert result["followup_citation_precision"] == 1.0
    assert result["followup_refusal_rate"] == 0.0


# --- in process: what a person reads ------------------------------------------------------------
@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Invoke the app in this process with ``env`` as the only newsdesk settings."""
    from typer.testing import CliRunner

    from bot.cli import app
    from index.settings import get_settings

    def invoke(*args: str, env: dict[str, str]):
        for var in list(os.environ):
            if var.startswith(("NEWSDESK_", "OPENAI_", "TELEGRAM_")):
                monkeypatch.delenv(var)
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        monkeypatch.chdir(tmp_path)  # away from any .env
        get_settings.cache_clear()
        try:
            return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
        finally:
            get_settings.cache_clear()

    return invoke


def status_lines(text: str) -> dict[str, str]:
    return dict(line.strip().split(": ", 1) for line in text.splitlines() if ": " in line)


def test_version(run_cli) -> None:
    from importlib.metadata import version

    result = run_cli("--version", env={})
    assert result.exit_code == 0
    assert result.stdout == f"newsdesk {version('newsdesk')}\n"


def test_status_text_reads_as_words_and_dates(run_cli, seeded) -> None:
    result = run_cli("status", env={"NEWSDESK_DATA_DIR": str(seeded.data_dir)})
    assert result.exit_code == 0, result.output
    lines = status_lines(result.stdout)
    assert lines["articles"] == "4 (published 2022-06-10 to 2025-01-24)"
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d \((just now|\d+ (minute|hour)s? ago)\)", lines["last change"]
    )
    assert lines["answers"] == "offline (extractive, no LLM)"
    assert lines["data dir"] == str(seeded.data_dir)
    assert "version" not in lines and "None" not in result.stdout

    llm = {"NEWSDESK_DATA_DIR": str(seeded.data_dir), "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    result = run_cli("status", env=llm | {"NEWSDESK_LLM_MODEL": "qwen2.5:7b"})
    assert status_lines(result.stdout)["answers"] == "LLM qwen2.5:7b at http://127.0.0.1:9/v1"


def test_status_where_there_is_no_index_creates_nothing(run_cli, tmp_path: Path) -> None:
    result = run_cli("status", env={"XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert result.exit_code == 0, result.output
    lines = status_lines(result.stdout)
    assert lines["data dir"] == str(tmp_path / "xdg" / "newsdesk")
    assert lines["articles"] == "0 (add some with `newsdesk index PATH`)"
    assert lines["last change"] == "never"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["ask", "Who won the election?"], ["search", "election"]])
def test_questions_without_an_index_say_where_they_looked(
    command: list[str], tmp_path: Path
) -> None:
    env = cli_env(tmp_path / "nothing", tmp_path / "corpus")
    proc = newsdesk(*command, env=env, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"newsdesk: no articles are indexed in {tmp_path / 'nothing'} (NEWSDESK_DATA_DIR): add "
        "some with `newsdesk index PATH`, or set NEWSDESK_DATA_DIR to your index's folder"
    )
    assert list(tmp_path.iterdir()) == []


# --- `ask` answers through the query engine, and prints what it returns ---------------------------
def engine_answer() -> Answer:
    quote = "Rail workers across Britain walked out on Friday."
    cited = Citation(1, "Rail workers strike", "example.com", "2022-06-10", "https://e.x/r", quote)
    return Answer("The engine says rail workers struck [1].", [cited], note="a note")


@pytest.fixture
def engine_queries(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, date | None]]:
    """``NewsQueryEngine`` answers every question with ``engine_answer()``; the questions it
    was asked, with its ``as_of``, are listed. A front end that answered without the engine
    would print another answer, and leave the list empty."""
    from llama_index.core.base.response.schema import Response

    from index import engine

    asked: list[tuple[str, date | None]] = []

    def query(self: engine.NewsQueryEngine, bundle: object) -> Response:
        asked.append((bundle.query_str, self.as_of))  # type: ignore[attr-defined]
        answer = engine_answer()
        return Response(answer.text, engine.source_nodes(answer), {"answer": answer})

    monkeypatch.setattr(engine.NewsQueryEngine, "_query", query)
    return asked


def test_ask_prints_the_query_engines_answer(run_cli, seeded, engine_queries) -> None:
    env = {"NEWSDESK_DATA_DIR": str(seeded.data_dir)}
    result = run_cli("ask", "Who went on strike?", "--as-of", "2022-07-01", env=env)
    assert result.exit_code == 0, result.output
    assert engine_queries == [("Who went on strike?", date(2022, 7, 1))]
    assert result.stdout == (
        "The engine says rail workers struck [1].\n"
        "a note\n"
        "\n"
        "Sources\n"
        "  [1] Rail workers strike — example.com, 2022-06-10\n"
        "     https://e.x/r\n"
    )


def test_ask_json_is_the_query_engines_answer(run_cli, seeded, engine_queries) -> None:
    result = run_cli(
        "ask", "Who went on strike?", "--json", env={"NEWSDESK_DATA_DIR": str(seeded.data_dir)}
    )
    assert result.exit_code == 0, result.output
    assert engine_queries == [("Who went on strike?", None)]
    expected = engine_answer().to_dict()
    keys = ("text", "refused", "citations", "see_also", "conflicts", "mode", "note")
    assert json.loads(result.stdout) == {key: expected[key] for key in keys}


def test_search_lists_what_the_engines_retriever_returns(
    run_cli, seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    from index import engine
    from index.models import ArticleHit, Passage

    # The engine's retriever finds one made-up article: search must list exactly that.
    hit = ArticleHit(
        article_id="a1",
        title="Rail workers strike",
        url="https://e.x/r",
        source="example.com",
        published="2022-06-10",
        published_ts=1654819200,
        score=0.5,
        passages=[Passage("a1#0", "Rail workers walked out.", 0)],
    )
    monkeypatch.setattr(
        engine.ArticleRetriever, "_retrieve", lambda self, bundle: [engine.article_node(hit)]
    )
    result = run_cli("search", "strike", "--json", env={"NEWSDESK_DATA_DIR": str(seeded.data_dir)})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {
            "url": "https://e.x/r",
            "title": "Rail workers strike",
            "source": "example.com",
            "published": "2022-06-10",
            "score": 0.5,
            "text": "Rail workers walked out.",
            "article_id": "a1",
        }
    ]
