"""Paths in an inventory are relative to the inventory file, not to the current directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from apssh_cli.inventory.model import Inventory

from .climain import apssh

PATHS = """\
[all.vars]
identity_file = ["keys/id_ed25519", "~/.ssh/id_rsa", "/abs/key"]
known_hosts = { policy = "strict", file = "lab_known_hosts" }

[g.hosts]
a = {}
b = { known_hosts = "other/kh", ansible_ssh_private_key_file = "k2" }
c = { known_hosts = "accept-new" }
"""


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An inventory in tmp_path/lab, and the current directory somewhere else."""
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "inv.toml").write_text(PATHS)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("APSSH_INVENTORY", raising=False)
    return lab


def test_relative_paths_follow_the_inventory_file(elsewhere: Path) -> None:
    # given as a relative path from another directory: still the file's own directory
    loaded = Inventory.load([os.path.relpath(elsewhere / "inv.toml")])
    a, b, c = (loaded.host(name) for name in "abc")
    home_key = os.path.expanduser("~/.ssh/id_rsa")
    assert a.identity_files == (str(elsewhere / "keys/id_ed25519"), home_key, "/abs/key")
    assert (a.known_hosts_policy, a.known_hosts_file) == (
        "strict",
        str(elsewhere / "lab_known_hosts"),
    )
    # a host's own values too, Ansible's names included
    assert b.identity_files == (str(elsewhere / "k2"),)
    assert (b.known_hosts_policy, b.known_hosts_file) == (None, str(elsewhere / "other/kh"))
    # a policy is not a path
    assert (c.known_hosts_policy, c.known_hosts_file) == ("accept-new", None)


def test_each_file_resolves_its_own_paths(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "one" / "base.toml").write_text('[g.hosts]\na = { identity_file = "ka" }\nb = {}\n')
    (tmp_path / "two" / "over.toml").write_text('[g.hosts]\nb = { identity_file = "kb" }\n')
    loaded = Inventory.load([tmp_path / "one" / "base.toml", tmp_path / "two" / "over.toml"])
    assert loaded.host("a").identity_files == (str(tmp_path / "one" / "ka"),)
    assert loaded.host("b").identity_files == (str(tmp_path / "two" / "kb"),)


def test_text_without_a_file_stays_relative_to_the_current_directory() -> None:
    loaded = Inventory.from_toml_text(
        '[g.hosts]\na = { identity_file = "k", known_hosts = "kh" }\n'
    )
    assert loaded.host("a").identity_files == ("k",)
    assert loaded.host("a").known_hosts_file == "kh"
    based = Inventory.from_toml_text('[g.hosts]\na = { identity_file = "k" }\n', base_dir="/srv")
    assert based.host("a").identity_files == ("/srv/k",)


def test_a_pipe_has_no_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `-i <(make-inventory)`: /dev/fd/N is no place for keys; the current directory is
    monkeypatch.chdir(tmp_path)
    read, write = os.pipe()
    os.write(write, b'[g.hosts]\na = { identity_file = "k" }\n')
    os.close(write)
    try:
        loaded = Inventory.load([f"/dev/fd/{read}"])
    finally:
        os.close(read)
    assert loaded.host("a").identity_files == ("k",)


def test_inventory_host_shows_the_resolved_paths(
    elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = apssh(capsys, "inventory", "host", "-i", "../lab/inv.toml", "a")
    assert code == 0
    assert f"  known_hosts      strict (file {elsewhere / 'lab_known_hosts'})\n" in out
    assert f"  identity_files   {elsewhere / 'keys/id_ed25519'}, " in out


def test_a_key_given_on_the_command_line_stays_relative_to_the_cwd(elsewhere: Path) -> None:
    # -k KEY is written in the shell, so it means what the shell means: the cwd
    from apssh_cli.inventory.targets import Overrides, resolve_targets

    loaded = Inventory.load([elsewhere / "inv.toml"])
    overrides = Overrides(keys=("mykey",))
    (target,) = resolve_targets(
        inventory=loaded, pattern="a", exclude=None, specs=[], overrides=overrides
    )
    assert target.host.identity_files[:2] == ("mykey", str(elsewhere / "keys/id_ed25519"))
