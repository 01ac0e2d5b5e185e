"""Running a command's jobs: one non-critical SshJob per host, under a window, with Ctrl-C.

The CLI builds the targets and the commands of each host; this module makes the
nodes (sharing gateways), runs one job per host in a Scheduler, starting at most
``window`` hosts at a time in the targets' order, reports every host's start, output and end to the
Renderer, and turns the first Ctrl-C into a clean stop: no new host starts, the
running commands are cancelled (their remote processes are terminated), the
summary so far is printed, every connection is closed, and the exit status is 130.

asyncssh and asynciojobs are imported only when a run starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from apssh_cli.cli.exitcodes import ExitCode
from apssh_cli.cli.render import Renderer
from apssh_cli.inventory.targets import NodeSettings, Target, build_nodes
from apssh_cli.results import HostResult, Status

# hosts at once by default, if the open-files limit allows (each host may hold a
# socket, a gateway channel and two --out-dir files)
DEFAULT_WINDOW_CAP = 50
FILES_PER_HOST = 4
# closing connections after a run (or a Ctrl-C) must not hang the command
CLOSE_TIMEOUT = 10.0
PROGRESS_PERIOD = 1.0

CommandFactory = Callable[[Target], Sequence[Any]]


def default_window(nofile: int | None = None) -> int:
    """``min(50, soft RLIMIT_NOFILE // 4)``, at least 1.

    Args:
        nofile: the soft open-files limit; read from the process when None.
    """
    if nofile is None:
        nofile, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if nofile == resource.RLIM_INFINITY:
            nofile = DEFAULT_WINDOW_CAP * FILES_PER_HOST
    return max(1, min(DEFAULT_WINDOW_CAP, nofile // FILES_PER_HOST))


@dataclass(frozen=True)
class ExecutionOptions:
    """How to run: parallelism and connection settings common to every host.

    Args:
        window: at most this many hosts at once.
        connect_retries: ``--retries``: extra connection attempts (with backoff),
            for connection failures only.
        job_timeout: a limit on each host's whole job (transfers), seconds.
        verbose: nodes report connection and command events.
    """

    window: int
    connect_retries: int = 0
    job_timeout: float | None = None
    verbose: bool = False
    keepalive: float | None = None


def execute(
    targets: Sequence[Target],
    commands_for: CommandFactory,
    renderer: Renderer,
    options: ExecutionOptions,
) -> ExitCode:
    """Run every host's commands and render the run; return the exit status."""
    return asyncio.run(run_targets(targets, commands_for, renderer, options))


async def run_targets(
    targets: Sequence[Target],
    commands_for: CommandFactory,
    renderer: Renderer,
    options: ExecutionOptions,
) -> ExitCode:
    """The coroutine behind `execute` (tests await it directly)."""
    from apssh_cli.engine.job import Scheduler, SshJob
    from apssh_cli.output import Formatter, Stream
    from apssh_cli.ssh.node import LocalNode, SshNode, close_nodes

    class RendererFormatter(Formatter):
        """Sends the nodes' output lines to the renderer (which prints, captures, files)."""

        def line(self, host: str, text: str, stream: Stream) -> None:
            renderer.line(host, text, stream)

        # the events below come only from verbose (-v) nodes; "connected" is
        # left to the library's log ("connected to ADDR via GATEWAY", see _library_log)
        def connect_failed(self, host: str, error: Exception) -> None:
            if options.verbose:  # otherwise the host's [unreachable] line says it
                renderer.note(host, f"connection failed: {error}")

        def command_started(self, host: str, command: str) -> None:
            renderer.note(host, f"start: {command}")

        def command_done(self, host: str, command: str, rc: int | None) -> None:
            renderer.note(host, f"done: {command} (rc={rc})")

    nodes, created = build_nodes(
        targets,
        ssh_node=SshNode,
        local_node=LocalNode,
        settings=NodeSettings(
            connect_retries=options.connect_retries,
            formatter=RendererFormatter(),
            verbose=options.verbose,
            keepalive=options.keepalive,
        ),
    )
    running: dict[str, asyncio.Task[Any]] = {}
    window = OrderedWindow(options.window, len(targets))

    class TrackedJob(SshJob):
        """An SshJob that waits for its turn, and tells the renderer when it starts and ends."""

        async def co_run(self) -> Any:
            name: str = self.apssh_name
            task = asyncio.current_task()
            if task is not None:
                running[name] = task
            try:
                await window.enter(self.apssh_index)
                try:
                    renderer.host_started(name)
                    return await super().co_run()
                finally:
                    window.leave()
            finally:
                running.pop(name, None)
                renderer.host_done(_outcome(self, name))

    jobs: list[Any] = []
    for target in targets:
        job = TrackedJob(
            nodes[target.name],
            commands=list(commands_for(target)),
            critical=False,
            timeout=options.job_timeout,
            label=target.name,
        )
        job.apssh_name, job.apssh_index = target.name, len(jobs)
        jobs.append(job)
    # the window is ours (OrderedWindow): the scheduler would start hosts in any order
    scheduler = Scheduler(*jobs)

    interrupted = False
    loop = asyncio.get_running_loop()
    main = asyncio.ensure_future(scheduler.co_run())

    def on_sigint() -> None:
        nonlocal interrupted
        if interrupted:  # a second Ctrl-C: the user does not want to wait for cleanup
            os._exit(ExitCode.INTERRUPTED)
        interrupted = True
        main.cancel()
        for task in list(running.values()):
            task.cancel()

    def on_broken_stdout() -> None:
        # nobody reads any more (`apssh ... | head`): stop, as ssh would on SIGPIPE
        nonlocal interrupted
        interrupted = True
        main.cancel()
        for task in list(running.values()):
            task.cancel()

    renderer.on_broken_stdout = on_broken_stdout
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    ticker = asyncio.ensure_future(_tick(renderer)) if renderer.options.progress else None
    try:
        with _library_log(renderer, options.verbose):
            await _wait(main, running, interrupted=lambda: interrupted)
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)
        if ticker is not None:
            ticker.cancel()
    results = [_outcome(job, job.apssh_name) for job in jobs]
    if renderer.stdout_broken:
        await _close(close_nodes(created))
        raise BrokenPipeError("stdout was closed")  # main() exits quietly
    status = renderer.finish(results, interrupted=interrupted)
    await _close(close_nodes(created))
    return status


