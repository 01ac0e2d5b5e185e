"""The fleet engine without a network: local hosts, reference counts, stop, cancellation."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from apssh_cli.commands import Run
from apssh_cli.engine.fleet import FleetNodes, FleetOptions, FleetRun, as_target, run_fleet
from apssh_cli.inventory.model import Host
from apssh_cli.inventory.targets import Target
from apssh_cli.output import CaptureFormatter
from apssh_cli.results import HostResult, Status
from apssh_cli.ssh.node import SshNode

from .processes import dies

GUARD = 60


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, GUARD))


def local(name: str) -> Target:
    return Target(name, (Host.adhoc(name, connection="local"),), from_inventory=True)


class Events:
    def __init__(self) -> None:
        self.events: list[str] = []

    def host_started(self, name: str) -> None:
        self.events.append(f"start {name}")

    def host_done(self, result: HostResult) -> None:
        self.events.append(f"done {result.host} {result.status}")


def test_run_fleet_runs_every_host_in_order_under_the_window() -> None:
    capture = CaptureFormatter()
    events = Events()
    targets = [local(f"h{i}") for i in range(5)]
    results = run(
        run_fleet(targets, "echo hi; exit 0", formatter=capture, window=1, observer=events)
    )
    assert [r.host for r in results] == [f"h{i}" for i in range(5)]
    assert all(r.status is Status.OK for r in results)
    assert [capture.stdout(f"h{i}") for i in range(5)] == ["hi\n"] * 5
    # a window of one: each host ends before the next starts, in the targets' order
    expected = [e for i in range(5) for e in (f"start h{i}", f"done h{i} ok")]
    assert events.events == expected


def test_commands_per_host_mapping_and_function() -> None:
    capture = CaptureFormatter()
    targets = [local("a"), local("b")]
    by_name = {"a": [Run("echo A")], "b": ["echo B", Run("exit 3")]}
    results = run(run_fleet(targets, by_name, formatter=capture))
    assert [(r.status, r.rc) for r in results] == [(Status.OK, 0), (Status.FAILED, 3)]
    assert capture.stdout("b") == "B\n"
    results = run(run_fleet(targets, lambda t: [f"echo {t.name}-x"], formatter=capture))
    assert capture.lines("a")[-1] == "a-x"


def test_step_tags_the_output_lines() -> None:
    steps: list[str | None] = []

    class Steps(CaptureFormatter):
        def output(self, event):  # type: ignore[no-untyped-def]
            steps.append(event.step)

    options = FleetOptions(step="init")
    run(FleetRun([local("a")], "echo x", formatter=Steps(), options=options).run())
    assert steps == ["init"]


def test_gateways_are_released_by_reference_count() -> None:
    targets = [as_target("gw->n1"), as_target("gw->n2"), as_target("n3")]
    nodes = FleetNodes(targets)
    (gateway,) = nodes.gateways("n1")
    assert nodes.gateways("n2") == [gateway]  # one node, shared
    assert nodes.gateways("n3") == []
    assert isinstance(gateway, SshNode) and nodes.users(gateway) == 2

    async def scenario() -> list[int]:
        counts = []
        await nodes.release("n1")
        counts.append(nodes.users(gateway))
        await nodes.release("n1")  # idempotent
        counts.append(nodes.users(gateway))
        await nodes.release("n2")
        counts.append(nodes.users(gateway))
        await nodes.close()
        return counts

    assert run(scenario()) == [1, 1, 0]


def test_a_host_that_is_another_hosts_gateway_is_one_node_closed_last() -> None:
    # a step on the bastion and steps behind it: one connection to the bastion, used both ways
    nodes = FleetNodes([as_target("gw"), as_target("gw->n1"), as_target("gw->n2")])
    (gateway,) = nodes.gateways("n1")
    assert nodes["gw"] is gateway and nodes.gateways("n2") == [gateway]
    assert len({id(nodes[name]) for name in nodes}) == 3  # gw, n1, n2: no second gw
    closed: list[str] = []

    async def record_close() -> None:
        closed.append("gw")

    gateway.close = record_close  # type: ignore[method-assign]

    async def scenario() -> list[list[str]]:
        seen = []
        await nodes.release("gw")  # n1, n2 still go through it
        seen.append(list(closed))
        await nodes.release("n1")
        seen.append(list(closed))
        await nodes.release("n2")  # the last user: closed now, once
        seen.append(list(closed))
        return seen

    assert run(scenario()) == [[], [], ["gw"]]


def test_stop_interrupts_running_hosts_and_skips_the_others(tmp_path: Path) -> None:
    capture = CaptureFormatter()
    pids = tmp_path / "pids"
    targets = [local(f"h{i}") for i in range(4)]
    fleet = FleetRun(
        targets,
        f"sleep 300 & echo $! >> {pids}; echo started; wait",
        formatter=capture,
        options=FleetOptions(window=2),
    )

    async def scenario() -> list[HostResult]:
        task = asyncio.ensure_future(fleet.run())
        while len(capture.hosts()) < 2:
            await asyncio.sleep(0.02)
        fleet.stop()
        return await task

    results = run(scenario())
    assert [r.status for r in results] == [Status.INTERRUPTED] * 2 + [Status.SKIPPED] * 2
    assert all(r.error is None for r in results[:2])  # "interrupted" is said once: the status
    for pid in pids.read_text().split():
        assert dies(int(pid))


def test_cancelling_the_awaiting_task_cleans_up_then_propagates(tmp_path: Path) -> None:
    capture = CaptureFormatter()
    pids = tmp_path / "pids"
    fleet = FleetRun(
        [local("h0")], f"sleep 300 & echo $! >> {pids}; echo started; wait", formatter=capture
    )

    async def scenario() -> None:
        task = asyncio.ensure_future(fleet.run())
        while not capture.hosts():
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario())
    assert fleet.results["h0"].status is Status.INTERRUPTED
    (pid,) = pids.read_text().split()
    assert dies(int(pid))


def test_unreachable_hosts_are_outcomes_not_errors(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        hop = Host.adhoc(
            "dead",
            hostname="127.0.0.1",
            port=port,
            known_hosts_file=str(tmp_path / "kh"),
            connect_timeout=5.0,
        )
        targets = [Target("dead", (hop,)), local("ok")]
        results = run(run_fleet(targets, "true", formatter=CaptureFormatter(), window=1))
    assert [r.status for r in results] == [Status.UNREACHABLE, Status.OK]


def test_an_empty_fleet_returns_at_once() -> None:
    assert run(run_fleet([], "true")) == []


def test_an_observer_error_is_raised_not_lost() -> None:
    class Broken(Events):
        def host_done(self, result: HostResult) -> None:
            raise RuntimeError("observer bug")

    with pytest.raises(RuntimeError, match="observer bug"):
        run(run_fleet([local("a")], "true", formatter=CaptureFormatter(), observer=Broken()))
