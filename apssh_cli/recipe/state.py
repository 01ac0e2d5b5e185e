"""What a run knows about each task: its state, and the statuses and exit codes of recipes."""

from __future__ import annotations

from dataclasses import dataclass, field

from apssh_cli.recipe.planner import Task

# task states
OK, FAILED, TIMEOUT, UNREACHABLE = "ok", "failed", "timeout", "unreachable"
SKIPPED, CANCELLED, PENDING, RUNNING = "skipped", "cancelled", "pending", "running"
# the host refused us: never retried (the same key, the same host key would be refused again)
AUTH_REFUSED, HOSTKEY_REFUSED = "auth-refused", "hostkey-refused"
REFUSED = (AUTH_REFUSED, HOSTKEY_REFUSED)
BAD = (FAILED, TIMEOUT, UNREACHABLE, *REFUSED)
FINAL = (OK, *BAD, SKIPPED, CANCELLED)

# exit statuses (docs/recipes.md): the most severe wins
EXIT_OK = 0
EXIT_BAD_INPUT = 1  # raised as RecipeError: the command line turns it into 1
EXIT_FAILED = 2
EXIT_TIMEOUT = 3
EXIT_UNREACHABLE = 4
EXIT_ABORTED = 5
EXIT_INTERRUPTED = 130


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
    stdout: list[str] = field(default_factory=list)
    stdout_size: int = 0
    truncated: bool = False
    stopping: bool = False
    ran: bool = False

    @property
    def key(self) -> str:
        return self.task.key

    @property
    def host(self) -> str:
        return self.task.host
