"""Fewer, larger writes (apssh_cli/ssh/wire.py), against an in-process asyncssh server.

The SSH protocol is asyncssh's, real, on a real TCP socket: what is checked is that
the bytes still arrive whole and in order, that the packets of a turn leave in far
fewer writes, that the IGNORE packets are left out only when no CBC cipher can be
negotiated, and that a DISCONNECT still leaves before the connection closes. If an
asyncssh upgrade removes what :func:`wire.tune` replaces, these fail (a push would
still work, slower).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from apssh_cli.commands import Push
from apssh_cli.ssh import connection, wire
from tests.unit.test_node_server import CLIENT_KEY, make, run, ssh_server

DATA_SIZE = 3 * 1024 * 1024 + 12_345  # many SSH packets (asyncssh's server: 32 KiB each)


def record_tuned(monkeypatch: pytest.MonkeyPatch) -> list[asyncssh.SSHClientConnection]:
    """The connections apssh's connect tuned (a spy on the real function)."""
    seen: list[asyncssh.SSHClientConnection] = []
    real = wire.tune

    def spy(conn: asyncssh.SSHClientConnection, ciphers: Any) -> bool:
        seen.append(conn)
        return real(conn, ciphers)

    monkeypatch.setattr(connection.wire, "tune", spy)
    return seen


def test_a_push_arrives_whole_in_far_fewer_writes_than_packets_and_no_ignore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tuned = record_tuned(monkeypatch)
    data = os.urandom(DATA_SIZE)
    local = tmp_path / "data.bin"
    local.write_bytes(data)
    remote = tmp_path / "remote.bin"

    async def scenario() -> int:
        async with ssh_server() as server:
            node = make(server, tmp_path / "kh")
            try:
                return (await Push(local, str(remote)).co_run(node)).rc
            finally:
                await node.close()

    assert run(scenario) == 0
    assert remote.read_bytes() == data
    assert len(tuned) == 1
    stats = wire.stats(tuned[0])
    assert stats is not None
    packets = DATA_SIZE // 32768
    assert stats.packets >= packets
    assert stats.writes * 4 <= stats.packets, stats  # without tune: one write per packet
    # asyncssh puts one before every packet it sends once encrypted: none left
    assert stats.ignores_left_out >= packets, stats


async def _cbc_scenario(tmp_path: Path, data: bytes) -> tuple[wire.WireStats | None, bool]:
    """A connection that offers only aes128-cbc: its IGNORE packets stay."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    authorized = asyncssh.import_authorized_keys(CLIENT_KEY.export_public_key().decode())
    server = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[key],
        authorized_client_keys=authorized,
        sftp_factory=True,
        encryption_algs=["aes128-cbc"],
    )
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncssh.connect(
            "127.0.0.1",
            port,
            username="tester",
            client_keys=[CLIENT_KEY],
            known_hosts=None,
            config=None,
            agent_path=None,
            encryption_algs=["aes128-cbc"],
        ) as conn:
            tuned = wire.tune(conn, ["aes128-cbc"])
            async with (
                conn.start_sftp_client() as sftp,
                sftp.open(str(tmp_path / "cbc.bin"), "wb") as handle,
            ):
                await handle.write(data)
            return wire.stats(conn), tuned
    finally:
        server.close()
        await server.wait_closed()


def test_with_a_cbc_cipher_the_ignore_packets_stay(tmp_path: Path) -> None:
    data = os.urandom(500_000)
    stats, tuned = run(lambda: _cbc_scenario(tmp_path, data))
    assert tuned
    assert (tmp_path / "cbc.bin").read_bytes() == data
    assert stats is not None
    assert stats.ignores_left_out == 0
    assert stats.writes < stats.packets  # the writes are still coalesced


def test_a_disconnect_still_leaves_before_the_connection_closes(tmp_path: Path) -> None:
    """The server sees a DISCONNECT (a clean end, no error), not a connection cut."""
    lost: list[Exception | None] = []

    class Handler(asyncssh.SSHServer):
        def connection_lost(self, exc: Exception | None) -> None:
            lost.append(exc)

    async def scenario() -> None:
        key = asyncssh.generate_private_key("ssh-ed25519")
        authorized = asyncssh.import_authorized_keys(CLIENT_KEY.export_public_key().decode())
        server = await asyncssh.listen(
            "127.0.0.1",
            0,
            server_host_keys=[key],
            authorized_client_keys=authorized,
            server_factory=Handler,
        )
        port = server.sockets[0].getsockname()[1]
        try:
            conn = await asyncssh.connect(
                "127.0.0.1",
                port,
                username="tester",
                client_keys=[CLIENT_KEY],
                known_hosts=None,
                config=None,
                agent_path=None,
            )
            assert wire.tune(conn, list(connection.PREFERRED_CIPHERS))
            conn.close()
            await conn.wait_closed()
            for _ in range(100):  # the server's side of the close
                if lost:
                    break
                await asyncio.sleep(0.02)
        finally:
            server.close()
            await server.wait_closed()

    run(scenario)
    assert lost == [None]  # a cut connection would be a ConnectionLost


def test_a_connection_without_what_tune_replaces_is_left_as_it_is() -> None:
    assert wire.tune(object(), []) is False  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ciphers", "keeps"),
    [
        (list(connection.PREFERRED_CIPHERS), False),
        (["aes128-ctr", "aes256-gcm@openssh.com"], False),
        (["aes256-cbc"], True),
        ("aes128-ctr,aes128-CBC", True),
        ("-aes128-cbc", True),  # any mention: kept (the safe side)
        ("chacha20-poly1305@openssh.com", False),
    ],
)
def test_ignore_packets_are_kept_exactly_when_a_cbc_cipher_is_offered(
    ciphers: str | list[str], keeps: bool
) -> None:
    assert wire.needs_ignore(ciphers) is keeps
