"""Upstream apssh's API against real OpenSSH servers: node helpers, keys, Service, closing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

import pytest

from apssh_cli import (
    Capture,
    Deferred,
    Run,
    RunScript,
    Service,
    SshJob,
    SshNode,
    Variables,
    co_close_ssh_in_scheduler,
    load_agent_keys,
    load_private_keys,
)
from apssh_cli.engine.job import Scheduler
from apssh_cli.lab import Endpoint, KeyPair, Topology
from apssh_cli.output import CaptureFormatter
from tests.integration.conftest import SshdFactory
from tests.integration.nodes import make_node

pytestmark = pytest.mark.integration

GUARD = 120  # a guard against a hang, not a timing assertion


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, GUARD))


def test_node_helpers_as_upstream_scripts_call_them(
    topology: Topology, ssh_keypair: KeyPair, tmp_path: Path
) -> None:
    endpoint = topology.direct[0]
    capture = CaptureFormatter()
    node = make_node(topology, ssh_keypair, endpoint, capture)
    local = tmp_path / "data.bin"
    local.write_bytes(bytes(range(256)) * 64)

    async def scenario() -> None:
        assert not node.is_connected and node.is_connected() is False
        assert await node.mkdir("apssh-helpers") is True
        assert await node.mkdir("apssh-helpers") is True  # exists already: fine
        assert node.is_connected()
        assert await node.put_string_script("#!/bin/sh\necho script $1\n", "apssh-helpers/s.sh")
        assert await node.run("apssh-helpers/s.sh", x11_forwarding=False) == 0
        assert await node.run("exit 7") == 7
        assert await node.put_file_s(str(local), "apssh-helpers/")
        assert await node.get_file_s("apssh-helpers/data.bin", str(tmp_path / "back.bin"))
        assert await node.run("rm -rf apssh-helpers") == 0
        await node.close()

    run(scenario())
    assert capture.stdout(endpoint.name) == "script\n"
    assert (tmp_path / "back.bin").read_bytes() == local.read_bytes()
    assert node.distance() == 1
    assert SshNode("x", gateway=SshNode("y", gateway=node)).distance() == 3


def test_known_hosts_given_as_a_file_path_is_that_file(
    topology: Topology, ssh_keypair: KeyPair, tmp_path: Path
) -> None:
    endpoint = topology.direct[1]
    known_hosts = tmp_path / "known_hosts"
    node = SshNode(
        endpoint.host,
        port=endpoint.port,
        username="root",
        keys=load_private_keys([ssh_keypair.private_path]),
        known_hosts=str(known_hosts),  # upstream: a file; the policy: accept-new (no config)
        ssh_config=None,
        timeout=30,
        formatter=CaptureFormatter(),
    )
    assert node.known_hosts is None and node.known_hosts_file == known_hosts  # none given
    assert node.resolve().host_key_policy == "accept-new"
    assert node.connect_timeout == 30

    async def scenario() -> int:
        async with node:
            return await node.run("true")

    assert run(scenario()) == 0
    # the key was recorded in the file given, and checked against it the next time
    assert endpoint.host_key.split()[1] in known_hosts.read_text()
    assert run(scenario()) == 0


def test_agent_keys_load_inside_a_running_loop_and_connect(
    topology: Topology, ssh_agent: str
) -> None:
    endpoint = topology.direct[2]

    async def scenario() -> tuple[int, int]:
        keys = load_agent_keys(ssh_agent)  # upstream's would fail here: a loop is running
        node = SshNode(
            endpoint.host,
            port=endpoint.port,
            username="root",
            keys=keys,
            known_hosts="strict",
            known_hosts_file=topology.known_hosts,
            ssh_config=None,
            formatter=CaptureFormatter(),
        )
        async with node:
            return len(keys), await node.run("true")

    assert run(scenario()) == (1, 0)
    assert load_agent_keys(str(Path(ssh_agent).with_name("nothing-here"))) == []


def test_captures_and_deferred_across_nodes_behind_the_bastion(
    topology: Topology, ssh_keypair: KeyPair, tmp_path: Path
) -> None:
    capture = CaptureFormatter()
    bastion = make_node(topology, ssh_keypair, topology.bastion, capture)
    first, second = (
        make_node(topology, ssh_keypair, endpoint, capture, gateway=bastion)
        for endpoint in topology.internal[:2]
    )
    env = Variables()
    script = tmp_path / "write.sh"
    script.write_text("#!/bin/sh\nhostname > rawdata\necho written\n")
    scheduler = Scheduler()
    write = SshJob(
        first,
        [
            RunScript(script),
            Run("cat rawdata", capture=Capture("from_file", env)),
            Run("rm rawdata"),
        ],
        scheduler=scheduler,
    )
    SshJob(
        second,
        # rendered when it runs: after `write`, whose capture it reads
        Run(Deferred("echo {{ from_file }}-seen", env), capture=Capture("seen", env)),
        required=write,
        scheduler=scheduler,
    )

    async def scenario() -> bool:
        try:
            return bool(await scheduler.co_run())
        finally:
            await co_close_ssh_in_scheduler(scheduler)

    assert run(scenario()) is True
    first_name = topology.internal[0].name
    assert env.from_file == first_name
    assert env.seen == f"{first_name}-seen"
    assert capture.lines(first_name) == ["written"]  # the captures were not printed
    assert not bastion.is_connected and not first.is_connected and not second.is_connected


class RecordingNode(SshNode):
    """An SshNode that notes when it is closed."""

    closed: ClassVar[list[str]] = []

    async def close(self) -> None:
        if self.is_connected:
            RecordingNode.closed.append(self.label)
        await super().close()


def test_close_ssh_in_scheduler_closes_nested_and_remotest_first(
    topology: Topology, ssh_keypair: KeyPair
) -> None:
    def node(endpoint: Endpoint, gateway: SshNode | None = None) -> RecordingNode:
        return RecordingNode(
            endpoint.host,
            port=endpoint.port,
            username="root",
            keys=[ssh_keypair.private_path],
            known_hosts="strict",
            known_hosts_file=topology.known_hosts,
            ssh_config=None,
            gateway=gateway,
            label=endpoint.name,
            formatter=CaptureFormatter(),
        )

    bastion = node(topology.bastion)
    first = node(topology.internal[0], bastion)
    chained = node(topology.internal[1], first)  # two hops: bastion, then node1
    inner = Scheduler(SshJob(chained, "true"), SshJob(first, "true"))
    outer = Scheduler(inner, SshJob(bastion, "true"))
    RecordingNode.closed = []

    async def scenario() -> bool:
        ok = bool(await outer.co_run())
        await co_close_ssh_in_scheduler(outer)
        return ok

    assert run(scenario()) is True
    names = [ep.name for ep in (topology.internal[1], topology.internal[0], topology.bastion)]
    assert RecordingNode.closed == names
    assert chained.distance() == 3


# ---------------------------------------------------------------------- Service

# The containers have no systemd. These stand-ins only record how they are called
# and keep an "active" flag per unit: the test checks that the command text a
# Service sends is parsed by a real shell into the arguments systemd would get,
# and that the stop-if-running chain calls what it should. Not tested: systemd
# itself (transient units, --pty, the journal's content).
STAND_INS = {
    "systemctl": """#!/bin/sh
