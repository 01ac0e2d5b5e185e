"""`apssh lab up|status|down`: through its bastion, after a restart, from a wheel, nothing left."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import time
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


def _wait_listening(container: Any, times: int, timeout: float = 120) -> None:
    """Wait until sshd logged SSHD_READY ``times`` times (once per start of the container)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if container.logs().decode(errors="replace").count(lab.SSHD_READY) >= times:
            return
        time.sleep(0.2)
    raise AssertionError(f"{container.name}: sshd not listening after {timeout} s")


def test_lab_survives_a_restart_of_its_bastion_and_status_says_what_is_stale(
    lab_env: dict[str, str], lab_name: str, tmp_path: Path, docker_engine: Any
) -> None:
    name = lab_name
    state = _lab_up(2, name, lab_env, tmp_path)
    inventory = state / "inventory.toml"
    port = tomllib.loads(inventory.read_text())["bastions"]["hosts"]["bastion"]["port"]
    bastion = docker_engine.containers.get(f"apssh-{name}-bastion")
    assert bastion.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"

    bastion.restart(timeout=1)
    _wait_listening(bastion, times=2)
    bastion.reload()
    # the port chosen at `up` is published again: inventory and known_hosts still hold
    assert bastion.attrs["NetworkSettings"]["Ports"]["22/tcp"][0]["HostPort"] == str(port)
    run = _apssh("-i", str(inventory), "-g", "nodes", "true", env=lab_env, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    status = _apssh("lab", "status", env=lab_env, cwd=tmp_path)
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.splitlines()[-1] == "status: ok"

    # a node stopped: stale, with the fix; once applied, ok again
    node1 = f"apssh-{name}-node1"
    docker_engine.containers.get(node1).stop(timeout=1)
    status = _apssh("lab", "status", env=lab_env, cwd=tmp_path)
    assert status.returncode == 1
    assert f"stale: {node1} is exited; fix: `docker start {node1}`" in status.stdout.splitlines()
    assert "status: ok" not in status.stdout
    docker_engine.containers.get(node1).start()
    status = _apssh("lab", "status", env=lab_env, cwd=tmp_path)
    assert (status.returncode, status.stdout.splitlines()[-1]) == (0, "status: ok")

    # an inventory that names another port than the one published
    inventory.write_text(inventory.read_text().replace(f"port = {port}", "port = 1"))
    status = _apssh("lab", "status", env=lab_env, cwd=tmp_path)
    assert status.returncode == 1
    assert f"stale: the bastion is published on 127.0.0.1:{port}, but " in status.stdout
    assert "says port 1; fix: recreate the lab" in status.stdout


# what a copy of the sources leaves out: environments, caches, build leftovers
_NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", ".nox", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".lab"
)


def test_lab_up_from_a_wheel_installed_outside_the_repository(
    lab_name: str, sshd_image: str, tmp_path: Path, docker_engine: Any
) -> None:
    # a wheel of the sources, in a fresh venv; the dependencies come from this
    # environment's site-packages through a .pth (no index needed), apssh_cli only
    # from the wheel: no docker/ next to it, no checkout in sight
    sources = tmp_path / "src"
    shutil.copytree(Path(__file__).parents[2], sources, ignore=_NOT_SOURCES)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "-q"]
    wheels = tmp_path / "wheels"
    subprocess.run(
        [*pip, "wheel", str(sources), "--no-deps", "-w", str(wheels)], check=True, timeout=300
    )
    (wheel,) = wheels.glob("apssh_cli-*.whl")
    subprocess.run([*pip, "install", "--no-deps", str(wheel)], check=True, timeout=300)
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    python = str(venv / "bin" / "python")
    found = subprocess.run([python, "-c", purelib], capture_output=True, text=True, check=True)
    site_packages = Path(found.stdout.strip())
    (site_packages / "_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    shutil.rmtree(sources)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("APSSH_LAB_IMAGE", "APSSH_LAB_DIR", "PYTHONPATH")
    }

    def apssh(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(venv / "bin" / "apssh"), *args],
            env=env,
            cwd=elsewhere,
            capture_output=True,
            text=True,
            timeout=300,
        )

    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import apssh_cli.lab as m; print(m.__file__)"],
        env=env,
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(site_packages), where
    packaged = Path(where).parent / "sshd_image" / "build-image"
    # the packaged build script names the image as the repository's does
    printed = subprocess.run(
        ["bash", str(packaged), "--print-name"], capture_output=True, text=True, check=True
    )
    assert printed.stdout.strip() == sshd_image

    up = apssh("lab", "up", "--nodes", "1", "--name", lab_name)
    assert up.returncode == 0, up.stderr
    bastion = docker_engine.containers.get(f"apssh-{lab_name}-bastion")
    assert sshd_image in bastion.image.tags
    run = apssh("-i", ".lab/inventory.toml", "-g", "nodes", "hostname")
    assert (run.returncode, run.stdout) == (0, "node1: node1\n"), run.stderr
    status = apssh("lab", "status")
    assert (status.returncode, status.stdout.splitlines()[-1]) == (0, "status: ok")
    down = apssh("lab", "down")
    assert down.returncode == 0, down.stderr
    assert lab.find_containers(lab_name, docker_engine) == []
    assert not (elsewhere / ".lab").exists()
