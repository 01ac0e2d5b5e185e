"""Relative paths in an inventory start at the inventory file, against real OpenSSH.

Issue 19.7: a relative ``known_hosts`` file used to be looked up in the current
directory, so running from elsewhere started trust-on-first-use again, silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from apssh_cli.lab import KeyPair, Topology
from tests.integration.command import run_apssh

pytestmark = pytest.mark.integration


def apssh(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return run_apssh(*args, home=home, cwd=cwd)


@pytest.fixture
def lab_dir(topology: Topology, ssh_keypair: KeyPair, tmp_path: Path) -> Path:
    """An inventory in lab/ whose key and known_hosts sit next to it, named relatively."""
    lab = tmp_path / "lab"
    (lab / "keys").mkdir(parents=True)
    shutil.copy(ssh_keypair.private_path, lab / "keys" / "id")
    os.chmod(lab / "keys" / "id", 0o600)
    shutil.copy(topology.known_hosts, lab / "known_hosts")
    node = topology.direct[0]
    (lab / "inv.toml").write_text(
        "[all.vars]\n"
        'user = "root"\n'
        'identity_file = "keys/id"\n'
        "[direct.hosts]\n"
        f'{node.name} = {{ hostname = "{node.host}", port = {node.port}, '
        'known_hosts = { policy = "strict", file = "known_hosts" } }\n'
        # an absolute key here: only the known_hosts file is relative
        f'tofu = {{ hostname = "{node.host}", port = {node.port}, '
        f'identity_file = "{lab / "keys" / "id"}", '
        'known_hosts = { policy = "accept-new", file = "tofu_known_hosts" } }\n'
    )
    return lab


def test_strict_known_hosts_and_key_next_to_the_inventory(
    topology: Topology, lab_dir: Path, tmp_path: Path, home: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    node = topology.direct[0]
    done = apssh("-i", "../lab/inv.toml", "-g", node.name, "hostname", cwd=elsewhere, home=home)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(node.name)
    assert list(elsewhere.iterdir()) == []  # nothing looked up, nothing written here


def test_accept_new_writes_next_to_the_inventory_not_in_the_cwd(
    lab_dir: Path, tmp_path: Path, home: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = apssh("-i", str(lab_dir / "inv.toml"), "-g", "tofu", "true", cwd=elsewhere, home=home)
    assert done.returncode == 0, done.stderr
    learnt = (lab_dir / "tofu_known_hosts").read_text()
    assert learnt.strip(), "the host key was learnt next to the inventory"
    assert list(elsewhere.iterdir()) == []
    # the second run trusts that file: a changed key there is refused (strict from now on)
    (lab_dir / "tofu_known_hosts").write_text(learnt.split()[0] + " " + _other_key() + "\n")
    again = apssh("-i", str(lab_dir / "inv.toml"), "-g", "tofu", "true", cwd=elsewhere, home=home)
    assert again.returncode != 0
    assert "tofu" in again.stderr


def _other_key() -> str:
    from apssh_cli.lab import generate_host_key

    return " ".join(generate_host_key().public_line.split()[:2])
