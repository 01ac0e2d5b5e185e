"""Per-host outcome of a run: what the CLI summarises and scripts read as JSON."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


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
