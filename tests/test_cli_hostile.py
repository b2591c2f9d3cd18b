"""Every CLI command given hostile arguments: one line on stderr, exit 1 or 2, no traceback.

The table below is the specification: arguments -> exit code -> what the one line says.
Commands run in-process through typer's CliRunner (the error boundary is part of the app);
what only a process shows (Ctrl-C, undecodable argv bytes) runs `newsdesk` as a subprocess.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SEED, make_settings
from test_cli import cli_env
from typer.testing import CliRunner

import bot.cli
from index.settings import Settings

BIG = "x" * 100_000  # 100 kB in one argument
BINARY = "\udcff\udcfe\x01\x7f"  # undecodable argv bytes, as Python hands them over
LONG_NAME = "no-such-folder-" + "n" * 120  # an error line longer than 80 columns


def files(root: Path) -> dict[str, str]:
    """Hostile files for the commands that read one."""
    made = {
        "empty": root / "empty.jsonl",
        "malformed": root / "malformed.jsonl",
        "binary": root / "binary.jsonl",
        "noquestion": root / "noquestion.jsonl",
        "folder": root / "a-folder",
    }
    made["empty"].write_text("")
    made["malformed"].write_text('{"question": "who?"\n')
    made["binary"].write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 50)
    made["noquestion"].write_text('{"answer": "x"}\n')
    made["folder"].mkdir()
    return {k: str(v) for k, v in made.items()} | {"missing": str(root / "missing.jsonl")}


# (arguments, exit code, words the one line on stderr contains); {name} is a file from files().
CASES: list[tuple[list[str], int, str]] = [
    (["ask", ""], 1, "Please ask a question in words"),
    (["ask", "???"], 1, "couldn't find any words"),
    (["ask", "   \t  "], 1, "Please ask a question in words"),
    (["ask", BIG], 1, "characters long"),
    (["ask", BINARY], 1, "couldn't find any words"),
    (["ask", "who won?", "--as-of", "2022-13-45"], 2, "is not a date"),
    (["ask", "who won?", "--as-of", ""], 2, "is not a date"),
    (["ask", "who won?", "--as-of", BINARY], 2, "is not a date"),
    (["ask"], 2, "Missing argument"),
    (["search", ""], 1, "nothing to search for"),
    (["search", BIG], 1, "characters long"),
    (["search", "defence", "-k", "-1"], 2, "-k"),
    (["search", "defence", "-k", "many"], 2, "-k"),
    (["index", "{missing}"], 1, "no such file or folder"),
    (["index", BINARY], 1, "no such file or folder"),
    (["index", "{binary}"], 1, "binary file"),
    (["index", LONG_NAME], 1, "no such file or folder"),
    (["eval", "{missing}"], 1, "cannot read"),
    (["eval", "{folder}"], 1, "cannot read"),
    (["eval", "{empty}"], 1, "holds no questions"),
    (["eval", "{malformed}"], 1, "not JSON"),
    (["eval", "{binary}"], 1, "cannot use"),
    (["eval", "{noquestion}"], 1, "needs an object with a 'question'"),
    (["eval", BINARY], 1, "cannot read"),
    (["eval", "{malformed}", "--limit", "many"], 2, "--limit"),
    (["status", "--json", BIG], 2, "unexpected extra argument"),
    (["status", "--bogus"], 2, "No such option"),
    (["chat", BINARY], 2, "unexpected extra argument"),
    (["telegram"], 2, "TELEGRAM_BOT_TOKEN is not set"),
    (["telegram", "--port", "http"], 2, "--port"),
    ([BINARY], 2, "No such command"),
]

# With the data dir being a file, every command says so in one line naming it.
DATA_DIR_IS_A_FILE: list[list[str]] = [
    ["index"],
    ["search", "defence"],
    ["status"],
    ["ask", "What did Pakistan and Azerbaijan agree?"],
    ["chat"],
    ["eval", "{malformed}"],
]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, dict[str, str]]:
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / SEED.name).write_bytes(SEED.read_bytes())
    settings = make_settings(tmp_path)
    monkeypatch.setattr(bot.cli, "get_settings", lambda: settings)
    return settings, files(tmp_path)


def invoke(args: list[str], named: dict[str, str]) -> tuple[int, str, str]:
    args = [a.format(**named) if a.startswith("{") else a for a in args]
    result = CliRunner().invoke(bot.cli.app, args, input="")
    # An exception that escaped the boundary would be a traceback in a real run.
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        args[:3],
        repr(result.exception),
    )
    return result.exit_code, result.stdout, result.stderr


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr[:2000]
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize(("args", "code", "words"), CASES, ids=lambda v: repr(v)[:40])
def test_hostile_arguments_get_one_line_and_exit_1_or_2(
    cli: tuple[Settings, dict[str, str]], args: list[str], code: int, words: str
) -> None:
    exit_code, stdout, stderr = invoke(args, cli[1])
    assert "Traceback" not in stdout + stderr
    assert exit_code == code, (exit_code, stderr[:500])
    if args[0] == "index":  # the per-file error line, then the summary on stdout
        [line] = [line for line in stderr.splitlines() if line.strip()]
        assert "failed 1" in stdout
    else:
        line = one_error_line(stderr)
        assert stdout == ""
    assert line.startswith(("newsdesk", "error ")), line
    assert words.lower() in line.lower(), line


@pytest.mark.parametrize("args", DATA_DIR_IS_A_FILE, ids=lambda v: v[0])
def test_a_data_dir_that_is_a_file_is_named_in_one_line(
    cli: tuple[Settings, dict[str, str]], args: list[str]
) -> None:
    settings, named = cli
    settings.data_dir.write_text("not a folder")
    exit_code, stdout, stderr = invoke(args, named)
    assert exit_code == 1 and stdout == ""
    line = one_error_line(stderr)
    assert line == (
        f"newsdesk: the data dir {settings.data_dir} is a file, not a folder: move it away, "
        "or set NEWSDESK_DATA_DIR to a folder"
    )


def test_a_bm25_path_that_is_a_file_is_named_in_one_line(
    cli: tuple[Settings, dict[str, str]],
) -> None:
    settings, named = cli
    settings.data_dir.mkdir()
    (settings.data_dir / "bm25").write_text("not a folder")
    exit_code, _, stderr = invoke(["search", "defence"], named)
    assert exit_code == 1
    assert f"bm25 folder {settings.data_dir / 'bm25'} is a file" in one_error_line(stderr)


# --- what only a process shows --------------------------------------------------------------


def test_undecodable_argv_bytes_in_a_real_process(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data", tmp_path / "corpus")
    for args, code in [([b"ask", b"\xff\xfe\x80"], 1)]:
        proc = subprocess.run(
            [sys.executable, "-m", "bot.cli", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            timeout=120,
        )
        stderr = proc.stderr.decode("utf-8", "replace")
        assert proc.returncode == code, stderr
        assert one_error_line(stderr).startswith("newsdesk")


def test_ctrl_c_during_index_prints_one_line(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    lines = [
        f'{{"url": "https://example.com/{i}", "title": "Council budget story {i}", '
        f'"published": "2022-06-01", "text": "{" ".join(["The council met about budget item."] * 60)} {i}"}}'
        for i in range(60)
    ]
    (corpus / "feed.jsonl").write_text("\n".join(lines) + "\n")
    env = cli_env(tmp_path / "data", corpus, NEWSDESK_EMBED_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "index"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell's background job ignores SIGINT, and the child would inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120  # bounds a hung test only
        # Indexing has begun once the index's database exists.
        while not (tmp_path / "data" / "chroma" / "chroma.sqlite3").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert one_error_line(stderr) == f"newsdesk: {bot.cli.INDEX_INTERRUPTED}"
    assert stdout == ""
