"""Inventory secrets stay out of what apssh writes, on real runs against real sshd.

A template may put a secret variable in a command or a path: the command runs
with the value, but the journal, the ``--events`` stream, summary.json, the
``--json`` summary, the per-host error lines and the streamed lines show
``********`` instead.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from apssh_cli.inventory.secrets import MASK
from apssh_cli.lab import Topology
from tests.integration.command import run_apssh

pytestmark = pytest.mark.integration

SECRET = "tok-INTEG-4242"
EXTRA = f'[direct.vars]\napi_token = "{SECRET}"\n'
RECIPE = """\
[recipe]
name = "leak"
format = 1
[[step]]
id = "call"
hosts = "direct"
run = "echo got-{api_token}; exit 3"
"""


def apssh(*args: str) -> subprocess.CompletedProcess[str]:
    return run_apssh(*args)


@pytest.fixture
def extra(tmp_path: Path) -> Path:
    path = tmp_path / "secrets.toml"
    path.write_text(EXTRA)
    return path


def test_recipe_run_journal_events_and_summaries(
    topology: Topology, extra: Path, tmp_path: Path
) -> None:
    recipe = tmp_path / "leak.toml"
    recipe.write_text(RECIPE)
    run_dir, events = tmp_path / "run", tmp_path / "events.jsonl"
    done = apssh(
        "recipe", "run", str(recipe), "-i", str(topology.inventory), "-i", str(extra),
        "--run-dir", str(run_dir), "--events", str(events), "--json",
    )  # fmt: skip
    assert done.returncode != 0  # the step exits 3 on every host
    journal = (run_dir / "journal.jsonl").read_text()
    written = {
        "journal": journal,
        "events": events.read_text(),
        "summary.json": (run_dir / "summary.json").read_text(),
        "--json": done.stdout,
        "stderr": done.stderr,
    }
    for where, text in written.items():
        assert SECRET not in text, where
    # the command did run with the value: its output, masked on the terminal and in the journal
    assert f"got-{MASK}" in done.stdout + done.stderr
    outputs = [json.loads(line) for line in journal.splitlines()]
    lines = [event["line"] for event in outputs if event["event"] == "output"]
    assert sorted(lines) == [f"got-{MASK}"] * len(topology.direct)


def test_push_error_lines_and_json(topology: Topology, extra: Path, tmp_path: Path) -> None:
    source = tmp_path / "f.txt"
    source.write_text("x")
    common = ["-i", str(topology.inventory), "-i", str(extra), "-g", "direct"]
    remote = "/nonexistent-dir/{api_token}/f.txt"
    done = apssh("push", *common, str(source), remote)
    assert done.returncode != 0
    assert SECRET not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if "[failed]" in line]
    assert len(errors) == len(topology.direct), done.stderr
    assert all(f"/nonexistent-dir/{MASK}/f.txt" in line for line in errors), errors
    as_json = apssh("push", *common, "--json", str(source), remote)
    assert SECRET not in as_json.stdout + as_json.stderr
    records = [json.loads(line) for line in as_json.stdout.splitlines()][:-1]
    assert all(MASK in record["error"] for record in records), records
