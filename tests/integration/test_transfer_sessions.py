"""A large push is spread over several SFTP sessions of the node's one connection.

OpenSSH's sshd gives each session a 2 MiB window, which bounds one session's push to
about 2 MiB per round trip; apssh opens more sessions for a large file. Each case
has its own sshd (``sshd_factory``), reconfigured to log each SFTP session
(``LogLevel VERBOSE``): its log says how many connections and sessions the push used.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from apssh_cli import lab
from apssh_cli.lab import Endpoint, KeyPair
from apssh_cli.ssh.sftp import SESSIONS, SPREAD_THRESHOLD
from tests.integration.faults import _container, apssh, target_args, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty HOME: no ~/.ssh/config, no known_hosts, no agent."""
    path = tmp_path / "home"
    path.mkdir()
    return path


def server_log(endpoint: Endpoint) -> str:
    return bytes(_container(endpoint).logs()).decode(errors="replace")


def reconfigure(endpoint: Endpoint, *settings: str) -> None:
    """Set sshd_config ``settings`` ("Keyword value") and have sshd read them again."""
    edits = " ".join(f"-e 's/^{setting.split()[0]} .*/{setting}/'" for setting in settings)
    rc, out = lab.exec_in(endpoint, f"sed -i {edits} /etc/ssh/sshd_config && kill -HUP 1")
    assert rc == 0, out
    # sshd executes itself again on SIGHUP, and says so when it listens again
    assert wait_until(lambda: server_log(endpoint).count("Server listening on 0.0.0.0") >= 2)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def remote_sums(endpoint: Endpoint, *paths: str) -> dict[str, str]:
    rc, out = lab.exec_in(endpoint, f"sha256sum {' '.join(paths)}")
    assert rc == 0, out
    return {line.split()[1]: line.split()[0] for line in out.splitlines()}


def test_a_large_push_goes_over_several_sessions_of_one_connection(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path, tmp_path: Path
) -> None:
    node = sshd_factory()
    reconfigure(node, "LogLevel VERBOSE")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(SPREAD_THRESHOLD + 123_457))  # not a whole number of blocks
    small = tmp_path / "small.bin"
    small.write_bytes(os.urandom(1000))
    done = apssh(
        "push", *target_args(node, ssh_keypair), "-v", str(big), str(small), "/tmp/", home=home
    )
    assert done.returncode == 0, done.stderr
    assert f"over {SESSIONS} SFTP sessions" in done.stderr
    sums = remote_sums(node, "/tmp/big.bin", "/tmp/small.bin")
    assert sums == {"/tmp/big.bin": sha256(big), "/tmp/small.bin": sha256(small)}
    _, out = lab.exec_in(node, "ls -a /tmp | grep -c apssh; true")
    assert out.strip() == "0", "a temporary file was left"
    log = server_log(node)
    assert log.count("Accepted publickey") == 1
    assert log.count("Starting session: subsystem 'sftp'") == SESSIONS, log
    # the extra sessions are closed by the push, before the connection ends
    before_disconnect = log.partition("Received disconnect")[0]
    assert before_disconnect.count("Close session") == SESSIONS - 1, log


def test_a_server_that_allows_one_session_gets_the_push_over_it(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path, tmp_path: Path
) -> None:
    node = sshd_factory()
    reconfigure(node, "LogLevel VERBOSE", "MaxSessions 1")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(SPREAD_THRESHOLD + 1))
    done = apssh("push", *target_args(node, ssh_keypair), "-v", str(big), "/tmp/", home=home)
    assert done.returncode == 0, done.stderr
    assert "one SFTP session fewer" in done.stderr
    assert remote_sums(node, "/tmp/big.bin") == {"/tmp/big.bin": sha256(big)}
    log = server_log(node)
    assert log.count("Starting session: subsystem 'sftp'") == 1, log
