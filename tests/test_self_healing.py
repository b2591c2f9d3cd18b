"""A data dir that heals itself: a BM25 cache whose parts disagree is rebuilt, not trusted, and
a path that should be a folder but is a file is named in one line.

Each case damages a copy of the seed index the way a crash, a disk error or a hand edit
could, then asks through the CLI (in-process, typer's CliRunner).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import bot.cli
from index.settings import Settings

QUESTION = "What did Pakistan and Azerbaijan agree about defence hardware?"
QUOTE = "defense hardware"


def edit_ids(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        meta = json.loads((folder / "ids.json").read_text())
        change(meta)
        (folder / "ids.json").write_text(json.dumps(meta))

    return damage


def edit_dates(change: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        np.save(folder / "ts.npy", change(np.load(folder / "ts.npy")))

    return damage


# What is damaged -> how. Every case must still answer, from a rebuilt cache.
DAMAGE: dict[str, Callable[[Path], None]] = {
    "ids longer than the stored articles": edit_ids(lambda m: m["ids"].append("ghost#0")),
    "ids shorter than the keyword index": edit_ids(lambda m: (m["ids"].pop(), m["articles"].pop())),
    "article ids missing one": edit_ids(lambda m: m["articles"].pop()),
    "ids that are not strings": edit_ids(lambda m: m.update(ids=list(range(len(m["ids"]))))),
    "ids.json without articles": edit_ids(lambda m: m.pop("articles")),
    "a date array of the wrong length": edit_dates(lambda ts: ts[:-1]),
    "a date array of floats": edit_dates(lambda ts: ts.astype(np.float64)),
    "a date array of two dimensions": edit_dates(lambda ts: ts.reshape(1, -1)),
    "ids.json truncated": lambda folder: (folder / "ids.json").write_text('{"ids": ["a'),
}


def cache_folder(settings: Settings) -> Path:
    [folder] = (settings.data_dir / "bm25" / settings.collection).glob("v*-f*")
    return folder


def ask(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    monkeypatch.setattr(bot.cli, "get_settings", lambda: settings)
    result = CliRunner().invoke(bot.cli.app, ["ask", QUESTION])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_an_inconsistent_bm25_cache_is_rebuilt(
    seeded: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    damage: Callable[[Path], None],
) -> None:
    damage(cache_folder(seeded))
    caplog.set_level("WARNING")
    for _ in range(2):  # and again: the rebuilt cache was saved, and is trusted
        code, stdout, stderr = ask(seeded, monkeypatch)
        assert code == 0, stderr
        assert QUOTE in stdout
    warned = [r.getMessage() for r in caplog.records if "rebuilding it" in r.getMessage()]
    assert len(warned) == 1, warned
    folder = cache_folder(seeded)
    meta = json.loads((folder / "ids.json").read_text())
    ts = np.load(folder / "ts.npy")
    assert len(meta["ids"]) == len(meta["articles"]) == len(ts) > 0


def test_a_bm25_folder_that_is_a_file_is_named_in_one_line(
    seeded: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    collection = seeded.data_dir / "bm25" / seeded.collection
    shutil.rmtree(collection)
    collection.write_text("not a folder")
    code, stdout, stderr = ask(seeded, monkeypatch)
    assert code == 1 and stdout == ""
    assert stderr.strip() == (
        f"newsdesk: the keyword index folder {collection} is a file, not a folder: move it away"
    )
