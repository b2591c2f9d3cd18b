"""Secrets never printed: the bot token, the OpenAI key, the webhook secret and the
credentials in a URL, in logs, errors (uncaught ones included), status and notes.

Start-up failures of `newsdesk telegram` are provoked for real: the fake Bot API rejects
the token (401) or the path (404), nothing listens, or a server accepts and never answers.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chroma_run import free_port
from conftest import make_settings
from fakes.telegram_server import FakeTelegram
from test_cli import cli_env
from typer.testing import CliRunner

import bot.cli
import bot.telegram

TOKEN = "123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
TOKEN_SECRET = TOKEN.partition(":")[2]
OTHER_TOKEN = "123456:ZZHdqTcvCH1vGWJxfSeofSAs0K5PALDzz"  # what the fake accepts instead
API_KEY = "sk-test-SECRET123"
URL_PASSWORD = "hunter2-url-password"
WEBHOOK_SECRET = "whsec_9f8e7d6c5b4a3210"


def leaks(text: str) -> list[str]:
    return [s for s in (TOKEN_SECRET, API_KEY, URL_PASSWORD, WEBHOOK_SECRET) if s in text]


@pytest.fixture
def global_hooks() -> Iterator[None]:
    """run() installs redaction process-wide, as an entry point does; undo it afterwards."""
    factory, hook, thread_hook = (
        logging.getLogRecordFactory(),
        sys.excepthook,
        threading.excepthook,
    )
    handlers = {h: list(h.filters) for h in logging.getLogger().handlers}
    yield
    logging.setLogRecordFactory(factory)
    sys.excepthook, threading.excepthook = hook, thread_hook
    for handler, filters in handlers.items():
        handler.filters[:] = filters


class Silent:
    """A server that accepts connections and never answers (a hung Bot API)."""

    def __enter__(self) -> str:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def start_telegram(
    tmp_path: Path, api_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> tuple[int, str]:
    settings = make_settings(tmp_path, telegram_bot_token=TOKEN, telegram_api_url=api_url)
    monkeypatch.setattr(bot.cli, "get_settings", lambda: settings)
    monkeypatch.setattr(bot.telegram, "STARTUP_TIMEOUT", 1.0)
    caplog.set_level(logging.DEBUG)
    result = CliRunner().invoke(bot.cli.app, ["telegram"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert leaks(output + caplog.text) == []
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return result.exit_code, lines[0]


@pytest.mark.usefixtures("global_hooks")
@pytest.mark.parametrize("failure", ["401", "404", "unreachable", "hanging"])
def test_telegram_startup_failures_are_one_line_without_the_token(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    failure: str,
) -> None:
    if failure in ("401", "404"):
        with FakeTelegram(token=OTHER_TOKEN if failure == "401" else TOKEN) as tg:
            if failure == "404":
                tg.fail_next("getMe", 404)
            code, line = start_telegram(tmp_path, tg.url, monkeypatch, caplog)
            assert [m for m, _ in tg.calls] == (["getMe"] if failure == "404" else [])
        assert code == 2
        assert line.startswith(f"newsdesk: the Telegram Bot API at {tg.url} rejected ")
        assert "TELEGRAM_BOT_TOKEN" in line
    elif failure == "unreachable":
        url = f"http://127.0.0.1:{free_port()}"
        code, line = start_telegram(tmp_path, url, monkeypatch, caplog)
        assert code == 1
        assert line.startswith(f"newsdesk: cannot reach the Telegram Bot API at {url}: ")
    else:
        with Silent() as url:
            code, line = start_telegram(tmp_path, url, monkeypatch, caplog)
        assert code == 1
        assert line == f"newsdesk: cannot reach the Telegram Bot API at {url}: no answer within 1 s"


def test_rejected_token_in_a_real_process_at_debug(tmp_path: Path) -> None:
    """The report PTB makes of a rejected token quotes it; the process must not print it."""
    with FakeTelegram(token=OTHER_TOKEN) as tg:
        env = cli_env(
            tmp_path / "data",
            tmp_path / "corpus",
            TELEGRAM_BOT_TOKEN=TOKEN,
            NEWSDESK_TELEGRAM_API_URL=tg.url,
            NEWSDESK_LOG_LEVEL="DEBUG",
            OPENAI_API_KEY=API_KEY,
        )
        proc = subprocess.run(
            [sys.executable, "-m", "bot.cli", "telegram"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert leaks(proc.stdout + proc.stderr) == []
    assert proc.stderr.splitlines()[-1].startswith("newsdesk: the Telegram Bot API at ")


def test_uncaught_errors_are_redacted_too(tmp_path: Path) -> None:
    """The hooks the entry point installs: a crash in any thread shows no secret."""
    script = f"""
