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

What a runner on top (recipes) needs is given as hooks, not subclasses: ``prepare``
(decide at start whether to run, and supply the commands then: lazy commands),
``hold`` (an async context held around the run: windows), ``on_connected``,
``finished`` (told the outcome however the job ends); and as options: ``retries``
(whole-job attempts again when the host is unreachable), ``time_limit`` (each
attempt as a whole), ``stop_at_failure`` without raising, ``detach_after`` (a
background job: the scheduler sees it done once it runs; :meth:`SshJob.stop` ends
it). :meth:`SshJob.stop` makes a running job end with outcome ``interrupted``
without raising, so a scheduler goes on (cancelling the job's task still raises).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence as Seq
from contextlib import AbstractAsyncContextManager
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

__all__ = ["Backgrounds", "Scheduler", "Sequence", "SshJob"]

CommandSpec = Command | str
Prepare = Callable[["SshJob"], Awaitable[Seq[CommandSpec] | None]]
Hold = Callable[["SshJob"], AbstractAsyncContextManager[Any]]
# backoff between attempts on an unreachable host (retries=): 0.5 s, 1 s, 2 s, then 4 s
_RETRY_FIRST, _RETRY_MAX = 0.5, 4.0
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
        prepare: awaited when the job starts: the commands to run now (given
            then, not at construction: lazy commands), or None not to run at all
            (the outcome stays ``skipped``). An ApsshError it raises fails the job
            with its message.
        hold: an async context manager held around the attempts (e.g. windows).
        on_connected: called once the node is connected, before the commands.
        finished: called with the job once it ended, however (outcome set).
        retries: extra attempts of the whole job when the host is unreachable
            (never when refused), after 0.5 s, 1 s, 2 s, then 4 s.
        time_limit: seconds for each attempt as a whole (outcome ``timeout``, and
            ``outcome.extra["time_limit"]`` set).
        stop_at_failure: stop at the first failing command without raising
            (default: as ``critical``).
        detach_after: a background job: :meth:`co_run` returns once connected and
            still running after this many seconds; the run goes on until it
            ends or :meth:`stop`.

    Attributes:
        outcome: the HostResult of the last run (status SKIPPED until the job runs).
        detached: the running background task of a detached job, else None.
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
        prepare: Prepare | None = None,
        hold: Hold | None = None,
        on_connected: Callable[[], None] | None = None,
        finished: Callable[[SshJob], None] | None = None,
        retries: int = 0,
        time_limit: float | None = None,
        stop_at_failure: bool | None = None,
        detach_after: float | None = None,
    ) -> None:
        self.node = node
        self.keep_connection = keep_connection
        self.step = step
        lazy = prepare is not None and command is None and commands is None
        self.commands = [] if lazy else _as_commands(command, commands)
        self.prepare = prepare
        self.hold = hold
        self.on_connected = on_connected
        self.finished = finished
        self.retries = retries
        self.time_limit = time_limit
        self.stop_at_failure = critical if stop_at_failure is None else stop_at_failure
        self.detach_after = detach_after
        self.detached: asyncio.Task[Any] | None = None
        self._attempt: asyncio.Task[Any] | None = None
        self._stopping = False
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
        (unreachable, or its command timed out, or a local error). A job ended by
        :meth:`stop` returns too (outcome ``interrupted``); cancelling the task
        that awaits it raises, once the remote processes are terminated.

        Raises:
            ConnectError: a critical job's node could not be reached.
            CommandFailedError: a critical job's command failed.
            CommandTimeoutError: a critical job's command timed out.
            ApsshError: a critical job met a local problem (a missing script...).
        """
        self._stopping = False
        self.outcome = HostResult(host=self.node.label)
        connected = asyncio.Event()
        run: asyncio.Task[int | None] = asyncio.ensure_future(self._run_all(connected))
        self._attempt = run
        if self.detach_after is not None:
            return await self._detach(run, connected)
        try:
            return await run
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # our own task is cancelled: the cancellation goes on
            return self.outcome.rc  # stop(): the outcome says interrupted
        except Exception:
            if self.critical:
                raise
            # the outcome holds the error: raising would keep asynciojobs' window slot
            return self.outcome.rc
        finally:
            if self.detached is None:
                self._attempt = None

    def stop(self) -> None:
        """End the running job (a detached one too): remote processes are terminated,
        the outcome is ``interrupted``, :meth:`co_run` returns without raising."""
        self._stopping = True
        if self._attempt is not None:
            self._attempt.cancel()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called during the current run."""
        return self._stopping

    async def _detach(self, run: asyncio.Task[int | None], connected: asyncio.Event) -> int | None:
        waiter = asyncio.ensure_future(connected.wait())
        try:
            await asyncio.wait({run, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if not run.done():
                await asyncio.wait({run}, timeout=self.detach_after)
        except asyncio.CancelledError:
            run.cancel()
            await asyncio.wait({run}, timeout=_CANCEL_WAIT)
            raise
        finally:
            waiter.cancel()
        if not run.done():
            self.detached = run  # it goes on: stop() ends it
            run.add_done_callback(self._forget_detached)
            return 0
        self._attempt = None
        if run.cancelled():
            return self.outcome.rc
        error = run.exception()
        if error is not None and self.critical:
            raise error
        return self.outcome.rc if error is not None else run.result()

    def _forget_detached(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled():
            task.exception()  # recorded in the outcome: never "never retrieved"
        self.detached = self._attempt = None

    async def _run_all(self, connected: asyncio.Event) -> int | None:
        """prepare, hold, the attempts, finished: the whole of one run."""
        try:
            if self.prepare is not None:
                try:
                    given = await self.prepare(self)
                except ApsshError as exc:
                    self.outcome = HostResult(self.node.label, Status.FAILED, error=str(exc))
                    if self.critical:
                        raise
                    return None
                if given is None:
                    return 0  # not to run: the outcome stays skipped
                self.commands = _as_commands(None, list(given)) if given else []
            async with self.hold(self) if self.hold is not None else _nothing():
                return await self._attempts(connected)
        finally:
            if self.finished is not None:
                self.finished(self)

    async def _attempts(self, connected: asyncio.Event) -> int | None:
        attempt = 0
        while True:
            try:
                async with asyncio.timeout(self.time_limit):
                    return await self._run_commands(connected)
            except TimeoutError as exc:
                if isinstance(exc, ApsshError):  # a command's own timeout
                    raise
                self.outcome.status = Status.TIMEOUT
                self.outcome.error = f"timeout ({self.time_limit:g}s)"
                self.outcome.extra["time_limit"] = (
                    self.time_limit
                )  # the whole job's, not a command's
                if self.critical:
                    raise CommandTimeoutError(
                        self.node.label, self.text_label(), self.time_limit or 0.0
                    ) from None
                return None
            except ConnectError:
                unreachable = self.outcome.status is Status.UNREACHABLE
                if not unreachable or attempt >= self.retries:
                    raise
            await asyncio.sleep(min(_RETRY_FIRST * 2**attempt, _RETRY_MAX))
            attempt += 1

    async def _run_commands(self, connected: asyncio.Event | None = None) -> int | None:
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
                if connected is not None:
                    connected.set()
                if self.on_connected is not None:
                    self.on_connected()
                for command in self.commands:
                    try:
                        result = await command.co_run(node, timeout=self.timeout, verbose=verbose)
                    except CommandTimeoutError as exc:
                        status, timed_out, outcome.error = Status.TIMEOUT, True, exc.message
                        if self.critical:
                            raise
                        if self.stop_at_failure:
                            break
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
                    if self.stop_at_failure:
                        break
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


@contextlib.asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield


class Backgrounds:
    """Detached (background) jobs in groups, stopped together; a run's end waits for them.

    ``add(key, job, on_stop)``: ``on_stop`` is called when a group's stop reaches a
    job that runs detached (its stop is its planned end, not a failure).
    """

    def __init__(self, timeout: float = _CANCEL_WAIT) -> None:
        self.timeout = timeout
        self._groups: dict[object, list[tuple[SshJob, Callable[[], None]]]] = {}
        self._ending: set[asyncio.Task[Any]] = set()

    def add(self, key: object, job: SshJob, on_stop: Callable[[], None]) -> None:
        self._groups.setdefault(key, []).append((job, on_stop))

    def stop(self, key: object) -> list[asyncio.Task[Any]]:
        """Stop the group's jobs now; return the runs still ending (cleanup under way)."""
        ending = []
        for job, on_stop in self._groups.pop(key, []):
            run = job.detached
            if run is not None:
                on_stop()
                ending.append(run)
                self._ending.add(run)
                run.add_done_callback(self._ending.discard)
            job.stop()
        return ending

    async def stop_and_wait(self, key: object) -> None:
        """Stop a group and wait for its jobs' ends (bounded)."""
        ending = self.stop(key)
        if ending:
            await asyncio.wait(ending, timeout=self.timeout)

    def stop_all(self) -> None:
        for key in list(self._groups):
            self.stop(key)

    async def wait(self) -> None:
        """Stop every group, and wait for every stopped job's end (bounded)."""
        self.stop_all()
        if self._ending:
            await asyncio.wait(list(self._ending), timeout=self.timeout)
