"""Hints for upstream apssh's flags (-g gateway, -t FILE, -i include, default user), at the CLI.

Each case runs `apssh` (the real entry point, no SSH: dry runs and local hosts) the way a
user of parmentelat's apssh types it, and checks what is said and what (not) runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from apssh_cli.cli.upstream_hints import gateway_hint, include_warnings, target_file_warnings
from apssh_cli.errors import ConfigError
from apssh_cli.inventory.model import Inventory

from .climain import apssh_argv as apssh

INVENTORY = """\
[nodes]
hosts = { "loc[1:2]" = { connection = "local" } }
"""


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "lab.toml"
    path.write_text(INVENTORY)
    return path


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("APSSH_INVENTORY", raising=False)
    return tmp_path


# ------------------------------------------------------------------ -g gateway


def test_g_without_inventory_names_the_gateway_option(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = apssh(["-g", "gateway.example.org", "-t", "node1", "uptime"], capsys)
    assert status == 1 and out == ""
    lines = err.splitlines()
    assert lines[0] == "apssh: -g needs an inventory: give -i FILE or set APSSH_INVENTORY"
    assert lines[1].startswith("hint: ")
    assert "upstream apssh's -g (gateway) is -G here: -G gateway.example.org" in lines[1]
    assert len(lines) == 2


def test_g_naming_a_host_not_in_the_inventory_names_the_gateway_option(
    in_tmp: Path, inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["-i", str(inventory), "-g", "root@gw.example.org", "-t", "node1", "uptime"]
    status, out, err = apssh(argv, capsys)
    assert status == 1 and out == ""
    assert "hint: no group named 'root@gw.example.org'; upstream apssh's -g (gateway)" in err
    assert "-G root@gw.example.org" in err


def test_g_naming_an_unknown_group_gets_no_gateway_hint(
    in_tmp: Path, inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = apssh(["-i", str(inventory), "-g", "nodez", "-n", "uptime"], capsys)
    assert status == 1
    assert "-G" not in err and "hint:" not in err


def test_g_naming_a_group_runs_without_hint(
    in_tmp: Path, inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = apssh(["-i", str(inventory), "-g", "nodes", "echo", "hi"], capsys)
    assert status == 0
    assert sorted(out.splitlines()) == ["loc1: hi", "loc2: hi"]
    assert "hint" not in err and "warning" not in err


@pytest.mark.parametrize(
    ("pattern", "hinted"),
    [
        ("gw.example.org", True),
        ("root@gw", True),
        ("10.0.0.1", True),
        ("gw.example.org:2222", True),
        ("nodes", False),  # a group
        ("loc1", False),  # a host of the inventory
        ("nodez", False),  # a word: a mistyped group as likely as a host
        ("node*.lab", False),  # a glob: a pattern, not a host
        ("nodes,!loc1", False),
    ],
)
def test_gateway_hint_with_an_inventory(pattern: str, hinted: bool) -> None:
    inventory = Inventory.from_toml_text(INVENTORY)
    assert (gateway_hint(pattern, inventory) is not None) is hinted


def test_gateway_hint_without_an_inventory_always() -> None:
    hint = gateway_hint("nodes", None)
    assert hint is not None and "-G nodes" in hint


# ------------------------------------------------------------------ -t FILE


def test_t_naming_a_local_file_warns_and_says_at_file(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (in_tmp / "hosts.txt").write_text("node1\nnode2\n")
    status, out, err = apssh(["-n", "-t", "hosts.txt", "uptime"], capsys)
    assert status == 0  # a host may be named so: it is still one, said plainly
    assert out.split()[0] == "hosts.txt"
    assert (
        "apssh: warning: -t hosts.txt is taken as a host name, but hosts.txt is also a "
        "local file: -t @hosts.txt reads targets from it" in err
    )


def test_t_naming_a_file_path_is_refused_and_runs_nothing(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (in_tmp / "hosts.txt").write_text("node1\n")
    status, out, err = apssh(["-t", "./hosts.txt", "uptime"], capsys)
    assert status == 1 and out == ""
    assert err.splitlines() == [
        "apssh: -t ./hosts.txt: a file, not a host; -t @./hosts.txt reads targets from it "
        "(upstream apssh's -t FILE)"
    ]


def test_t_at_file_reads_it_without_warning(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (in_tmp / "hosts.txt").write_text("node1\nnode2\n")
    status, out, err = apssh(["-n", "-t", "@hosts.txt", "uptime"], capsys)
    assert status == 0
    assert [line.split()[0] for line in out.splitlines()] == ["node1", "node2"]
    assert "warning" not in err


def test_target_file_warnings_split_comma_lists(in_tmp: Path) -> None:
    (in_tmp / "b").write_text("")
    assert len(target_file_warnings(["a,b,c", "@b"])) == 1
    assert target_file_warnings(["no-such-file"]) == []
    with pytest.raises(ConfigError):
        target_file_warnings([f"a,{in_tmp / 'b'}"])


# ------------------------------------------------------------------ -i include


def test_i_after_the_script_warns_that_the_include_is_not_sent(
    in_tmp: Path, inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (in_tmp / "lib.sh").write_text("x=1\n")
    (in_tmp / "script.sh").write_text('#!/bin/sh\necho "args: $*"\n')
    argv = ["-i", str(inventory), "-g", "loc1", "-r", "-s", "script.sh", "-i", "lib.sh"]
    status, out, err = apssh(argv, capsys)
    assert status == 0
    assert out == "args: -i lib.sh\n"  # what we do: the script's arguments, as documented
    assert (
        "apssh: warning: -i lib.sh after the script goes to script.sh as arguments, and "
        "lib.sh is not sent; upstream apssh's -i (include) is --include here, before the "
        "script: --include lib.sh -s script.sh" in err
    )


def test_include_warnings_only_for_existing_files(in_tmp: Path) -> None:
    (in_tmp / "lib.sh").write_text("")
    assert include_warnings(["s.sh", "-i", "missing.sh"]) == []
    assert include_warnings(["s.sh", "-x", "lib.sh"]) == []
    assert include_warnings(["s.sh", "-i"]) == []
    assert len(include_warnings(["s.sh", "--includes", "lib.sh", "-i", "lib.sh"])) == 2


def test_include_given_as_ours_has_no_warning(
    in_tmp: Path, inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (in_tmp / "lib.sh").write_text("x=1\n")
    (in_tmp / "script.sh").write_text('#!/bin/sh\n. "$(dirname "$0")/lib.sh"; echo "x=$x"\n')
    argv = ["-i", str(inventory), "-g", "loc1", "-r", "--include", "lib.sh", "-s", "script.sh"]
    status, out, err = apssh(argv, capsys)
    assert (status, out) == (0, "x=1\n")
    assert "warning" not in err


# ------------------------------------------------------------------ default user


def test_help_states_the_default_user(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = apssh(["--help"], capsys)
    assert status == 0
    text = " ".join(out.split())
    assert "-g is a group pattern here (its gateway option is -G)" in text
    assert "default remote user is the inventory's, ~/.ssh/config's or your local user name" in text
    assert "(upstream's SshNode: root)" in text
    status, out, _ = apssh(["run", "--help"], capsys)
    text = " ".join(out.split())
    assert "else your local user name (not root, as upstream apssh's SshNode)" in text
