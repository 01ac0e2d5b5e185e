"""Where the output of a recipe's tasks goes: the terminal (``step host: line``) and the journal."""

from __future__ import annotations

import sys
from contextvars import ContextVar
from typing import IO, Any, Protocol

from apssh_cli.output import STDERR, Formatter, OutputEvent
from apssh_cli.recipe.model import CAPTURE_LIMIT
from apssh_cli.recipe.state import TaskState

# the task whose commands are running: set by the task's job for its own asyncio task,
# read where a line is emitted (each task sees its own value)
CURRENT_TASK: ContextVar[TaskState | None] = ContextVar("apssh_recipe_task", default=None)


class RunLike(Protocol):
    """What the sink needs from the run."""

    @property
    def log(self) -> Any: ...

    def label_of(self, state: TaskState) -> str: ...

    @property
    def secrets(self) -> Any: ...  # an inventory.secrets.SecretMask


class RecipeFormatter(Formatter):
    """Prints ``step host: line`` and journals every line with its step and host.

    The task a line belongs to comes from a context variable set by its job, so a
    matrix combination is told apart too (``step[combo]``).
    """

    def __init__(
        self,
        run: RunLike,
        *,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        quiet: bool = False,
    ) -> None:
        self._run = run
        self._stdout = stdout
        self._stderr = stderr
        self.quiet = quiet

    def output(self, event: OutputEvent) -> None:
        state = CURRENT_TASK.get()
        label = self._run.label_of(state) if state is not None else (event.step or "-")
        if state is not None and event.stream != STDERR and state.task.step.capture:
            state.stdout_size += len(event.line.encode()) + 1
            if state.stdout_size <= CAPTURE_LIMIT:
                state.stdout.append(event.line)
            else:
                state.truncated = True
        self._run.log.emit(
            "output",
            step=state.task.step.id if state else event.step,
            combo=state.task.instance.combo.slug if state and state.task.instance.combo else "",
            host=event.host,
            stream=event.stream,
            line=event.line,
        )
        if not self.quiet:  # captures keep the real line; people see secrets masked
            line = self._run.secrets.text(event.line)
            self.echo(f"{label} {event.host}: {line}", event.stream == STDERR)

    def echo(self, text: str, to_stderr: bool = False) -> None:
        """A line for the person watching."""
        out = (self._stderr or sys.stderr) if to_stderr else (self._stdout or sys.stdout)
        try:
            out.write(text + "\n")
            out.flush()
        except (OSError, ValueError):
            pass

    def connect_failed(self, host: str, error: Exception) -> None:
        if not self.quiet:
            self.echo(f"-- {host}: {error}", True)
