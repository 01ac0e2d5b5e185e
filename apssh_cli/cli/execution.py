"""Glue between the command line and the fleet engine: run, render, exit status.

The engine (:mod:`apssh_cli.engine.fleet`) does the work: window, gateway
sharing, connections closed as hosts finish, cancellation. Here the CLI's
Renderer is plugged in as its sink and observer, the first Ctrl-C, SIGTERM or
SIGHUP stops the run cleanly (no new host starts, running commands are
terminated on the remote side, the summary so far is printed, ``--failed-to``
and ``-o`` files are written, every connection is closed), and the exit status
is chosen: 128 + the signal number after a signal (130 for Ctrl-C). A second
signal exits at once.

asyncssh and asynciojobs are imported only when a run starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apssh_cli.cli.exitcodes import ExitCode
from apssh_cli.cli.render import Renderer
from apssh_cli.inventory.targets import Target

if TYPE_CHECKING:
    from apssh_cli.ssh.early import EarlyConnections

PROGRESS_PERIOD = 1.0

CommandFactory = Callable[[Target], Sequence[Any]]


@dataclass(frozen=True)
class ExecutionOptions:
    """How to run: parallelism and connection settings common to every host.

    Args:
        window: at most this many hosts at once.
        connect_retries: ``--retries``: extra connection attempts (with backoff),
            for connection failures only.
        job_timeout: the default timeout of each command, seconds.
        verbose: nodes report connection and command events.
        verbosity: how many ``-v``: 1 the library's INFO log (what was resolved,
            connections); 2 its DEBUG log and asyncssh's authentication lines; 3
            asyncssh's whole debug log.
        early_connections: TCP connects started before asyncssh was imported.
    """

    window: int
    connect_retries: int = 0
    job_timeout: float | None = None
    verbose: bool = False
    verbosity: int = 0
    keepalive: float | None = None
    early_connections: EarlyConnections | None = None


def execute(
    targets: Sequence[Target],
    commands_for: CommandFactory,
    renderer: Renderer,
    options: ExecutionOptions,
) -> int:
    """Run every host's commands and render the run; return the exit status."""
    return asyncio.run(run_targets(targets, commands_for, renderer, options))


async def run_targets(
    targets: Sequence[Target],
    commands_for: CommandFactory,
    renderer: Renderer,
    options: ExecutionOptions,
) -> int:
    """The coroutine behind `execute` (tests await it directly)."""
    from apssh_cli.engine.fleet import FleetOptions, FleetRun, stop_on_signals

    renderer.verbose = options.verbose
    fleet = FleetRun(
        targets,
        commands_for,
        formatter=renderer,
        observer=renderer,
        options=FleetOptions(
            window=options.window,
            timeout=options.job_timeout,
            connect_retries=options.connect_retries,
            verbose=options.verbose,
            keepalive=options.keepalive,
            early_connections=options.early_connections,
        ),
    )
    # nobody reads any more (`apssh ... | head`): stop, as ssh would on SIGPIPE
    renderer.on_broken_stdout = fleet.stop
    ticker = asyncio.ensure_future(_tick(renderer)) if renderer.options.progress else None
    try:
        with (
            stop_on_signals(fleet, on_second=_exit_now) as received,
            _library_log(renderer, max(options.verbosity, int(options.verbose))),
        ):
            results = await fleet.run()
    finally:
        if ticker is not None:
            ticker.cancel()
    if renderer.stdout_broken:
        raise BrokenPipeError("stdout was closed")  # main() exits quietly
    status: int = renderer.finish(results, interrupted=bool(received))
    if received:
        status = 128 + int(received[0])  # 130 for Ctrl-C
    return status


def _exit_now(signum: signal.Signals) -> None:
    # a second signal: the user does not want to wait for the cleanup
    os._exit(ExitCode.INTERRUPTED if signum == signal.SIGINT else 128 + int(signum))


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
def _library_log(renderer: Renderer, verbosity: int) -> Iterator[None]:
    """With ``-v``, show the library's INFO log (what was resolved, connections, retries,
    recorded host keys); ``-vv`` its DEBUG log too, and asyncssh's authentication
    lines; ``-vvv`` asyncssh's whole debug log (:mod:`apssh_cli.ssh.debuglog`)."""
    if not verbosity:
        yield
        return
    from apssh_cli.ssh.debuglog import asyncssh_log

    logger = logging.getLogger("apssh_cli")
    handler = _NoteHandler(renderer)
    handler.setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)
    try:
        with asyncssh_log(verbosity):
            yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def _tick(renderer: Renderer) -> None:
    while True:
        await asyncio.sleep(PROGRESS_PERIOD)
        renderer.tick()
