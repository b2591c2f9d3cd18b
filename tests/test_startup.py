"""Start-up: what each front end loads before it can serve. The REPL's prompt comes before
anything heavy is imported (its chat engine loads behind it, and a load that fails is one
line, not the end of the session); a one-off offline `ask` loads no LLM client. The times
themselves are measured in bench/answer_bench.py, never asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from chroma_run import free_port
from conftest import newsdesk
from test_cli import cli_env

from index.settings import Settings

HEAVY = ("chromadb", "llama_index.core", "onnxruntime", "bm25s")
# What an offline answer never needs: the LLM clients and their tokenizers.
LLM_ONLY = ("openai", "llama_index.llms.openai", "tiktoken", "nltk")

# Runs `newsdesk chat` with input() replaced: the first call records which heavy modules are
# loaded at that moment, and only then lets the engine's loader thread start; the questions
# come from argv. The gate makes this exact: the loader cannot have imported anything yet.
DRIVER = """
import builtins, json, sys, threading
import bot.repl

gate = threading.Event()
load = bot.repl._Loader._load
bot.repl._Loader._load = lambda self: (gate.wait(), load(self))
heavy_names, lines = json.loads(sys.argv[1]), iter(sys.argv[2:])

def fake_input(prompt=""):
    if not gate.is_set():
        heavy = sorted(m for m in heavy_names if m in sys.modules)
        print("AT THE PROMPT", json.dumps(heavy), flush=True)
        gate.set()
    try:
        return next(lines)
    except StopIteration:
        raise EOFError from None

builtins.input = fake_input
sys.argv = ["newsdesk", "chat"]
from bot.cli import main
main()
"""


def test_the_prompt_comes_before_the_engine_loads(seeded: Settings, tmp_path: Path) -> None:
    env = cli_env(seeded.data_dir, seeded.corpus_dir)
    question = "What did Pakistan and Azerbaijan agree about defence hardware?"
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(HEAVY), question, "/status"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    banner, prompt, *rest = proc.stdout.splitlines()
    assert banner.startswith("newsdesk · offline answers · ")
    assert str(seeded.data_dir) in banner
    assert prompt == "AT THE PROMPT []"
    answer = "\n".join(rest)
    assert "MOU" in answer and "Sources" in answer  # then the engine, loaded behind it, answers
    assert "4 articles, published 2022-06-10 to 2025-01-24 · offline answers" in answer
    assert "Traceback" not in proc.stdout + proc.stderr


def test_an_engine_that_cannot_load_is_one_line_and_tried_again(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data", tmp_path / "corpus")
    env |= {"NEWSDESK_CHROMA_HOST": "127.0.0.1", "NEWSDESK_CHROMA_PORT": str(free_port())}
    script = "\n".join(["Who won the election?", "/status", "/help", "/quit"])
    proc = newsdesk("chat", env=env, cwd=tmp_path, input=script, timeout=180)
    assert proc.returncode == 0, proc.stderr
    failures = [line for line in proc.stdout.splitlines() if "index unavailable" in line]
    assert len(failures) == 2, proc.stdout  # each attempt reports, none ends the session
    assert "/sources" in proc.stdout  # /help still answered
    assert "Traceback" not in proc.stdout + proc.stderr


# Runs `newsdesk ask`; where it would end the process, it reports the heavy modules loaded.
ASK_DRIVER = """
import json, sys
import bot.cli

heavy_names = json.loads(sys.argv[1])

def report():
    sys.stdout.flush()
    print("LOADED", json.dumps(sorted(m for m in heavy_names if m in sys.modules)), flush=True)

bot.cli._exit_now = report
sys.argv = ["newsdesk", "ask", sys.argv[2], "--json"]
bot.cli.main()
"""


def test_a_one_off_offline_ask_loads_no_llm_client(seeded: Settings, tmp_path: Path) -> None:
    env = cli_env(seeded.data_dir, seeded.corpus_dir)
    question = "What did Pakistan and Azerbaijan agree about defence hardware?"
    proc = subprocess.run(
        [sys.executable, "-c", ASK_DRIVER, json.dumps(HEAVY + LLM_ONLY), question],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    answer, loaded = proc.stdout.strip().splitlines()
    assert json.loads(answer)["citations"][0]["published"] == "2025-01-24"
    # LlamaIndex: `ask` answers through the query engine (tests/test_cli.py checks that).
    assert loaded == 'LOADED ["bm25s", "chromadb", "llama_index.core", "onnxruntime"]'
