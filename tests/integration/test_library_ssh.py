"""The library against real OpenSSH servers: direct, through a bastion, chains, one connection."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import pytest

from apssh_cli.commands import Run
from apssh_cli.engine.job import Scheduler, SshJob
from apssh_cli.lab import Endpoint, KeyPair, Topology
from apssh_cli.output import CaptureFormatter
from apssh_cli.results import Status
from apssh_cli.ssh.node import SshNode, close_nodes
from tests.integration.nodes import make_node

pytestmark = pytest.mark.integration

# a guard against a hang, not a timing assertion
GUARD = 120


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, GUARD))


def established_ssh(topology: Topology, endpoint: Endpoint) -> int:
    """TCP connections established to the endpoint's sshd (port 22 inside its container)."""
    rc, output = topology.exec(endpoint, "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null")
    assert rc == 0, output
    count = 0
    for line in output.splitlines():
        fields = line.split()
        # "sl local_address rem_address st ...": local port 22 is :0016, ESTABLISHED is 01
        if len(fields) > 3 and fields[1].endswith(":0016") and fields[3] == "01":
            count += 1
    return count


async def run_jobs(jobs: Iterable[SshJob], nodes: Iterable[SshNode], **kwargs: Any) -> bool:
    scheduler = Scheduler(*jobs, **kwargs)
    try:
        return bool(await scheduler.co_run())
    finally:
        await close_nodes(nodes)


def test_direct_nodes(topology: Topology, ssh_keypair: KeyPair) -> None:
    capture = CaptureFormatter()
    nodes = [make_node(topology, ssh_keypair, ep, capture) for ep in topology.direct]
    jobs = [SshJob(node, Run("hostname; id -un")) for node in nodes]
    assert run(run_jobs(jobs, nodes)) is True
    for endpoint, job in zip(topology.direct, jobs, strict=True):
        assert job.outcome.status is Status.OK
        assert capture.stdout(endpoint.name) == f"{endpoint.name}\nroot\n"


def test_through_the_bastion_with_one_bastion_connection(
    topology: Topology, ssh_keypair: KeyPair
) -> None:
    capture = CaptureFormatter()
    bastion = make_node(topology, ssh_keypair, topology.bastion, capture)
    # two SshNodes per internal endpoint: four connections, all through one to the bastion
    nodes = [
        make_node(topology, ssh_keypair, ep, capture, gateway=bastion)
        for ep in topology.internal
        for _ in range(2)
    ]
    before = established_ssh(topology, topology.bastion)
    counted: list[int] = []

    async def scenario() -> None:
        jobs = [SshJob(node, Run("hostname")) for node in nodes]
        assert await Scheduler(*jobs).co_run() is True
        # count while every connection is still open
        counted.append(established_ssh(topology, topology.bastion))
        await close_nodes(nodes)
        assert not bastion.is_connected  # close_nodes closed the gateway too

    run(scenario())
    assert counted == [before + 1]
    for endpoint in topology.internal:
        assert capture.stdout(endpoint.name) == f"{endpoint.name}\n" * 2


def test_chain_of_three_hops(topology: Topology, ssh_keypair: KeyPair) -> None:
    capture = CaptureFormatter()
    first, second = topology.internal[:2]
    bastion = make_node(topology, ssh_keypair, topology.bastion, capture)
    hop = make_node(topology, ssh_keypair, first, capture, gateway=bastion)
    target = make_node(topology, ssh_keypair, second, capture, gateway=hop)
    job = SshJob(target, Run("hostname"))
    assert run(run_jobs([job], [target])) is True
    assert capture.stdout(second.name) == f"{second.name}\n"
    assert not hop.is_connected and not bastion.is_connected


def test_one_connection_per_node_for_concurrent_jobs(
    topology: Topology, ssh_keypair: KeyPair
) -> None:
    capture = CaptureFormatter()
    endpoint = topology.direct[0]
    node = make_node(topology, ssh_keypair, endpoint, capture)
    before = established_ssh(topology, endpoint)
    counted: list[int] = []

    async def scenario() -> None:
        jobs = [SshJob(node, Run(f"echo {i}")) for i in range(8)]
        assert await Scheduler(*jobs).co_run() is True
        counted.append(established_ssh(topology, endpoint))
        await node.close()

    run(scenario())
    assert counted == [before + 1]
    assert sorted(capture.lines(endpoint.name)) == [str(i) for i in range(8)]


def test_output_is_decoded_with_replacement_and_rc_kept(
    topology: Topology, ssh_keypair: KeyPair
) -> None:
    capture = CaptureFormatter()
    endpoint = topology.direct[1]
    node = make_node(topology, ssh_keypair, endpoint, capture)
    job = SshJob(
        node, Run("printf 'ok\\n\\377\\376\\nlast'; echo warn >&2; exit 7"), critical=False
    )
    assert run(run_jobs([job], [node])) is True
    assert capture.lines(endpoint.name) == ["ok", "\ufffd\ufffd", "last"]
    assert capture.stderr(endpoint.name) == "warn\n"
    assert job.outcome.status is Status.FAILED
    assert job.outcome.rc == 7
