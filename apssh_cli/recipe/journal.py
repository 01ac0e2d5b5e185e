"""The run directory: journal.jsonl (every event), captures.json, summary.json, pulled files.

Events are JSON objects ``{"v": 1, "ts": ..., "event": ...}`` plus fields of their
own (RECIPES.md lists them); fields are only ever added. The journal of a run
directory is what ``--resume`` reads: the last ``task_end`` of each task says
whether it ended ok, and with which rendered action (its digest).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from apssh_cli.recipe.model import RecipeError

EVENTS_VERSION = 1
JOURNAL = "journal.jsonl"
CAPTURES = "captures.json"
SUMMARY = "summary.json"


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
            journal.parent.mkdir(parents=True, exist_ok=True)
            self._journal = journal.open("a", encoding="utf-8")
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
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(partial, path)


def read_previous(run_dir: Path) -> tuple[dict[str, tuple[str, str]], dict[str, Any]]:
    """What an earlier run in ``run_dir`` did: task key -> (status, digest), and its captures.

    Raises:
        RecipeError: the directory has no readable journal.
    """
    journal = run_dir / JOURNAL
    try:
        text = journal.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipeError(
            f"cannot resume: no journal in {run_dir} ({exc.strerror or exc})"
        ) from None
    tasks: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash
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
    return tasks, captures


def last_run(runs_dir: Path) -> Path:
    """The most recent run directory under ``runs_dir`` (names sort by time).

    Raises:
        RecipeError: there is none.
    """
    try:
        runs = sorted(p for p in runs_dir.iterdir() if (p / JOURNAL).is_file())
    except OSError:
        runs = []
    if not runs:
        raise RecipeError(f"cannot resume: no earlier run in {runs_dir}")
    return runs[-1]


def captures_as_json(captures: Mapping[tuple[str, str], Mapping[str, str]]) -> dict[str, Any]:
    """``{name: {combo: {host: value}}}`` (combo ``""`` without a matrix)."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for (name, combo), values in captures.items():
        out.setdefault(name, {})[combo] = dict(values)
    return out
