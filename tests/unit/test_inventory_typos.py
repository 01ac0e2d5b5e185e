"""A variable one typo away from a connection variable: a warning, an error under --strict."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from apssh_cli.inventory.hostvars import KNOWN_VARIABLES, near_known_variable
from apssh_cli.inventory.model import Inventory

from .climain import apssh


@pytest.mark.parametrize(
    ("name", "intended"),
    [
        ("hostnme", "hostname"),  # a letter left out
        ("prot", "port"),  # two neighbours swapped
        ("gatway", "gateway"),
        ("identity_files", "identity_file"),  # a letter added
        ("uswr", "user"),  # a letter changed
        ("known_host", "known_hosts"),
        ("conect_timeout", "connect_timeout"),
        ("keepalve", "keepalive"),
        ("ansible_prot", "ansible_port"),
    ],
)
def test_near_names(name: str, intended: str) -> None:
    assert near_known_variable(name) == intended


@pytest.mark.parametrize(
    "name", ["hostname", "port", "keepalive", "role", "rack", "tag", "gpus", "ab", "password"]
)
def test_far_or_known_names_are_not_typos(name: str) -> None:
    assert near_known_variable(name) is None


KNOWN = sorted(KNOWN_VARIABLES)
LETTERS = string.ascii_lowercase + "_"


@given(st.sampled_from(KNOWN), st.integers(min_value=0, max_value=40), st.sampled_from(LETTERS))
def test_any_single_edit_of_a_known_name_is_caught(name: str, index: int, letter: str) -> None:
    index %= len(name)
    edits = [
        name[:index] + name[index + 1 :],  # deletion
        name[:index] + letter + name[index:],  # insertion
        name[:index] + letter + name[index + 1 :],  # substitution
        name[:index] + name[index + 1 : index + 2] + name[index] + name[index + 2 :],  # swap
    ]
    for edit in edits:
        if edit == name or edit in KNOWN_VARIABLES or edit == "keepalive":
            continue
        assert near_known_variable(edit) is not None, edit


def test_two_edits_are_not_one() -> None:
    assert near_known_variable("hstnme") is None
    assert near_known_variable("gtwy") is None


TYPOS = """\
[nodes]
vars = { gatway = "bastion" }

[nodes.hosts]
"node[1:2]" = { prot = 2222 }
node3 = { hostnme = "10.0.0.3" }

[infra.hosts]
bastion = {}
"""


def test_inventory_collects_each_typo_once_with_its_place() -> None:
    inventory = Inventory.from_toml_text(TYPOS, "lab.toml")
    assert [(t.name, t.intended, t.place, t.where) for t in inventory.typos] == [
        ("gatway", "gateway", "lab.toml:2", "nodes.vars"),
        ("prot", "port", "lab.toml:5", "nodes.hosts.node[1:2]"),  # once for the range
        ("hostnme", "hostname", "lab.toml:6", "nodes.hosts.node3"),
    ]
    # still a free variable: the connection does not use it
    node1 = inventory.host("node1")
    assert node1.port is None and node1.gateway is None and node1.vars["prot"] == 2222


@pytest.fixture
def typos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("APSSH_INVENTORY", raising=False)
    path = tmp_path / "typos.toml"
    path.write_text(TYPOS)
    return str(path)


def typo_lines(path: str, level: str) -> str:
    tail = "(kept as a free variable: not used to connect)"
    return (
        f"apssh: {level}: {path}:2: nodes.vars: 'gatway' is not a connection setting, "
        f"did you mean 'gateway'? {tail}\n"
        f"apssh: {level}: {path}:5: nodes.hosts.node[1:2]: 'prot' is not a connection "
        f"setting, did you mean 'port'? {tail}\n"
        f"apssh: {level}: {path}:6: nodes.hosts.node3: 'hostnme' is not a connection "
        f"setting, did you mean 'hostname'? {tail}\n"
    )


def test_check_warns(typos: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert apssh(capsys, "inventory", "check", "-i", typos) == (
        0,
        "ok: 4 hosts, 2 groups; 3 warnings\n",
        typo_lines(typos, "warning"),
    )


def test_check_strict_fails(typos: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert apssh(capsys, "inventory", "check", "--strict", "-i", typos) == (
        1,
        "",
        typo_lines(typos, "error") + "apssh: 3 misspelt connection variables (--strict)\n",
    )


def test_run_warns_and_goes_on(typos: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = apssh(capsys, "-i", typos, "-g", "node3", "--dry-run", "true")
    assert status == 0 and out.startswith("node3")
    assert err.startswith(typo_lines(typos, "warning"))