async def _wait(
    main: asyncio.Future[Any],
    running: dict[str, asyncio.Task[Any]],
    *,
    interrupted: Callable[[], bool],
) -> None:
    """Await the scheduler; after a Ctrl-C, let the cancelled jobs finish their cleanup."""
    try:
        await main
    except asyncio.CancelledError:
        if not interrupted():
            raise
        # the remote processes of the cancelled jobs are being terminated
        pending = [task for task in running.values() if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=CLOSE_TIMEOUT)


class _NoteHandler(logging.Handler):
    """The library's log records as renderer notes: ``host: -- message``."""

    def __init__(self, renderer: Renderer) -> None:
        super().__init__(logging.INFO)
        self._renderer = renderer

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        host = "apssh"
        if text.startswith("host="):  # apssh_cli.log.HostAdapter's prefix
            head, _, text = text.partition(" ")
            host = head.removeprefix("host=")
        self._renderer.note(host, text)


@contextlib.contextmanager
def _library_log(renderer: Renderer, verbose: bool) -> Iterator[None]:
    """With ``-v``, show the library's INFO log (connections, retries, recorded host keys)."""
    if not verbose:
        yield
        return
    logger = logging.getLogger("apssh_cli")
    handler = _NoteHandler(renderer)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def _close(closing: Awaitable[None]) -> None:
    with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
        await asyncio.wait_for(closing, CLOSE_TIMEOUT)


class OrderedWindow:
    """At most ``size`` holders at a time, let in by index: 0, 1, 2...

    A host waits for its own turn, so that hosts start in the order of the targets
    (asynciojobs keeps its jobs in a set). Must be created inside the event loop.
    """

    def __init__(self, size: int, count: int) -> None:
        self._free = size
        self._next = 0
        self._turns = [asyncio.Event() for _ in range(count)]
        self._grant()

    async def enter(self, index: int) -> None:
        """Wait until ``index`` may run (it holds a place until `leave`)."""
        await self._turns[index].wait()

    def leave(self) -> None:
        """Give the place back: the next index in line may run."""
        self._free += 1
        self._grant()

    def _grant(self) -> None:
        while self._free > 0 and self._next < len(self._turns):
            self._turns[self._next].set()
            self._free -= 1
            self._next += 1


def _outcome(job: Any, name: str) -> HostResult:
    """The job's outcome (SKIPPED until it runs); a stand-in if it has none."""
    outcome = getattr(job, "outcome", None)
    if isinstance(outcome, HostResult):
        return outcome
    return HostResult(name, Status.SKIPPED)


async def _tick(renderer: Renderer) -> None:
    while True:
        await asyncio.sleep(PROGRESS_PERIOD)
        renderer.tick()
