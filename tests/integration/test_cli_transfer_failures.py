"""A failed transfer is said once, and a failed pull leaves no empty host directory."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from apssh_cli.lab import Topology
from tests.integration.command import run_apssh

pytestmark = pytest.mark.integration


def direct(topology: Topology) -> list[str]:
    return ["-i", str(topology.inventory), "-g", "direct"]


def test_a_failed_push_is_reported_once(topology: Topology, tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("data\n")
    missing = f"/nonexistent-{secrets.token_hex(4)}/data.txt"
    done = run_apssh("push", *direct(topology), str(data), missing)
    assert done.returncode == 2, done.stderr
    for endpoint in topology.direct:
        lines = [line for line in done.stderr.splitlines() if line.startswith(endpoint.name)]
        assert len(lines) == 1, done.stderr  # one line per host: its [failed] line
        assert "[failed] transfer failed: push" in lines[0]
        assert missing in lines[0]


def test_a_failed_pull_leaves_no_empty_directory(topology: Topology, tmp_path: Path) -> None:
    name = f"only-on-one-{secrets.token_hex(4)}"
    first, *others = topology.direct
    rc, _ = topology.exec(first, f"echo present > /tmp/{name}")
    assert rc == 0
    try:
        out = tmp_path / "out" / "pulled"
        done = run_apssh("pull", *direct(topology), f"/tmp/{name}", str(out))
    finally:
        topology.exec(first, f"rm -f /tmp/{name}")
    assert done.returncode == 2, done.stderr
    assert (out / first.name / name).read_text() == "present\n"
    assert sorted(path.name for path in out.iterdir()) == [first.name]  # no empty ones
    for endpoint in others:
        lines = [line for line in done.stderr.splitlines() if line.startswith(endpoint.name)]
        assert len(lines) == 1, done.stderr
        assert "[failed] transfer failed: pull" in lines[0]
    # every host failing: nothing at all is left, not even the directories above
    nothing = tmp_path / "nothing" / "here"
    done = run_apssh("pull", *direct(topology), f"/tmp/{name}-missing", str(nothing))
    assert done.returncode == 2, done.stderr
    assert not (tmp_path / "nothing").exists()


def test_json_and_files_keep_the_reason(topology: Topology, tmp_path: Path) -> None:
    missing = f"/tmp/missing-{secrets.token_hex(4)}"
    done = run_apssh("pull", *direct(topology), "--json", missing, str(tmp_path / "got"))
    assert done.returncode == 2, done.stderr
    *hosts, _summary = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(hosts) == len(topology.direct)
    for record in hosts:
        assert record["status"] == "failed"
        assert missing in record["error"]
        assert missing in record["stderr"]  # the host's data keeps what the terminal omits
    logs = tmp_path / "logs"
    done = run_apssh("pull", *direct(topology), "-o", str(logs), missing, str(tmp_path / "got"))
    assert done.returncode == 2, done.stderr
    for endpoint in topology.direct:
        assert missing in (logs / f"{endpoint.name}.err").read_text()
    # -b prints no error line for a failed host: its stderr says why, once
    done = run_apssh("pull", *direct(topology), "-b", missing, str(tmp_path / "got"))
    assert done.returncode == 2, done.stderr
    said = [line for line in done.stderr.splitlines() if missing in line]
    assert len(said) == len(topology.direct), done.stderr
