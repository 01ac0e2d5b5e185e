"""`apssh lab up`, a command through its bastion, `apssh lab down`, and nothing left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from apssh_cli import lab

pytestmark = pytest.mark.integration

APSSH = [sys.executable, "-m", "apssh_cli.cli.main"]


def _apssh(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*APSSH, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def lab_env(tmp_path: Path, lab_name: str, sshd_image: str) -> dict[str, str]:
    """An environment for `apssh lab` with its own state dir; the lab is named lab_name."""
    return {**os.environ, "APSSH_LAB_DIR": str(tmp_path / "state"), "APSSH_LAB_IMAGE": sshd_image}


def _lab_up(nodes: int, name: str, env: dict[str, str], cwd: Path) -> Path:
    """`apssh lab up --nodes N --name NAME`, which must succeed; returns the state dir."""
    up = _apssh("lab", "up", "--nodes", str(nodes), "--name", name, env=env, cwd=cwd)
    assert up.returncode == 0, up.stderr
    assert "-g nodes uptime" in up.stdout
    return Path(env["APSSH_LAB_DIR"])


def test_lab_up_run_down_leaves_nothing(
    lab_env: dict[str, str], lab_name: str, tmp_path: Path, docker_engine: Any
) -> None:
    name = lab_name
    state = _lab_up(2, name, lab_env, tmp_path)
    inventory = state / "inventory.toml"
    data = tomllib.loads(inventory.read_text())
    assert sorted(data["nodes"]["hosts"]) == ["node1", "node2"]
    assert data["nodes"]["vars"]["gateway"] == "bastion"
    assert "direct" not in data

    containers = lab.find_containers(name, docker_engine)
    assert len(containers) == 3
    # the nodes are published nowhere: only the bastion has a port on the host
    published = [c.name for c in containers if c.attrs["HostConfig"]["PortBindings"]]
    assert published == [f"apssh-{name}-bastion"]

    status = _apssh("lab", "status", "--name", name, env=lab_env, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert status.stdout.count("running") == 3

    # a second `up` of the same lab is refused, and leaves the first one alone
    again = _apssh("lab", "up", "--name", name, env=lab_env, cwd=tmp_path)
    assert again.returncode == 1
    assert "already up" in again.stderr
    assert "starting" not in again.stderr
    assert len(lab.find_containers(name, docker_engine)) == 3

    # nor may another lab take over the state dir of a lab that is up
    other = f"{name}-other"
    try:
        taken = _apssh("lab", "up", "--name", other, env=lab_env, cwd=tmp_path)
        assert taken.returncode == 1
        assert f"holds the files of lab {name!r}, which is up" in taken.stderr
        assert lab.find_containers(other, docker_engine) == []
    finally:
        lab.remove_topology(other, docker_engine)
    assert lab.read_state(state)["name"] == name

    run = _apssh("-i", str(inventory), "-g", "nodes", "hostname", env=lab_env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert sorted(run.stdout.splitlines()) == ["node1: node1", "node2: node2"]

    down = _apssh("lab", "down", "--name", name, env=lab_env, cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    assert lab.find_containers(name, docker_engine) == []
    networks = docker_engine.networks.list(filters={"label": f"{lab.LABEL_LAB}={name}"})
    assert networks == []
    assert not state.exists()


def test_lab_down_finds_the_containers_without_state_files(
    lab_env: dict[str, str], lab_name: str, tmp_path: Path, docker_engine: Any
) -> None:
    name = lab_name
    state = _lab_up(1, name, lab_env, tmp_path)
    for path in state.iterdir():
        path.unlink()

    down = _apssh("lab", "down", "--name", name, env=lab_env, cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    assert "2 container(s), 1 network(s)" in down.stdout
    assert lab.find_containers(name, docker_engine) == []


def test_status_and_down_of_a_lab_that_is_not_up(
    lab_env: dict[str, str], lab_name: str, tmp_path: Path
) -> None:
    name = lab_name
    status = _apssh("lab", "status", "--name", name, env=lab_env, cwd=tmp_path)
    assert status.returncode == 0
    assert status.stdout.strip() == f"lab {name!r} is not running"
    down = _apssh("lab", "down", "--name", name, env=lab_env, cwd=tmp_path)
    assert down.returncode == 0
    assert down.stdout.strip() == f"no lab {name!r} is up: nothing to remove"
