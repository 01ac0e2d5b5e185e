"""SshNode against an in-process asyncssh server on 127.0.0.1:0 (no Docker).

Covers the protocol edge cases: host key policies, auth refusal, one connection
per node, tunnels through a gateway node, and SFTP transfers.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from apssh_cli.commands import Pull, Push, Run
from apssh_cli.engine.job import SshJob
from apssh_cli.errors import AuthRefusedError, HostKeyRefusedError
from apssh_cli.output import CaptureFormatter
from apssh_cli.ssh.node import SshNode, close_nodes

CLIENT_KEY = asyncssh.generate_private_key("ssh-ed25519")


@dataclass
class Server:
    port: int
    host_key: asyncssh.SSHKey
    connections: int = 0
    tunnels: list[tuple[str, int]] = field(default_factory=list)


async def _shell(process: Any) -> None:
    # run the command with the local shell (enough for echo/exit); the client
    # sends no input (end-of-file at once)
    proc = await asyncio.create_subprocess_shell(
        process.command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None

    async def copy(reader: Any, writer: Any) -> None:
        while data := await reader.read(65536):
            writer.write(data)

    await asyncio.gather(copy(proc.stdout, process.stdout), copy(proc.stderr, process.stderr))
    process.exit(await proc.wait())


@asynccontextmanager
async def ssh_server(
    host_key: asyncssh.SSHKey | None = None, sftp_factory: Any = True
) -> AsyncIterator[Server]:
    key = host_key or asyncssh.generate_private_key("ssh-ed25519")
    state = Server(0, key)

    class Handler(asyncssh.SSHServer):
        def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
            state.connections += 1

        def connection_requested(self, dest_host: str, dest_port: int, *args: Any) -> bool:
            state.tunnels.append((dest_host, dest_port))
            return True

    authorized = asyncssh.import_authorized_keys(CLIENT_KEY.export_public_key().decode())
    server = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[key],
        authorized_client_keys=authorized,
        server_factory=Handler,
        process_factory=_shell,
        encoding=None,
        sftp_factory=sftp_factory,
        allow_scp=False,
    )
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()


def make(server: Server, known_hosts: Path, policy: str = "accept-new", **kwargs: Any) -> SshNode:
    kwargs.setdefault("keys", [CLIENT_KEY])
    return SshNode(
        "127.0.0.1",
        port=server.port,
        username="tester",
        known_hosts=policy,
        known_hosts_file=known_hosts,
        ssh_config=None,
        formatter=CaptureFormatter(),
        **kwargs,
    )


def run(scenario: Callable[[], Any]) -> Any:
    # a guard against a hang, not a timing assertion
    return asyncio.run(asyncio.wait_for(scenario(), 60))


def stdout(node: SshNode) -> str:
    capture = node.formatter
    assert isinstance(capture, CaptureFormatter)
    return capture.stdout(node.label)


def test_accept_new_records_after_the_exchange_and_refuses_a_change(tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"

    async def scenario() -> None:
        async with ssh_server() as server:
            node = make(server, known_hosts)
            await SshJob(node, Run("echo hi")).co_run()
            await node.close()
            assert stdout(node) == "hi\n"
            line = known_hosts.read_text().split()
            assert line[0] == f"[127.0.0.1]:{server.port}"
            assert line[2] == server.host_key.export_public_key().decode().split()[1]
            strict = make(server, known_hosts, "strict")
            await strict.connect()
            await strict.close()
        recorded = known_hosts.read_text()
        # another server (another key) where the first one was
        async with ssh_server() as impostor:
            known_hosts.write_text(recorded.replace(str(server.port), str(impostor.port)))
            before = known_hosts.read_text()
            with pytest.raises(HostKeyRefusedError, match="differs"):
                await make(impostor, known_hosts).connect()
            assert known_hosts.read_text() == before

    run(scenario)


def test_strict_unknown_and_auth_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with ssh_server() as server:
            with pytest.raises(HostKeyRefusedError, match="strict"):
                await make(server, tmp_path / "none", "strict").connect()
            other = asyncssh.generate_private_key("ssh-ed25519")
            with pytest.raises(AuthRefusedError, match="tester"):
                await make(server, tmp_path / "kh", keys=[other]).connect()

    run(scenario)


def test_key_files_and_one_connection_for_concurrent_commands(tmp_path: Path) -> None:
    key_path = tmp_path / "id"
    CLIENT_KEY.write_private_key(key_path)

    async def scenario() -> None:
        async with ssh_server() as server:
            node = make(server, tmp_path / "kh", keys=[key_path])
            jobs = [SshJob(node, Run(f"echo {i}")) for i in range(6)]
            await asyncio.gather(*(job.co_run() for job in jobs))
            await node.close()
            assert server.connections == 1
            assert sorted(stdout(node).split()) == [str(i) for i in range(6)]

    run(scenario)


def test_nodes_behind_a_gateway_share_its_connection(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with ssh_server() as server:
            known_hosts = tmp_path / "kh"
            gateway = make(server, known_hosts, label="gw")
            # four nodes behind the gateway, one of them two hops away
            middle = make(server, known_hosts, gateway=gateway, label="middle")
            nodes = [make(server, known_hosts, gateway=gateway, label=f"n{i}") for i in range(3)]
            nodes.append(make(server, known_hosts, gateway=middle, label="far"))
            await asyncio.gather(*(SshJob(node, Run("echo ok")).co_run() for node in nodes))
            await close_nodes(nodes)
            assert not gateway.is_connected and not middle.is_connected
            # gateway, middle and four nodes: six connections, five of them tunnelled,
            # so the client made exactly one direct connection (the gateway's)
            assert server.connections == 6
            assert len(server.tunnels) == 5
            assert all(stdout(node) == "ok\n" for node in nodes)

    run(scenario)


def test_push_pull_through_sftp(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "a.bin").write_bytes(os.urandom(100_000))
    (source / "sub" / "b.txt").write_bytes(b"\x00\xff\r\n")
    remote = tmp_path / "remote"
    remote.mkdir()
    back = tmp_path / "back"
    back.mkdir()

    async def scenario() -> None:
        async with ssh_server() as server:
            node = make(server, tmp_path / "kh")
            job = SshJob(
                node,
                [
                    Push(source, str(remote), recurse=True),
                    Pull(str(remote / "src"), back, recurse=True),
                ],
            )
            assert await job.co_run() == 0
            await node.close()

    run(scenario)
    for relative in ("a.bin", "sub/b.txt"):
        assert (remote / "src" / relative).read_bytes() == (source / relative).read_bytes()
        assert (back / "src" / relative).read_bytes() == (source / relative).read_bytes()
    leftovers = [p for p in [*remote.rglob("*"), *back.rglob("*")] if ".apssh-" in p.name]
    assert leftovers == []


def test_a_large_push_spread_over_sessions_of_another_sftp_server(tmp_path: Path) -> None:
    # asyncssh's own SFTP server (not OpenSSH's): the file spread over 4 sessions,
    # then again over 1, arrives whole both times
    from apssh_cli.ssh.sftp import SPREAD_THRESHOLD

    data = os.urandom(SPREAD_THRESHOLD + 4097)
    local = tmp_path / "big.bin"
    local.write_bytes(data)
    remote = tmp_path / "remote"
    remote.mkdir()

    async def scenario() -> None:
        async with ssh_server() as server:
            node = make(server, tmp_path / "kh")
            job = SshJob(
                node,
                [
                    Push(local, str(remote / "four.bin")),
                    Push(local, str(remote / "one.bin"), sessions=1),
                ],
            )
            assert await job.co_run() == 0
            await node.close()

    run(scenario)
    assert (remote / "four.bin").read_bytes() == data
    assert (remote / "one.bin").read_bytes() == data
    assert [p.name for p in remote.iterdir() if ".apssh-" in p.name] == []


class ShrunkFiles(asyncssh.SFTPServer):
    """An SFTP server whose open files say they are 1 MB longer than they are: each
    file shrank between its stat and its reads."""

    def fstat(self, file_obj: Any) -> asyncssh.SFTPAttrs:
        attrs = asyncssh.SFTPAttrs.from_local(os.fstat(file_obj.fileno()))
        attrs.size = (attrs.size or 0) + 1_000_000
        return attrs


def test_a_pull_of_a_file_that_shrank_copies_what_is_there(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    (tmp_path / "shrinking.bin").write_bytes(data)
    out = tmp_path / "out"

    async def scenario() -> int:
        async with ssh_server(sftp_factory=ShrunkFiles) as server:
            node = make(server, tmp_path / "kh")
            job = SshJob(node, [Pull(str(tmp_path / "shrinking.bin"), out)])
            try:
                return await asyncio.wait_for(job.co_run(), 30)
            finally:
                await node.close()

    assert run(scenario) == 0
    assert out.read_bytes() == data


def test_pull_creates_missing_local_directories(tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "x.txt").write_bytes(b"x\n")
    (remote / "y.txt").write_bytes(b"y\n")
    out = tmp_path / "out"
    (tmp_path / "plain").write_text("a file")

    async def scenario() -> list[int]:
        async with ssh_server() as server:
            node = make(server, tmp_path / "kh")
            x, y = str(remote / "x.txt"), str(remote / "y.txt")
            commands = [
                Pull(x, out / "results" / "node1.txt"),  # a file name: its parents made
                Pull(x, f"{out}/into/"),  # a trailing "/": a directory, made
                Pull([x, y], out / "both"),  # several sources: a directory, made
                Pull([x, y], tmp_path / "plain"),  # several sources, and a file there
            ]
            rcs = []
            for command in commands:
                rcs.append((await command.co_run(node)).rc)
            await node.close()
            return rcs

    assert run(scenario) == [0, 0, 0, 1]
    assert (out / "results" / "node1.txt").read_bytes() == b"x\n"
    assert (out / "into" / "x.txt").read_bytes() == b"x\n"
    assert sorted(p.name for p in (out / "both").iterdir()) == ["x.txt", "y.txt"]
    assert (tmp_path / "plain").read_text() == "a file"
    assert [p for p in tmp_path.rglob("*") if ".apssh-" in p.name] == []
