"""The run directory: journal.jsonl (every event), captures.json, summary.json, pulled files.

Events are JSON objects ``{"v": 1, "ts": ..., "event": ...}`` plus fields of their
own (docs/recipes.md lists them); fields are only ever added. The journal of a run
directory is what ``--resume`` reads: the last ``task_end`` of each task says
whether it ended ok, and with which rendered action (its digest).

A run directory serves one run at a time: a new one is created exclusively
(:func:`create_run_dir`), and a run holds :class:`RunDirLock` on it while it runs.
Directories made here are private (0700), and so are the files written (0600):
they hold what hosts printed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import IO, Any

from apssh_cli.recipe.model import RecipeError

EVENTS_VERSION = 1
JOURNAL = "journal.jsonl"
CAPTURES = "captures.json"
SUMMARY = "summary.json"
LOCK = ".lock"
DIR_MODE = 0o700
FILE_MODE = 0o600


class EventLog:
    """Writes each event to the journal and, optionally, to an events stream.

    Args:
        journal: the journal file (appended to; None: no journal).
        stream: where ``--events`` go (a file or stdout), or None.
        listener: also called with each event (tests, library users).
        mask: applied to each event before it is written (inventory secrets).
    """

    def __init__(
        self,
        journal: Path | None = None,
        stream: IO[str] | None = None,
        listener: Callable[[dict[str, Any]], None] | None = None,
        mask: Callable[[Any], Any] | None = None,
    ) -> None:
        self._journal: IO[str] | None = None
        if journal is not None:
            journal.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
            fd = os.open(journal, os.O_RDWR | os.O_APPEND | os.O_CREAT, FILE_MODE)
            os.fchmod(fd, FILE_MODE)  # an older journal too
            self._journal = os.fdopen(fd, "a", encoding="utf-8")
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                self._journal.write("\n")  # a line cut by a crash: the next event starts afresh
        self._stream = stream
        self._listener = listener
        self._mask = mask

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        """Write one event; return it."""
        record = {"v": EVENTS_VERSION, "ts": round(time.time(), 6), "event": event, **fields}
        if self._mask is not None:
            record = self._mask(record)
        line = json.dumps(record, default=str) + "\n"
        for out in (self._journal, self._stream):
            if out is not None:
                try:
                    out.write(line)
                    out.flush()
                except (OSError, ValueError):
                    pass  # a closed --events pipe must not stop the run
        if self._listener is not None:
            self._listener(record)
        return record

    def close(self) -> None:
        """Close the journal (the events stream belongs to the caller)."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None


def write_json(path: Path, data: Any) -> None:
    """Write JSON under a temporary name, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(partial, path)


def read_previous(
    run_dir: Path,
) -> tuple[dict[str, tuple[str, str]], dict[str, Any], list[int]]:
    """What an earlier run in ``run_dir`` did: task key -> (status, digest), its captures,
    and the numbers of the journal's lines that could not be read (a crash cut them, or
    they are not UTF-8 or JSON): those are left out.

    Raises:
        RecipeError: the directory has no readable journal.
    """
    journal = run_dir / JOURNAL
    try:
        data = journal.read_bytes()
    except OSError as exc:
        raise RecipeError(
            f"cannot resume: no journal in {run_dir} ({exc.strerror or exc})"
        ) from None
    tasks: dict[str, tuple[str, str]] = {}
    unreadable: list[int] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError is one
            unreadable.append(number)
            continue
        if isinstance(record, dict) and record.get("event") == "task_end":
            key = record.get("task")
            if isinstance(key, str):
                tasks[key] = (str(record.get("status")), str(record.get("digest") or ""))
    captures: dict[str, Any] = {}
    try:
        loaded = json.loads((run_dir / CAPTURES).read_text(encoding="utf-8"))
        if isinstance(loaded, dict):
            captures = loaded
    except (OSError, ValueError):
        pass
    return tasks, captures, unreadable


def unreadable_message(journal: Path, lines: list[int]) -> str:
    """One line that says which lines of a journal were left out."""
    shown = ", ".join(str(n) for n in lines[:10]) + (", ..." if len(lines) > 10 else "")
    which = f"line {shown}" if len(lines) == 1 else f"{len(lines)} lines ({shown})"
    return f"{journal}: {which} cannot be read (cut by a crash, or not UTF-8 JSON): left out"


def free_run_id(runs_dir: Path, base: str, taken: Collection[str] = ()) -> str:
    """``base``, else ``base-2``, ``base-3``...: the first with no directory yet."""
    number = 1
    while True:
        name = base if number == 1 else f"{base}-{number}"
        if name not in taken and not (runs_dir / name).exists():
            return name
        number += 1


def create_run_dir(path: Path) -> bool:
    """Create a run directory (0700) exclusively: False when it exists already.

    Raises:
        RecipeError: it cannot be created.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(path, DIR_MODE)
    except FileExistsError:
        return False
    except OSError as exc:
        raise RecipeError(f"run directory {path}: {exc.strerror or exc}") from None
    return True


class RunDirLock:
    """The lock a run holds on its run directory (``.lock``, flock: a crash frees it).

    Raises:
        RecipeError: another run holds it (the message names that run), or the
            directory cannot be made or written.
    """

    def __init__(self, run_dir: Path) -> None:
        try:
            run_dir.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
            fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as exc:
            raise RecipeError(f"run directory {run_dir}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another run"
            os.close(fd)
            raise RecipeError(
                f"run directory {run_dir} is in use by {holder}: a run directory serves "
                "one run at a time (wait for it, or give another --run-dir)"
            ) from None
        os.ftruncate(fd, 0)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n".encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        """Let another run use the directory."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


def last_run(runs_dir: Path) -> Path:
    """The most recent run directory under ``runs_dir`` (names sort by time).

    Raises:
        RecipeError: there is none.
    """
    try:
        runs = sorted((p for p in runs_dir.iterdir() if (p / JOURNAL).is_file()), key=_run_order)
    except OSError:
        runs = []
    if not runs:
        raise RecipeError(f"cannot resume: no earlier run in {runs_dir}")
    return runs[-1]


def _run_order(path: Path) -> tuple[str, int]:
    """Run ids sort by time, then by the number that makes them unique (``-2`` < ``-10``)."""
    base, _, number = path.name.rpartition("-")
    return (base, int(number)) if base and number.isdigit() and len(number) < 6 else (path.name, 1)


def captures_as_json(captures: Mapping[tuple[str, str], Mapping[str, str]]) -> dict[str, Any]:
    """``{name: {combo: {host: value}}}`` (combo ``""`` without a matrix)."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for (name, combo), values in captures.items():
        out.setdefault(name, {})[combo] = dict(values)
    return out
