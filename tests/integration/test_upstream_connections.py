"""Connections after ``scheduler.run()``, counted as upstream apssh's tests count them.

Every nepi-ng script runs ``scheduler.run()`` (asynciojobs opens an event loop and
closes it) and then ``close_ssh_in_scheduler(scheduler)`` (under a new loop). The
connections opened under the first loop must stay up after the run (upstream's tests
count them) and be really gone after the close: in the server (ESTABLISHED on port 22
inside the container) and in this process (no socket left open to the server, before
any garbage collection). A second run reconnects cleanly. Both schedulers: ours and
asynciojobs' own.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import asynciojobs
import pytest

from apssh_cli import SshJob, SshNode, close_nodes, close_ssh_in_scheduler
from apssh_cli.engine.job import Scheduler as OurScheduler
from apssh_cli.lab import Endpoint, KeyPair, Topology
from apssh_cli.output import CaptureFormatter
from tests.integration.test_library_ssh import established_ssh

pytestmark = pytest.mark.integration

T = TypeVar("T")
SETTLE = 15.0  # seconds a count may take to reach its value: a bound against a hang
SCHEDULERS = [
    pytest.param(OurScheduler, id="ours"),
    pytest.param(asynciojobs.Scheduler, id="asynciojobs"),
]


def client_sockets(port: int) -> int:
    """Open descriptors of this process that are TCP sockets to ``port`` (any state)."""
    inodes: set[str] = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if int(fields[2].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    found = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            found += 1
    return found


def settles(measure: Callable[[], T], expected: T) -> T:
    """``measure()`` once it equals ``expected``, or its last value after SETTLE seconds."""
    deadline = time.monotonic() + SETTLE
    value = measure()
    while value != expected and time.monotonic() < deadline:
        time.sleep(0.1)
        value = measure()
    return value


@contextmanager
def no_noise(capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    """Fail on anything a user would see: warnings, asyncio errors, unraisable exceptions,
    "Event loop is closed" on stderr; a garbage collection at the end included."""
    unraisable: list[str] = []
    previous_hook = sys.unraisablehook
    sys.unraisablehook = lambda info: unraisable.append(f"{info.exc_value!r} in {info.object!r}")
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("asyncio").addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
            gc.collect()
    finally:
        logging.getLogger("asyncio").removeHandler(handler)
        sys.unraisablehook = previous_hook
    err = capfd.readouterr().err
    assert "Event loop is closed" not in err, err
    assert "Traceback" not in err, err
    assert not unraisable, unraisable
    assert not [str(w.message) for w in caught], [str(w.message) for w in caught]
    assert not [r.getMessage() for r in records], [r.getMessage() for r in records]


def node_of(
    endpoint: Endpoint, keypair: KeyPair, known_hosts: Path, gateway: SshNode | None = None
) -> SshNode:
    # written as upstream scripts write them: a node per connection wanted
    return SshNode(
        endpoint.host,
        port=endpoint.port,
        username="root",
        keys=[keypair.private_path],
        known_hosts=str(known_hosts),
        ssh_config=None,
        gateway=gateway,
        formatter=CaptureFormatter(),
    )


def nest(scheduler_class: Any, jobs: list[SshJob], depth: int) -> Any:
    """A scheduler holding each job inside ``depth`` nested schedulers (0: the jobs directly)."""
    top = scheduler_class()
    for job in jobs:
        item: Any = job
        for _ in range(depth):
            item = scheduler_class(item)
        top.add(item)
    return top


@pytest.fixture
def server(sshd_factory: Any, known_hosts_file: Path) -> Endpoint:
    """An sshd of its own: its connections are counted exactly, not as a difference."""
    endpoint: Endpoint = sshd_factory()
    known_hosts_file.write_text(sshd_factory.known_hosts_line(endpoint))
    return endpoint


@pytest.mark.parametrize("scheduler_class", SCHEDULERS)
@pytest.mark.parametrize(("nodes", "commands", "depth"), [(4, 1, 0), (1, 4, 0), (4, 4, 2)])
def test_one_hop_closed_after_run(
    topology: Topology,
    server: Endpoint,
    ssh_keypair: KeyPair,
    known_hosts_file: Path,
    capfd: pytest.CaptureFixture[str],
    scheduler_class: Any,
    nodes: int,
    commands: int,
    depth: int,
) -> None:
    """The issue's reproduction: N nodes on one sshd, run(), then close_ssh_in_scheduler."""
    with no_noise(capfd):
        made = [node_of(server, ssh_keypair, known_hosts_file) for _ in range(nodes)]
        jobs = [
            SshJob(node, f"echo {n}-{c}") for n, node in enumerate(made) for c in range(commands)
        ]
        scheduler = nest(scheduler_class, jobs, depth)
        assert scheduler.run() is True
        assert settles(lambda: established_ssh(topology, server), nodes) == nodes
        assert client_sockets(server.port) == nodes

        close_ssh_in_scheduler(scheduler)
        # in this process at once, before any garbage collection
        assert client_sockets(server.port) == 0
        assert settles(lambda: established_ssh(topology, server), 0) == 0
    for n, node in enumerate(made):
        out = node.formatter.stdout(node.label)  # type: ignore[attr-defined]
        assert out.count(f"{n}-") == commands


