"""Where the output of a recipe's tasks goes: the terminal (``step host: line``) and the journal.

The terminal gets remote text escaped (:func:`apssh_cli.output.escape_text`, off with
``raw_output``: ``apssh recipe run --raw-output``), long lines cut and marked; the
journal keeps the exact text (JSON escapes it), with ``cut`` on the pieces of a long
line; captures get the pieces joined again.
"""

from __future__ import annotations

import sys
from contextvars import ContextVar
from typing import IO, Any, Protocol

from apssh_cli.output import (
    CUT_MARK,
    STDERR,
    Formatter,
    OutputEvent,
    escape_text,
    printable_text,
)
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
        raw_output: bool = False,
    ) -> None:
        self._run = run
        self._stdout = stdout
        self._stderr = stderr
        self.quiet = quiet
        self.escape = not raw_output
        # tasks whose last captured stdout piece was cut: the next piece goes on that line
        self._open_lines: set[int] = set()

    def output(self, event: OutputEvent) -> None:
        state = CURRENT_TASK.get()
        label = self._run.label_of(state) if state is not None else (event.step or "-")
        if state is not None and event.stream != STDERR and state.task.step.capture:
            self._capture(state, event)
        self._run.log.emit(
            "output",
            step=state.task.step.id if state else event.step,
            combo=state.task.instance.combo.slug if state and state.task.instance.combo else "",
            host=event.host,
            stream=event.stream,
            line=event.line,
            **({"cut": True} if event.cut else {}),
        )
        if not self.quiet:  # captures keep the real line; people see secrets masked
            line = self._run.secrets.text(event.line)
            text = escape_text(line) if self.escape else printable_text(line)
            if event.cut:
                text += CUT_MARK
            self.echo(f"{label} {event.host}: {text}", event.stream == STDERR)

    def _capture(self, state: TaskState, event: OutputEvent) -> None:
        # captures go into later commands: text any UTF-8 encoder takes
        text = printable_text(event.line)
        continued = id(state) in self._open_lines
        state.stdout_size += len(text.encode()) + (0 if continued else 1)
        if state.stdout_size > CAPTURE_LIMIT:
            state.truncated = True
        elif continued:
            state.stdout[-1] += text
        else:
            state.stdout.append(text)
        if event.cut:
            self._open_lines.add(id(state))
        else:
            self._open_lines.discard(id(state))

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
            self.echo(f"-- {host}: {escape_text(str(error))}", True)
