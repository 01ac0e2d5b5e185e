"""Scripts, transfers and timeouts on real OpenSSH servers: nothing is left behind."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from apssh_cli.commands import Pull, Push, Run, RunScript, RunString
from apssh_cli.engine.job import Scheduler, SshJob
from apssh_cli.errors import CommandFailedError, CommandTimeoutError
from apssh_cli.lab import Endpoint, KeyPair, Topology
from apssh_cli.output import CaptureFormatter
from apssh_cli.results import Status
from apssh_cli.ssh.node import close_nodes
from tests.integration.nodes import make_node

pytestmark = pytest.mark.integration

GUARD = 120  # a guard against a hang, not a timing assertion


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, GUARD))


async def run_job(job: SshJob) -> Any:
    try:
        return await job.co_run()
    finally:
        await close_nodes([job.node])


def private_dirs(topology: Topology, endpoint: Endpoint) -> list[str]:
    rc, output = topology.exec(endpoint, "ls -d /tmp/apssh-* 2>/dev/null; true")
    assert rc == 0
    return output.split()


def processes(topology: Topology, endpoint: Endpoint, marker: str) -> list[str]:
    # the [x] trick keeps grep itself out of the list
    pattern = f"[{marker[0]}]{marker[1:]}"
    rc, output = topology.exec(endpoint, f"ps -eo pid,args | grep '{pattern}'; true")
    assert rc == 0
    return output.splitlines()


def test_run_script_and_string_leave_nothing(
    topology: Topology, ssh_keypair: KeyPair, tmp_path: Path
) -> None:
    endpoint = topology.direct[0]
    assert private_dirs(topology, endpoint) == []
    script = tmp_path / "measure.sh"
    script.write_text(
        '#!/bin/sh\nhere=$(dirname "$0")\n. "$here/lib.sh"\n'
        'echo "$PREFIX $1 $2"\nstat -c %a "$here"\n'
    )
    (tmp_path / "lib.sh").write_text("PREFIX=measured\n")
    node = make_node(topology, ssh_keypair, endpoint)
    job = SshJob(
        node,
        commands=[
            RunScript.quoted(script, "a b", "c", includes=[tmp_path / "lib.sh"]),
            RunString("#!/bin/sh\necho from string; exit 3", allowed_exits=[3]),
            RunString("echo failing; exit 9"),
        ],
        critical=False,
    )
    assert run(run_job(job)) == 9
    capture = node.formatter
    assert isinstance(capture, CaptureFormatter)
    assert capture.lines(endpoint.name) == ["measured a b c", "700", "from string", "failing"]
    assert private_dirs(topology, endpoint) == []


def test_timeout_terminates_the_remote_process_and_cleans(
    topology: Topology, ssh_keypair: KeyPair
) -> None:
    endpoint = topology.direct[1]
    node = make_node(topology, ssh_keypair, endpoint)
    # a grandchild in the background, a shell waiting for it: the whole group must go
    job = SshJob(
        node,
        commands=[
            Run("sleep 4242 & sleep 4243; wait", timeout=1),
            RunString("#!/bin/sh\nsleep 4244 &\nwait\n", timeout=1),
        ],
        critical=False,
    )
    run(run_job(job))
    assert job.outcome.status is Status.TIMEOUT
    assert job.outcome.rc is None
    for marker in ("sleep 4242", "sleep 4243", "sleep 4244"):
        assert processes(topology, endpoint, marker) == []
    assert private_dirs(topology, endpoint) == []


def test_critical_timeout_raises(topology: Topology, ssh_keypair: KeyPair) -> None:
    endpoint = topology.direct[2]
    job = SshJob(make_node(topology, ssh_keypair, endpoint), Run("sleep 4245"), timeout=1)
    with pytest.raises(CommandTimeoutError):
        run(run_job(job))
    assert processes(topology, endpoint, "sleep 4245") == []


def test_cancellation_terminates_the_remote_process(
    topology: Topology, ssh_keypair: KeyPair
) -> None:
    endpoint = topology.direct[2]
    node = make_node(topology, ssh_keypair, endpoint)
    job = SshJob(node, RunString("#!/bin/sh\necho started\nsleep 4246\n"))
    capture = node.formatter
    assert isinstance(capture, CaptureFormatter)

    async def scenario() -> None:
        task = asyncio.ensure_future(job.co_run())
        while capture.stdout(endpoint.name) != "started\n":
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await close_nodes([node])

    run(scenario())
    assert job.outcome.status is Status.INTERRUPTED
    assert processes(topology, endpoint, "sleep 4246") == []
    assert private_dirs(topology, endpoint) == []


@pytest.mark.parametrize(("when", "yields"), [("start", 0), *(("started", n) for n in range(4))])
def test_cancellation_right_after_start_leaves_nothing(
    topology: Topology,
    ssh_keypair: KeyPair,
    monkeypatch: pytest.MonkeyPatch,
    when: str,
    yields: int,
) -> None:
    # cancelled while the session opens, or once it is open but before its pid
    # line came back (the command already runs): it must not be left running
    endpoint = topology.direct[0]
    node = make_node(topology, ssh_keypair, endpoint)
    sleeper = f"sleep 4{yields}{len(when)}47"
    started = asyncio.Event()
    original = asyncssh.SSHClientConnection.create_process
    tasks: list[asyncio.Future[Any]] = []

    async def create_process(self: Any, *args: Any, **kwargs: Any) -> Any:
        process = await original(self, *args, **kwargs)
        if when == "start":
            tasks[0].cancel()  # lands while the start is still being awaited
        started.set()
        return process

    monkeypatch.setattr(asyncssh.SSHClientConnection, "create_process", create_process)

    async def scenario() -> None:
        await node.connect()
        # a background grandchild: a signal to the shell alone would not end it
        tasks.append(asyncio.ensure_future(Run(f"{sleeper} & wait").co_run(node)))
        await started.wait()
        for _ in range(yields):
            await asyncio.sleep(0)
        tasks[0].cancel()
        with pytest.raises(asyncio.CancelledError):
            await tasks[0]
        # the connection is still open: a command left running would show here
        assert processes(topology, endpoint, sleeper) == []
        await close_nodes([node])

    run(scenario())
    assert processes(topology, endpoint, sleeper) == []


def _tree(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_push_and_pull_recursive_binary(
    topology: Topology, ssh_keypair: KeyPair, tmp_path: Path
) -> None:
    endpoint = topology.direct[0]
    source = tmp_path / "data"
    (source / "sub" / "deeper").mkdir(parents=True)
    (source / "blob.bin").write_bytes(os.urandom(300_000) + b"\x00\r\n\xff")
    (source / "sub" / "text.txt").write_bytes(b"line\r\nno newline")
    (source / "sub" / "deeper" / "empty").write_bytes(b"")
    (source / "sub" / "tool.sh").write_bytes(b"#!/bin/sh\necho tool\n")
    (source / "sub" / "tool.sh").chmod(0o751)
    single = tmp_path / "single.bin"
    single.write_bytes(os.urandom(70_000))
    back = tmp_path / "back"
    back.mkdir()
    node = make_node(topology, ssh_keypair, endpoint)
    job = SshJob(
        node,
        commands=[
            Run("rm -rf /tmp/xfer && mkdir /tmp/xfer"),
            Push(source, "/tmp/xfer/", recurse=True, preserve=True),
            Push(single, "/tmp/xfer/renamed.bin"),
            Run("cd /tmp/xfer && find . -type f | sort | xargs sha256sum"),
            Run("stat -c %a /tmp/xfer/data/sub/tool.sh"),
            Pull("/tmp/xfer/data", back, recurse=True, preserve=True),
            Pull(["/tmp/xfer/renamed.bin"], back),
            Run("ls -a /tmp/xfer /tmp/xfer/data | grep -c apssh; true"),
        ],
    )
    assert run(run_job(job)) == 0
    capture = node.formatter
    assert isinstance(capture, CaptureFormatter)
    *sums, mode, leftovers = capture.lines(endpoint.name)
    remote = {line.split()[1].removeprefix("./data/"): line.split()[0] for line in sums}
    local = _tree(source)
    assert remote == {**local, "./renamed.bin": hashlib.sha256(single.read_bytes()).hexdigest()}
    assert mode == "751"
    assert leftovers == "0"
    assert _tree(back / "data") == local
    assert (back / "renamed.bin").read_bytes() == single.read_bytes()
    assert (back / "data" / "sub" / "tool.sh").stat().st_mode & 0o777 == 0o751
    assert not [p for p in back.rglob("*") if ".apssh-" in p.name]


def test_transfer_errors_are_failed_commands(
    topology: Topology, ssh_keypair: KeyPair, tmp_path: Path
) -> None:
    endpoint = topology.direct[1]
    node = make_node(topology, ssh_keypair, endpoint)
    (tmp_path / "dir").mkdir()
    job = SshJob(
        node,
        commands=[
            Pull("/nonexistent/file", tmp_path / "x"),
            Push(tmp_path / "dir", "/tmp/"),  # a directory without recurse
        ],
        critical=False,
    )
    assert run(run_job(job)) == 1
    assert job.outcome.status is Status.FAILED
    capture = node.formatter
    assert isinstance(capture, CaptureFormatter)
    first, second = capture.lines(endpoint.name, "stderr")
    assert first.startswith("pull /nonexistent/file")
    assert second.endswith("is a directory (use recurse)")
    assert not (tmp_path / "x").exists()
    critical = SshJob(make_node(topology, ssh_keypair, endpoint), Pull("/nope", tmp_path / "y"))
    with pytest.raises(CommandFailedError):
        run(run_job(critical))


def test_scheduler_steps_with_required(topology: Topology, ssh_keypair: KeyPair) -> None:
    nodes = [make_node(topology, ssh_keypair, ep) for ep in topology.direct]
    scheduler = Scheduler()
    prepare = [SshJob(n, Run("echo prepared > /tmp/step"), scheduler=scheduler) for n in nodes]
    measure = [
        SshJob(n, Run("cat /tmp/step"), scheduler=scheduler, required=prepare) for n in nodes
    ]

    async def scenario() -> bool:
        try:
            return bool(await scheduler.co_run())
        finally:
            await close_nodes(nodes)

    assert run(scenario()) is True
    for node, job in zip(nodes, measure, strict=True):
        assert job.outcome.status is Status.OK
        capture = node.formatter
        assert isinstance(capture, CaptureFormatter)
        assert capture.stdout(node.label) == "prepared\n"
