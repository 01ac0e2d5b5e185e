"""Test-only lab code: who owns a test topology, and sweeping those whose owner is gone.

A test topology carries the label ``org.apssh-cli.owner=<owner_token()>``; a later
session removes it only once that very process is known to be gone, never one of
another machine or PID namespace (a live session elsewhere on the same engine).
The labs that test_lab.py starts with `apssh lab up` are real labs (kind=lab, no
owner label): their name carries the token instead (``tl-<token>-<hex>``).
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from apssh_cli import lab

_OWNER_TOKEN = re.compile(r"(?P<scope>[0-9a-f]{10})-(?P<pid>[0-9]+)-(?P<start>[0-9]+)")
TEST_LAB_NAME = re.compile(r"tl-(?P<owner>.+)-[0-9a-f]{6}")


def owner_token(pid: int | None = None) -> str:
    """Name a process so that another one can tell, later, whether it is gone.

    The token is ``<scope>-<pid>-<start>``, usable in a label and in a container
    name. ``scope`` hashes the host name, the boot id and the PID namespace: a pid
    means something only there. ``start`` is the process's start time from /proc,
    so that a reused pid is not taken for the owner ("0" where /proc is missing).

    Args:
        pid: the process; this one when None.
    """
    pid = os.getpid() if pid is None else pid
    return f"{_owner_scope()}-{pid}-{_start_time(pid)}"


def owner_labels() -> dict[str, str]:
    """The labels that name this process as a test topology's owner."""
    return {lab.LABEL_OWNER: owner_token()}


def is_owner_gone(token: str) -> bool:
    """Whether the process named by owner_token is known to be gone.

    False when unsure: a token of another scope (machine, boot or PID
    namespace), or one this module did not write (an older format).
    """
    match = _OWNER_TOKEN.fullmatch(token)
    if match is None or match["scope"] != _owner_scope():
        return False
    pid = int(match["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, as another user
    # alive: the owner itself, unless the pid now names a younger process
    return match["start"] != "0" and _start_time(pid) not in ("0", match["start"])


def sweep_orphans(client: Any) -> list[str]:
    """Remove the test topologies whose owner process is known to be gone (is_owner_gone).

    Returns:
        The names of the topologies removed.
    """
    labs = lab.list_labs("test", client)
    orphans = sorted(
        name for name, labels in labs.items() if is_owner_gone(labels.get(lab.LABEL_OWNER, ""))
    )
    for name in orphans:
        lab.remove_topology(name, client)
    return orphans


def sweep_orphan_test_labs(client: Any) -> list[str]:
    """Remove the labs test_lab.py started whose test process died before its clean-up.

    Returns:
        The names of the labs removed.
    """
    removed = []
    for name in lab.list_labs("lab", client):
        match = TEST_LAB_NAME.fullmatch(name)
        if match and is_owner_gone(match["owner"]):
            lab.remove_topology(name, client)
            removed.append(name)
    return removed


def _owner_scope() -> str:
    boot_id = _read_or_empty(lambda: Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    pid_namespace = _read_or_empty(lambda: os.readlink("/proc/self/ns/pid"))
    scope = "\0".join([socket.gethostname(), boot_id, pid_namespace])
    return hashlib.sha1(scope.encode()).hexdigest()[:10]


def _read_or_empty(read: Callable[[], str]) -> str:
    try:
        return read()
    except OSError:  # no /proc: not Linux
        return ""


def _start_time(pid: int) -> str:
    # field 22 of /proc/PID/stat; the command name (field 2) may hold spaces and ")"
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "0"
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 and fields[19].isdigit() else "0"
