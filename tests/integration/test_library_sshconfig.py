"""ssh_config against the containers: Match and Include honoured; ProxyJump across runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asynciojobs
import pytest

from apssh_cli.commands import Run
from apssh_cli.engine.job import Scheduler, SshJob
from apssh_cli.lab import KeyPair, Topology
from apssh_cli.output import CaptureFormatter
from apssh_cli.results import Status
from apssh_cli.ssh.context import SshContext
from apssh_cli.ssh.node import SshNode, close_nodes

pytestmark = pytest.mark.integration

GUARD = 120  # a guard against a hang, not a timing assertion


def test_match_host_and_include_select_user_port_and_key(
    topology: Topology, ssh_keypair: KeyPair, tmp_path: Path
) -> None:
    direct = topology.direct[0]
    included = tmp_path / "conf.d" / "lab.conf"
    included.parent.mkdir()
    # selected by Match host (the HostName, as OpenSSH evaluates it), from an included file;
    # a wrong user and key come first for any other host, so only Match can make it work
    included.write_text(
        f"Match host {direct.host} originalhost my-node\n"
        f"    Port {direct.port}\n"
        f"    User tester\n"
        f"    IdentityFile {ssh_keypair.private_path}\n"
    )
    config = tmp_path / "config"
    config.write_text(
        f"Host my-node\n    HostName {direct.host}\n"
        f"Include {included.parent}/*.conf\n"
        f"Host *\n    User nobody\n    Port 1\n"
    )
    capture = CaptureFormatter()
    node = SshNode(
        "my-node",
        ssh_config=config,
        known_hosts="strict",
        known_hosts_file=topology.known_hosts,
        formatter=capture,
    )

    async def whoami() -> None:
        try:
            await SshJob(node, Run("id -un; hostname")).co_run()
        finally:
            await close_nodes([node])

    asyncio.run(asyncio.wait_for(whoami(), GUARD))
    assert capture.stdout("my-node").split() == ["tester", direct.name]
    # the inventory (explicit arguments) still wins over the file
    explicit = SshNode("my-node", ssh_config=config, username="root")
    assert explicit.resolve().username == "root"


def _proxyjump_config(topology: Topology, keypair: KeyPair, path: Path, count: int) -> list[str]:
    lines = [
        f"Host jump\n    HostName {topology.bastion.host}\n    Port {topology.bastion.port}\n",
        f"Host *\n    User root\n    IdentityFile {keypair.private_path}\n",
    ]
    names = []
    for index in range(count):
        internal = topology.internal[index % len(topology.internal)]
        name = f"behind{index}"
        names.append(name)
        lines.insert(0, f"Host {name}\n    HostName {internal.host}\n    ProxyJump jump\n")
    path.write_text("".join(lines))
    return names


def test_two_successive_scheduler_runs_through_proxyjump(
    topology: Topology, ssh_keypair: KeyPair, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    names = _proxyjump_config(topology, ssh_keypair, config, 5)
    for attempt in range(2):
        capture = CaptureFormatter()
        nodes = [
            SshNode(
                name,
                ssh_config=config,
                known_hosts="strict",
                known_hosts_file=topology.known_hosts,
                formatter=capture,
            )
            for name in names
        ]
        jobs = [SshJob(node, Run("hostname"), critical=False) for node in nodes]
        # the connections are closed inside the run (its loop ends with it)
        closing = asynciojobs.Job(close_nodes(nodes), required=jobs, critical=False)
        scheduler = Scheduler(*jobs, closing, timeout=GUARD)
        assert scheduler.run(), f"run {attempt}: {[job.outcome for job in jobs]}"
        assert [job.outcome.status for job in jobs] == [Status.OK] * 5
        gateways = {node.effective_gateway for node in nodes}
        assert len(gateways) == 1  # one jump node, so one connection to the bastion


def test_an_explicit_context_shares_its_jump_nodes_and_closes_them(
    topology: Topology, ssh_keypair: KeyPair, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    names = _proxyjump_config(topology, ssh_keypair, config, 3)

    async def scenario() -> list[str]:
        async with SshContext() as context:
            capture = CaptureFormatter()
            nodes = [
                SshNode(
                    name,
                    ssh_config=config,
                    known_hosts="strict",
                    known_hosts_file=topology.known_hosts,
                    formatter=capture,
                    context=context,
                )
                for name in names
            ]
            await asyncio.gather(*(SshJob(node, Run("true")).co_run() for node in nodes))
            assert len(context.jump_nodes) == 1
            jump = context.jump_nodes[0]
            assert jump.is_connected
            await close_nodes(nodes)
        assert not jump.is_connected  # the context closed its jump node
        return [node.label for node in nodes]

    assert asyncio.run(asyncio.wait_for(scenario(), GUARD)) == names


@pytest.mark.parametrize(
    ("ciphers", "expected"),
    [
        (None, "aes128-gcm@openssh.com"),
        ("chacha20-poly1305@openssh.com", "chacha20-poly1305@openssh.com"),
    ],
)
def test_fast_ciphers_unless_ssh_config_names_its_own(
    topology: Topology, ssh_keypair: KeyPair, tmp_path: Path, ciphers: str | None, expected: str
) -> None:
    direct = topology.direct[0]
    config = tmp_path / "config"
    config.write_text(f"Host *\n    Ciphers {ciphers}\n" if ciphers else "")
    node = SshNode(
        direct.host,
        port=direct.port,
        username="root",
        keys=[ssh_keypair.private_path],
        known_hosts="strict",
        known_hosts_file=topology.known_hosts,
        ssh_config=config,
    )

    async def cipher() -> str:
        try:
            await node.connect()
            assert node._conn is not None
            return str(node._conn.get_extra_info("send_cipher"))
        finally:
            await node.close()

    assert asyncio.run(asyncio.wait_for(cipher(), GUARD)) == expected
