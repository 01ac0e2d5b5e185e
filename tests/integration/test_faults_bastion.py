"""A bastion paused, then stopped, in the middle of a run: every host behind it is
reported promptly (one keepalive period for all, not one timeout after another), and
nothing is left running on the nodes.

The module starts its own small topology (a bastion, 3 nodes behind it): the
session's is shared and never harmed. The paused case runs first (it unpauses).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apssh_cli import lab
from apssh_cli.lab import KeyPair, Topology
from tests.integration.conftest import SESSION_LAB
from tests.integration.faults import (
    HANG,
    finish,
    leftovers,
    pause,
    start_apssh,
    stop,
    unpause,
    wait_until,
)

pytestmark = pytest.mark.integration

SLEEP = "sleep 4712"
NODES = 3


@pytest.fixture(scope="module")
def small_topology(
    docker_engine: Any,
    sshd_image: str,
    ssh_keypair: KeyPair,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Topology]:
    name = f"{SESSION_LAB}-fb"
    try:
        topology = lab.start_topology(
            name,
            tmp_path_factory.mktemp("fault-topology"),
            nodes=NODES,
            kind="test",
            keypair=ssh_keypair,
            image=sshd_image,
        )
    except lab.LabError as exc:
        pytest.fail(exc.message, pytrace=False)
    try:
        yield topology
    finally:
        lab.remove_topology(name, docker_engine)


def running_everywhere(topology: Topology) -> bool:
    return all(leftovers(node, SLEEP) for node in topology.internal)


def anything_left(topology: Topology) -> list[str]:
    return [line for node in topology.internal for line in leftovers(node, SLEEP)]


def run_and_break(topology: Topology, home: Path, fault: Any) -> tuple[Any, float]:
    args = ["-i", str(topology.inventory), "-g", "nodes", "--keepalive", "1", SLEEP]
    with start_apssh(*args, home=home) as process:
        begin = time.monotonic()
        assert wait_until(lambda: running_everywhere(topology)), "the commands never started"
        broken = time.monotonic()
        fault(topology.bastion)
        done = finish(process, begin)
    return done, time.monotonic() - broken


def check_every_host_unreachable(done: Any, topology: Topology) -> None:
    assert done.returncode == 4, done.stderr
    for node in topology.internal:
        assert f"{node.name}: [unreachable]" in done.stderr
    assert "Traceback" not in done.stderr and "never retrieved" not in done.stderr


def test_bastion_paused_mid_run(small_topology: Topology, home: Path) -> None:
    try:
        done, after = run_and_break(small_topology, home, pause)
    finally:
        unpause(small_topology.bastion)
    check_every_host_unreachable(done, small_topology)
    # one silent bastion connection: noticed once, for every host behind it
    assert after < HANG
    # the nodes end the commands by themselves (their sessions went with the tunnel)
    assert wait_until(lambda: not anything_left(small_topology)), anything_left(small_topology)


def test_bastion_stopped_mid_run(small_topology: Topology, home: Path) -> None:
    done, after = run_and_break(small_topology, home, stop)
    check_every_host_unreachable(done, small_topology)
    assert after < HANG
    assert wait_until(lambda: not anything_left(small_topology)), anything_left(small_topology)
