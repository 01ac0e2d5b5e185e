"""Host key policies, failure kinds told apart, ~/.ssh/config, and a window with failing hosts."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from apssh_cli.commands import Run
from apssh_cli.engine.job import Scheduler, SshJob
from apssh_cli.errors import AuthRefusedError, HostKeyRefusedError, UnreachableError
from apssh_cli.lab import Endpoint, KeyPair, Topology
from apssh_cli.output import CaptureFormatter
from apssh_cli.results import Status
from apssh_cli.ssh.node import SshNode, close_nodes

pytestmark = pytest.mark.integration

GUARD = 120  # a guard against a hang, not a timing assertion


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, GUARD))


def node_for(endpoint: Endpoint, keys: list[Any], known_hosts: Path, policy: str) -> SshNode:
    return SshNode(
        endpoint.host,
        port=endpoint.port,
        username="root",
        keys=keys,
        known_hosts=policy,
        known_hosts_file=known_hosts,
        ssh_config=None,
        label=endpoint.name,
        formatter=CaptureFormatter(),
    )


async def hostname(node: SshNode) -> str:
    job = SshJob(node, Run("hostname"))
    try:
        await job.co_run()
    finally:
        await close_nodes([node])
    capture = node.formatter
    assert isinstance(capture, CaptureFormatter)
    return capture.stdout(node.label).strip()


def test_accept_new_records_then_a_changed_key_is_refused(
    sshd_factory: Any, ssh_keypair: KeyPair, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "ssh" / "known_hosts"
    keys = [ssh_keypair.private_path]
    first = sshd_factory(name="tofu")
    assert run(hostname(node_for(first, keys, known_hosts, "accept-new"))) == "tofu"
    recorded = known_hosts.read_text()
    assert recorded.split() == [f"[{first.host}]:{first.port}", *first.host_key.split()[:2]]
    assert stat.S_IMODE(known_hosts.stat().st_mode) == 0o600
    # now known: strict accepts it too
    assert run(hostname(node_for(first, keys, known_hosts, "strict"))) == "tofu"

    # the same address and port come back with another host key
    sshd_factory.stop(first)
    second = sshd_factory(name="impostor", port=first.port)
    job = SshJob(node_for(second, keys, known_hosts, "accept-new"), Run("hostname"))
    with pytest.raises(HostKeyRefusedError) as info:
        run(job.co_run())
    assert "differs from the one recorded" in info.value.message
    assert job.outcome.status is Status.HOSTKEY_REFUSED
    assert known_hosts.read_text() == recorded  # never overwritten


def test_accept_new_with_many_connections_at_once_to_a_new_host(
    topology: Topology, ssh_keypair: KeyPair, tmp_path: Path
) -> None:
    # each connection starts with the host unknown; the first to finish the key
    # exchange records the key, the others must accept it (not "differs") and not
    # write it again
    endpoint = topology.direct[0]
    keys = [ssh_keypair.private_path]
    for attempt in range(3):
        known_hosts = tmp_path / f"known_hosts.{attempt}"
        nodes = [node_for(endpoint, keys, known_hosts, "accept-new") for _ in range(8)]

        async def all_at_once(nodes: list[SshNode] = nodes) -> list[str]:
            return list(await asyncio.gather(*(hostname(node) for node in nodes)))

        assert run(all_at_once()) == [endpoint.name] * len(nodes)
        lines = known_hosts.read_text().splitlines()
        assert [line.split() for line in lines] == [
            [f"[{endpoint.host}]:{endpoint.port}", *endpoint.host_key.split()[:2]]
        ]


def test_strict_refuses_an_unknown_key_and_off_records_nothing(
    sshd_factory: Any, ssh_keypair: KeyPair, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    endpoint = sshd_factory(name="unknown")
    keys = [ssh_keypair.private_path]
    with pytest.raises(HostKeyRefusedError, match="unknown and the policy is strict"):
        run(hostname(node_for(endpoint, keys, known_hosts, "strict")))
    assert run(hostname(node_for(endpoint, keys, known_hosts, "off"))) == "unknown"
    assert not known_hosts.exists()


def test_window_of_two_with_failing_hosts_finishes_and_tells_failures_apart(
    topology: Topology, sshd_factory: Any, ssh_keypair: KeyPair, tmp_path: Path
) -> None:
    good = [ssh_keypair.private_path]
    wrong = [asyncssh.generate_private_key("ssh-ed25519")]
    gone = sshd_factory(name="gone")
    sshd_factory.stop(gone)
    direct = topology.direct
    cases = [
        (node_for(direct[0], good, topology.known_hosts, "strict"), "true", Status.OK),
        (node_for(direct[1], good, topology.known_hosts, "strict"), "exit 3", Status.FAILED),
        (node_for(gone, good, topology.known_hosts, "strict"), "true", Status.UNREACHABLE),
        (node_for(direct[2], wrong, topology.known_hosts, "strict"), "true", Status.AUTH_REFUSED),
        (node_for(direct[0], good, tmp_path / "empty", "strict"), "true", Status.HOSTKEY_REFUSED),
        (node_for(direct[1], wrong, topology.known_hosts, "strict"), "true", Status.AUTH_REFUSED),
        (node_for(gone, good, topology.known_hosts, "strict"), "true", Status.UNREACHABLE),
    ]
    scheduler = Scheduler(jobs_window=2, critical=False)
    jobs = [SshJob(node, cmd, critical=False, scheduler=scheduler) for node, cmd, _ in cases]

    async def scenario() -> bool:
        try:
            return bool(await scheduler.co_run())
        finally:
            await close_nodes([node for node, _, _ in cases])

    assert run(scenario()) is True
    assert [job.outcome.status for job in jobs] == [expected for _, _, expected in cases]
    assert jobs[1].outcome.rc == 3
    assert "authentication refused for root" in (jobs[3].outcome.error or "")
    assert "cannot connect" in (jobs[2].outcome.error or "")


def test_unreachable_behind_the_bastion(topology: Topology, ssh_keypair: KeyPair) -> None:
    keys = [ssh_keypair.private_path]
    bastion = node_for(topology.bastion, keys, topology.known_hosts, "strict")
    missing = SshNode(
        "no-such-node",
        username="root",
        keys=keys,
        gateway=bastion,
        known_hosts_file=topology.known_hosts,
        known_hosts="strict",
        ssh_config=None,
    )
    with pytest.raises(UnreachableError, match="gateway could not reach no-such-node:22"):
        run(hostname(missing))
    wrong = node_for(
        topology.bastion,
        [asyncssh.generate_private_key("ssh-ed25519")],
        topology.known_hosts,
        "strict",
    )
    behind = SshNode(
        topology.internal[0].host,
        keys=keys,
        username="root",
        gateway=wrong,
        known_hosts_file=topology.known_hosts,
        ssh_config=None,
    )
    # a refused gateway makes the node behind it unreachable, and says why
    with pytest.raises(UnreachableError, match="gateway bastion: authentication refused"):
        run(hostname(behind))
    with pytest.raises(AuthRefusedError):
        run(hostname(wrong))


def test_ssh_config_hostname_user_port_identityfile_proxyjump(
    topology: Topology, ssh_keypair: KeyPair, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    internal = topology.internal[0]
    config.write_text(
        f"Host lab-bastion\n"
        f"    HostName {topology.bastion.host}\n"
        f"    Port {topology.bastion.port}\n"
        f"Host lab-node\n"
        f"    HostName {internal.host}\n"
        f"    ProxyJump lab-bastion\n"
        f"Host *\n"
        f"    User root\n"
        f"    IdentityFile {ssh_keypair.private_path}\n"
    )
    node = SshNode(
        "lab-node",
        ssh_config=config,
        known_hosts="strict",
        known_hosts_file=topology.known_hosts,
        formatter=CaptureFormatter(),
    )
    assert run(hostname(node)) == internal.name
