"""The REPL's answers as a person sees them: while an LLM writes, a progress line; at the end
only the checked answer and its sources. The LLM is the fake OpenAI server over HTTP."""

from __future__ import annotations

import io
import logging
import re
import sys
from pathlib import Path

import pytest
from fakes.openai_server import FakeOpenAI, Reply
from rich.console import Console
from test_engine import MOON
from test_llm import GOOD, QUESTION, llm_settings

from bot import repl
from index.history import open_history
from index.settings import Settings

_CONTROL = re.compile(r"\x1b\[(\??\d*)([A-Za-z])")


def screen(raw: str) -> list[str]:
    """What a terminal shows after ``raw``: enough of one for rich's live line (carriage
    return, newline, erase line, cursor up; other control sequences change nothing seen)."""
    lines, row, col = [""], 0, 0
    at = 0
    while at < len(raw):
        match = _CONTROL.match(raw, at)
        if match:
            arg, op = match.groups()
            if op == "K":
                lines[row] = ""  # [2K: the whole line
            elif op == "A":
                row = max(0, row - int(arg or 1))
            at = match.end()
            continue
        char = raw[at]
        if char == "\r":
            col = 0
        elif char == "\n":
            row, col = row + 1, 0
            if row == len(lines):
                lines.append("")
        else:
            line = lines[row].ljust(col)
            lines[row] = line[:col] + char + line[col + 1 :]
            col += 1
        at += 1
    return [line.rstrip() for line in lines]


def run_repl(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, *, terminal: bool, lines: list[str]
) -> str:
    """``newsdesk chat`` in this process, reading ``lines``; what it wrote, raw."""
    typed = iter(lines)

    def fake_input(prompt: str = "") -> str:
        try:
            return next(typed)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr("builtins.input", fake_input)
    out = io.StringIO()
    console = Console(
        file=out,
        force_terminal=terminal,
        color_system=None,
        width=400,
        highlight=False,
        soft_wrap=True,
    )
    repl.run(settings, console=console, interactive=False)
    return out.getvalue()


@pytest.fixture
def llm_repl_settings(tmp_path: Path, seeded: Settings, fake_openai: FakeOpenAI) -> Settings:
    # The LLM adds a claim no source supports: it is streamed, and the check drops it.
    fake_openai.script(Reply(GOOD + MOON, chunk_words=2))
    return llm_settings(tmp_path, seeded, fake_openai.base_url)


def test_llm_answer_shows_progress_then_only_the_checked_answer(
    llm_repl_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = run_repl(llm_repl_settings, monkeypatch, terminal=True, lines=[QUESTION])
    answer = open_history(llm_repl_settings).last(repl.CONVERSATION).answer
    assert "moon" not in answer and answer.count("[1]") == 2  # the checked text

    # While the LLM wrote: a word count, never its unchecked words.
    counts = [int(n) for n in re.findall(r"Writing the answer \((\d+) words? so far\)", raw)]
    assert counts and counts == sorted(counts) and counts[-1] == len((GOOD + MOON).split())
    assert "moon" not in raw

    # At the end, the screen holds the banner, the checked answer and its sources, nothing else.
    shown = [line for line in screen(raw) if line]
    assert shown[0].startswith("newsdesk · LLM answers · ")
    assert shown[1] == answer
    assert shown[2] == "Sources"
    assert shown[3].startswith("  [1] Pakistan and Azerbaijan agree")
    assert not any("Writing the answer" in line or "Searching" in line for line in shown)


def test_llm_answer_in_a_pipe_is_the_checked_answer_alone(
    llm_repl_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = run_repl(llm_repl_settings, monkeypatch, terminal=False, lines=[QUESTION])
    answer = open_history(llm_repl_settings).last(repl.CONVERSATION).answer
    banner, shown, blank, sources, first, *_ = raw.splitlines()
    assert banner.startswith("newsdesk · LLM answers · ")
    assert shown == answer and "moon" not in raw
    assert (blank, sources) == ("", "Sources")
    assert first.startswith("  [1] Pakistan and Azerbaijan agree")
    assert "Writing the answer" not in raw and "\x1b" not in raw
    assert raw.count(answer) == 1  # once, not streamed and then repeated


def test_a_log_line_prints_above_the_progress_line(
    tmp_path: Path,
    seeded: Settings,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # As `newsdesk chat` configures it: a handler on stderr. An LLM answer that no source
    # supports logs a warning while the progress line shows, then the offline answer comes.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    monkeypatch.setattr(logging.getLogger(), "handlers", [handler])
    fake_openai.script(Reply("The two countries agreed to build a moon base on Mars [1]."))
    settings = llm_settings(tmp_path, seeded, fake_openai.base_url)

    shown = [
        line
        for line in screen(run_repl(settings, monkeypatch, terminal=True, lines=[QUESTION]))
        if line
    ]
    answer = open_history(settings).last(repl.CONVERSATION).answer
    warning = "WARNING LLM unavailable, answering offline: no claim in the LLM answer was supported"
    assert shown[1].startswith(warning)  # a line of its own, above the answer
    assert shown[2] == answer and "moon" not in answer
    assert not any("Writing the answer" in line for line in shown)
    assert handler.stream is sys.stderr  # given back after the answer
    assert "LLM unavailable" not in capsys.readouterr().err  # it went above the line instead
