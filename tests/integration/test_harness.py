"""The harness itself, proven with asyncssh directly: direct nodes, the bastion, SFTP, host keys."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import tomllib
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from apssh_cli.lab import Endpoint, KeyPair, Topology, containers as containers_module

pytestmark = pytest.mark.integration


def _connect(
    endpoint: Endpoint, keypair: KeyPair, known_hosts: Path, **kwargs: Any
) -> Any:  # asyncssh's awaitable connection context manager
    return asyncssh.connect(
        endpoint.host,
        endpoint.port,
        username=kwargs.pop("username", "root"),
        client_keys=[str(keypair.private_path)],
        known_hosts=str(known_hosts),
        agent_path=None,
        config=None,
        **kwargs,
    )


def test_command_on_a_direct_node(topology: Topology, ssh_keypair: KeyPair) -> None:
    async def main() -> list[str]:
        outputs = []
        for endpoint in topology.direct:
            async with _connect(endpoint, ssh_keypair, topology.known_hosts) as conn:
                result = await conn.run("hostname; id -un", check=True)
                outputs.append(str(result.stdout))
        return outputs

    outputs = asyncio.run(main())
    assert outputs == [f"{ep.name}\nroot\n" for ep in topology.direct]


def test_command_on_internal_nodes_through_the_bastion(
    topology: Topology, ssh_keypair: KeyPair
) -> None:
    async def main() -> list[str]:
        outputs = []
        async with _connect(topology.bastion, ssh_keypair, topology.known_hosts) as bastion:
            for endpoint in topology.internal:
                # connect_ssh tunnels a direct-tcpip channel to the alias, from the bastion
                async with bastion.connect_ssh(
                    endpoint.host,
                    endpoint.port,
                    username="root",
                    client_keys=[str(ssh_keypair.private_path)],
                    known_hosts=str(topology.known_hosts),
                    agent_path=None,
                    config=None,
                ) as node:
                    result = await node.run("hostname", check=True)
                    outputs.append(str(result.stdout).strip())
        return outputs

    assert asyncio.run(main()) == [ep.name for ep in topology.internal]


def test_tunnel_option_and_the_non_root_user(topology: Topology, ssh_keypair: KeyPair) -> None:
    async def main() -> str:
        async with (
            _connect(topology.bastion, ssh_keypair, topology.known_hosts) as bastion,
            _connect(
                topology.internal[0],
                ssh_keypair,
                topology.known_hosts,
                tunnel=bastion,
                username="tester",
            ) as node,
        ):
            result = await node.run('id -un; echo "$SHELL"', check=True)
            return str(result.stdout)

    assert asyncio.run(main()) == "tester\n/bin/sh\n"


def test_internal_nodes_are_not_published(topology: Topology) -> None:
    for endpoint in topology.internal:
        wrapped = endpoint.container.get_wrapped_container()
        wrapped.reload()
        assert not wrapped.attrs["NetworkSettings"]["Ports"].get("22/tcp")
        assert (endpoint.host, endpoint.port) == (endpoint.name, 22)
    for endpoint in [topology.bastion, *topology.direct]:
        wrapped = endpoint.container.get_wrapped_container()
        bindings = wrapped.attrs["NetworkSettings"]["Ports"]["22/tcp"]
        assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}


def test_sftp_round_trip_keeps_the_bytes(
    topology: Topology, ssh_keypair: KeyPair, tmp_path: Path
) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    source = tmp_path / "payload.bin"
    source.write_bytes(payload)
    back = tmp_path / "back.bin"

    async def main() -> str:
        endpoint = topology.direct[0]
        async with _connect(endpoint, ssh_keypair, topology.known_hosts) as conn:
            async with conn.start_sftp_client() as sftp:
                await sftp.put(str(source), "/tmp/payload.bin")
                await sftp.get("/tmp/payload.bin", str(back))
            result = await conn.run("sha256sum /tmp/payload.bin", check=True)
            return str(result.stdout).split()[0]

    remote_sum = asyncio.run(main())
    assert remote_sum == hashlib.sha256(payload).hexdigest()
    assert back.read_bytes() == payload


def test_host_keys_are_checked_against_known_hosts(
    topology: Topology, ssh_keypair: KeyPair, tmp_path: Path
) -> None:
    # a known_hosts file that gives direct1's port another server's key
    wrong = tmp_path / "known_hosts"
    first, second = topology.direct[0], topology.direct[1]
    wrong.write_text(f"{first.known_hosts_name} {second.host_key}\n")

    async def main() -> None:
        async with _connect(first, ssh_keypair, wrong):
            pass

    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        asyncio.run(main())


def test_known_hosts_lists_every_server_as_the_client_names_it(topology: Topology) -> None:
    lines = topology.known_hosts.read_text().splitlines()
    names = [line.split()[0] for line in lines]
    assert names == [ep.known_hosts_name for ep in topology.endpoints]
    assert [f"[127.0.0.1]:{ep.port}" for ep in topology.direct] == names[-len(topology.direct) :]
    assert [ep.name for ep in topology.internal] == names[1 : 1 + len(topology.internal)]


def test_inventory_describes_the_topology(topology: Topology, ssh_keypair: KeyPair) -> None:
    data = tomllib.loads(topology.inventory.read_text())
    all_vars = data["all"]["vars"]
    assert all_vars["user"] == "root"
    assert Path(all_vars["identity_file"]) == ssh_keypair.private_path.resolve()
    assert all_vars["known_hosts"] == {
        "policy": "accept-new",
        "file": str(topology.known_hosts.resolve()),
    }
    assert data["bastions"]["hosts"]["bastion"] == {
        "hostname": "127.0.0.1",
        "port": topology.bastion.port,
    }
    assert data["nodes"]["vars"] == {"gateway": "bastion"}
    assert sorted(data["nodes"]["hosts"]) == [ep.name for ep in topology.internal]
    assert data["direct"]["hosts"] == {
        ep.name: {"hostname": "127.0.0.1", "port": ep.port} for ep in topology.direct
    }


def test_exec_sees_the_tunnel_on_the_bastion(topology: Topology, ssh_keypair: KeyPair) -> None:
    async def main() -> tuple[int, str]:
        async with (
            _connect(topology.bastion, ssh_keypair, topology.known_hosts) as bastion,
            bastion.connect_ssh(
                topology.internal[1].host,
                username="root",
                client_keys=[str(ssh_keypair.private_path)],
                known_hosts=str(topology.known_hosts),
                agent_path=None,
                config=None,
            ),
        ):
            # while connected: one per-connection sshd for us on the bastion
            return topology.exec(topology.bastion, "ps -eo args | grep -c '^sshd: root'")

    rc, output = asyncio.run(main())
    assert rc == 0
    assert int(output) >= 1


def test_factory_server_with_a_changed_host_key_is_refused(
    sshd_factory: Any, ssh_keypair: KeyPair, known_hosts_file: Path
) -> None:
    first = sshd_factory()
    known_hosts_file.write_text(sshd_factory.known_hosts_line(first))

    async def hostname(endpoint: Endpoint) -> str:
        async with _connect(endpoint, ssh_keypair, known_hosts_file) as conn:
            return str((await conn.run("hostname", check=True)).stdout).strip()

    assert asyncio.run(hostname(first)) == "extra"
    sshd_factory.stop(first)
    with pytest.raises(OSError):  # refused: nothing listens on the port any more
        asyncio.run(hostname(first))
    # same address, another key: what a re-installed host looks like
    second = sshd_factory(host_key=sshd_factory.new_host_key(), port=first.port)
    assert (second.host, second.port) == (first.host, first.port)
    assert second.host_key != first.host_key
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        asyncio.run(hostname(second))


def test_a_port_taken_before_docker_binds_it_is_picked_again(
    sshd_factory: Any, ssh_keypair: KeyPair, known_hosts_file: Path, monkeypatch: Any
) -> None:
    # free_port's choice is taken by someone else before the container starts: the
    # start fails on that port, and start_sshd picks another one
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        picked: list[int] = []

        def pick() -> int:
            picked.append(busy if not picked else _free())
            return picked[-1]

        monkeypatch.setattr(containers_module, "free_port", pick)
        endpoint = sshd_factory()
    assert len(picked) == 2
    assert endpoint.port == picked[1] != busy
    known_hosts_file.write_text(sshd_factory.known_hosts_line(endpoint))

    async def hostname() -> str:
        async with _connect(endpoint, ssh_keypair, known_hosts_file) as conn:
            return str((await conn.run("hostname", check=True)).stdout).strip()

    assert asyncio.run(hostname()) == "extra"


def _free() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
