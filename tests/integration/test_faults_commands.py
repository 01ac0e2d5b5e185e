"""Faults under commands: killed, paused and silent hosts, a killed client, refusals.

Each case runs the real `apssh` against its own sshd container (``sshd_factory``) and
asserts the outcome, the exit status, a generous time bound (a hang is what is caught,
not slowness) and, with ``ps`` in the container, that no remote process is left.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from apssh_cli.lab import KeyPair
from tests.integration.faults import (
    HANG,
    SilentServer,
    apssh,
    finish,
    kill,
    leftovers,
    pause,
    start_apssh,
    target_args,
    unpause,
    wait_until,
)

pytestmark = pytest.mark.integration

# a sleep nobody else runs: how the leftovers are found with ps
SLEEP = "sleep 4711"


def started(endpoint: Any) -> bool:
    return bool(leftovers(endpoint, SLEEP))


def test_node_killed_mid_command(sshd_factory: Any, ssh_keypair: KeyPair, home: Path) -> None:
    node = sshd_factory()
    args = [*target_args(node, ssh_keypair), "--keepalive", "1", SLEEP]
    with start_apssh(*args, home=home) as process:
        begin = time.monotonic()
        assert wait_until(lambda: started(node)), "the command never started"
        kill(node)
        done = finish(process, begin)
    assert done.returncode == 4, done.stderr
    assert "[unreachable] connection lost" in done.stderr
    assert "Traceback" not in done.stderr and "never retrieved" not in done.stderr
    assert done.elapsed < HANG


@pytest.mark.parametrize("timeout", [None, 3])
def test_node_paused_during_a_command(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path, timeout: int | None
) -> None:
    node = sshd_factory()
    args = [*target_args(node, ssh_keypair), "--keepalive", "1"]
    if timeout is not None:
        args += ["--timeout", str(timeout)]
    with start_apssh(*args, SLEEP, home=home) as process:
        begin = time.monotonic()
        assert wait_until(lambda: started(node)), "the command never started"
        pause(node)
        try:
            done = finish(process, begin)
        finally:
            unpause(node)
    # without --timeout the keepalives notice the silence; with it, the timeout may come first
    expected = {4} if timeout is None else {3, 4}
    assert done.returncode in expected, done.stderr
    assert "Traceback" not in done.stderr
    assert done.elapsed < HANG
    # the node ends the command by itself: its session is gone (or its deadline passed)
    assert wait_until(lambda: not started(node)), leftovers(node, SLEEP)


@pytest.mark.parametrize("timeout", [None, 5])
def test_node_paused_during_connect(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path, timeout: int | None
) -> None:
    node = sshd_factory()
    pause(node)
    try:
        args = [*target_args(node, ssh_keypair), "--connect-timeout", "3"]
        if timeout is not None:
            args += ["--timeout", str(timeout)]
        done = apssh(*args, SLEEP, home=home)
    finally:
        unpause(node)
    assert done.returncode == 4, done.stderr
    assert "[unreachable]" in done.stderr and "timed out after 3s" in done.stderr
    assert done.elapsed < HANG
    assert not leftovers(node, SLEEP)


def test_client_killed_the_remote_command_ends_by_itself(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path
) -> None:
    node = sshd_factory()
    with start_apssh(*target_args(node, ssh_keypair), SLEEP, home=home) as process:
        assert wait_until(lambda: started(node)), "the command never started"
        process.send_signal(signal.SIGKILL)  # no cleanup at all on the client side
        process.wait(HANG)
    begin = time.monotonic()
    assert wait_until(lambda: not started(node)), leftovers(node, SLEEP)
    assert time.monotonic() - begin < HANG


def test_a_server_that_accepts_and_never_speaks(ssh_keypair: KeyPair, home: Path) -> None:
    with SilentServer() as server:
        done = apssh(
            "-t",
            f"root@127.0.0.1:{server.port}",
            "-k",
            str(ssh_keypair.private_path),
            "--connect-timeout",
            "2",
            "true",
            home=home,
        )
    assert done.returncode == 4, done.stderr
    assert "[unreachable]" in done.stderr and "timed out after 2s" in done.stderr
    assert done.elapsed < HANG


def test_refused_authentication(sshd_factory: Any, home: Path, tmp_path: Path) -> None:
    from apssh_cli import lab

    node = sshd_factory()
    stranger = lab.generate_keypair(tmp_path / "stranger")
    done = apssh(*target_args(node, stranger), "touch /tmp/ran", home=home)
    assert done.returncode == 4, done.stderr
    assert "[auth-refused] authentication refused for root" in done.stderr
    assert lab.exec_in(node, "test -e /tmp/ran")[0] != 0  # nothing ran


def test_changed_host_key(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path, tmp_path: Path
) -> None:
    node = sshd_factory()
    other = sshd_factory.new_host_key()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[{node.host}]:{node.port} {other.public_line}\n")
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(
        f'[faulty.hosts.victim]\nhostname = "{node.host}"\nport = {node.port}\nuser = "root"\n'
        f'identity_file = "{ssh_keypair.private_path}"\n'
        f'known_hosts = {{ policy = "accept-new", file = "{known_hosts}" }}\n'
    )
    done = apssh("-i", str(inventory), "-g", "victim", "touch /tmp/ran", home=home)
    assert done.returncode == 4, done.stderr
    assert "[hostkey-refused]" in done.stderr and "differs from the one recorded" in done.stderr
    assert lab_ran(node) is False


def lab_ran(node: Any) -> bool:
    from apssh_cli import lab

    return lab.exec_in(node, "test -e /tmp/ran")[0] == 0


@pytest.mark.parametrize("problem", ["missing", "garbage", "encrypted"])
def test_local_key_problems_stop_everything_before_it_runs(
    sshd_factory: Any, home: Path, tmp_path: Path, problem: str
) -> None:
    import asyncssh

    node = sshd_factory()
    key = tmp_path / "key"
    if problem == "garbage":
        key.write_text("not a key\n")
    elif problem == "encrypted":
        private = asyncssh.generate_private_key("ecdsa-sha2-nistp256")
        private.write_private_key(key, "pkcs8-pem", passphrase="secret")
    done = apssh(
        "-t",
        f"root@{node.host}:{node.port}",
        "-k",
        str(key),
        "--known-hosts",
        "off",
        "touch /tmp/ran",
        home=home,
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"apssh: {key}: "), done.stderr
    assert lab_ran(node) is False