@pytest.mark.parametrize("scheduler_class", SCHEDULERS)
@pytest.mark.parametrize("depth", [0, 2])
def test_two_hops_closed_after_run(
    topology: Topology,
    ssh_keypair: KeyPair,
    capfd: pytest.CaptureFixture[str],
    scheduler_class: Any,
    depth: int,
) -> None:
    """A gateway and two nodes behind it: 1 + 2 connections after the run, 0 after close."""
    servers = [topology.bastion, *topology.internal[:2]]

    def counts() -> list[int]:
        return [established_ssh(topology, endpoint) for endpoint in servers]

    before = counts()
    with no_noise(capfd):
        gateway = node_of(topology.bastion, ssh_keypair, topology.known_hosts)
        behind = [
            node_of(endpoint, ssh_keypair, topology.known_hosts, gateway)
            for endpoint in topology.internal[:2]
        ]
        jobs = [SshJob(node, "hostname") for node in behind for _ in range(2)]
        scheduler = nest(scheduler_class, jobs, depth)
        assert scheduler.run() is True
        after_run = [b + 1 for b in before]
        assert settles(counts, after_run) == after_run
        assert client_sockets(topology.bastion.port) == 1

        close_ssh_in_scheduler(scheduler)
        assert client_sockets(topology.bastion.port) == 0
        assert settles(counts, before) == before


@pytest.mark.parametrize("scheduler_class", SCHEDULERS)
def test_a_second_run_reconnects_cleanly(
    topology: Topology,
    server: Endpoint,
    ssh_keypair: KeyPair,
    known_hosts_file: Path,
    capfd: pytest.CaptureFixture[str],
    scheduler_class: Any,
) -> None:
    """run(), run() again, close: never more than one connection per node, none at the end."""
    with no_noise(capfd):
        made = [node_of(server, ssh_keypair, known_hosts_file) for _ in range(2)]
        scheduler = scheduler_class(*(SshJob(node, "echo again") for node in made))
        for _ in range(3):
            assert scheduler.run() is True
            assert settles(lambda: established_ssh(topology, server), 2) == 2
            assert client_sockets(server.port) == 2
        close_ssh_in_scheduler(scheduler)
        assert client_sockets(server.port) == 0
        assert settles(lambda: established_ssh(topology, server), 0) == 0
    for node in made:
        assert node.formatter.stdout(node.label) == "again\n" * 3  # type: ignore[attr-defined]


def test_close_nodes_under_asyncio_run_after_the_run(
    topology: Topology,
    ssh_keypair: KeyPair,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """``asyncio.run(close_nodes(nodes))`` after the run's loop closed closes the gateway too."""
    servers = [topology.bastion, topology.internal[0]]

    def counts() -> list[int]:
        return [established_ssh(topology, endpoint) for endpoint in servers]

    before = counts()
    with no_noise(capfd):
        gateway = node_of(topology.bastion, ssh_keypair, topology.known_hosts)
        node = node_of(topology.internal[0], ssh_keypair, topology.known_hosts, gateway)
        assert asyncio.run(node.run("true")) == 0
        assert settles(counts, [b + 1 for b in before]) == [b + 1 for b in before]
        asyncio.run(close_nodes([node]))
        assert client_sockets(topology.bastion.port) == 0
        assert settles(counts, before) == before
        assert not node.is_connected and not gateway.is_connected


def test_node_close_after_its_loop_closed(
    topology: Topology,
    server: Endpoint,
    ssh_keypair: KeyPair,
    known_hosts_file: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """``node.close()`` under a new loop closes a connection its first loop left open."""
    with no_noise(capfd):
        node = node_of(server, ssh_keypair, known_hosts_file)
        assert asyncio.run(node.run("true")) == 0
        assert settles(lambda: established_ssh(topology, server), 1) == 1
        asyncio.run(node.close())
        assert client_sockets(server.port) == 0
        assert settles(lambda: established_ssh(topology, server), 0) == 0


def test_a_loop_closed_by_hand_still_ends_the_connection_on_close(
    topology: Topology, server: Endpoint, ssh_keypair: KeyPair, known_hosts_file: Path
) -> None:
    """A loop closed without shutdown_asyncgens() (by hand): nothing was parked at its end;
    close() under a new loop still ends the connection for the server. The descriptor goes
    with the connection object, at garbage collection (with asyncio's ResourceWarning)."""
    node = node_of(server, ssh_keypair, known_hosts_file)
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(node.run("true")) == 0
    finally:
        loop.close()
    assert settles(lambda: established_ssh(topology, server), 1) == 1
    asyncio.run(node.close())
    assert settles(lambda: established_ssh(topology, server), 0) == 0
    assert not node.is_connected
    del loop
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # "unclosed transport": documented
        gc.collect()
    assert client_sockets(server.port) == 0
