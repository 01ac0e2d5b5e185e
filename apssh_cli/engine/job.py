"""SshJob: an asynciojobs job running an ordered list of commands on one node.

This is the only module that imports asynciojobs, and it uses its public API
only: ``AbstractJob`` subclassed with its constructor, ``Scheduler.co_run()``,
and the documented protocol that a scheduler awaits each job's ``co_run()``.

Two guarantees hold whatever scheduler runs the jobs:

- **A window with failing jobs finishes.** asynciojobs' own window (0.21) keeps
  the slot of a job that raises, so N raising jobs with ``jobs_window=N`` hang
  it. A *non-critical* SshJob therefore never raises: whatever happens (a
  failing command, a timeout, an unreachable host) is in its :attr:`SshJob.outcome`.
  A critical one raises, and that aborts the scheduler anyway. So SshJobs put
  in ``asynciojobs.Scheduler(jobs_window=N)`` always finish.
- Our :class:`Scheduler` also frees the slot of any job that raises (an
  upstream ``Job``, a job class of yours): it applies ``jobs_window`` itself,
  with a semaphore that each job takes around its ``co_run()``, one per run.

A job's :attr:`SshJob.outcome` is always set when the job ends, however it ends
(success, non-zero, timeout, connection failure, cancellation).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import PurePath
from typing import Any

import asynciojobs
from asynciojobs import Sequence

from apssh_cli.commands import Command, Run
from apssh_cli.deferred import Deferred
from apssh_cli.errors import (
    ApsshError,
    AuthRefusedError,
    CommandFailedError,
    CommandTimeoutError,
    ConnectError,
    HostKeyRefusedError,
)
from apssh_cli.output import CaptureFormatter, output_step
from apssh_cli.results import HostResult, Status
from apssh_cli.ssh.node import LocalNode, SshNode

__all__ = ["Scheduler", "Sequence", "SshJob"]

CommandSpec = Command | str
# how long a cancelled scheduler waits for its jobs to clean up (each cleanup is bounded)
_CANCEL_WAIT = 15.0


class Scheduler(asynciojobs.Scheduler):  # type: ignore[misc]
    """asynciojobs' Scheduler, whose window gives a job's slot back however the job ends.

    Same constructor and behaviour as asynciojobs' Scheduler (``jobs_window``,
    ``timeout``, ``critical``, ``forever``, nesting, ``required=``, dot export).
    Two differences, both about ending well:

    - ``jobs_window`` is applied here, around each job's ``co_run()``: a job that
      raises frees its slot (a windowed run with failing or unreachable hosts
      always finishes). A job counts as running (``is_running()``) from the
      moment it is scheduled, slot or not.
    - When the task running :meth:`co_run` is cancelled, every job it started
      is cancelled too and waited for (bounded), so that remote processes are
      terminated before the cancellation goes on; jobs still waiting for a slot
      never start.
    """

    async def co_run(self) -> Any:
        """Run the jobs (see asynciojobs); return True unless a critical job failed or timed out."""
        window: int | None = getattr(self, "jobs_window", None)
        slots = asyncio.Semaphore(window) if window else None
        started: set[asyncio.Task[Any]] = set()
        # a job is awaited through its co_run(): wrap it for this run only
        replaced: dict[int, tuple[Any, bool, Any]] = {}
        for job in list(self.jobs):
            had_own = "co_run" in vars(job)
            replaced[id(job)] = (job, had_own, vars(job).get("co_run"))
            job.co_run = _windowed(job.co_run, slots, started)
        self.jobs_window = None  # asynciojobs' own window would keep a failing job's slot
        try:
            return await super().co_run()
        except asyncio.CancelledError:
            tasks = [task for task in started if not task.done()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=_CANCEL_WAIT)
            raise
        finally:
            self.jobs_window = window
            for job, had_own, own in replaced.values():
                if had_own:
                    job.co_run = own
                else:
                    vars(job).pop("co_run", None)


def _windowed(
    co_run: Callable[[], Awaitable[Any]],
    slots: asyncio.Semaphore | None,
    started: set[asyncio.Task[Any]],
) -> Callable[[], Awaitable[Any]]:
    async def run() -> Any:
        task = asyncio.current_task()
        if task is not None:
            started.add(task)
        if slots is None:
            return await co_run()
        async with slots:  # released on return, exception and cancellation
            return await co_run()

    return run


_CONNECT_STATUS: list[tuple[type[ConnectError], Status]] = [
    (AuthRefusedError, Status.AUTH_REFUSED),
    (HostKeyRefusedError, Status.HOSTKEY_REFUSED),
    (ConnectError, Status.UNREACHABLE),
]


def connect_status(error: ConnectError) -> Status:
    """How a connection failure ends a host: refused (auth, host key: never retried) or unreachable.

    >>> from apssh_cli.errors import HostKeyRefusedError
    >>> connect_status(HostKeyRefusedError("n1", "changed key")).value
    'hostkey-refused'
    """
    return next(status for kind, status in _CONNECT_STATUS if isinstance(error, kind))


def _as_commands(command: Any, commands: Any) -> list[Command]:
    """The job's commands, as upstream apssh reads ``command=``/``commands=``.

    A command object is one command; a string (or a Deferred) is ``Run(string)``;
    a list of command objects is a sequence; a list of strings is ONE command,
    ``Run(*strings)`` (its parts joined with spaces); None entries are dropped.
    (A string among command objects is a ``Run`` of its own.)
    """
    if command is not None and commands is not None:
        raise ValueError("SshJob takes command= or commands=, not both")
    given = command if command is not None else commands
    if given is None:
        raise ValueError("SshJob needs a command")
    if isinstance(given, Command):
        return [given]
    if not isinstance(given, list | tuple):
        return [Run(given)]  # a string, or a Deferred
    items = [item for item in given if item is not None]
    if not items:
        raise ValueError("SshJob needs a command")
    for item in items:
        if not isinstance(item, Command | str | int | float | PurePath | Deferred):
            raise TypeError(f"not a command: {item!r}")
    if not any(isinstance(item, Command) for item in items):
        return [Run(*items)]  # the parts of ONE command, as upstream
    # command objects, maybe with strings among them: each string is a Run
    return [item if isinstance(item, Command) else Run(item) for item in items]


class SshJob(asynciojobs.AbstractJob):  # type: ignore[misc]
    """Run commands, strictly in order, on one node.

    A critical job stops at the first failing command and raises
    CommandFailedError (CommandTimeoutError on a timeout; the ConnectError when
    the node cannot be reached), which aborts a critical scheduler. A
    non-critical job runs every command and never raises (but for its own
    cancellation): its result is the last failing return code, or 0, and
    :attr:`outcome` says how it ended (``failed``, ``timeout``, ``unreachable``...).

    Args:
        node: an SshNode or a LocalNode.
        command: one command (a string means ``Run(string)``).
        commands: several commands.
        critical: stop (and raise) at the first failure.
        timeout: the default timeout of each command, in seconds.
        label: shown by the scheduler's listings.
        keep_connection: accepted for upstream scripts; a job never closes its
            node's connection (nodes are shared): close them with
            ``close_ssh_in_scheduler`` or ``close_nodes``.
        required: jobs that must be done before this one starts.
        scheduler: add the job to this scheduler.
        forever: the scheduler does not wait for this job.
        verbose: send command events to the node's formatter (default: the node's).
        step: the step this job belongs to: its output lines carry it
            (:class:`~apssh_cli.output.OutputEvent`), for sinks that show it.

    Attributes:
        outcome: the HostResult of the last run (status SKIPPED until the job runs).
    """

    def __init__(
        self,
        node: SshNode | LocalNode,
        command: CommandSpec | Iterable[CommandSpec] | None = None,
        commands: Iterable[CommandSpec] | None = None,
        *,
        critical: bool = True,
        timeout: float | None = None,
        label: str | None = None,
        required: Any = None,
        scheduler: Any = None,
        forever: bool = False,
        verbose: bool | None = None,
        step: str | None = None,
        keep_connection: bool = False,
    ) -> None:
        self.node = node
        self.keep_connection = keep_connection
        self.step = step
        self.commands = _as_commands(command, commands)
        self.timeout = timeout
        self.verbose = verbose
        self.outcome = HostResult(host=node.label)
        super().__init__(
            forever=forever,
            critical=critical,
            label=label,
            required=required,
            scheduler=scheduler,
        )

    def text_label(self) -> str:
        """The label, or ``node: command; command``."""
        if self.label is not None:
            return str(self.label)
        return f"{self.node.label}: " + "; ".join(cmd.describe() for cmd in self.commands)

    def graph_label(self) -> str:
        """``user@host``, then one line per command (a command labelled ``""`` is hidden)."""
        node = self.node
        lines = [node.user_host() if isinstance(node, SshNode) else node.label]
        lines += [line for line in (cmd.label_line() for cmd in self.commands) if line]
        return "\n".join(lines)

    def details(self) -> str:
        """As :meth:`graph_label`, for asynciojobs' ``list(details=True)``."""
        return self.graph_label()

    async def co_run(self) -> int | None:
        """Run the commands; return the last failing return code, or 0.

        A non-critical job returns None when it has no return code to give
        (unreachable, or its command timed out, or a local error).

        Raises:
            ConnectError: a critical job's node could not be reached.
            CommandFailedError: a critical job's command failed.
            CommandTimeoutError: a critical job's command timed out.
            ApsshError: a critical job met a local problem (a missing script...).
        """
        try:
            return await self._run_commands()
        except asyncio.CancelledError:
            raise
        except Exception:
            if self.critical:
                raise
            # the outcome holds the error: raising would keep asynciojobs' window slot
            return self.outcome.rc

    async def _run_commands(self) -> int | None:
        node = self.node
        outcome = self.outcome = HostResult(host=node.label)
        verbose = self.verbose if self.verbose is not None else node.verbose
        started = time.monotonic()
        status = Status.OK
        failing_rc: int | None = None
        last_rc: int | None = None
        timed_out = False
        try:
            with output_step(self.step):
                await node.connect()
                for command in self.commands:
                    try:
                        result = await command.co_run(node, timeout=self.timeout, verbose=verbose)
                    except CommandTimeoutError as exc:
                        status, timed_out, outcome.error = Status.TIMEOUT, True, exc.message
                        if self.critical:
                            raise
                        continue
                    last_rc = result.rc
                    if command.is_allowed(result.rc):
                        continue
                    failing_rc = result.rc
                    if status is Status.OK:
                        status = Status.FAILED
                    error = CommandFailedError(
                        node.label,
                        command.describe(),
                        result.rc,
                        result.stderr_tail,
                        message=command.failure_message(result),
                    )
                    outcome.error = error.message
                    if self.critical:
                        raise error
                # a timed-out command has no return code: neither has the job, unless one failed
                no_rc = timed_out and failing_rc is None
                outcome.rc = failing_rc if failing_rc is not None else None if no_rc else last_rc
                return failing_rc if failing_rc is not None else 0
        except asyncio.CancelledError:
            status = Status.INTERRUPTED  # the status says it all: no error text to repeat it
            raise
        except ConnectError as exc:
            status = connect_status(exc)
            outcome.error = exc.message
            raise
        except CommandFailedError as exc:
            outcome.rc = exc.exit_status
            raise
        except CommandTimeoutError:
            raise
        except ApsshError as exc:  # a local problem: missing script, bad key file...
            status, outcome.error = Status.FAILED, str(exc)
            raise
        except Exception as exc:
            status, outcome.error = Status.FAILED, f"internal error: {type(exc).__name__}: {exc}"
            raise
        finally:
            outcome.status = status
            outcome.duration = time.monotonic() - started
            formatter = node.formatter
            if isinstance(formatter, CaptureFormatter):
                outcome.stdout = formatter.stdout(node.label)
                outcome.stderr = formatter.stderr(node.label)

    async def co_shutdown(self) -> None:
        """Nothing: connections are shared between jobs; close them with close_nodes()."""

    def close(self) -> None:
        """Nothing to close (asynciojobs calls this on coroutine-based jobs)."""
