"""The local stdin goes to every host's command, as with clush: a differential test.

The same input through clush (ClusterShell, with OpenSSH's ssh) and through apssh
must give the same remote result; ``--no-stdin``, a terminal and ``-s`` keep the
command's stdin at /dev/null; the private directory the input goes through is
removed whatever happens, and the local temporary file of a large input too.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from apssh_cli.commands import Run, RunScript
from apssh_cli.engine.job import SshJob
from apssh_cli.lab import Endpoint, KeyPair, Topology
from apssh_cli.output import CaptureFormatter
from apssh_cli.results import Status
from apssh_cli.ssh.node import close_nodes
from tests.integration.nodes import make_node

pytestmark = pytest.mark.integration

GUARD = 300  # a guard against a hang, not a timing assertion
BIG = 20 * 1024 * 1024  # more than what apssh keeps in memory (16 MiB): a spilled input


def apssh(
    *args: str,
    stdin: bytes | int | None = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    kwargs: dict[str, Any] = {"input": stdin} if isinstance(stdin, bytes) else {"stdin": stdin}
    return subprocess.run(
        [sys.executable, "-m", "apssh_cli.cli.main", *args],
        capture_output=True,
        timeout=GUARD,
        env={**os.environ, **(env or {})},
        **kwargs,
    )


def clush(
    topology: Topology, keypair: KeyPair, endpoint: Endpoint, command: str, data: bytes
) -> subprocess.CompletedProcess[bytes]:
    """clush on one published node, with OpenSSH's ssh, its key and known_hosts."""
    program = shutil.which("clush") or str(Path(sys.executable).with_name("clush"))
    ssh_options = (
        f"-p {endpoint.port} -i {keypair.private_path} -o IdentitiesOnly=yes "
        f"-o UserKnownHostsFile={topology.known_hosts} -o StrictHostKeyChecking=yes "
        f"-o BatchMode=yes -F /dev/null"
    )
    return subprocess.run(
        [program, "-N", "-l", "root", "-w", endpoint.host, "-o", ssh_options, command],
        input=data,
        capture_output=True,
        timeout=GUARD,
    )


def stdout_by_host(done: subprocess.CompletedProcess[bytes]) -> dict[str, str]:
    *hosts, _summary = [json.loads(line) for line in done.stdout.splitlines()]
    return {record["host"]: record["stdout"] for record in hosts}


def private_dirs(topology: Topology, endpoint: Endpoint) -> list[str]:
    rc, output = topology.exec(endpoint, "ls -d /tmp/apssh-* 2>/dev/null; true")
    assert rc == 0
    return output.split()


def direct(topology: Topology) -> list[str]:
    return ["-i", str(topology.inventory), "-g", "direct"]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"hello\nworld, with a last line but no newline", id="text"),
        pytest.param(os.urandom(8 * 1024 * 1024), id="8MiB-random-in-memory"),
        pytest.param(os.urandom(BIG), id="20MiB-random-spilled"),
    ],
)
def test_the_same_input_through_clush_and_apssh_gives_the_same_remote_result(
    topology: Topology, ssh_keypair: KeyPair, data: bytes, tmp_path: Path
) -> None:
    expected = f"{hashlib.sha256(data).hexdigest()}  -\n"
    command = "sha256sum; wc -c"
    reference = clush(topology, ssh_keypair, topology.direct[0], command, data)
    assert reference.returncode == 0, reference.stderr
    assert reference.stdout.decode().startswith(expected)  # clush itself sends it all
    spill = tmp_path / "tmp"
    spill.mkdir()
    done = apssh(*direct(topology), "--json", command, stdin=data, env={"TMPDIR": str(spill)})
    assert done.returncode == 0, done.stderr
    outputs = stdout_by_host(done)
    assert sorted(outputs) == sorted(endpoint.name for endpoint in topology.direct)
    for output in outputs.values():  # every host read the whole input, as clush's did
        assert output == reference.stdout.decode()
    assert list(spill.iterdir()) == []  # the local temporary file of a large input is gone
    for endpoint in topology.direct:
        assert private_dirs(topology, endpoint) == []


def test_a_plain_text_reaches_every_host_as_clush_sends_it(
    topology: Topology, ssh_keypair: KeyPair
) -> None:
    data = b"one\ntwo\n"
    reference = clush(topology, ssh_keypair, topology.direct[1], "cat", data)
    assert reference.returncode == 0, reference.stderr
    assert reference.stdout == data
    done = apssh(*direct(topology), "--raw", "cat", stdin=data)
    assert done.returncode == 0, done.stderr
    assert done.stdout == data * len(topology.direct)


