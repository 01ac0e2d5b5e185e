"""The fleet engine against the containers: connections released, descriptors, signals.

- a host's connection is closed as soon as its work is done, a gateway's when
  the last host behind it is done (checked on the nodes and by the open sockets
  of this process);
- 300 hosts (aliases of the topology's nodes) under ``ulimit -n 128`` all end ok;
- SIGTERM and SIGHUP to a running ``apssh`` leave no remote command running;
- SshJobs in asynciojobs' own windowed Scheduler finish with failing and
  unreachable hosts.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asynciojobs
import pytest

from apssh_cli.engine.fleet import FleetOptions, FleetRun
from apssh_cli.engine.job import SshJob
from apssh_cli.inventory.model import Inventory
from apssh_cli.inventory.targets import inventory_target
from apssh_cli.lab import Topology
from apssh_cli.output import CaptureFormatter
from apssh_cli.results import HostResult, Status
from apssh_cli.ssh.node import SshNode

pytestmark = pytest.mark.integration

# a guard against a hang, not a timing assertion
GUARD = 300


def open_sockets() -> int:
    """How many sockets this process holds."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            continue
    return count


def alias_inventory(topology: Topology, count: int, path: Path) -> list[str]:
    """The topology's inventory plus a group ``many`` of ``count`` aliases of its nodes.

    Aliases alternate between direct nodes (one connection each) and nodes
    behind the bastion (one channel each over the bastion's single connection).
    """
    text = topology.inventory.read_text()
    names: list[str] = []
    for index in range(count):
        name = f"h{index:04d}"
        names.append(name)
        if index % 2 and topology.internal:
            endpoint = topology.internal[index // 2 % len(topology.internal)]
            text += f'\n[many.hosts.{name}]\nhostname = "{endpoint.name}"\n'
            text += f'gateway = "{topology.bastion.name}"\n'
        else:
            endpoint = topology.direct[index // 2 % len(topology.direct)]
            text += f'\n[many.hosts.{name}]\nhostname = "{endpoint.host}"\n'
            text += f"port = {endpoint.port}\n"
    path.write_text(text)
    return names


@pytest.fixture
def refused_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


class Watch:
    """An observer that checks the nodes as hosts start and end."""

    def __init__(self) -> None:
        self.run: FleetRun | None = None
        self.sockets: list[int] = []
        self.after: dict[str, bool] = {}
        self.gateway_open: list[tuple[str, bool]] = []

    def host_started(self, name: str) -> None:
        self.sockets.append(open_sockets())

    def host_done(self, result: HostResult) -> None:
        assert self.run is not None
        node = self.run.nodes[result.host]
        self.after[result.host] = isinstance(node, SshNode) and node.is_connected
        for gateway in self.run.nodes.gateways(result.host):
            self.gateway_open.append((result.host, gateway.is_connected))


def test_connections_close_as_hosts_finish(topology: Topology) -> None:
    inventory = Inventory.load([topology.inventory])
    names = [ep.name for ep in topology.direct] + [ep.name for ep in topology.internal]
    targets = [inventory_target(inventory, name) for name in names]
    watch = Watch()
    run = FleetRun(
        targets,
        "hostname; sleep 0.2",
        formatter=CaptureFormatter(),
        options=FleetOptions(window=2),
        observer=watch,
    )
    watch.run = run
    baseline = open_sockets()
    results = asyncio.run(asyncio.wait_for(run.run(), GUARD))
    assert [r.status for r in results] == [Status.OK] * len(names)
    # every host's connection was closed when it was done
    assert watch.after == dict.fromkeys(names, False)
    # the bastion stayed up for the hosts behind it, and went with the last one
    assert [is_open for _, is_open in watch.gateway_open] == [True] * (
        len(topology.internal) - 1
    ) + [False]
    # never more than the window's hosts and the bastion at once (+1: a host whose
    # connection is being closed as the next one starts)
    assert max(watch.sockets) - baseline <= 2 + 1 + 1, (baseline, watch.sockets)
    assert open_sockets() <= baseline


def test_keep_connections_then_release(topology: Topology) -> None:
    inventory = Inventory.load([topology.inventory])
    names = [ep.name for ep in topology.internal]
    targets = [inventory_target(inventory, name) for name in names]

    async def scenario() -> tuple[list[bool], list[bool], bool, bool]:
        first = FleetRun(
            targets,
            "true",
            formatter=CaptureFormatter(),
            options=FleetOptions(keep_connections=True),
        )
        await first.run()
        nodes = first.nodes
        kept = [nodes[name].is_connected for name in names]  # type: ignore[union-attr]
        # a second step on the same connections
        second = FleetRun(
            targets, "echo again", options=FleetOptions(keep_connections=True), nodes=nodes
        )
        results = await second.run()
        assert [r.status for r in results] == [Status.OK] * len(names)
        still = [nodes[name].is_connected for name in names]  # type: ignore[union-attr]
        (gateway,) = nodes.gateways(names[0])
        for name in names[:-1]:
            await nodes.release(name)
        gateway_while_one_left = bool(gateway.is_connected)  # a flag, also callable
        await nodes.release(names[-1])
        return kept, still, gateway_while_one_left, bool(gateway.is_connected)

    kept, still, one_left, at_end = asyncio.run(asyncio.wait_for(scenario(), GUARD))
    assert kept == still == [True] * len(names)
    assert one_left is True and at_end is False


def test_300_hosts_under_a_low_descriptor_limit(topology: Topology, tmp_path: Path) -> None:
    inventory = tmp_path / "many.toml"
    names = alias_inventory(topology, 300, inventory)

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))

    done = subprocess.run(
        [sys.executable, "-m", "apssh_cli.cli.main", "-i", str(inventory), "-g", "many",
         "-w", "60", "--connect-timeout", "60", "--json", "true"],
        capture_output=True, text=True, timeout=GUARD, preexec_fn=low_limit,
    )  # fmt: skip
    records = [json.loads(line) for line in done.stdout.splitlines()]
    *hosts, summary = records
    failed = [r for r in hosts if r["status"] != "ok"]
    assert not failed, failed[:3]
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(r["host"] for r in hosts) == names
    assert summary["summary"]["ok"] == 300


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_leave_no_remote_command(
    topology: Topology, signum: signal.Signals, tmp_path: Path
) -> None:
    marker = f"slee[p] 3{signum}"  # a distinct command per case
    failed_to = tmp_path / "retry.txt"
    process = subprocess.Popen(
        [sys.executable, "-m", "apssh_cli.cli.main", "-i", str(topology.inventory),
         "-g", "nodes,direct", "-w", "3", "--failed-to", str(failed_to),
         f"echo ready; sleep 3{signum}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    for _ in range(3):
        line = process.stdout.readline()
        if not line:
            pytest.fail(f"apssh ended early ({process.wait()}): {process.communicate()[1]}")
        assert line.rstrip().endswith("ready")
    process.send_signal(signum)
    _, err = process.communicate(timeout=GUARD)
    assert process.returncode == 128 + signum, err
    assert "(interrupted)" in err and "  not started" in err
    assert "[interrupted] interrupted" not in err
    everyone = [ep.name for ep in [*topology.internal, *topology.direct]]
    assert sorted(failed_to.read_text().split()) == sorted(everyone)
    for endpoint in [*topology.internal, *topology.direct]:
        rc, _ = topology.exec(endpoint, f"pgrep -f '{marker}'")
        assert rc == 1, f"sleep still running on {endpoint.name}"


def test_upstream_scheduler_window_with_failing_and_unreachable_hosts(
    topology: Topology, refused_port: int, tmp_path: Path
) -> None:
    # upstream scripts import Scheduler from asynciojobs itself
    inventory = Inventory.load([topology.inventory])
    capture = CaptureFormatter()
    bastion_route = inventory_target(inventory, topology.internal[0].name).route
    bastion_hop = bastion_route[0]
    bastion = SshNode(
        bastion_hop.hostname,
        port=bastion_hop.port,
        username=bastion_hop.user,
        keys=list(bastion_hop.identity_files),
        known_hosts_file=bastion_hop.known_hosts_file,
        formatter=capture,
        ssh_config=None,
    )
    internal = [
        SshNode(
            ep.name,
            username=bastion_hop.user,
            gateway=bastion,
            keys=list(bastion_hop.identity_files),
            known_hosts_file=bastion_hop.known_hosts_file,
            formatter=capture,
            ssh_config=None,
        )
        for ep in topology.internal
    ]
    dead = [
        SshNode(
            "127.0.0.1",
            port=refused_port,
            label=f"dead{index}",
            known_hosts_file=tmp_path / "kh",
            formatter=capture,
            ssh_config=None,
        )
        for index in range(3)
    ]
    scheduler = asynciojobs.Scheduler(jobs_window=2, critical=False)
    unreachable = [SshJob(node, "true", critical=False, scheduler=scheduler) for node in dead]
    failing = [SshJob(node, "exit 3", critical=False, scheduler=scheduler) for node in internal]
    after = SshJob(internal[0], "echo after", critical=False, scheduler=scheduler, required=failing)

    async def scenario() -> bool:
        try:
            return bool(await scheduler.co_run())
        finally:
            from apssh_cli.ssh.node import close_nodes

            await close_nodes([*internal, *dead])

    assert asyncio.run(asyncio.wait_for(scenario(), GUARD)) is True
    assert [job.outcome.status for job in unreachable] == [Status.UNREACHABLE] * 3
    assert [job.outcome.rc for job in failing] == [3] * len(internal)
    assert after.outcome.status is Status.OK
    assert capture.lines(internal[0].label)[-1] == "after"


def sshd_sessions(topology: Topology, endpoint: object) -> int:
    """sshd processes of a container that are not its listener: one or two per session."""
    _, out = topology.exec(endpoint, "ps -eo args | grep -c '^sshd[-a-z]*: [^/]' || true")  # type: ignore[arg-type]
    return int(out.strip() or 0)


def test_the_server_sees_each_connection_closed_before_the_next_host_starts(
    topology: Topology,
) -> None:
    import time

    inventory = Inventory.load([topology.inventory])
    endpoints = {ep.name: ep for ep in topology.direct}
    names = list(endpoints)
    targets = [inventory_target(inventory, name) for name in names]
    open_when_next_started: dict[str, int] = {}

    class ServerSide:
        previous: str | None = None

        def host_started(self, name: str) -> None:
            if self.previous is not None:
                # the previous host is done: its sshd session must go (allow it a moment)
                deadline = time.monotonic() + 20
                while (count := sshd_sessions(topology, endpoints[self.previous])) and (
                    time.monotonic() < deadline
                ):
                    time.sleep(0.2)
                open_when_next_started[self.previous] = count
            self.previous = name

        def host_done(self, result: HostResult) -> None:
            pass

    run = FleetRun(
        targets,
        "true",
        formatter=CaptureFormatter(),
        options=FleetOptions(window=1),
        observer=ServerSide(),
    )
    results = asyncio.run(asyncio.wait_for(run.run(), GUARD))
    assert [r.status for r in results] == [Status.OK] * len(names)
    assert open_when_next_started == dict.fromkeys(names[:-1], 0)
    # and the count does see a session that is open: kept, then released
    kept = FleetRun(
        targets[:1],
        "true",
        formatter=CaptureFormatter(),
        options=FleetOptions(keep_connections=True),
    )

    async def keep_then_release() -> tuple[int, int]:
        await kept.run()
        during = sshd_sessions(topology, endpoints[names[0]])
        await kept.nodes.release(names[0])
        deadline = time.monotonic() + 20
        while (after := sshd_sessions(topology, endpoints[names[0]])) and (
            time.monotonic() < deadline
        ):
            await asyncio.sleep(0.2)
        return during, after

    during, after = asyncio.run(asyncio.wait_for(keep_then_release(), GUARD))
    assert during >= 1 and after == 0
