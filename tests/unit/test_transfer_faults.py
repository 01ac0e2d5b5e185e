"""Transfers against an in-process asyncssh SFTP server (no Docker): faults of the
server, and local files a push must not read.

OpenSSH's sftp-server does not lose writes or read a byte at a time: these faults
(a server that acknowledges writes it did not make, reads far shorter than asked)
need a server of our own. The SSH and SFTP protocols are asyncssh's, real. A push's
local FIFO is local business: any server shows it.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import asyncssh

from apssh_cli.commands import Pull, Push
from apssh_cli.output import CaptureFormatter
from tests.unit.test_node_server import make, run, ssh_server

KEPT = 100_000  # what the lossy server really writes of each file


class LossyWrites(asyncssh.SFTPServer):
    """Acknowledges every write, makes none past :data:`KEPT` bytes."""

    def write(self, file_obj: Any, offset: int, data: bytes) -> int:
        if offset >= KEPT:
            return len(data)
        return super().write(file_obj, offset, data[: KEPT - offset])  # type: ignore[no-any-return]


class ShortReads(asyncssh.SFTPServer):
    """Answers each read with 100 bytes at most (the protocol allows it)."""

    def read(self, file_obj: Any, offset: int, size: int) -> bytes:
        return super().read(file_obj, offset, min(size, 100))  # type: ignore[no-any-return]


def test_a_push_the_server_did_not_write_fails_and_never_gets_its_name(tmp_path: Path) -> None:
    data = os.urandom(600_000)  # several blocks, the later ones lost
    local = tmp_path / "data.bin"
    local.write_bytes(data)
    remote = tmp_path / "remote"
    remote.mkdir()

    async def scenario() -> tuple[int, str]:
        async with ssh_server(sftp_factory=LossyWrites) as server:
            node = make(server, tmp_path / "kh")
            try:
                result = await Push(local, str(remote / "data.bin")).co_run(node)
            finally:
                await node.close()
            capture = node.formatter
            assert isinstance(capture, CaptureFormatter)
            return result.rc, capture.stderr(node.label)

    rc, stderr = run(scenario)
    assert rc == 1
    assert f"the node has {KEPT} bytes of the {len(data)} written" in stderr
    assert list(remote.iterdir()) == []  # neither the final name nor the temporary one


def test_a_pull_of_very_short_reads_copies_the_file(tmp_path: Path) -> None:
    # 300 kB in reads of 100 bytes: the rest of a block used to be asked by recursion
    data = os.urandom(300_000)
    (tmp_path / "file.bin").write_bytes(data)
    out = tmp_path / "out.bin"

    async def scenario() -> int:
        async with ssh_server(sftp_factory=ShortReads) as server:
            node = make(server, tmp_path / "kh")
            try:
                return (await Pull(str(tmp_path / "file.bin"), out).co_run(node)).rc
            finally:
                await node.close()

    assert run(scenario) == 0
    assert out.read_bytes() == data


def test_push_and_pull_of_a_lossless_server_pass_the_size_check(tmp_path: Path) -> None:
    data = os.urandom(1_000_003)
    local = tmp_path / "data.bin"
    local.write_bytes(data)

    async def scenario() -> list[int]:
        async with ssh_server() as server:
            node = make(server, tmp_path / "kh")
            try:
                push = await Push(local, str(tmp_path / "pushed.bin")).co_run(node)
                pull = await Pull(str(tmp_path / "pushed.bin"), tmp_path / "pulled.bin").co_run(
                    node
                )
                return [push.rc, pull.rc]
            finally:
                await node.close()

    assert asyncio.run(asyncio.wait_for(scenario(), 60)) == [0, 0]
    assert (tmp_path / "pulled.bin").read_bytes() == data


def test_a_push_never_reads_a_local_fifo(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "a").write_text("a")
    os.mkfifo(tree / "fifo")
    (tree / "up").symlink_to("..")
    remote = tmp_path / "remote"
    remote.mkdir()

    async def scenario() -> tuple[list[int], str]:
        async with ssh_server() as server:
            node = make(server, tmp_path / "kh")
            try:
                by_name = await Push(tree / "fifo", str(remote / "fifo")).co_run(node)
                in_tree = await Push(tree, str(remote / "tree"), recurse=True).co_run(node)
            finally:
                await node.close()
            capture = node.formatter
            assert isinstance(capture, CaptureFormatter)
            return [by_name.rc, in_tree.rc], capture.stderr(node.label)

    # without the check, open() of the FIFO waits for a writer: the time bound fails
    rcs, stderr = run(scenario)
    assert rcs == [1, 0]
    assert f"{tree}/fifo: a FIFO, not a regular file" in stderr
    assert f"skipped {tree}/fifo: a FIFO, not a file or a directory" in stderr
    assert f"not following {tree}/up: a link to a directory" in stderr
    assert (remote / "tree" / "sub" / "a").read_text() == "a"
    assert sorted(p.name for p in (remote / "tree").iterdir()) == ["sub"]


def test_a_pull_replaces_a_link_at_its_target_never_writes_through_it(tmp_path: Path) -> None:
    (tmp_path / "remote.txt").write_text("new")
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    out = tmp_path / "out"
    out.mkdir()
    (out / "remote.txt").symlink_to(victim)

    async def scenario() -> int:
        async with ssh_server() as server:
            node = make(server, tmp_path / "kh")
            try:
                return (await Pull(str(tmp_path / "remote.txt"), f"{out}/").co_run(node)).rc
            finally:
                await node.close()

    assert run(scenario) == 0
    assert victim.read_text() == "untouched"
    assert not (out / "remote.txt").is_symlink()
    assert (out / "remote.txt").read_text() == "new"


def test_two_remote_paths_of_one_name_are_refused_before_any_copy(tmp_path: Path) -> None:
    for directory in ("a", "b"):
        (tmp_path / directory).mkdir()
        (tmp_path / directory / "x").write_text(directory)
    out = tmp_path / "out"

    async def scenario() -> tuple[int, str]:
        async with ssh_server() as server:
            node = make(server, tmp_path / "kh")
            try:
                pull = Pull([str(tmp_path / "a" / "x"), str(tmp_path / "b" / "x")], out)
                result = await pull.co_run(node)
            finally:
                await node.close()
            capture = node.formatter
            assert isinstance(capture, CaptureFormatter)
            return result.rc, capture.stderr(node.label)

    rc, stderr = run(scenario)
    assert rc == 1
    assert "two remote paths would be copied to x" in stderr
    assert not out.exists()  # the second would have replaced the first
