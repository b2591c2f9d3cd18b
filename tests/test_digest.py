"""`newsdesk digest`: the window rules and the output, over the seed index."""

from __future__ import annotations

import json
from datetime import date

import pytest
from typer.testing import CliRunner

from index.digest import SinceError, parse_since, window_end
from index.settings import Settings

NOW = window_end(date(2022, 8, 31))  # 2022-08-31 23:59:59 UTC

# --since value -> the window's start, as a UTC date and time
SINCE = [
    ("24h", "2022-08-30T23:59:59"),
    ("36h", "2022-08-30T11:59:59"),
    ("3d", "2022-08-28T23:59:59"),
    (" 2D ", "2022-08-29T23:59:59"),
    ("2022-07-01", "2022-07-01T00:00:00"),
]


@pytest.mark.parametrize(("value", "start"), SINCE)
def test_parse_since(value: str, start: str) -> None:
    from datetime import datetime, timezone

    got = datetime.fromtimestamp(parse_since(value, NOW), timezone.utc)
    assert got.strftime("%Y-%m-%dT%H:%M:%S") == start


@pytest.mark.parametrize("value", ["yesterday", "24", "h", "2022-13-01", "-3d"])
def test_parse_since_rejects(value: str) -> None:
    with pytest.raises(SinceError, match="24h, 3d or 2022-06-04"):
        parse_since(value, NOW)


def run(seeded: Settings, monkeypatch, *args: str):
    from bot import cli

    settings = seeded.model_copy(update={"reference_date": date(2022, 8, 31)})
    monkeypatch.setattr(cli, "_settings", lambda: settings)
    return CliRunner().invoke(cli.app, ["digest", *args])


def test_digest_json_newest_first(seeded: Settings, monkeypatch) -> None:
    result = run(seeded, monkeypatch, "--since", "2022-07-01", "--json")
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)
    assert [i["title"] for i in items] == [
        "Chipmaker opens new plant in Arizona",
        "Heatwave breaks records in Spain",
    ]
    assert items[0]["sentence"].startswith("A semiconductor company opened a factory in Arizona")
    assert items[0]["url"] == "https://example.com/2022/08/15/chip-plant"
    assert items[0]["published"] == "2022-08-15" and items[0]["reports"] == 1


def test_digest_text_and_limits(seeded: Settings, monkeypatch) -> None:
    result = run(seeded, monkeypatch, "--since", "90d", "-n", "1")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "1. Chipmaker opens new plant in Arizona — example.com, 2022-08-15"
    assert (
        lines[1].endswith("[1]") and lines[2] == "   [1] https://example.com/2022/08/15/chip-plant"
    )
    assert run(seeded, monkeypatch, "--since", "24h").stdout.strip() == "No stories in that window."
    bad = run(seeded, monkeypatch, "--since", "soon")
    assert bad.exit_code == 2 and "24h, 3d or 2022-06-04" in bad.output
