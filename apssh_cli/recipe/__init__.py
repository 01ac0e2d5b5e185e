"""Recipes: an experiment written in TOML, run as SshJobs in one Scheduler.

A recipe file becomes a validated :class:`~apssh_cli.recipe.model.Recipe`
(:func:`load_recipe`; every problem is one :class:`RecipeError` naming the file,
the step and the line), then a :class:`~apssh_cli.recipe.planner.Plan` against an
inventory (:func:`make_plan`: hosts, matrix combinations, rendered commands; it
never connects), then a :class:`~apssh_cli.recipe.runner.RecipeRun` on the fleet engine: one node
per host and per gateway (``FleetNodes``), one Scheduler of SshJobs, a run directory
with the journal, the captures, the pulled files and a summary.

Modules: ``model`` (the values), ``loader`` and ``checks`` (file -> Recipe, or one
error), ``template``, ``planner`` (Recipe + inventory -> Plan), ``runner`` (Plan ->
Scheduler -> outcome, on the engine) with ``schedule`` (the DAG as jobs), ``tasks``
(one task as one SshJob with hooks; loaded when a run starts), ``progress`` (the DAG's
state), ``references`` (deferred references), ``state``, ``sink`` (output lines),
``actions`` (commands and digests), ``journal`` (the run directory), ``summary`` and
``report``; ``preflight`` (a run's
options against its plan, before anything connects); ``graph`` (mermaid, dot).

May import: the inventory package, errors, results, output, commands; the ssh and
engine packages only lazily, when a run starts (``plan`` and ``check`` never load
asyncssh). Never imports ``apssh_cli.cli``.

::

    recipe = load_recipe("recipes/sweep.toml")
    plan = make_plan(recipe, Inventory.load(["lab.toml"]))
    run = RecipeRun(plan)
    scheduler = run.scheduler      # the SshJobs, to inspect or export
    summary = await run.co_run()   # or run.run() outside an event loop
    [t.status for t in run.tasks]
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from apssh_cli.recipe.loader import load_recipe as load_recipe
    from apssh_cli.recipe.model import Recipe as Recipe, RecipeError as RecipeError
    from apssh_cli.recipe.planner import (
        Plan as Plan,
        Selection as Selection,
        make_plan as make_plan,
    )
    from apssh_cli.recipe.runner import RecipeRun as RecipeRun, TaskState as TaskState

_LAZY = {
    "load_recipe": "apssh_cli.recipe.loader",
    "Recipe": "apssh_cli.recipe.model",
    "RecipeError": "apssh_cli.recipe.model",
    "Plan": "apssh_cli.recipe.planner",
    "Selection": "apssh_cli.recipe.planner",
    "make_plan": "apssh_cli.recipe.planner",
    "RecipeRun": "apssh_cli.recipe.runner",
    "TaskState": "apssh_cli.recipe.runner",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'apssh_cli.recipe' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