import threading
from index.redact import install_redaction
install_redaction([{TOKEN!r}, {API_KEY!r}])
def crash():
    raise ValueError({TOKEN!r})
thread = threading.Thread(target=crash)
thread.start()
thread.join()
raise RuntimeError("key " + {API_KEY!r} + " at http://admin:{URL_PASSWORD}@host/v1")
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert "ValueError: [REDACTED]" in proc.stderr
    assert "RuntimeError: key [REDACTED] at http://[REDACTED]@host/v1" in proc.stderr
    assert leaks(proc.stderr) == []


def test_status_hides_url_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(
        tmp_path,
        openai_base_url=f"http://admin:{URL_PASSWORD}@127.0.0.1:9/v1",
        openai_api_key=API_KEY,
    )
    monkeypatch.setattr(bot.cli, "get_settings", lambda: settings)
    for args in (["status", "--json"], ["status"]):
        result = CliRunner().invoke(bot.cli.app, args)
        assert result.exit_code == 0, result.stderr
        assert leaks(result.stdout + result.stderr) == []
        assert "http://[REDACTED]@127.0.0.1:9/v1" in result.stdout
    data = json.loads(CliRunner().invoke(bot.cli.app, ["status", "--json"]).stdout)
    assert data["llm"].startswith("http://[REDACTED]@127.0.0.1:9/v1")


def test_url_credentials_not_in_logs_or_notes_at_debug(tmp_path: Path, seeded) -> None:
    closed = f"http://admin:{URL_PASSWORD}@127.0.0.1:{free_port()}/v1"
    env = cli_env(
        seeded.data_dir,
        seeded.corpus_dir,
        OPENAI_API_KEY=API_KEY,
        OPENAI_BASE_URL=closed,
        NEWSDESK_LOG_LEVEL="DEBUG",
        NEWSDESK_LLM_MAX_RETRIES="0",
        NEWSDESK_LLM_TIMEOUT="5",
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot.cli",
            "ask",
            "What did Pakistan and Azerbaijan agree?",
            "--json",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert " DEBUG " in proc.stderr  # the logs were verbose, so the check means something
    assert "LLM unavailable" in json.loads(proc.stdout)["note"]
    assert leaks(proc.stdout + proc.stderr) == []


def test_webhook_secret_not_in_debug_logs(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "bot.log"
    with FakeTelegram(token=TOKEN) as tg:
        env = cli_env(
            tmp_path / "data",
            tmp_path / "corpus",
            TELEGRAM_BOT_TOKEN=TOKEN,
            NEWSDESK_TELEGRAM_API_URL=tg.url,
            NEWSDESK_TELEGRAM_WEBHOOK_SECRET=WEBHOOK_SECRET,
            NEWSDESK_LOG_LEVEL="DEBUG",
        )
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "telegram", "--webhook-url",
                 "https://bot.example.com/hook", "--port", str(port)],
                env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            tg.wait_for(lambda: tg.calls_to("setWebhook") or proc.poll() is not None, 120)
            assert proc.poll() is None, log.read_text()[-3000:]
            # The secret was really used: Telegram got it with setWebhook.
            assert tg.calls_to("setWebhook")[0]["secret_token"] == WEBHOOK_SECRET
            time.sleep(0.5)  # let the DEBUG lines about the call reach the log
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    text = log.read_text(errors="replace")
    assert "setWebhook" in text  # PTB logged the call, parameters and all...
    assert leaks(text) == []  # ...without the secret
