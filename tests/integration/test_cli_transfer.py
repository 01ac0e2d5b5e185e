"""Ctrl-C during `apssh push` and `apssh pull`: no truncated file under the final name.

A transfer writes a temporary name next to its target and renames it when
complete; a transfer cut short removes its temporary file. Each test starts a
transfer far too large to finish (a sparse 4 GiB file) with a window of 1, waits
until the first host reports its transfer started (``-v``), then sends SIGINT.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from apssh_cli.lab import Topology

pytestmark = pytest.mark.integration

BIG = 4 << 30  # sparse: costs no disk until copied


def interrupt_once_started(args: list[str], started: int) -> tuple[int, str]:
    """Run apssh; after ``started`` hosts log their transfer start, send SIGINT.

    Returns:
        The exit status and the whole stderr.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "apssh_cli.cli.main", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    seen: list[str] = []
    while sum(" -- start: " in line for line in seen) < started:
        line = process.stderr.readline()
        if not line:  # it ended by itself: say why
            pytest.fail(f"apssh ended early ({process.wait()}): {''.join(seen)}")
        seen.append(line)
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=120)
    return process.returncode, "".join(seen) + rest


def leftovers(topology: Topology, name: str) -> dict[str, str]:
    """Files in the nodes' /tmp named like ``name`` (final or temporary), by node."""
    found: dict[str, str] = {}
    for endpoint in topology.internal:
        _, out = topology.exec(endpoint, f"ls -a /tmp | grep -F -- '{name}' || true")
        if out.strip():
            found[endpoint.name] = out.strip()
    return found


def test_ctrl_c_during_push_leaves_no_partial_remote_file(
    topology: Topology, tmp_path: Path
) -> None:
    name = f"big-{secrets.token_hex(4)}"
    local = tmp_path / name
    with local.open("wb") as handle:
        handle.truncate(BIG)
    args = ["push", "-v", "-i", str(topology.inventory), "-g", "nodes", "-w", "1"]
    status, err = interrupt_once_started([*args, str(local), f"/tmp/{name}"], started=1)
    assert status == 130, err
    assert "(interrupted)" in err and "  not started" in err
    # neither the final name nor the temporary one is left on any node
    assert leftovers(topology, name) == {}


def test_ctrl_c_during_pull_leaves_no_partial_local_file(
    topology: Topology, tmp_path: Path
) -> None:
    name = f"big-{secrets.token_hex(4)}"
    for endpoint in topology.internal:
        rc, out = topology.exec(endpoint, f"truncate -s {BIG} /tmp/{name}")
        assert rc == 0, out
    try:
        destination = tmp_path / "pulled"
        args = ["pull", "-v", "-i", str(topology.inventory), "-g", "nodes", "-w", "1"]
        status, err = interrupt_once_started([*args, f"/tmp/{name}", str(destination)], started=1)
    finally:
        for endpoint in topology.internal:
            topology.exec(endpoint, f"rm -f /tmp/{name}")
    assert status == 130, err
    assert "(interrupted)" in err and "  not started" in err
    files = [path for path in destination.rglob("*") if path.is_file()]
    assert files == [], f"left after Ctrl-C: {files}"
