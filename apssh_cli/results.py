"""Per-host outcome of a run, and the exit statuses of the whole project (one table).

:class:`ExitCode` and :data:`STATUS_EXIT` are the only place where a status gets its
exit code and its severity: ``apssh run/push/pull`` (:func:`exit_code` over the hosts'
results) and ``apssh recipe run`` (over its tasks) both read them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field


class ExitCode(enum.IntEnum):
    """What a run returns; when several apply, the most severe (highest) wins, 130 aside."""

    OK = 0  # every host succeeded
    USAGE = 1  # usage, inventory or local error: nothing was run
    REMOTE_FAILED = 2  # some host returned non-zero
    TIMEOUT = 3  # some host timed out
    UNREACHABLE = 4  # some host unreachable, or refused (auth, host key)
    RECIPE_ABORTED = 5  # a recipe run only: a critical step failed, or the recipe's timeout
    INTERRUPTED = 130  # Ctrl-C (128 + N after signal N)
    BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of our output went away (`apssh ... | head`)


class Status(enum.StrEnum):
    """How a host's work ended. The order of severity drives the CLI's exit status."""

    OK = "ok"
    FAILED = "failed"  # a command exited non-zero (not allowed)
    TIMEOUT = "timeout"  # a command ran past its timeout and was terminated
    UNREACHABLE = "unreachable"  # refused, no route, unknown name, connect timeout, gateway
    AUTH_REFUSED = "auth-refused"  # no key accepted
    HOSTKEY_REFUSED = "hostkey-refused"  # unknown (strict) or changed host key
    INTERRUPTED = "interrupted"  # cancelled (Ctrl-C) before it finished
    SKIPPED = "skipped"  # never started (Ctrl-C, or a critical failure elsewhere)


@dataclass
class HostResult:
    """The record of one host's work: status, return code, duration, error message.

    ``stdout``/``stderr`` are filled only when output is captured (CaptureFormatter,
    the CLI's --json, --gather and --out-dir modes).
    """

    host: str
    status: Status = Status.SKIPPED
    rc: int | None = None
    duration: float = 0.0
    error: str | None = None
    stdout: str = ""
    stderr: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def is_ok(self) -> bool:
        return self.status is Status.OK


@dataclass(frozen=True)
class CommandResult:
    """How one command ended on one node: its return code and the tail of its stderr.

    ``rc`` is negative (-N) when the process was killed by signal N; a transfer
    that failed reports 1 with the reason in ``stderr_tail``.
    """

    command: str
    rc: int
    stderr_tail: str = ""


# severity of each status, for the exit status: the most severe present wins
STATUS_EXIT: dict[Status, ExitCode] = {
    Status.OK: ExitCode.OK,
    Status.FAILED: ExitCode.REMOTE_FAILED,
    Status.SKIPPED: ExitCode.REMOTE_FAILED,
    Status.INTERRUPTED: ExitCode.REMOTE_FAILED,
    Status.TIMEOUT: ExitCode.TIMEOUT,
    Status.UNREACHABLE: ExitCode.UNREACHABLE,
    Status.AUTH_REFUSED: ExitCode.UNREACHABLE,
    Status.HOSTKEY_REFUSED: ExitCode.UNREACHABLE,
}


def exit_code(statuses: Iterable[Status], *, interrupted: bool = False) -> ExitCode:
    """The exit status of a run: 130 after Ctrl-C, else the most severe status present.

    >>> exit_code([Status.OK, Status.TIMEOUT, Status.FAILED]).value
    3
    """
    if interrupted:
        return ExitCode.INTERRUPTED
    return max((STATUS_EXIT[status] for status in statuses), default=ExitCode.OK)
