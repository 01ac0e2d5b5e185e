"""The end of a run for a person: per step instance, the hosts in each state, folded.

Errors may quote remote output (a command's stderr): they are shown escaped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from apssh_cli.inventory.hostrange import fold
from apssh_cli.output import escape_text
from apssh_cli.recipe.state import BAD, CANCELLED, OK, RUNNING, SKIPPED

MAX_ERRORS = 20


def summary_lines(summary: dict[str, Any]) -> Iterator[str]:
    """Lines of a run's summary (``RecipeRun.summary()``): steps, errors, the outcome.

    >>> next(summary_lines({"steps": [{"step": "a", "combo": "", "status": "ok",
    ...     "hosts": {"ok": ["n1", "n2"]}, "resumed": []}], "tasks": [], "recipe": "r",
    ...     "status": "ok", "abort_reason": None, "exit": 0, "duration": 1.0, "run_dir": "d"}))
    'a: ok n[1-2]'
    """
    for entry in summary["steps"]:
        name = entry["step"] + (f"[{entry['combo']}]" if entry["combo"] else "")
        parts = []
        for status in (OK, *BAD, SKIPPED, CANCELLED, RUNNING):
            hosts = entry["hosts"].get(status)
            if hosts:
                resumed = [h for h in hosts if h in entry["resumed"]]
                extra = f" ({fold(resumed)} resumed)" if resumed and status == OK else ""
                parts.append(f"{status} {fold(hosts)}{extra}")
        if not parts:
            parts.append(entry["status"])
        yield f"{name}: " + "; ".join(parts)
    errors = [t for t in summary["tasks"] if t["status"] in BAD and t["error"]]
    for task in errors[:MAX_ERRORS]:
        yield f"  {task['task']}: {escape_text(task['error'])}"
    if len(errors) > MAX_ERRORS:
        yield f"  ... {len(errors) - MAX_ERRORS} more errors in summary.json"
    tail = f"recipe {summary['recipe']}: {summary['status']}"
    if summary["abort_reason"]:
        tail += f" ({escape_text(summary['abort_reason'])})"
    tail += f", exit {summary['exit']}, {summary['duration']:.1f}s"
    yield f"{tail}; run dir {summary['run_dir']}"
