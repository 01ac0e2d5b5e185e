"""Results as data (``run_command`` / ``co_run_command``) against the containers.

Each host's status, exit status, stdout and stderr come back unprinted, direct
and through the bastion; output is bounded as documented; the synchronous twin
refuses to run inside an event loop.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from apssh_cli import FleetResults, Run, Status, co_run_command, run_command
from apssh_cli.inventory.model import Inventory
from apssh_cli.inventory.targets import Target, inventory_target
from apssh_cli.lab import Topology

pytestmark = pytest.mark.integration


def targets_of(topology: Topology) -> list[Target]:
    inventory = Inventory.load([topology.inventory])
    names = [topology.direct[0].name, topology.internal[0].name]
    return [inventory_target(inventory, name) for name in names]


def test_each_host_outcome_and_output_as_data(
    topology: Topology, capsys: pytest.CaptureFixture[str]
) -> None:
    targets = targets_of(topology)
    results = run_command(targets, "hostname; echo oops >&2; exit 3", window=2, timeout=60)
    assert isinstance(results, FleetResults)
    assert list(results) == [t.name for t in targets]
    for target in targets:
        result = results[target.name]
        assert result.status is Status.FAILED
        assert result.rc == 3
        assert result.stdout.strip()  # the container's hostname
        assert result.stderr == "oops\n"
    assert not results.all_ok and len(results.failed) == 2
    # nothing printed
    captured = capsys.readouterr()
    assert captured.out == "" and "oops" not in captured.err


def test_commands_list_unreachable_host_and_bound(topology: Topology) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    targets: list[Target | str] = [*targets_of(topology), f"127.0.0.1:{port}"]

    async def scenario() -> FleetResults:
        return await co_run_command(
            targets, [Run("echo one"), Run("seq 1 5000")], max_bytes=1000, timeout=60
        )

    results = asyncio.run(scenario())
    first, second, refused = (results[name] for name in results)
    assert first.status is Status.OK and second.status is Status.OK
    assert first.stdout.startswith("one\n1\n2\n")
    assert len(first.stdout) < 1200  # bounded, with the line that says what was dropped
    assert first.stdout.splitlines()[-1].endswith("not kept: past 1000 bytes]")
    assert refused.status is Status.UNREACHABLE and refused.rc is None
    assert [r.host for r in results.ok] == [first.host, second.host]


def test_the_synchronous_twin_refuses_a_running_loop() -> None:
    async def inside() -> None:
        run_command(["127.0.0.1"], "true")

    with pytest.raises(RuntimeError, match="co_run_command"):
        asyncio.run(inside())
