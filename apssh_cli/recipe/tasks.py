"""One task of a recipe as one engine job: the hooks that decide, render, window, record it.

A task's :class:`~apssh_cli.engine.job.SshJob` asks :meth:`TaskJobs.prepare` when it
starts whether it runs (the DAG's gate, ``--resume``) and which commands (its deferred
references rendered now); holds the recipe's, the step's and the connection's windows
while it runs; and is told its outcome (:meth:`TaskJobs.finished`), which becomes the
task's state, its ``task_end`` event and, for a step that captures, its value.
Retries, the step's timeout, stopping and background detaching are the engine's.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from apssh_cli.engine.job import Backgrounds, SshJob
from apssh_cli.engine.windows import Windows
from apssh_cli.errors import ApsshError
from apssh_cli.recipe.actions import build_commands
from apssh_cli.recipe.journal import CAPTURES, captures_as_json, write_json
from apssh_cli.recipe.model import CAPTURE_LIMIT
from apssh_cli.recipe.planner import Task
from apssh_cli.recipe.references import References, combo_of
from apssh_cli.recipe.sink import CURRENT_TASK
from apssh_cli.recipe.state import CANCELLED, FAILED, FINAL, OK, RUNNING, TaskState, task_status
from apssh_cli.recipe.summary import task_fields
from apssh_cli.results import Status

if TYPE_CHECKING:
    from apssh_cli.recipe.runner import RecipeRun

__all__ = ["TaskJobs"]

# a background task counts as started once connected and still running after this
START_GRACE = 0.5
STOP_TIMEOUT = 15.0


class TaskJobs:
    """The jobs of a run's tasks, and what they hold while running."""

    def __init__(self, run: RecipeRun) -> None:
        self.run = run
        self.windows = Windows()
        self.backgrounds = Backgrounds(STOP_TIMEOUT)  # by step instance
        self.running: dict[int, tuple[TaskState, SshJob]] = {}  # by id of the TaskState

    def job(self, state: TaskState, required: list[Any]) -> SshJob:
        """One task: the engine's SshJob, with the recipe's decisions as its hooks."""
        step = state.task.step
        assert self.run.nodes is not None
        return SshJob(
            self.run.local_node if step.is_local else self.run.nodes[state.host],
            prepare=functools.partial(self._prepare, state),
            hold=functools.partial(self._hold, state),
            finished=functools.partial(self._finished, state),
            critical=False,  # failures are outcomes here, never scheduler aborts
            stop_at_failure=True,  # a task stops at its first failing action
            retries=step.retries,
            time_limit=step.timeout,
            detach_after=START_GRACE if step.background else None,
            step=step.id,
            label=state.key,
            required=required,
        )

    async def _prepare(self, state: TaskState, job: Any) -> list[Any] | None:
        """When the task's job starts: whether it runs, and its commands, rendered now."""
        CURRENT_TASK.set(state)  # the job's own task: its lines are this task's
        task = state.task
        self.run.step_started(task.instance)
        refusal = self.run.progress.gate(task, self.run.abort_reason)
        if refusal is not None:
            self.finish(state, refusal[0], error=refusal[1])
            return None
        try:
            commands, state.digest = self._commands(task)
        except ApsshError as exc:
            self.finish(state, FAILED, error=str(exc))
            return None
        done_before = self.run.previous.get(task.key) == (OK, state.digest)
        if done_before and not self.run.progress.upstream_ran(task):
            state.resumed = True
            self.finish(state, OK, error=None)
            return None
        state.ran = True
        state.status = RUNNING
        self.running[id(state)] = (state, job)
        if task.step.background:
            self.backgrounds.add(id(task.instance), job, functools.partial(_stopping, state))
        return commands

    @contextlib.asynccontextmanager
    async def _hold(self, state: TaskState, job: Any) -> AsyncIterator[None]:
        """The recipe's window, the step's, and the connection's budget; then it starts."""
        step = state.task.step
        named: list[tuple[Any, int]] = []
        if not step.background:  # it holds its channel until stopped: outside the windows
            named.append(("recipe", self.run.window))
            if step.window is not None:
                named.append((("step", state.task.instance.key), step.window))
        node = None if step.is_local or step.background else job.node
        async with self.windows.hold(named, node, job.commands):
            state.started = time.monotonic()
            self.run.log.emit("task_start", **task_fields(state))
            yield

    def _finished(self, state: TaskState, job: Any) -> None:
        """The task's job ended, however: its status from the engine's outcome."""
        self.running.pop(id(state), None)
        if state.status in FINAL:  # decided in _prepare
            return
        outcome = job.outcome
        if outcome.status in (Status.INTERRUPTED, Status.SKIPPED):
            if state.stopping:  # a background task stopped as planned
                self.finish(state, OK, error=None, note="stopped")
            else:
                self.finish(state, CANCELLED, error=self.run.abort_reason or "cancelled")
            return
        error = outcome.error
        if "time_limit" in outcome.extra:  # the whole task's, not a command's
            error = f"step timeout ({job.time_limit:g}s)"
        state.exit_status = outcome.rc
        status = task_status(outcome.status)
        self.finish(state, status, error=error if status != OK else None)

    def _commands(self, task: Task) -> tuple[list[Any], str]:
        """The task's commands, deferred references rendered now; and their digest."""
        references = References(self.run.plan, self.run.captures, self.run.progress.status_of)
        return build_commands(task, references.renderer(task), self.run.plan.run_dir)

    def finish(
        self, state: TaskState, status: str, *, error: str | None = None, note: str | None = None
    ) -> None:
        if state.status in FINAL:
            return
        state.status = status
        state.error = error
        if state.started is not None:
            state.duration = time.monotonic() - state.started
        task = state.task
        if status == OK and task.step.capture is not None and not state.resumed:
            self._capture(state)
        fields = task_fields(state)
        self.run.log.emit(
            "task_end",
            **fields,
            status=status,
            exit_status=state.exit_status,
            duration=round(state.duration, 6),
            error=error,
            digest=state.digest or None,
            resumed=state.resumed,
            note=note,
        )

    def _capture(self, state: TaskState) -> None:
        task = state.task
        name = task.step.capture
        assert name is not None
        value = state.captured.text().removesuffix("\n")
        truncated = state.captured.full
        if truncated:
            self.run.formatter.echo(
                f"-- {task.key}: capture {name} truncated at {CAPTURE_LIMIT} bytes", True
            )
        self.run.captures.setdefault((name, combo_of(task.instance)), {})[task.host] = value
        self.run.log.emit(
            "capture",
            step=task.step.id,
            combo=combo_of(task.instance),
            host=task.host,
            name=name,
            value=value,
            truncated=truncated,
        )
        write_json(self.run.plan.run_dir / CAPTURES, captures_as_json(self.run.captures))


def _stopping(state: TaskState) -> None:
    state.stopping = True  # its stop is its planned end: ok, "stopped"
