"""A push never leaves an empty or short file under its name, whatever the block size.

OpenSSH's sftp-server takes SFTP messages of 256 KiB at most: a write of 256 KiB of
data (plus its header) is more, and the server ends the session. asyncssh's own
``put`` with such blocks has already created the file under its name by then: it
leaves an empty file there (reproduced below against the container's sshd). apssh
writes under a temporary name, renames only a file whose size on the node is the
size written, and asks for blocks no larger than the server announces
(``limits@openssh.com``: 261,120 bytes).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from apssh_cli import lab
from apssh_cli.commands import Push
from apssh_cli.errors import UnreachableError
from apssh_cli.lab import Endpoint, KeyPair
from apssh_cli.output import CaptureFormatter
from apssh_cli.ssh import sftp as sftp_module
from apssh_cli.ssh.node import SshNode
from apssh_cli.ssh.sftp import TransferError

pytestmark = pytest.mark.integration

TOO_LARGE = 256 * 1024  # a block of data one header too many for OpenSSH's sftp-server
OPENSSH_MAX_WRITE = 261_120  # what OpenSSH's sftp-server announces (256 KiB - 1 KiB)


def node_of(endpoint: Endpoint, keypair: KeyPair) -> SshNode:
    return SshNode(
        endpoint.host,
        port=endpoint.port,
        username="root",
        keys=[keypair.private_path],
        known_hosts="off",
        ssh_config=None,
        formatter=CaptureFormatter(),
    )


def remote_size(endpoint: Endpoint, path: str) -> str:
    rc, out = lab.exec_in(endpoint, f"stat -c %s {path}")
    assert rc == 0, out
    return out.strip()


def test_asyncssh_put_in_blocks_larger_than_sshd_accepts_leaves_an_empty_file(
    sshd_factory: Any, ssh_keypair: KeyPair, tmp_path: Path
) -> None:
    """The hazard itself, with asyncssh alone: what apssh must never do."""
    endpoint = sshd_factory()
    local = tmp_path / "data.bin"
    local.write_bytes(os.urandom(3_000_000))

    async def scenario() -> BaseException | None:
        async with (
            asyncssh.connect(
                endpoint.host,
                endpoint.port,
                username="root",
                client_keys=[str(ssh_keypair.private_path)],
                known_hosts=None,
                config=None,
                agent_path=None,
            ) as conn,
            conn.start_sftp_client() as sftp,
        ):
            try:
                await sftp.put(str(local), "/tmp/put.bin", block_size=TOO_LARGE)
            except (asyncssh.Error, OSError) as exc:
                return exc
            return None

    asyncio.run(asyncio.wait_for(scenario(), 60))
    # whether or not asyncssh reports it, the file is there under its name, empty
    assert remote_size(endpoint, "/tmp/put.bin") == "0"


def test_apssh_asks_for_the_blocks_the_server_announces(
    sshd_factory: Any, ssh_keypair: KeyPair
) -> None:
    endpoint = sshd_factory()

    async def scenario() -> tuple[int, int, int, int]:
        node = node_of(endpoint, ssh_keypair)
        try:
            client = await node.sftp_client()
            return (
                client.limits.max_write_len,
                sftp_module._block_size(client, write=True),
                client.limits.max_read_len,
                sftp_module._block_size(client, write=False),
            )
        finally:
            await node.close()

    announced_write, write, announced_read, read = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert announced_write == announced_read == OPENSSH_MAX_WRITE
    assert write == read == OPENSSH_MAX_WRITE


@pytest.mark.parametrize("size", [3_000_000, sftp_module.SPREAD_THRESHOLD + 1])
def test_a_push_in_blocks_too_large_for_sshd_fails_and_the_old_file_stays(
    sshd_factory: Any,
    ssh_keypair: KeyPair,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    size: int,
) -> None:
    """Forced past the server's limit (a server that would not announce it), over one
    session and spread over several: the push fails, and the name keeps its old file."""
    endpoint = sshd_factory()
    rc, out = lab.exec_in(endpoint, "printf old > /tmp/kept.bin")
    assert rc == 0, out
    local = tmp_path / "data.bin"
    local.write_bytes(os.urandom(size))
    monkeypatch.setattr(sftp_module, "_block_size", lambda *_args, **_kw: TOO_LARGE)

    async def scenario() -> str:
        node = node_of(endpoint, ssh_keypair)
        try:
            result = await Push(local, "/tmp/kept.bin").co_run(node)
        except (UnreachableError, TransferError) as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            await node.close()
        capture = node.formatter
        assert isinstance(capture, CaptureFormatter)
        assert result.rc != 0, "a push the server did not take succeeded"
        return capture.stderr(node.label)

    said = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert said.strip(), "a failed push says why"
    # the SSH connection stood: the server ended the SFTP session, the host is reachable
    assert "SFTP session" in said and "unreachable" not in said.lower(), said
    rc, out = lab.exec_in(endpoint, "cat /tmp/kept.bin")
    assert (rc, out) == (0, "old")
    # and nothing left behind: the temporary file goes too, though its session ended
    rc, out = lab.exec_in(endpoint, "ls -a /tmp")
    assert rc == 0 and ".apssh-" not in out, out
