"""Faults under transfers: a full disk, a node killed mid-push or mid-pull, hostile trees.

Real `apssh push` / `apssh pull` against their own containers: the outcome, the exit
status, one line (no traceback), no partial file under its final name, nothing written
outside the destination; each with a time bound that only catches a hang.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apssh_cli import lab
from apssh_cli.lab import Endpoint, KeyPair
from apssh_cli.ssh.sftp import SPREAD_THRESHOLD
from tests.integration.conftest import SESSION_LAB
from tests.integration.faults import (
    HANG,
    Done,
    apssh,
    finish,
    kill,
    start_apssh,
    start_sshd_with_tmpfs,
    target_args,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def small_disk(sshd_image: str, ssh_keypair: KeyPair) -> Iterator[Endpoint]:
    """An sshd whose /small is a 1 MiB tmpfs."""
    labels = {**lab.lab_labels(SESSION_LAB, "test"), lab.LABEL_ROLE: "extra"}
    name = f"apssh-{SESSION_LAB}-small-{secrets.token_hex(2)}"
    endpoint = start_sshd_with_tmpfs(sshd_image, ssh_keypair, name, labels)
    try:
        yield endpoint
    finally:
        with contextlib.suppress(Exception):
            endpoint.container.stop()


def exec_ok(endpoint: Endpoint, command: str) -> str:
    rc, output = lab.exec_in(endpoint, command)
    assert rc == 0, output
    return output


def one_line_and_clean(done: Done) -> None:
    assert "Traceback" not in done.stderr, done.stderr
    assert "never retrieved" not in done.stderr, done.stderr
    assert "socket.send() raised" not in done.stderr, done.stderr
    assert done.elapsed < HANG


# 3 MiB over the node's SFTP session; a file large enough to be spread over several
@pytest.mark.parametrize("size", [3 * 1024 * 1024, SPREAD_THRESHOLD + 1])
def test_push_to_a_full_filesystem(
    small_disk: Endpoint, ssh_keypair: KeyPair, home: Path, tmp_path: Path, size: int
) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(secrets.token_bytes(size))
    done = apssh(
        "push", *target_args(small_disk, ssh_keypair), str(data), "/small/data.bin", home=home
    )
    assert done.returncode == 2, done.stderr
    assert "[failed] transfer failed: push" in done.stderr
    assert "no space left on the node's filesystem (/small)" in done.stderr
    one_line_and_clean(done)
    assert exec_ok(small_disk, "ls -A /small").strip() == ""  # no partial file, no temporary


def _restart(endpoint: Endpoint) -> None:
    # a killed container keeps its files: start it again to look at them
    container = endpoint.container
    wrapped = (
        container.get_wrapped_container()
        if hasattr(container, "get_wrapped_container")
        else container
    )
    wrapped.start()


def test_push_interrupted_by_killing_the_node(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path, tmp_path: Path
) -> None:
    node = sshd_factory()
    data = tmp_path / "big.bin"
    data.write_bytes(secrets.token_bytes(1024 * 1024) * 128)  # 128 MiB: takes a while
    args = ["push", *target_args(node, ssh_keypair), "--keepalive", "1", str(data), "/root/big.bin"]
    with start_apssh(*args, home=home) as process:
        begin = time.monotonic()
        # the upload has begun when its temporary file is there
        assert wait_until(lambda: ".big.bin.apssh-" in lab.exec_in(node, "ls -A /root")[1])
        kill(node)
        done = finish(process, begin)
    assert done.returncode == 4, done.stderr
    assert "[unreachable] connection lost during the transfer" in done.stderr
    one_line_and_clean(done)
    _restart(node)
    assert "big.bin" not in exec_ok(node, "ls /root")  # never a partial file under its name


def test_pull_interrupted_by_killing_the_node(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path, tmp_path: Path
) -> None:
    node = sshd_factory()
    # sparse, 4 GiB: no disk on the node, and far too long to finish before the kill
    exec_ok(node, "truncate -s 4G /root/big.bin")
    out = tmp_path / "out"
    args = ["pull", *target_args(node, ssh_keypair), "--keepalive", "1", "/root/big.bin", str(out)]
    with start_apssh(*args, home=home) as process:
        begin = time.monotonic()
        local = out / node.host
        assert wait_until(lambda: local.is_dir() and any(local.iterdir()), period=0.05)
        kill(node)
        done = finish(process, begin)
    assert done.returncode == 4, done.stderr
    assert "[unreachable] connection lost during the transfer" in done.stderr
    one_line_and_clean(done)
    # no partial file, no temporary, and so no empty host directory either
    assert not (out / node.host).exists()


def test_recursive_pull_of_a_hostile_tree_stays_in_its_destination(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path, tmp_path: Path
) -> None:
    node = sshd_factory()
    exec_ok(
        node,
        "mkdir -p /tree/sub && echo a > /tree/sub/..a && echo b > /tree/... && "
        "ln -s /etc /tree/absdir && ln -s /etc/hostname /tree/absfile && "
        "ln -s ../.. /tree/sub/up && ln -s / /tree/root && ln -s ../../../../../tmp /tree/far",
    )
    work = tmp_path / "work"
    work.mkdir()
    before = sorted(path.name for path in tmp_path.iterdir())
    done = apssh(
        "pull", *target_args(node, ssh_keypair), "-r", "/tree", str(work / "dest"), home=home
    )
    assert done.returncode == 0, done.stderr
    one_line_and_clean(done)
    dest = work / "dest" / node.host / "tree"
    copied = sorted(str(path.relative_to(dest)) for path in dest.rglob("*"))
    # links to directories are not followed; a link to a file is copied as a file
    assert copied == ["...", "absfile", "sub", "sub/..a"]
    assert (dest / "absfile").read_text().strip() == node.name
    assert not (dest / "absfile").is_symlink()
    assert sorted(path.name for path in tmp_path.iterdir()) == before
    assert [path.name for path in work.iterdir()] == ["dest"]


def test_a_host_name_with_a_slash_stays_one_directory(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path, tmp_path: Path
) -> None:
    node = sshd_factory()
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(
        f'[g.hosts."a/../../escape"]\nhostname = "{node.host}"\nport = {node.port}\n'
        f'user = "root"\nidentity_file = "{ssh_keypair.private_path}"\nknown_hosts = "off"\n'
    )
    work = tmp_path / "work"
    work.mkdir()
    done = apssh(
        "pull", "-i", str(inventory), "-g", "g", "/etc/hostname", f"{work}/out/{{host}}", home=home
    )
    assert done.returncode == 0, done.stderr
    assert (work / "out" / "a_.._.._escape" / "hostname").read_text().strip() == node.name
    assert [path.name for path in work.iterdir()] == ["out"]
    assert not (tmp_path / "escape").exists()
