"""Verbosity levels on real OpenSSH servers: -v what was resolved, -vv authentication,
-vvv asyncssh's debug log; an authentication refusal names the keys tried."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from apssh_cli.lab import KeyPair, Topology, generate_keypair
from tests.integration.command import run_apssh

pytestmark = pytest.mark.integration


def fingerprint(public_path: Path) -> str:
    done = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(public_path)], capture_output=True, text=True, check=True
    )
    return done.stdout.split()[1]  # SHA256:...


def one_direct_host(topology: Topology, keypair: KeyPair) -> list[str]:
    endpoint = topology.direct[0]
    return [
        "-t",
        f"root@{endpoint.host}:{endpoint.port}",
        "-k",
        str(keypair.private_path),
        "--known-hosts",
        "off",
    ]


def test_v_says_what_was_resolved(
    topology: Topology, ssh_keypair: KeyPair, home: Path, tmp_path: Path
) -> None:
    endpoint = topology.direct[0]
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host lab-one\n  HostName {endpoint.host}\n  Port {endpoint.port}\n  User root\n"
        f"  IdentityFile {ssh_keypair.private_path}\n  UserKnownHostsFile {topology.known_hosts}\n"
    )
    done = run_apssh("-F", str(config), "-t", "lab-one", "-v", "true", home=home)
    assert done.returncode == 0, done.stderr
    resolved = [line for line in done.stderr.splitlines() if "-- resolved: " in line]
    assert len(resolved) == 1, done.stderr
    line = resolved[0]
    assert f"root@{endpoint.host}:{endpoint.port}" in line
    assert (
        f"keys: {ssh_keypair.private_path} (ssh-ed25519 {fingerprint(ssh_keypair.public_path)})"
        in line
    )
    assert f"known_hosts: {topology.known_hosts}" in line
    assert f"ssh_config: {config}" in line
    for entry in (f"HostName {endpoint.host}", f"Port {endpoint.port}", "User root"):
        assert entry in line
    assert "Trying public key auth" not in done.stderr  # that is -vv's
    assert "apssh: setting window" in done.stderr  # -v's lines of before are kept


def test_v_names_the_gateway_of_the_route(topology: Topology, home: Path) -> None:
    node = topology.internal[0]
    done = run_apssh("-i", str(topology.inventory), "-g", node.name, "-v", "true", home=home)
    assert done.returncode == 0, done.stderr
    assert f"-- resolved: root@{node.host}:{node.port} via bastion" in done.stderr


def test_vv_shows_the_keys_tried_and_the_methods_offered(
    topology: Topology, ssh_keypair: KeyPair, home: Path
) -> None:
    done = run_apssh(*one_direct_host(topology, ssh_keypair), "-vv", "true", home=home)
    assert done.returncode == 0, done.stderr
    name = topology.direct[0].host
    assert f"{name}: -- ssh: Trying public key auth with ssh-ed25519 key" in done.stderr
    assert f"{name}: -- ssh: Remaining auth methods: publickey" in done.stderr
    assert f"{name}: -- ssh: Auth for user root succeeded" in done.stderr
    assert "key exchange" not in done.stderr  # that is -vvv's


def test_vvv_shows_asyncssh_debug_log(topology: Topology, ssh_keypair: KeyPair, home: Path) -> None:
    done = run_apssh(*one_direct_host(topology, ssh_keypair), "-vvv", "true", home=home)
    assert done.returncode == 0, done.stderr
    assert "-- ssh: Requesting key exchange" in done.stderr
    assert "-- ssh: Trying public key auth" in done.stderr


def test_an_authentication_refusal_names_the_keys_tried(
    topology: Topology, ssh_keypair: KeyPair, home: Path, tmp_path: Path
) -> None:
    stranger = generate_keypair(tmp_path / "id_stranger")
    done = run_apssh(*one_direct_host(topology, stranger), "true", home=home)
    assert done.returncode == 4, done.stderr
    print_ = fingerprint(stranger.public_path)
    assert "[auth-refused] authentication refused for root" in done.stderr
    assert f"keys tried: {stranger.private_path} (ssh-ed25519 {print_})" in done.stderr
    # with no key at all (an empty HOME, no agent): it says so
    endpoint = topology.direct[0]
    target = f"root@{endpoint.host}:{endpoint.port}"
    done = run_apssh("-t", target, "--known-hosts", "off", "true", home=home)
    assert done.returncode == 4, done.stderr
    assert "no key to offer" in done.stderr


def test_debug_is_accepted_among_the_options(
    topology: Topology, ssh_keypair: KeyPair, home: Path
) -> None:
    done = run_apssh(*one_direct_host(topology, ssh_keypair), "--debug", "echo ok", home=home)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("ok\n")
