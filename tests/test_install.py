"""newsdesk as a user installs it: a built wheel in a fresh venv, run from another folder.

The venv gets the wheel and nothing else; the dependencies come from the test venv through
a path entry (plain paths: that folder's own .pth files, such as the editable install's
finder, are not run, so the source tree cannot leak in). Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from fakes.openai_server import FakeOpenAI, Reply

from index.settings import Settings

QUESTION = "What did Pakistan and Azerbaijan agree about defence?"
ANSWER = (
    "Pakistan and Azerbaijan agreed to accelerate the signing of an MOU for the joint "
    "production and sale of defence hardware [1]."
)
SOURCES = ("pyproject.toml", "README.md", "index", "bot", "prompts")


def run(*cmd: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kwargs
    )
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    return proc


def build_wheel(folder: Path) -> Path:
    """The wheel of a copy of the sources (building in the checkout would leave build/ in it)."""
    src = folder / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, src / name)
    dist = folder / "dist"
    pip = (sys.executable, "-m", "pip")
    run(*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", dist, src)
    [wheel] = dist.glob("newsdesk-*.whl")
    return wheel


def venv_with(wheel: Path, folder: Path) -> Path:
    """A new venv holding only ``wheel``; returns its bin folder."""
    venv = folder / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
    deps = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    Path(site.stdout.strip(), "test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel)
    return venv / "bin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(folder)
    return wheel, venv_with(wheel, folder)


def test_the_wheel_carries_the_prompt_templates(installed: tuple[Path, Path]) -> None:
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {f"prompts/{p.name}" for p in (REPO_ROOT / "prompts").glob("*.txt")}
    assert templates and templates <= names
    assert not any(name.startswith(("tests/", "bench/", "corpus/")) for name in names)


def test_installed_wheel_answers_with_the_llm_from_another_folder(
    installed: tuple[Path, Path], tmp_path: Path, seeded: Settings, fake_openai: FakeOpenAI
) -> None:
    _, bin_dir = installed
    # The index sits where a user's does by default (no NEWSDESK_DATA_DIR): the XDG data dir.
    xdg = tmp_path / "xdg"
    shutil.copytree(seeded.data_dir, xdg / "newsdesk")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(xdg),
        "OPENAI_BASE_URL": fake_openai.base_url,
        "NEWSDESK_LLM_MODEL": "fake-model",
    }
    where = run(
        bin_dir / "python",
        "-c",
        "import bot.cli, index.prompts, prompts; print(bot.cli.__file__, prompts.__file__)",
        env=env,
        cwd=elsewhere,
    )
    assert str(REPO_ROOT) not in where.stdout  # the installed copy, not the checkout
    assert all(path.startswith(str(bin_dir.parent)) for path in where.stdout.split())

    fake_openai.script(Reply(ANSWER))
    proc = run(bin_dir / "newsdesk", "ask", QUESTION, "--json", env=env, cwd=elsewhere)
    answer = json.loads(proc.stdout)
    assert answer["mode"] == "llm" and answer["note"] == "", answer
    assert "MOU for the joint production" in answer["text"] and "[1]" in answer["text"]
    assert answer["citations"][0]["published"] == "2025-01-24"
    [request] = fake_openai.chat_requests
    system = request["json"]["messages"][0]["content"]
    template = (REPO_ROOT / "prompts" / "answer.txt").read_text(encoding="utf-8")
    assert system.startswith(template.splitlines()[0])  # the template came from the wheel
    assert os.listdir(elsewhere) == []  # nothing written where it ran

    version = run(bin_dir / "newsdesk", "--version", env=env, cwd=elsewhere)
    assert version.stdout.strip() == "newsdesk 0.1.0"
