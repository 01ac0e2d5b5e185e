"""Run a plan on the fleet engine: its nodes, its Scheduler, its abort, its journal.

The engine does what is not about recipes: nodes (``FleetNodes``: one connection
per host and per gateway hop, a host that is also a gateway included, matrix
included), signals (``stop_on_signals``: SIGINT, SIGTERM, SIGHUP), windows,
retries, time limits, stopping and background jobs (``SshJob``'s hooks). Here:
the jobs of the DAG (:mod:`~apssh_cli.recipe.schedule`), each task's decisions
(:mod:`~apssh_cli.recipe.tasks`), the DAG's state (:mod:`~apssh_cli.recipe.progress`),
the abort, and the run directory: journal, captures, summary.

Cancelling the task that awaits :meth:`RecipeRun.co_run` stops every task, closes
the connections, records the run as ``cancelled``, then re-raises (as FleetRun).
asyncssh and asynciojobs are imported when the scheduler is built, not before.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import time
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

from apssh_cli.inventory.hostrange import fold
from apssh_cli.inventory.secrets import SecretMask
from apssh_cli.recipe.journal import (
    CAPTURES,
    DIR_MODE,
    JOURNAL,
    SUMMARY,
    EventLog,
    RunDirLock,
    captures_as_json,
    create_run_dir,
    read_previous,
    unreadable_message,
    write_json,
)
from apssh_cli.recipe.model import RecipeError
from apssh_cli.recipe.planner import LOCAL_HOST, Instance, Plan
from apssh_cli.recipe.progress import Progress
from apssh_cli.recipe.references import Captures, combo_of, load_captures
from apssh_cli.recipe.report import summary_lines
from apssh_cli.recipe.schedule import build_jobs
from apssh_cli.recipe.sink import RecipeFormatter
from apssh_cli.recipe.state import (
    CANCELLED,
    EXIT_ABORTED,
    EXIT_INTERRUPTED,
    PENDING,
    RUNNING,
    TaskState,
    recipe_exit,
)
from apssh_cli.recipe.summary import run_summary

if TYPE_CHECKING:
    from apssh_cli.engine.fleet import FleetNodes
    from apssh_cli.recipe.tasks import TaskJobs
    from apssh_cli.ssh.early import EarlyConnections

__all__ = ["RecipeFormatter", "RecipeRun", "TaskState"]


class RecipeRun:
    """One run of a plan: its nodes, its Scheduler, its run directory and its outcome.

    Args:
        plan: from :func:`~apssh_cli.recipe.planner.make_plan`.
        keep_going: a critical step that fails skips only its descendants.
        fail_fast: a failed combination stops the sweep.
        window: at most this many tasks at once (default: the recipe's, else 50).
        resume: skip the tasks that ended ok in ``plan.run_dir`` with the same action.
        events: where JSON events go (besides the journal), or None.
        listener: called with each event (a dict).
        stdout, stderr: where streamed lines go (default: sys.stdout/stderr).
        quiet: no streamed lines.
        early_connections: TCP connects started ahead
            (:func:`~apssh_cli.engine.prestart.start_early_connections`): the hosts'
            nodes use them; the run closes what they did not take.

    Attributes:
        tasks: a TaskState per task of the plan, in plan order.
        exit_status: set once the run ended (0, 2, 3, 4, 5, 130, 128+signal).
    """

    def __init__(
        self,
        plan: Plan,
        *,
        keep_going: bool = False,
        fail_fast: bool = False,
        window: int | None = None,
        resume: bool = False,
        events: IO[str] | None = None,
        listener: Callable[[dict[str, Any]], None] | None = None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        quiet: bool = False,
        early_connections: EarlyConnections | None = None,
    ) -> None:
        self.plan = plan
        # inventory secrets a template put in a command stay out of events and summaries
        self.secrets = SecretMask.of_inventory(plan.inventory)
        self.early_connections = early_connections
        self.keep_going = keep_going
        self.fail_fast = fail_fast
        self.window = plan.window(window)
        self.resume = resume
        self._events = events
        self._listener = listener
        self.formatter = RecipeFormatter(self, stdout=stdout, stderr=stderr, quiet=quiet)
        self.progress = Progress(plan)
        self.tasks = self.progress.tasks
        self.captures: Captures = {}
        self.previous: dict[str, tuple[str, str]] = {}
        self.exit_status: int | None = None
        self.abort_reason: str | None = None
        self._abort_exit = EXIT_ABORTED
        self.cancelled = False
        self.task_jobs: TaskJobs | None = None  # with the scheduler
        self._scheduler: Any = None
        self._main: asyncio.Task[Any] | None = None
        self._hard = False
        self.nodes: FleetNodes | None = None
        self.local_node: Any = None
        self.log = EventLog()
        self.started = 0.0
        self.finished: float | None = None

    # ------------------------------------------------------------------ building

    @property
    def scheduler(self) -> Any:
        """The recipe's Scheduler of SshJobs (built on first use; nothing connects)."""
        if self._scheduler is None:
            self._scheduler = self._build()
        return self._scheduler

    @property
    def jobs(self) -> TaskJobs:
        """The jobs of the tasks (built with the scheduler)."""
        if self.task_jobs is None:
            self._scheduler = self._build()
        assert self.task_jobs is not None
        return self.task_jobs

    def _build(self) -> Any:
        from apssh_cli.engine.fleet import FleetNodes
        from apssh_cli.engine.job import Scheduler, SshJob
        from apssh_cli.recipe.tasks import TaskJobs
        from apssh_cli.ssh.node import LocalNode

        self.task_jobs = tasks = TaskJobs(self)
        # one node per host and per gateway hop (a host that is a gateway too: one)
        self.nodes = FleetNodes(self.plan.targets, formatter=self.formatter)
        self.local_node = LocalNode(formatter=self.formatter, label=LOCAL_HOST)

        def mark(on_done: Callable[[], Any], label: str, required: list[Any]) -> Any:
            """A join (a step settles) or the end of a combination: bookkeeping, no command."""

            async def prepare(_job: Any) -> None:
                result = on_done()
                if asyncio.iscoroutine(result):
                    await result

            return SshJob(
                self.local_node, prepare=prepare, critical=False, label=label, required=required
            )

        jobs = build_jobs(
            self.plan,
            lambda task, required: tasks.job(self.progress.state(task), required),
            lambda inst, required: mark(
                functools.partial(self._settle, inst), f"settle {inst.key}", required
            ),
            lambda index, slug, required: mark(
                functools.partial(self._combo_done, index), f"end of {slug}", required
            ),
        )
        return Scheduler(*jobs)

    # ------------------------------------------------------------------ running

    def run(self, *, handle_signals: bool = False) -> int:
        """Run outside an event loop; return the exit status."""
        return asyncio.run(self.co_run(handle_signals=handle_signals))

    async def co_run(self, *, handle_signals: bool = False) -> int:
        """Run the recipe; return the exit status (also in ``exit_status``).

        Args:
            handle_signals: SIGINT, SIGTERM and SIGHUP abort the recipe (a second
                Ctrl-C stops at once), as the fleet's; for command-line use.

        Cancelling the awaiting task stops every task (remote processes
        terminated), closes the connections, writes the summary and journal
        (status ``cancelled``), then the cancellation goes on.
        """
        from apssh_cli.ssh.context import default_context

        with default_context().using(self.early_connections):
            return await self._co_run(handle_signals)

    async def _co_run(self, handle_signals: bool) -> int:
        """Claim the run directory (a new one exclusively), lock it, run."""
        plan = self.plan
        if plan.fresh and not plan.claimed:
            if not create_run_dir(plan.run_dir):
                raise RecipeError(
                    f"run directory {plan.run_dir} exists already (another run took this "
                    "id): plan again, or make_plan(..., claim=True)"
                )
            plan.claimed = True
        lock = RunDirLock(plan.run_dir)  # creates it when needed
        try:
            return await self._co_run_locked(handle_signals)
        finally:
            lock.release()

    async def _co_run_locked(self, handle_signals: bool) -> int:
        from apssh_cli.engine.fleet import stop_on_signals

        plan = self.plan
        if plan.recipe.matrix:
            for combo in plan.combos:
                (plan.run_dir / combo.slug).mkdir(exist_ok=True, mode=DIR_MODE)
        unreadable: list[int] = []
        if self.resume:
            self.previous, captures, unreadable = read_previous(plan.run_dir)
            self.captures.update(load_captures(captures))
        self.log = EventLog(
            plan.run_dir / JOURNAL, self._events, self._listener, mask=self.secrets.data
        )
        if unreadable:  # said once, before the run's own events
            self.formatter.echo(
                f"-- {unreadable_message(plan.run_dir / JOURNAL, unreadable)}", True
            )
        scheduler = self.scheduler
        self.started = time.monotonic()
        self.log.emit(
            "recipe_start",
            recipe=plan.recipe.name,
            run_id=plan.run_id,
            run_dir=str(plan.run_dir),
            steps=[step.id for step in plan.recipe.order()],
            tasks=len(self.tasks),
            combos=[combo.slug for combo in plan.combos],
            resume=self.resume,
        )
        loop = asyncio.get_running_loop()
        self._main = asyncio.ensure_future(scheduler.co_run())
        timer = None
        if plan.recipe.timeout is not None:
            timer = loop.call_later(
                plan.recipe.timeout,
                lambda: self.abort(f"recipe timeout ({plan.recipe.timeout:g}s)"),
            )
        signals = stop_on_signals(self, on_second=self.stop) if handle_signals else None
        cancelled = False
        try:
            with signals if signals is not None else contextlib.nullcontext():
                await self._main
        except asyncio.CancelledError:
            current = asyncio.current_task()
            cancelled = current is not None and current.cancelling() > 0
            if cancelled:  # our caller's cancellation: clean up, say so, then re-raise
                self._cancelled()
        finally:
            if timer is not None:
                timer.cancel()
            await self.jobs.backgrounds.wait()
            await self.close()
        self._end()
        if cancelled:
            raise asyncio.CancelledError
        assert self.exit_status is not None
        return self.exit_status

    def _end(self) -> None:
        plan = self.plan
        for state in self.tasks:  # never started: the scheduler was stopped
            if state.status in (PENDING, RUNNING):
                self.jobs.finish(state, CANCELLED, error=self.abort_reason or "stopped")
        self.exit_status = self._exit_status()
        self.finished = time.monotonic()
        summary = self.summary()
        write_json(plan.run_dir / SUMMARY, summary)
        write_json(plan.run_dir / CAPTURES, captures_as_json(self.captures))
        self.log.emit(
            "recipe_end",
            status=summary["status"],
            exit=self.exit_status,
            counts=summary["counts"],
            run_dir=str(plan.run_dir),
        )
        self.log.close()

    async def close(self) -> None:
        """Close every connection (hosts, then gateways), bounded in time."""
        if self.nodes is not None:
            await self.nodes.close()

    def stop(self, signum: signal.Signals | None = None) -> None:
        """A signal (or a caller) stops the run: abort; a second Ctrl-C stops at once.

        The exit status is 130 after SIGINT (or no signal), 128 + N after signal N.
        """
        if self.abort_reason is not None and signum in (None, signal.SIGINT):
            if not self._hard:  # stop the always steps too (connections still closed)
                self._hard = True
                self._abort_exit = EXIT_INTERRUPTED
                if self._main is not None:
                    self._main.cancel()
            return
        if signum is None or signum == signal.SIGINT:
            self.abort("interrupted", exit_status=EXIT_INTERRUPTED)
        else:
            self.abort(signal.Signals(signum).name, exit_status=128 + int(signum))

    def _cancelled(self) -> None:
        self.cancelled = True
        self.abort("cancelled", exit_status=EXIT_INTERRUPTED)
        for _, job in list(self.jobs.running.values()):
            job.stop()

    def abort(self, reason: str, *, exit_status: int = EXIT_ABORTED) -> None:
        """Start nothing new (but ``always`` steps), terminate running tasks, stop backgrounds."""
        if self.abort_reason is not None:
            return
        self.abort_reason = reason
        self._abort_exit = exit_status
        self.log.emit("abort", reason=reason)
        shown = self.secrets.text(reason)
        self.formatter.echo(f"-- recipe {self.plan.recipe.name}: aborting: {shown}", True)
        if self.task_jobs is not None:
            for state, job in list(self.task_jobs.running.values()):
                if not state.task.step.always:
                    job.stop()
            self.task_jobs.backgrounds.stop_all()

    def host_status(self, inst: Instance, host: str) -> str:
        """How ``host`` ended in a step instance (ok when it did not run in this run)."""
        status: str = self.progress.host_status(inst, host)
        return status

    # ------------------------------------------------------------------ bookkeeping

    def label_of(self, state: TaskState) -> str:
        """``step`` or ``step[combo]``: how streamed lines name a task's step."""
        inst = state.task.instance
        if inst.combo is not None and self.plan.recipe.matrix:
            return f"{inst.step.id}[{inst.combo.slug}]"
        return inst.step.id

    def step_started(self, inst: Instance) -> None:
        inst_state = self.progress.instance_state(inst)
        if not inst_state.started:
            inst_state.started = True
            self.log.emit("step_start", step=inst.step.id, combo=combo_of(inst), hosts=inst.hosts)

    def _settle(self, inst: Instance) -> None:
        """A step instance's tasks are all done (or started, in the background)."""
        bad = self.progress.settle(inst)
        if inst.runs:
            self.step_started(inst)
            self.log.emit("step_end", **self.progress.step_end(inst))
            failed = self.progress.instance_state(inst).failed
            if failed and inst.step.critical and not self.keep_going:
                self.abort(f"critical step {inst.key} failed on {fold(s.host for s in bad)}")
            elif failed and self.fail_fast and inst.combo is not None and not self._swept():
                self.progress.sweep_stopped = inst.combo.index  # the first failed combination
        for background in self.progress.backgrounds_after(inst):
            self.jobs.backgrounds.stop(id(background))  # each job records its own end

    def _swept(self) -> bool:
        return self.progress.sweep_stopped is not None

    async def _combo_done(self, index: int) -> None:
        """End of a combination: stop its background tasks that wait for nothing else."""
        for inst in self.progress.backgrounds_of_combo(index):
            await self.jobs.backgrounds.stop_and_wait(id(inst))

    # ------------------------------------------------------------------ outcome

    def _exit_status(self) -> int:
        if self.abort_reason is not None:
            return self._abort_exit
        return recipe_exit(state.status for state in self.tasks)

    def summary(self) -> dict[str, Any]:
        """The run as data (summary.json, ``--json``)."""
        return run_summary(self)

    def summary_lines(self) -> Iterator[str]:
        """The summary for a person: per step instance, the hosts in each state (folded)."""
        return summary_lines(self.summary())
