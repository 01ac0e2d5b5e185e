"""Selections mean what they say on every command: a `-x` typo is exit 1, nothing run."""

from __future__ import annotations

from pathlib import Path

import pytest

from .climain import apssh

INVENTORY = """\
[nodes.hosts]
node1 = {}
node2 = {}
node3 = {}
"""

RECIPE = """\
[recipe]
name = "demo"
format = 1
[[step]]
id = "hello"
hosts = "nodes"
run = "echo {host}"
"""


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.delenv("APSSH_INVENTORY", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "inv.toml").write_text(INVENTORY)
    (tmp_path / "recipe.toml").write_text(RECIPE)
    (tmp_path / "file.txt").write_text("x")
    return str(tmp_path / "inv.toml"), str(tmp_path / "recipe.toml")


TYPO = "apssh: no group or host matches 'nod3' (did you mean nodes, node"


@pytest.mark.parametrize(
    "command",
    [
        ["run", "--dry-run", "true"],
        ["push", "--dry-run", "file.txt", "/tmp/"],
        ["pull", "--dry-run", "/etc/hostname", "out"],
    ],
    ids=["run", "push", "pull"],
)
def test_exclude_typo_is_exit_1_in_run_push_pull(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    inventory, _ = files
    name, *rest = command
    code, out, err = apssh(capsys, name, "-i", inventory, "-g", "nodes", "-x", "nod3", *rest)
    assert (code, out) == (1, "")
    assert err.startswith(TYPO), err
    # the right name runs on the others only
    code, out, err = apssh(capsys, name, "-i", inventory, "-g", "nodes", "-x", "node3", *rest)
    assert code == 0, err
    assert "node1" in out and "node2" in out and "node3" not in out


@pytest.mark.parametrize("subcommand", ["check", "plan", "run"])
def test_exclude_typo_is_exit_1_in_recipes(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str], subcommand: str
) -> None:
    inventory, recipe = files
    code, out, err = apssh(capsys, "recipe", subcommand, recipe, "-i", inventory, "-x", "nod3")
    assert (code, out) == (1, "")
    assert "-x 'nod3': no group or host matches 'nod3' (did you mean nodes, node" in err
    assert not (Path(recipe).parent / "runs").exists()  # nothing ran


def test_recipe_exclude_leaves_hosts_out_of_every_step(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    inventory, recipe = files
    code, out, err = apssh(capsys, "recipe", "plan", recipe, "-i", inventory, "-x", "node2")
    assert code == 0, err
    assert "node1: echo node1" in out and "node3: echo node3" in out
    assert "node2" not in out
    code, out, _ = apssh(
        capsys, "recipe", "plan", recipe, "-i", inventory, "-g", "node[1:2]", "-x", "node1"
    )
    assert "node2: echo node2" in out and "node1" not in out and "node3" not in out


@pytest.mark.parametrize("flag", ["-g", "-x"])
def test_recipe_check_without_inventory_refuses_a_pattern(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    # without -i nothing could check the pattern: an error, not "ok"
    _, recipe = files
    code, out, err = apssh(capsys, "recipe", "check", recipe, flag, "nod3")
    assert (code, out) == (1, "")
    assert err == f"apssh: {recipe}: {flag} needs an inventory (-i FILE)\n"
