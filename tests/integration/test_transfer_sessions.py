"""A large push is spread over several SFTP sessions of the node's one connection.

OpenSSH's sshd gives each session a 2 MiB window, which bounds one session's push to
about 2 MiB per round trip; apssh opens more sessions for a large file. Each case
has its own sshd (``sshd_factory``), reconfigured to log each SFTP session
(``LogLevel VERBOSE``): its log says how many connections and sessions the push used.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from apssh_cli import lab
from apssh_cli.commands import Push
from apssh_cli.lab import Endpoint, KeyPair
from apssh_cli.output import CaptureFormatter
from apssh_cli.ssh.node import SshNode
from apssh_cli.ssh.sftp import SESSIONS, SPREAD_THRESHOLD
from tests.integration.faults import _container, apssh, target_args, wait_until

pytestmark = pytest.mark.integration


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
    assert f"/tmp/big.bin: over {SESSIONS} SFTP sessions" in done.stderr
    sums = remote_sums(node, "/tmp/big.bin", "/tmp/small.bin")
    assert sums == {"/tmp/big.bin": sha256(big), "/tmp/small.bin": sha256(small)}
    _, out = lab.exec_in(node, "ls -a /tmp | grep -c apssh; true")
    assert out.strip() == "0", "a temporary file was left"
    log = server_log(node)
    assert log.count("Accepted publickey") == 1
    assert log.count("Starting session: subsystem 'sftp'") == SESSIONS, log


def test_the_extra_sessions_end_with_the_push_and_the_connection_stays(
    sshd_factory: Any, ssh_keypair: KeyPair, tmp_path: Path
) -> None:
    endpoint = sshd_factory()
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(SPREAD_THRESHOLD))

    def sftp_servers() -> int:
        # one per session (run by the user's shell: `sh -c sftp-server` is its parent)
        _, out = lab.exec_in(endpoint, "ps -e -o args | grep -c '^/usr/lib/openssh/[s]ftp-server'")
        return int(out.strip() or 0)

    async def scenario() -> tuple[int, int]:
        node = SshNode(
            endpoint.host,
            port=endpoint.port,
            username="root",
            keys=[ssh_keypair.private_path],
            known_hosts="off",
            ssh_config=None,
            formatter=CaptureFormatter(),
        )
        try:
            first = await Push(big, "/tmp/one.bin").co_run(node)
            servers = sftp_servers()  # the push is over, the node still connected
            again = await Push(big, "/tmp/two.bin", sessions=1).co_run(node)
            return first.rc + again.rc, servers
        finally:
            await node.close()

    rc, servers = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert rc == 0
    assert servers == 1  # the node's own SFTP session, kept for its next transfer
    sums = remote_sums(endpoint, "/tmp/one.bin", "/tmp/two.bin")
    assert sums == {"/tmp/one.bin": sha256(big), "/tmp/two.bin": sha256(big)}


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


def peak_sessions(log: str) -> int:
    """The most sessions the server had open at once, from its VERBOSE log."""
    open_now = peak = 0
    for line in log.splitlines():
        if line.startswith("Starting session:"):
            open_now += 1
            peak = max(peak, open_now)
        elif line.startswith("Close session:"):
            open_now -= 1
    return peak


def test_a_recipe_push_takes_its_extra_sessions_from_the_channel_budget(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path, tmp_path: Path
) -> None:
    # 5 commands and a push at once on one connection: the push finds the budget of
    # 6 tasks taken and stays on one session; a push alone afterwards spreads
    node = sshd_factory()
    reconfigure(node, "LogLevel VERBOSE", "MaxSessions 10")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(SPREAD_THRESHOLD + 5))
    inventory = tmp_path / "inv.toml"
    inventory.write_text(
        f'[all.vars]\nuser = "root"\nidentity_file = "{ssh_keypair.private_path}"\n'
        f'known_hosts = "off"\n[n.hosts]\nn1 = {{ hostname = "{node.host}", port = {node.port} }}\n'
    )
    waits = "".join(f'[[step]]\nid = "w{i}"\nhosts = "n"\nrun = "sleep 3"\n' for i in range(1, 6))
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        '[recipe]\nname = "spread"\nformat = 1\n'
        + waits
        + f'[[step]]\nid = "big"\nhosts = "n"\npush = "{big}"\nto = "/tmp/big.bin"\n'
        '[[step]]\nid = "again"\nhosts = "n"\nrequires = ["big", "w1", "w2", "w3", "w4", "w5"]\n'
        f'push = "{big}"\nto = "/tmp/again.bin"\n'
    )
    done = apssh(
        "recipe",
        "run",
        str(recipe),
        "-i",
        str(inventory),
        "--run-dir",
        str(tmp_path / "run"),
        home=home,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert remote_sums(node, "/tmp/big.bin", "/tmp/again.bin") == {
        "/tmp/big.bin": sha256(big),
        "/tmp/again.bin": sha256(big),
    }
    log = server_log(node)
    assert peak_sessions(log) <= 8, log  # the recipe's contract: 8 channels at most
    # the node's own SFTP session, and the 3 extra of the push that ran alone
    assert log.count("Starting session: subsystem 'sftp'") >= SESSIONS, log