echo "systemctl $*" >> /tmp/service-calls
case "$1" in
    is-active) [ "$2" = --quiet ] && shift; test -e "/tmp/active-$2" ;;
    stop) rm -f "/tmp/active-$2" ;;
    reset-failed) exit 0 ;;
    status) test -e "/tmp/active-$2" && echo "active" || { echo inactive; exit 3; } ;;
esac
""",
    "systemd-run": """#!/bin/sh
for arg in "$@"; do printf '[%s]' "$arg"; done >> /tmp/service-calls
echo >> /tmp/service-calls
for arg in "$@"; do case "$arg" in --unit=*) touch "/tmp/active-${arg#--unit=}" ;; esac; done
""",
    "journalctl": """#!/bin/sh
echo "journalctl $*" >> /tmp/service-calls
""",
}


def test_service_commands_reach_systemd_as_intended(
    sshd_factory: SshdFactory, ssh_keypair: KeyPair, known_hosts_file: Path
) -> None:
    endpoint = sshd_factory(name="svc")
    known_hosts_file.write_text(SshdFactory.known_hosts_line(endpoint))
    capture = CaptureFormatter()
    node = SshNode(
        endpoint.host,
        port=endpoint.port,
        username="root",
        keys=[ssh_keypair.private_path],
        known_hosts="strict",
        known_hosts_file=known_hosts_file,
        ssh_config=None,
        label="svc",
        formatter=capture,
    )
    env = Variables(target="fit 02")
    service = Service(
        Deferred("ping -c 1 {{ target }}", env),
        service_id="pinger",
        environ={"GREETING": "hello 'world'"},
    )

    async def scenario() -> None:
        async with node:
            for name, body in STAND_INS.items():
                await node.put_string_script(body, f"/usr/local/bin/{name}")
            scheduler = Scheduler(
                SshJob(
                    node,
                    [
                        service.start_command(),  # nothing running yet: no stop
                        service.start_command(),  # running: stopped first
                        service.status_command(),
                        service.stop_command(),
                        service.status_command(allowed_exits=[3]),
                        service.journal_command(since="10 seconds ago"),
                    ],
                )
            )
            assert await scheduler.co_run()
            await node.run("cat /tmp/service-calls")

    run(scenario())
    lines = capture.lines("svc")
    start = (
        "[--unit=pinger][--service-type=simple][--setenv=GREETING=hello 'world']"
        "[ping][-c][1][fit][02]"
    )
    assert lines[:2] == ["active", "inactive"], lines
    assert lines[2:] == [
        "systemctl is-active --quiet pinger",
        "systemctl reset-failed pinger",
        start,
        "systemctl is-active --quiet pinger",
        "systemctl stop pinger",
        "systemctl reset-failed pinger",
        start,
        "systemctl status pinger",
        "systemctl stop pinger",
        "systemctl status pinger",
        "journalctl --unit pinger --since 10 seconds ago",
    ]
