"""SshJob outcomes and the Scheduler's window (which must always give its slot back)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from apssh_cli.commands import Run, RunString
from apssh_cli.engine.job import Scheduler, SshJob
from apssh_cli.errors import CommandFailedError, UnreachableError
from apssh_cli.output import CaptureFormatter
from apssh_cli.results import Status
from apssh_cli.ssh.node import LocalNode, SshNode

from .processes import dies

# a guard against a hang, not a timing assertion: these runs take well under a second
GUARD = 60


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, GUARD))


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port that refuses connections for the whole test: bound, so that nothing else
    can take it meanwhile (a released port could be), and never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def unreachable_node(name: str, tmp_path: Path, port: int) -> SshNode:
    return SshNode(
        "127.0.0.1",
        port=port,
        label=name,
        known_hosts_file=tmp_path / "known_hosts",
        ssh_config=None,
        formatter=CaptureFormatter(),
    )


def local() -> LocalNode:
    return LocalNode(formatter=CaptureFormatter())


def test_window_gives_slots_back_when_jobs_raise(tmp_path: Path, refused_port: int) -> None:
    scheduler = Scheduler(jobs_window=2, critical=False)
    failing = [
        SshJob(
            unreachable_node(f"n{i}", tmp_path, refused_port),
            "true",
            critical=False,
            scheduler=scheduler,
        )
        for i in range(5)
    ]
    after = SshJob(local(), "echo after", critical=False, scheduler=scheduler, required=failing)
    assert run(scheduler.co_run()) is True
    assert [job.outcome.status for job in failing] == [Status.UNREACHABLE] * 5
    assert all("cannot connect" in (job.outcome.error or "") for job in failing)
    assert after.outcome.status is Status.OK


def test_window_limits_concurrency() -> None:
    running = 0
    peak = 0

    class Probe(SshJob):  # type: ignore[misc]
        async def co_run(self) -> int | None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            try:
                await asyncio.sleep(0.01)
                raise RuntimeError("boom")
            finally:
                running -= 1

    scheduler = Scheduler(jobs_window=3, critical=False)
    for _ in range(10):
        Probe(local(), "true", critical=False, scheduler=scheduler)
    assert run(scheduler.co_run()) is True
    assert peak == 3


def test_non_critical_runs_everything_and_returns_last_failing_rc() -> None:
    capture = CaptureFormatter()
    job = SshJob(
        LocalNode(formatter=capture),
        commands=[
            Run("exit 3"),
            Run("echo still"),
            Run("exit 5"),
            Run("exit 1", allowed_exits=[1]),
        ],
        critical=False,
    )
    assert run(job.co_run()) == 5
    assert job.outcome.status is Status.FAILED
    assert job.outcome.rc == 5
    assert job.outcome.stdout == "still\n"
    assert job.outcome.error == "command 'exit 5' exited with status 5"


def test_critical_stops_at_first_failure() -> None:
    capture = CaptureFormatter()
    job = SshJob(
        LocalNode(formatter=capture),
        commands=[Run("echo oops >&2; exit 2"), Run("echo never")],
    )
    with pytest.raises(CommandFailedError) as info:
        run(job.co_run())
    assert info.value.exit_status == 2
    assert info.value.stderr_tail == "oops"
    assert job.outcome.status is Status.FAILED
    assert job.outcome.rc == 2
    assert capture.stdout("localhost") == ""


def test_critical_failure_aborts_the_scheduler() -> None:
    scheduler = Scheduler(critical=False)
    first = SshJob(local(), "exit 1", scheduler=scheduler)
    second = SshJob(local(), "echo no", scheduler=scheduler, required=first)
    assert run(scheduler.co_run()) is False
    assert first.outcome.status is Status.FAILED
    assert second.outcome.status is Status.SKIPPED


def test_allowed_signal_counts_as_success() -> None:
    job = SshJob(local(), Run("kill -TERM $$", allowed_exits=["TERM"]))
    assert run(job.co_run()) == 0
    assert job.outcome.status is Status.OK


def test_timeout_outcome_then_next_command_for_non_critical() -> None:
    job = SshJob(local(), commands=[Run("sleep 30"), Run("echo next")], critical=False, timeout=0.3)
    assert run(job.co_run()) == 0
    assert job.outcome.status is Status.TIMEOUT
    assert job.outcome.rc is None
    assert "timed out after 0.3s" in (job.outcome.error or "")
    assert job.outcome.stdout == "next\n"


def test_cancelled_job_is_interrupted() -> None:
    job = SshJob(local(), RunString("sleep 30"))

    async def scenario() -> None:
        task = asyncio.ensure_future(job.co_run())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario())
    assert job.outcome.status is Status.INTERRUPTED


def test_unreachable_critical_job_raises(tmp_path: Path, refused_port: int) -> None:
    job = SshJob(unreachable_node("n1", tmp_path, refused_port), "true")
    with pytest.raises(UnreachableError):
        run(job.co_run())
    assert job.outcome.status is Status.UNREACHABLE
    assert job.outcome.duration >= 0


def test_required_orders_jobs() -> None:
    capture = CaptureFormatter()
    node = LocalNode(formatter=capture)
    scheduler = Scheduler()
    first = SshJob(node, "sleep 0.1; echo first", scheduler=scheduler)
    SshJob(node, "echo second", scheduler=scheduler, required=first)
    assert run(scheduler.co_run()) is True
    assert capture.lines("localhost") == ["first", "second"]


def test_command_forms_and_labels() -> None:
    node = local()
    job = SshJob(node, ["uptime", Run("ls", "-l")])
    assert [cmd.describe() for cmd in job.commands] == ["uptime", "ls -l"]
    assert job.text_label() == "localhost: uptime; ls -l"
    assert SshJob(node, "x", label="prepare").text_label() == "prepare"
    assert job.outcome.status is Status.SKIPPED
    with pytest.raises(ValueError):
        SshJob(node)
    with pytest.raises(ValueError):
        SshJob(node, "a", commands=["b"])
    with pytest.raises(TypeError):
        SshJob(node, [object()])


def test_cancelled_scheduler_cancels_running_and_waiting_jobs(tmp_path: Path) -> None:
    capture = CaptureFormatter()
    node = LocalNode(formatter=capture)
    scheduler = Scheduler(jobs_window=1, critical=False)
    # the pid file appears complete (renamed), once the job has said it started
    jobs = [
        SshJob(node, Run(f"echo started {i}; sleep 300 & echo $! > {tmp_path}/.{i} "
                         f"&& mv {tmp_path}/.{i} {tmp_path}/{i}; wait"),
               scheduler=scheduler, critical=False)
        for i in range(3)
    ]  # fmt: skip

    def pid_files() -> list[Path]:
        return [p for p in tmp_path.iterdir() if not p.name.startswith(".")]

    async def scenario() -> None:
        task = asyncio.ensure_future(scheduler.co_run())
        while not pid_files() or not capture.lines("localhost"):
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario())
    statuses = sorted(job.outcome.status.value for job in jobs)
    # the running job was interrupted; the waiting ones never started
    assert statuses == ["interrupted", "skipped", "skipped"]
    assert len(capture.lines("localhost")) == 1
    (pidfile,) = pid_files()
    # the background sleep dies (KILLed with its group: it may take a moment to go)
    assert dies(int(pidfile.read_text()))


class EventFormatter(CaptureFormatter):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, ...]] = []

    def command_started(self, host: str, command: str) -> None:
        self.events.append(("start", host, command))

    def command_done(self, host: str, command: str, rc: int | None) -> None:
        self.events.append(("done", host, command, str(rc)))

    def connect_failed(self, host: str, error: Exception) -> None:
        self.events.append(("failed", host, type(error).__name__))


def test_verbose_jobs_report_command_events() -> None:
    events = EventFormatter()
    node = LocalNode(formatter=events, label="me")
    run(SshJob(node, [Run("true"), Run("exit 2", allowed_exits=[2])], verbose=True).co_run())
    run(SshJob(node, Run("echo quiet")).co_run())  # the node is not verbose
    assert events.events == [
        ("start", "me", "true"),
        ("done", "me", "true", "0"),
        ("start", "me", "exit 2"),
        ("done", "me", "exit 2", "2"),
    ]


def test_connect_retries_then_reports_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, refused_port: int
) -> None:
    events = EventFormatter()
    node = unreachable_node("n1", tmp_path, refused_port)
    node.formatter = events
    node.connect_retries = 1
    caplog.set_level("INFO", logger="apssh_cli")
    with pytest.raises(UnreachableError):
        run(node.connect())
    (retry,) = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert retry.startswith(f"host=n1 unreachable (cannot connect to 127.0.0.1:{node.port}: ")
    assert retry.endswith("retry 1 in 0.5s")
    assert events.events == [("failed", "n1", "UnreachableError")]


def test_upstream_scheduler_window_finishes_with_unreachable_and_failing_jobs(
    tmp_path: Path, refused_port: int
) -> None:
    # scripts import Scheduler from asynciojobs itself: its window keeps the slot of a
    # job that raises, so non-critical SshJobs must not raise
    import asynciojobs

    scheduler = asynciojobs.Scheduler(jobs_window=2, critical=False)
    unreachable = [
        SshJob(
            unreachable_node(f"n{i}", tmp_path, refused_port),
            "true",
            critical=False,
            scheduler=scheduler,
        )
        for i in range(3)
    ]
    failing = [SshJob(local(), "exit 3", critical=False, scheduler=scheduler) for _ in range(3)]
    after = SshJob(local(), "echo after", critical=False, scheduler=scheduler, required=failing)
    assert run(scheduler.co_run()) is True
    assert [job.outcome.status for job in unreachable] == [Status.UNREACHABLE] * 3
    assert [job.result() for job in failing] == [3, 3, 3]
    assert after.outcome.status is Status.OK


def test_upstream_scheduler_critical_failure_aborts() -> None:
    import asynciojobs

    scheduler = asynciojobs.Scheduler(jobs_window=1, critical=False)
    first = SshJob(local(), "exit 1", scheduler=scheduler)
    second = SshJob(local(), "echo no", scheduler=scheduler, required=first)
    assert run(scheduler.co_run()) is False
    assert first.outcome.status is Status.FAILED
    assert second.outcome.status is Status.SKIPPED


def test_scheduler_restores_jobs_and_window_after_a_run() -> None:
    scheduler = Scheduler(jobs_window=2)
    job = SshJob(local(), "true", scheduler=scheduler)
    assert run(scheduler.co_run()) is True
    assert scheduler.jobs_window == 2
    assert "co_run" not in vars(job)
    # a second run of the same scheduler works (a new window per run)
    assert run(scheduler.co_run()) is True


def test_nested_scheduler_and_dot_export() -> None:
    capture = CaptureFormatter()
    node = LocalNode(formatter=capture)
    inner = Scheduler(jobs_window=1)
    SshJob(node, "echo inner1", scheduler=inner)
    SshJob(node, "echo inner2", scheduler=inner)
    outer = Scheduler(jobs_window=1)
    outer.add(inner)
    SshJob(node, "echo last", scheduler=outer, required=inner)
    assert run(outer.co_run()) is True
    assert capture.lines("localhost")[-1] == "last"
    assert sorted(capture.lines("localhost")[:2]) == ["inner1", "inner2"]
    assert "digraph" in outer.dot_format()


def test_scheduler_timeout_and_forever_jobs_keep_asynciojobs_behaviour() -> None:
    scheduler = Scheduler(jobs_window=2, timeout=0.5, critical=False)
    slow = SshJob(local(), "sleep 30", scheduler=scheduler, critical=False)
    assert run(scheduler.co_run()) is False  # asynciojobs' answer to a global timeout
    assert slow.outcome.status is Status.INTERRUPTED
    scheduler = Scheduler(jobs_window=2)  # a forever job holds its slot: leave room
    forever = SshJob(local(), "sleep 30", scheduler=scheduler, forever=True)
    done = SshJob(local(), "echo done", scheduler=scheduler)
    # a forever job is not waited for: the run ends with the others (and it is stopped)
    assert run(scheduler.co_run()) is True
    assert done.outcome.status is Status.OK
    assert forever.outcome.status in (Status.INTERRUPTED, Status.SKIPPED)


# ---------------------------------------------------------------- the hooks runners use


def test_prepare_supplies_the_commands_at_start_or_declines() -> None:
    capture = CaptureFormatter()
    node = LocalNode(formatter=capture)
    told: list[str] = []
    wanted = ["first"]

    async def prepare(job: SshJob) -> list[str] | None:
        return [f"echo {wanted[0]}"] if wanted[0] else None

    job = SshJob(node, prepare=prepare, critical=False, finished=lambda j: told.append("done"))
    wanted[0] = "late"  # the commands are known when the job starts, not when it is made
    run(job.co_run())
    assert capture.stdout("localhost") == "late\n" and job.outcome.status is Status.OK
    wanted[0] = ""
    run(job.co_run())  # declined: nothing runs, the outcome says skipped
    assert job.outcome.status is Status.SKIPPED and told == ["done", "done"]


def test_stop_at_failure_without_raising_and_a_time_limit_for_the_whole_job() -> None:
    capture = CaptureFormatter()
    commands = [Run("exit 3"), Run("echo never")]
    job = SshJob(LocalNode(formatter=capture), commands=commands, critical=False,
                 stop_at_failure=True)  # fmt: skip
    assert run(job.co_run()) == 3 and job.outcome.status is Status.FAILED
    assert capture.stdout("localhost") == ""
    slow = SshJob(LocalNode(), commands=[Run("sleep 0.2"), Run("sleep 30")], critical=False,
                  time_limit=1)  # fmt: skip
    run(slow.co_run())
    assert slow.outcome.status is Status.TIMEOUT and slow.outcome.error == "timeout (1s)"
    assert slow.outcome.extra == {"time_limit": 1}


def test_retries_a_whole_job_on_an_unreachable_host(tmp_path: Path, refused_port: int) -> None:
    attempts: list[int] = []
    node = unreachable_node("n1", tmp_path, refused_port)
    job = SshJob(node, commands=["true"], critical=False, retries=2,
                 on_connected=lambda: attempts.append(1))  # fmt: skip
    original = node.connect

    async def counted() -> None:
        attempts.append(0)
        await original()

    node.connect = counted  # type: ignore[method-assign]
    run(job.co_run())
    assert job.outcome.status is Status.UNREACHABLE and attempts == [0, 0, 0]


def test_stop_ends_a_running_job_without_raising_cancel_still_raises() -> None:
    async def scenario() -> tuple[int | None, Status, str]:
        job = SshJob(LocalNode(), commands=["sleep 30 # job-stop"], critical=False)
        task = asyncio.ensure_future(job.co_run())
        await asyncio.sleep(0.5)
        job.stop()
        returned = await task  # no CancelledError: a stopped job is an outcome
        other = SshJob(LocalNode(), commands=["sleep 30"], critical=False)
        cancelled = asyncio.ensure_future(other.co_run())
        await asyncio.sleep(0.5)
        cancelled.cancel()
        try:
            await cancelled
        except asyncio.CancelledError:
            how = "raised"
        else:
            how = "returned"
        return returned, job.outcome.status, how

    returned, status, how = run(scenario())
    assert returned is None and status is Status.INTERRUPTED and how == "raised"


def test_a_detached_job_returns_once_running_and_stop_ends_it() -> None:
    ended: list[Status] = []

    async def scenario() -> tuple[float, bool]:
        def finished(job: SshJob) -> None:
            ended.append(job.outcome.status)

        job = SshJob(LocalNode(), commands=["sleep 30 # job-detached"], critical=False,
                     detach_after=0.3, finished=finished)  # fmt: skip
        loop = asyncio.get_running_loop()
        started = loop.time()
        await job.co_run()  # returns while the command runs on
        took = loop.time() - started
        assert job.detached is not None and not ended
        running = job.detached
        job.stop()
        await asyncio.wait([running], timeout=GUARD)
        return took, job.detached is None

    took, forgotten = run(scenario())
    assert took < 10 and forgotten and ended == [Status.INTERRUPTED]
