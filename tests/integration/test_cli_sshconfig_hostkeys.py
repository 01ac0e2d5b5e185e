"""Host key decisions taken from ssh_config, -F and -O, by the real `apssh` against real sshd.

Every test runs ``python -m apssh_cli.cli.main`` with an empty HOME (no ~/.ssh) and
servers of its own (`sshd_factory`), so that what is written to known_hosts (and
where) can be checked. Also the RSA-only server whose recorded key is ed25519: a
host key refusal (exit 4, never retried), not an unreachable host.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest

from apssh_cli.errors import HostKeyRefusedError
from apssh_cli.lab import Endpoint, KeyPair
from apssh_cli.ssh.node import SshNode
from tests.integration.command import run_apssh

pytestmark = pytest.mark.integration

GUARD = 120  # a guard against a hang, not a timing assertion


def apssh(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return run_apssh(*args, home=home, timeout=GUARD)


def target(endpoint: Endpoint) -> str:
    return f"root@{endpoint.host}:{endpoint.port}"


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def recorded(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_strict_yes_refuses_an_unknown_key_and_writes_nothing(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path, tmp_path: Path
) -> None:
    server = sshd_factory(name="strict")
    known = tmp_path / "kh"
    config = write_config(
        tmp_path / "config", f"Host *\n  StrictHostKeyChecking yes\n  UserKnownHostsFile {known}\n"
    )
    done = apssh(
        "-F", str(config), "-k", str(ssh_keypair.private_path), "-t", target(server), "true",
        home=home,
    )  # fmt: skip
    assert done.returncode == 4, done.stderr
    assert "is unknown and the policy is strict" in done.stderr
    assert str(known) in done.stderr
    assert not known.exists() and not (home / ".ssh").exists()


def test_accept_new_writes_to_the_first_user_known_hosts_file_with_tokens(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path, tmp_path: Path
) -> None:
    server = sshd_factory(name="tokens")
    config = write_config(
        tmp_path / "config",
        "Host *\n  StrictHostKeyChecking accept-new\n"
        f"  UserKnownHostsFile {tmp_path}/kh_%h_%p {tmp_path}/second\n",
    )
    args = ["-F", str(config), "-k", str(ssh_keypair.private_path), "-t", target(server)]
    done = apssh(*args, "hostname", home=home)
    assert done.returncode == 0, done.stderr
    first = tmp_path / f"kh_{server.host}_{server.port}"
    assert [line.split()[:2] for line in recorded(first)] == [
        [server.known_hosts_name, "ssh-ed25519"]
    ]
    assert not (tmp_path / "second").exists() and not (home / ".ssh").exists()
    again = apssh(*args, "-O", "StrictHostKeyChecking=yes", "true", home=home)
    assert again.returncode == 0, again.stderr  # now known: strict accepts it
    assert len(recorded(first)) == 1


def test_o_wins_over_the_file_and_known_hosts_option_over_both(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path, tmp_path: Path
) -> None:
    server = sshd_factory(name="precedence")
    known = tmp_path / "kh"
    config = write_config(
        tmp_path / "config", f"Host *\n  StrictHostKeyChecking yes\n  UserKnownHostsFile {known}\n"
    )
    base = ["-F", str(config), "-k", str(ssh_keypair.private_path), "-t", target(server)]
    explicit = apssh(
        *base, "-O", "StrictHostKeyChecking=accept-new", "--known-hosts", "strict", "true",
        home=home,
    )  # fmt: skip
    assert explicit.returncode == 4, explicit.stderr
    assert not known.exists()
    option = apssh(
        *base,
        "-O", "StrictHostKeyChecking=accept-new",
        "-O", "StrictHostKeyChecking=yes",  # the first value wins, as with ssh -o
        "true",
        home=home,
    )  # fmt: skip
    assert option.returncode == 0, option.stderr
    assert len(recorded(known)) == 1


def test_global_known_hosts_and_host_key_alias(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path, tmp_path: Path
) -> None:
    server = sshd_factory(name="alias")
    system = tmp_path / "system_known_hosts"
    system.write_text(f"the-alias {server.host_key}\n")
    user = tmp_path / "user_kh"
    config = write_config(
        tmp_path / "config",
        "Host *\n  StrictHostKeyChecking yes\n"
        f"  UserKnownHostsFile {user}\n  GlobalKnownHostsFile {system}\n",
    )
    base = ["-F", str(config), "-k", str(ssh_keypair.private_path), "-t", target(server)]
    refused = apssh(*base, "true", home=home)  # recorded under the alias only
    assert refused.returncode == 4, refused.stderr
    done = apssh(*base, "-O", "HostKeyAlias=the-alias", "hostname", home=home)
    assert done.returncode == 0, done.stderr
    assert not user.exists()  # read from the global file, nothing written


def test_host_key_algorithms_that_the_server_lacks_are_a_host_key_refusal(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path, tmp_path: Path
) -> None:
    server = sshd_factory(name="algs")  # ed25519 only
    done = apssh(
        "-O", f"UserKnownHostsFile={tmp_path}/kh", "-O", "HostKeyAlgorithms=rsa-sha2-512",
        "-k", str(ssh_keypair.private_path), "--retries", "2", "-v", "-t", target(server), "true",
        home=home,
    )  # fmt: skip
    assert done.returncode == 4, done.stderr
    assert "[hostkey-refused]" in done.stderr or "hostkey" in done.stderr
    assert "the server offers ssh-ed25519, none of the types accepted (rsa-sha2-512" in done.stderr
    assert "retry" not in done.stderr


def test_an_rsa_only_server_with_an_ed25519_record_is_refused_not_unreachable(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path, tmp_path: Path
) -> None:
    server = sshd_factory(name="rsaonly", host_key=sshd_factory.new_host_key("rsa"))
    assert server.host_key.startswith("ssh-rsa ")
    other = sshd_factory.new_host_key()  # what known_hosts says the host had
    known = tmp_path / "kh"
    known.write_text(f"{server.known_hosts_name} {other.public_line}\n")
    for policy in ("accept-new", "strict"):
        done = apssh(
            "--known-hosts", policy, "-O", f"UserKnownHostsFile={known}", "--retries", "3", "-v",
            "-k", str(ssh_keypair.private_path), "-t", target(server), "true",
            home=home,
        )  # fmt: skip
        assert done.returncode == 4, done.stderr
        assert "unreachable" not in done.stderr.lower()
        assert "retry" not in done.stderr
        assert "the server offers" in done.stderr and "rsa-sha2-512" in done.stderr
        assert "but only ssh-ed25519 is recorded in" in done.stderr
        assert recorded(known) == [f"{server.known_hosts_name} {other.public_line}"]


def test_the_library_reports_the_rsa_only_server_as_a_host_key_refusal(
    sshd_factory: Any, ssh_keypair: KeyPair, tmp_path: Path
) -> None:
    server = sshd_factory(name="rsalib", host_key=sshd_factory.new_host_key("rsa"))
    known = tmp_path / "kh"
    known.write_text(f"{server.known_hosts_name} {sshd_factory.new_host_key().public_line}\n")
    node = SshNode(
        server.host,
        port=server.port,
        username="root",
        keys=[ssh_keypair.private_path],
        known_hosts_file=known,
        ssh_config=None,
        connect_retries=3,
    )

    async def connect() -> None:
        try:
            await node.connect()
        finally:
            await node.close()

    with pytest.raises(HostKeyRefusedError, match="but only ssh-ed25519 is recorded"):
        asyncio.run(asyncio.wait_for(connect(), GUARD))


def test_known_hosts_off_with_a_changed_key_connects_with_one_warning(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path, tmp_path: Path
) -> None:
    server = sshd_factory(name="offwarn")
    known = tmp_path / "kh"
    stale = f"{server.known_hosts_name} {sshd_factory.new_host_key().public_line}\n"
    known.write_text(stale)
    done = apssh(
        "--known-hosts", "off", "-O", f"UserKnownHostsFile={known}",
        "-k", str(ssh_keypair.private_path), "-t", target(server), "hostname",
        home=home,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, done.stderr
    assert warnings[0].startswith(f"apssh: warning: {server.host}: host key policy off,")
    assert "differs from the one recorded" in warnings[0]
    assert known.read_text() == stale  # off writes nothing
    quiet = apssh(
        "--known-hosts", "off", "-O", f"UserKnownHostsFile={tmp_path}/empty",
        "-k", str(ssh_keypair.private_path), "-t", target(server), "true",
        home=home,
    )  # fmt: skip
    assert quiet.returncode == 0 and "warning" not in quiet.stderr, quiet.stderr


def test_f_and_port_reach_a_host_by_its_alias(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path, tmp_path: Path
) -> None:
    server = sshd_factory(name="byalias")
    known = tmp_path / "kh"
    known.write_text(f"{server.known_hosts_name} {server.host_key}\n")
    config = write_config(
        tmp_path / "config",
        f"Host myserver\n  HostName {server.host}\n  Port 1\n  User root\n"
        f"  StrictHostKeyChecking yes\n  UserKnownHostsFile {known}\n"
        f"  IdentityFile {ssh_keypair.private_path}\n",
    )
    # --port wins over the file's Port 1 (which would refuse)
    done = apssh(
        "-F", str(config), "--port", str(server.port), "-t", "myserver", "hostname", home=home
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "myserver: byalias"


def test_recipe_run_takes_o_f_and_port(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path, tmp_path: Path
) -> None:
    server = sshd_factory(name="recipe")
    inventory = tmp_path / "inv.toml"
    inventory.write_text(
        '[g]\nhosts = { srv = { hostname = "127.0.0.1", port = 1, user = "root", '
        f'identity_file = "{ssh_keypair.private_path}" }} }}\n'
    )
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        '[recipe]\nname = "t"\nformat = 1\n[[step]]\nid = "name"\nhosts = "g"\nrun = "hostname"\n'
    )
    known = tmp_path / "kh"
    config = write_config(tmp_path / "config", f"Host *\n  UserKnownHostsFile {known}\n")
    base = ["recipe", "run", str(recipe), "-i", str(inventory), "-F", str(config)]
    base += ["--port", str(server.port)]  # wins over the inventory's port 1
    strict = apssh(*base, "--run-dir", str(tmp_path / "r1"), "-O", "StrictHostKeyChecking=yes",
                   home=home)  # fmt: skip
    # a critical step failed: the recipe aborts (exit 5), naming the host key refusal
    assert strict.returncode == 5, strict.stdout + strict.stderr
    assert "is unknown and the policy is strict" in strict.stdout + strict.stderr
    assert not known.exists()
    done = apssh(*base, "--run-dir", str(tmp_path / "r2"), home=home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "recipe" in done.stdout  # the server's host name
    assert [line.split()[0] for line in recorded(known)] == [server.known_hosts_name]


def test_identity_agent_and_identities_only(
    sshd_factory: Any, ssh_keypair: KeyPair, ssh_agent: str, home: Path, tmp_path: Path
) -> None:
    """The agent (holding the good key) is the one IdentityAgent names; IdentitiesOnly
    restricts it to the IdentityFile keys (here another key: refused)."""
    server = sshd_factory(name="agent")
    wrong = tmp_path / "wrong_key"
    wrong.write_text(sshd_factory.new_host_key().private_pem)  # a key the server does not know
    wrong.chmod(0o600)
    config = write_config(
        tmp_path / "config",
        f"Host *\n  IdentityAgent {ssh_agent}\n  IdentityFile {wrong}\n"
        f"  StrictHostKeyChecking no\n",
    )
    base = ["-F", str(config), "-t", target(server)]
    through_agent = apssh(*base, "hostname", home=home)  # SSH_AUTH_SOCK is unset
    assert through_agent.returncode == 0, through_agent.stderr
    assert through_agent.stdout.strip().endswith("agent")
    no_agent = apssh(*base, "-O", "IdentityAgent=none", "true", home=home)
    assert no_agent.returncode == 4 and "authentication refused" in no_agent.stderr
    only = apssh(*base, "-O", "IdentitiesOnly=yes", "true", home=home)
    assert only.returncode == 4 and "authentication refused" in only.stderr, only.stderr


def test_a_recipe_task_refused_by_its_host_key_is_not_unreachable_nor_retried(
    sshd_factory: Any, ssh_keypair: KeyPair, home: Path, tmp_path: Path
) -> None:
    server = sshd_factory(name="rsarecipe", host_key=sshd_factory.new_host_key("rsa"))
    known = tmp_path / "kh"
    recorded_line = f"{server.known_hosts_name} {sshd_factory.new_host_key().public_line}"
    known.write_text(recorded_line + "\n")
    inventory = tmp_path / "inv.toml"
    inventory.write_text(
        f'[nodes.hosts.n1]\nhostname = "{server.host}"\nport = {server.port}\nuser = "root"\n'
        f'identity_file = "{ssh_keypair.private_path}"\n'
        f'known_hosts = {{ file = "{known}", policy = "strict" }}\n'
    )
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        '[recipe]\nname = "r"\nformat = 1\n\n[[step]]\nid = "a"\nhosts = "nodes"\n'
        'run = "true"\nretries = 3\ncritical = false\n'
    )
    done = apssh(
        "recipe", "run", str(recipe), "-i", str(inventory), "--run-dir", str(tmp_path / "run"),
        "--json", home=home,
    )  # fmt: skip
    assert done.returncode == 4, done.stderr
    assert '"status": "hostkey-refused"' in done.stdout, done.stdout
    assert "unreachable" not in done.stdout
    journal = (tmp_path / "run" / "journal.jsonl").read_text()
    assert journal.count('"task_start"') == 1  # one attempt: never retried
    assert recorded(known) == [recorded_line]
