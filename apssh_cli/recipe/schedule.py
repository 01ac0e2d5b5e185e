"""The recipe's DAG as jobs: one per task, a *join* per step instance, an *end* per combination.

A join settles a step instance (its ``required=`` are the instance's tasks); a task
requires the joins of its required steps (``sync = "all"``), or the same host's task
there (``sync = "host"``); the end of a combination orders the sweep (a combination's
instances require the previous combination's end).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apssh_cli.recipe.planner import Instance, Plan, Task

__all__ = ["build_jobs"]


def build_jobs(
    plan: Plan,
    task_job: Callable[[Task, list[Any]], Any],
    join: Callable[[Instance, list[Any]], Any],
    combo_end: Callable[[int, str, list[Any]], Any],
) -> list[Any]:
    """The jobs of ``plan``, made by the three factories (given what each requires).

    ``combo_end(index, slug, required)``'s job must accept more requirements later
    (``job.requires(other)``, as asynciojobs' jobs do).
    """
    jobs: list[Any] = []
    joins: dict[int, Any] = {}
    task_jobs: dict[int, dict[str, Any]] = {}
    combo_ends: dict[int, Any] = {}
    for inst in plan.instances:
        prev_end = None
        if inst.combo is not None and inst.combo.index > 0:
            prev_end = combo_ends.get(inst.combo.index - 1)
        after_prev = [prev_end] if prev_end is not None else []
        mine = []
        for task in inst.tasks if inst.runs else []:
            required = []
            for req in inst.requires:
                same = task_jobs.get(id(req), {}).get(task.host)
                use_same = inst.step.sync == "host" and same is not None
                required.append(same if use_same else joins[id(req)])
            job = task_job(task, [*required, *after_prev])
            mine.append(job)
            task_jobs.setdefault(id(inst), {})[task.host] = job
        joins[id(inst)] = join(
            inst, [*mine, *(joins[id(req)] for req in inst.requires), *after_prev]
        )
        jobs.extend(mine)
        jobs.append(joins[id(inst)])
        if inst.combo is not None and inst.step.id in plan.repeating:
            index = inst.combo.index
            end = combo_ends.get(index)
            if end is None:
                end = combo_ends[index] = combo_end(index, inst.combo.slug, after_prev)
                jobs.append(end)
            end.requires(joins[id(inst)])
    return jobs
