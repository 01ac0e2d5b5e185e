"""Waiting for a local process to die, for tests that kill a process tree."""

from __future__ import annotations

import os
import time

GUARD_TURNS = 6000  # a guard against a hang (a minute), not a timing assertion


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, counts as dead)."""
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[1][0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


def dies(pid: int) -> bool:
    """Whether ``pid`` dies: a signalled process takes a moment to go (guarded, not timed)."""
    for _ in range(GUARD_TURNS):
        if not alive(pid):
            return True
        time.sleep(0.01)
    return False
