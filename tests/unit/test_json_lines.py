"""``--json`` is JSON Lines everywhere: one object per line on stdout, nothing else there.

`apssh run`, `push`, `pull` (a record per host, then the summary) and `apssh recipe run`
(the summary; after the events with ``--events -``), on hosts with ``connection =
"local"``: no SSH needed. Transfers need SFTP, which a local host has not: they fail
per host, which is still a record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .climain import apssh

INVENTORY = '[locals]\nhosts = { "loc[1:3]" = { connection = "local" } }\n'


def json_lines(out: str) -> list[dict[str, Any]]:
    """Every line of ``out`` as one JSON object (fails on a line that is not one)."""
    assert out.endswith("\n")
    records = [json.loads(line) for line in out.splitlines()]
    assert all(isinstance(record, dict) for record in records)
    return records


@pytest.fixture
def inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("APSSH_INVENTORY", raising=False)
    path = tmp_path / "inv.toml"
    path.write_text(INVENTORY)
    return str(path)


def test_run_json_is_one_line_per_host_then_the_summary(
    inventory: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # output with newlines, a brace and a quote: all inside the one line of its host
    command = "printf 'a\\n{\"b\": 1}\\n'; echo err >&2; exit 3"
    code, out, _ = apssh(capsys, "run", "-i", inventory, "--json", command)
    records = json_lines(out)
    assert code == 2 and len(records) == 4
    assert sorted(r["host"] for r in records[:3]) == ["loc1", "loc2", "loc3"]
    assert {r["stdout"] for r in records[:3]} == {'a\n{"b": 1}\n'}
    assert records[3]["summary"]["hosts"] == 3


@pytest.mark.parametrize("command", ["push", "pull"])
def test_push_and_pull_json_is_one_line_per_host_then_the_summary(
    inventory: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    source = tmp_path / "f.txt"
    source.write_text("x\n")
    if command == "push":
        argv = ["push", "-i", inventory, "--json", str(source), "/tmp/apssh-json-lines"]
    else:
        argv = ["pull", "-i", inventory, "--json", "/etc/hostname", str(tmp_path / "in")]
    code, out, _ = apssh(capsys, *argv)
    records = json_lines(out)
    assert code == 2 and len(records) == 4
    assert [r["status"] for r in records[:3]] == ["failed"] * 3
    assert records[3]["summary"]["failed"] == 3


def test_recipe_run_json_and_events_share_stdout_one_object_per_line(
    inventory: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        '[recipe]\nname = "r"\nformat = 1\n[[step]]\nid = "a"\nhosts = "locals"\n'
        "run = \"printf 'one\\\\ntwo\\\\n'\"\n"
    )
    argv = ["recipe", "run", str(recipe), "-i", inventory, "--run-dir", str(tmp_path / "run")]
    code, out, err = apssh(capsys, *argv, "--json")
    (summary,) = json_lines(out)
    assert code == 0 and summary["recipe"] == "r" and len(summary["tasks"]) == 3
    assert "a loc1: one" in err and "recipe r: ok" in err  # people's lines: stderr
    code, out, _ = apssh(
        capsys, *argv, "--resume", str(tmp_path / "run"), "--json", "--events", "-"
    )
    records = json_lines(out)
    assert records[0]["event"] == "recipe_start" and records[-2]["event"] == "recipe_end"
    assert records[-1]["exit"] == 0 and "event" not in records[-1]
