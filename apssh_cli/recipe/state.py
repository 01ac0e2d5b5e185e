"""What a run knows about each task: its state, and the statuses and exit codes of recipes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from apssh_cli.output import BoundedText
from apssh_cli.recipe.model import CAPTURE_LIMIT
from apssh_cli.recipe.planner import Task
from apssh_cli.results import ExitCode, Status, exit_code

# task states
OK, FAILED, TIMEOUT, UNREACHABLE = "ok", "failed", "timeout", "unreachable"
SKIPPED, CANCELLED, PENDING, RUNNING = "skipped", "cancelled", "pending", "running"
# the host refused us: never retried (the same key, the same host key would be refused again)
AUTH_REFUSED, HOSTKEY_REFUSED = "auth-refused", "hostkey-refused"
REFUSED = (AUTH_REFUSED, HOSTKEY_REFUSED)
BAD = (FAILED, TIMEOUT, UNREACHABLE, *REFUSED)
FINAL = (OK, *BAD, SKIPPED, CANCELLED)

# exit statuses (docs/recipes.md): the project's one table (apssh_cli.results), the most
# severe wins; skipped and cancelled tasks count for nothing (their cause is counted)
EXIT_OK = int(ExitCode.OK)
EXIT_BAD_INPUT = int(ExitCode.USAGE)  # raised as RecipeError: the command line turns it into 1
EXIT_FAILED = int(ExitCode.REMOTE_FAILED)
EXIT_TIMEOUT = int(ExitCode.TIMEOUT)
EXIT_UNREACHABLE = int(ExitCode.UNREACHABLE)
EXIT_ABORTED = int(ExitCode.RECIPE_ABORTED)
EXIT_INTERRUPTED = int(ExitCode.INTERRUPTED)

# how the engine's outcome of a task's job reads as a task state
_FROM_OUTCOME = {Status.INTERRUPTED: CANCELLED, Status.SKIPPED: CANCELLED}


def task_status(status: Status) -> str:
    """A task's state from its job's outcome (the same words, but cancelled).

    >>> task_status(Status.TIMEOUT), task_status(Status.INTERRUPTED)
    ('timeout', 'cancelled')
    """
    return _FROM_OUTCOME.get(status, status.value)


def recipe_exit(statuses: Iterable[str]) -> int:
    """The exit status of the tasks' states, through the project's table.

    >>> recipe_exit(["ok", "skipped", "failed", "timeout"])
    3
    """
    counted = [Status(s) for s in statuses if s not in (SKIPPED, CANCELLED, PENDING, RUNNING)]
    return int(exit_code(counted))


@dataclass(eq=False)
class TaskState:
    """How one task went (``run.tasks``).

    Attributes:
        task: the planned task.
        status: ok, failed, timeout, unreachable, auth-refused, hostkey-refused,
            skipped, cancelled (pending
            before it ends; running for a background task that has started).
        exit_status: the failing (or last) command's status, when there is one.
        duration: seconds, from its start.
        error: why it did not end ok.
        resumed: ok from an earlier run (``--resume``): not run again.
        digest: the hash of its rendered action, compared on resume.
    """

    task: Task
    status: str = PENDING
    exit_status: int | None = None
    started: float | None = None
    duration: float = 0.0
    error: str | None = None
    resumed: bool = False
    digest: str = ""
    captured: BoundedText = field(default_factory=lambda: BoundedText(CAPTURE_LIMIT))
    stopping: bool = False
    ran: bool = False

    @property
    def key(self) -> str:
        return self.task.key

    @property
    def host(self) -> str:
        return self.task.host
