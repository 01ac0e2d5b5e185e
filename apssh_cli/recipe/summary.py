"""A recipe run as data: what summary.json holds and ``--json`` prints.

Inventory secrets that a template put in a command stay out of it (masked).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from apssh_cli.recipe.references import combo_of
from apssh_cli.recipe.state import EXIT_OK, FAILED, OK, TaskState

if TYPE_CHECKING:
    from apssh_cli.recipe.runner import RecipeRun

__all__ = ["run_summary", "task_fields"]


def task_fields(state: TaskState) -> dict[str, Any]:
    """What names a task in events and the summary."""
    task = state.task
    combo = combo_of(task.instance)
    return {"task": task.key, "step": task.step.id, "combo": combo, "host": task.host}


def run_summary(run: RecipeRun) -> dict[str, Any]:
    """The run as data: its status, exit status, counts, steps, combinations and tasks."""
    counts: dict[str, int] = {}
    for state in run.tasks:
        counts[state.status] = counts.get(state.status, 0) + 1
    steps = []
    for inst in run.plan.instances:
        inst_state = run.progress.instance_state(inst)
        hosts: dict[str, list[str]] = {}
        for state in run.progress.states(inst):
            hosts.setdefault(state.status, []).append(state.host)
        steps.append(
            {
                "step": inst.step.id,
                "combo": combo_of(inst),
                "status": inst_state.status,
                "hosts": hosts,
                "resumed": [s.host for s in run.progress.states(inst) if s.resumed],
            }
        )
    if run.exit_status == EXIT_OK:
        status = "ok"
    elif run.cancelled:
        status = "cancelled"
    else:
        status = "aborted" if run.abort_reason is not None else "failed"
    combos: dict[str, str] = {}
    if run.plan.recipe.matrix:
        for inst in run.plan.instances:
            if inst.combo is not None and inst.step.id in run.plan.repeating:
                failed = run.progress.instance_state(inst).failed
                previous = combos.get(inst.combo.slug, OK)
                combos[inst.combo.slug] = FAILED if failed or previous == FAILED else OK
    summary = {
        "v": 1,
        "recipe": run.plan.recipe.name,
        "run_id": run.plan.run_id,
        "run_dir": str(run.plan.run_dir),
        "status": status,
        "exit": run.exit_status,
        "abort_reason": run.abort_reason,
        "duration": round((run.finished or time.monotonic()) - run.started, 3)
        if run.started
        else 0.0,
        "counts": counts,
        "combos": combos,
        "steps": steps,
        "tasks": [
            {
                **task_fields(state),
                "status": state.status,
                "exit_status": state.exit_status,
                "duration": round(state.duration, 6),
                "error": state.error,
                "resumed": state.resumed,
            }
            for state in run.tasks
        ],
    }
    return dict(run.secrets.data(summary))