def test_no_stdin_and_a_terminal_leave_the_command_on_dev_null(topology: Topology) -> None:
    probe = "readlink /proc/self/fd/0; cat"
    done = apssh(*direct(topology), "--json", "--no-stdin", probe, stdin=b"not sent\n")
    assert done.returncode == 0, done.stderr
    assert set(stdout_by_host(done).values()) == {"/dev/null\n"}
    # a terminal is never read (apssh would wait for the user's end of file)
    main, secondary = os.openpty()
    try:
        done = apssh(*direct(topology), "--json", probe, stdin=secondary)
    finally:
        os.close(main)
        os.close(secondary)
    assert done.returncode == 0, done.stderr
    assert set(stdout_by_host(done).values()) == {"/dev/null\n"}


def test_a_script_keeps_stdin_closed_unless_asked(topology: Topology, tmp_path: Path) -> None:
    script = tmp_path / "reader.sh"
    script.write_text("#!/bin/sh\necho start\ncat\n")
    done = apssh(*direct(topology), "--json", "-s", str(script), stdin=b"for the script\n")
    assert done.returncode == 0, done.stderr
    assert set(stdout_by_host(done).values()) == {"start\n"}
    done = apssh(
        *direct(topology), "--json", "--stdin", "-s", str(script), stdin=b"for the script\n"
    )
    assert done.returncode == 0, done.stderr
    assert set(stdout_by_host(done).values()) == {"start\nfor the script\n"}


def test_the_private_directory_goes_after_a_failure_and_a_timeout(topology: Topology) -> None:
    failed = apssh(*direct(topology), "cat >/dev/null; exit 3", stdin=b"data\n")
    assert failed.returncode == 2, failed.stderr  # remote failure
    timed_out = apssh(
        *direct(topology), "--timeout", "1", "cat >/dev/null; sleep 4271", stdin=b"data\n"
    )
    assert timed_out.returncode == 3, timed_out.stderr  # timeout
    for endpoint in topology.direct:
        assert private_dirs(topology, endpoint) == []
        _, output = topology.exec(endpoint, "ps -eo args | grep '[s]leep 4271'; true")
        assert output.strip() == ""


def test_the_library_takes_bytes_text_or_a_file(
    topology: Topology, ssh_keypair: KeyPair, tmp_path: Path
) -> None:
    endpoint = topology.direct[2]
    node = make_node(topology, ssh_keypair, endpoint)
    data = os.urandom(3 * 1024 * 1024)
    source = tmp_path / "input.bin"
    source.write_bytes(data)
    script = tmp_path / "count.sh"
    script.write_text("#!/bin/sh\nwc -l\n")
    job = SshJob(
        node,
        commands=[
            Run("cat", stdin=b"bytes\n"),
            Run("cat", stdin="text, \u00e9\n"),
            Run("sha256sum", stdin=source),
            RunScript(script, stdin=b"a\nb\nc\n"),
        ],
    )

    async def scenario() -> None:
        try:
            await job.co_run()
        finally:
            await close_nodes([node])

    asyncio.run(asyncio.wait_for(scenario(), GUARD))
    assert job.outcome.status is Status.OK
    capture = node.formatter
    assert isinstance(capture, CaptureFormatter)
    assert capture.lines(endpoint.name) == [
        "bytes",
        "text, \u00e9",
        f"{hashlib.sha256(data).hexdigest()}  -",
        "3",
    ]
    assert private_dirs(topology, endpoint) == []


def test_ctrl_c_removes_the_private_directory(topology: Topology) -> None:
    endpoint = topology.direct[0]
    inventory = ["-i", str(topology.inventory), "-g", endpoint.name]
    process = subprocess.Popen(
        [sys.executable, "-m", "apssh_cli.cli.main", *inventory, "cat >/dev/null; sleep 4272"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stdin is not None
    process.stdin.write(b"data\n")
    process.stdin.close()
    deadline = time.monotonic() + GUARD
    assert process.stderr is not None
    while "sleep 4272" not in topology.exec(endpoint, "ps -eo args")[1]:
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert private_dirs(topology, endpoint) != []  # the input is there while it runs
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=GUARD) == 130, process.stderr.read()
    process.stderr.close()
    assert private_dirs(topology, endpoint) == []
    assert "sleep 4272" not in topology.exec(endpoint, "ps -eo args")[1]
