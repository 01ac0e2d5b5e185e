"""A recipe against an inventory: step instances, tasks and their rendered actions.

:func:`make_plan` resolves every step's hosts, expands the matrix, applies the
selection (``-g``, ``--from``, ``--only``, ``--var``) and renders every template
it can: what is left are the deferred references (captures, ``{ok.X}``), rendered
when the task starts. Nothing connects and asyncssh is not imported: ``apssh recipe
plan`` and ``check`` use this module alone.

Vocabulary: a *step instance* is a step in one matrix combination (a step that
does not repeat has one instance); a *task* is an instance on one host (or on the
controller, for a local step).
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apssh_cli.errors import ConfigError
from apssh_cli.inventory.hostrange import fold
from apssh_cli.inventory.model import Host, Inventory
from apssh_cli.inventory.secrets import SecretMask
from apssh_cli.inventory.targets import Target, inventory_target
from apssh_cli.recipe.checks import (
    BUILTINS,
    check_templates,
    repeating_steps,
)
from apssh_cli.recipe.journal import create_run_dir, free_run_id
from apssh_cli.recipe.model import DEFAULT_WINDOW, Action, Recipe, RecipeError, Step
from apssh_cli.recipe.template import Field, Parts, TemplateError, parse, render, text_of

LOCAL_HOST = "local"
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


@dataclass(frozen=True)
class Selection:
    """What to run and with which values (the command line's options).

    Args:
        variables: ``--var``: win over everything else.
        pattern: ``-g``: every step is narrowed to these hosts.
        start: ``--from``: this step and its descendants.
        only: ``--only``: these steps alone.
        exclude: ``-x``: these hosts are left out of every step.
    """

    variables: Mapping[str, Any] = field(default_factory=dict)
    pattern: str | None = None
    start: str | None = None
    only: tuple[str, ...] = ()
    exclude: str | None = None


@dataclass(frozen=True)
class Combo:
    """One combination of the matrix (the empty one without a matrix)."""

    index: int
    values: Mapping[str, Any]

    @property
    def slug(self) -> str:
        """``size=100,period=1000``: names the combination (and its directory)."""
        parts = [f"{key}={value}" for key, value in self.values.items()]
        return re.sub(r"[/\\\s]", "_", ",".join(parts))


@dataclass
class RenderedAction:
    """An action with its templates rendered (deferred fields kept).

    Attributes:
        kind: as in the recipe.
        text: run/local: the command; script: its local path; string: its body;
            push: local sources; pull: remote sources.
        args: script and string arguments.
        to: the destination of a transfer.
    """

    kind: str
    text: tuple[Parts, ...]
    args: tuple[Parts, ...] = ()
    to: Parts | None = None

    def describe(self) -> str:
        """One line, deferred references shown as written."""
        texts = " ".join(text_of(part) for part in self.text)
        args = " ".join(text_of(arg) for arg in self.args)
        if self.kind in ("run", "local"):
            return texts
        line = f"{self.kind} {texts}" + (f" {args}" if args else "")
        if self.to is not None:
            line += f" -> {text_of(self.to)}"
        return line


@dataclass(eq=False)
class Task:
    """A step instance on one host."""

    instance: Instance
    host: str
    actions: list[RenderedAction]

    @property
    def step(self) -> Step:
        return self.instance.step

    @property
    def key(self) -> str:
        """``step[@combo]/host``: the task's name in journals and resumes."""
        return f"{self.instance.key}/{self.host}"


@dataclass(eq=False)
class Instance:
    """A step in one combination: its hosts and tasks."""

    step: Step
    combo: Combo | None
    hosts: list[str]
    tasks: list[Task] = field(default_factory=list)
    requires: list[Instance] = field(default_factory=list)
    selected: bool = True
    enabled: bool = True

    @property
    def key(self) -> str:
        """``step`` or ``step@combo``."""
        return self.step.id if self.combo is None else f"{self.step.id}@{self.combo.slug}"

    @property
    def runs(self) -> bool:
        """Whether it has something to do in this run."""
        return self.selected and self.enabled

    def ancestor(self, step_id: str) -> Instance | None:
        """The instance of step ``step_id`` this one requires, directly or not (nearest first)."""
        todo = list(self.requires)
        seen: set[int] = set()
        while todo:
            current = todo.pop(0)
            if current.step.id == step_id:
                return current
            if id(current) not in seen:
                seen.add(id(current))
                todo.extend(current.requires)
        return None


@dataclass
class Plan:
    """A recipe resolved against an inventory: everything but the deferred values.

    Attributes:
        recipe: the recipe.
        inventory: the inventory (None for a local-only recipe).
        selection: the options.
        combos: the matrix combinations (one empty combo without a matrix).
        instances: every step instance, in an order that respects requires.
        run_id: the run's name; run_dir its directory.
    """

    recipe: Recipe
    inventory: Inventory | None
    selection: Selection
    combos: list[Combo]
    instances: list[Instance]
    run_id: str
    run_dir: Path
    repeating: set[str]
    fresh: bool = False  # the run id was chosen here: a new directory, made exclusively
    claimed: bool = False  # make_plan(claim=True) created it

    @property
    def tasks(self) -> list[Task]:
        """Every task of the instances that run."""
        return [task for inst in self.instances if inst.runs for task in inst.tasks]

    @property
    def hosts(self) -> list[str]:
        """Every remote host some task runs on, in inventory order."""
        used = {task.host for task in self.tasks if not task.step.is_local}
        if self.inventory is None:
            return sorted(used)
        return [host.name for host in self.inventory if host.name in used]

    @property
    def targets(self) -> list[Target]:
        """The Target (name and route) of every host in `hosts` (none without an inventory)."""
        inventory = self.inventory
        return [inventory_target(inventory, name) for name in self.hosts] if inventory else []

    def window(self, override: int | None = None) -> int:
        """Hosts at once: ``override`` (the command line's), else the recipe's, else 50."""
        return override or self.recipe.window or DEFAULT_WINDOW

    def instances_of(self, step_id: str) -> list[Instance]:
        """The instances of a step, in combination order."""
        return [inst for inst in self.instances if inst.step.id == step_id]

    def to_json(self) -> dict[str, Any]:
        """The plan as data (``recipe plan --json``)."""
        steps = []
        for step in self.recipe.order():
            instances = self.instances_of(step.id)
            steps.append(
                {
                    "id": step.id,
                    "hosts": step.hosts,
                    "local": step.is_local,
                    "requires": list(step.requires),
                    "sync": step.sync,
                    "critical": step.critical,
                    "always": step.always,
                    "background": step.background,
                    "repeats": step.id in self.repeating,
                    "instances": [
                        {
                            "combo": inst.combo.slug if inst.combo else "",
                            "selected": inst.selected,
                            "enabled": inst.enabled,
                            "hosts": inst.hosts,
                            "tasks": [
                                {
                                    "host": task.host,
                                    "actions": [action.describe() for action in task.actions],
                                }
                                for task in inst.tasks
                            ],
                        }
                        for inst in instances
                    ],
                }
            )
        # a template may have put an inventory secret in a command: masked
        masked = SecretMask.of_inventory(self.inventory).data(
            {
                "v": 1,
                "recipe": self.recipe.name,
                "run_id": self.run_id,
                "run_dir": str(self.run_dir),
                "combos": [combo.slug for combo in self.combos],
                "hosts": self.hosts,
                "tasks": len(self.tasks),
                "steps": steps,
            }
        )
        return dict(masked)

    def text(self) -> str:
        """The plan for a person: steps, hosts (folded), commands per combination."""
        out = [
            f"recipe {self.recipe.name}: {len(self.recipe.steps)} steps, {len(self.tasks)} tasks"
            + (f", {len(self.combos)} combinations" if self.recipe.matrix else "")
            + f", {len(self.hosts)} host{'' if len(self.hosts) == 1 else 's'}"
        ]
        for step in self.recipe.order():
            flags = [f"requires {', '.join(step.requires)}"] if step.requires else []
            flags += [f"sync={step.sync}"] if step.requires and step.sync != "all" else []
            flags += [name for name in ("always", "background", "once") if getattr(step, name)]
            flags += ["non-critical"] if not step.critical else []
            where = "local" if step.is_local else f"hosts {step.hosts}"
            out.append(f"step {step.id}  ({where}{'; ' if flags else ''}{'; '.join(flags)})")
            for inst in self.instances_of(step.id):
                head = f"  [{inst.combo.slug}]" if inst.combo and self.recipe.matrix else "  "
                state = "" if inst.selected else " not selected"
                state += "" if inst.enabled else " disabled"
                hosts = fold(inst.hosts) if inst.hosts else "(no host)"
                out.append(f"{head} {hosts}{state}".rstrip())
                if not inst.runs:
                    continue
                for line, hosts_of in _group_tasks(inst.tasks):
                    out.append(f"      {fold(hosts_of)}: {line}")
        return SecretMask.of_inventory(self.inventory).text("\n".join(out) + "\n")


def _group_tasks(tasks: Sequence[Task]) -> list[tuple[str, list[str]]]:
    """Tasks with the same rendered actions, together (one line for 50 identical hosts)."""
    groups: dict[str, list[str]] = {}
    for task in tasks:
        line = " ; ".join(action.describe() for action in task.actions)
        groups.setdefault(line, []).append(task.host)
    return list(groups.items())


def new_run_id() -> str:
    """A run's name: the local time, sortable (``20261201-213005``)."""
    return time.strftime("%Y%m%d-%H%M%S")


def default_runs_dir(recipe: Recipe) -> Path:
    """``runs/<name>`` next to the recipe file."""
    return recipe.directory / "runs" / recipe.name


def make_plan(
    recipe: Recipe,
    inventory: Inventory | None,
    selection: Selection = Selection(),
    *,
    run_dir: str | Path | None = None,
    run_id: str | None = None,
    claim: bool = False,
) -> Plan:
    """Resolve a recipe against an inventory (never connects).

    Args:
        recipe: a loaded recipe.
        inventory: where the step patterns are looked up (None: local steps only).
        selection: the command line's choices.
        run_dir: the run directory (default ``runs/<name>/<run_id>`` next to the recipe).
        run_id: the run's name (default: the time, or run_dir's name); the default is
            unique: ``-2``, ``-3``... when a directory of that name exists already.
        claim: with the default run directory, create it now, exclusively (a run
            started at the same time gets another id). Without it, the run creates it.

    Raises:
        RecipeError: a pattern that names nothing, an unknown name, a bad
            ``enabled``, an unknown step in --from/--only, a script that is missing.
    """
    if run_dir is not None or run_id is not None:
        if run_dir is not None:
            run_dir = Path(run_dir)
            run_id = run_id or run_dir.name
        assert run_id is not None
        run_dir = Path(run_dir) if run_dir is not None else default_runs_dir(recipe) / run_id
        return _make_plan(recipe, inventory, selection, run_dir.absolute(), run_id)
    runs = default_runs_dir(recipe).absolute()
    base = new_run_id()
    taken: set[str] = set()
    while True:  # planned first: a bad recipe leaves no empty directory behind
        run_id = free_run_id(runs, base, taken)
        plan = _make_plan(recipe, inventory, selection, runs / run_id, run_id)
        plan.fresh = True
        if not claim:
            return plan
        if create_run_dir(plan.run_dir):
            plan.claimed = True
            return plan
        taken.add(run_id)  # another run took it meanwhile


def _make_plan(
    recipe: Recipe, inventory: Inventory | None, selection: Selection, run_dir: Path, run_id: str
) -> Plan:
    variables = dict(selection.variables)
    unresolved = check_templates(recipe, set(variables))
    if unresolved and inventory is None:
        step_id, name = unresolved[0].split(":", 1)
        raise recipe.error(
            f"unknown name {name!r} (no inventory to look it up in)", recipe.step(step_id)
        )
    selected = _selected(recipe, selection)
    narrowed = _narrowing(recipe, inventory, selection.pattern, selection.exclude)
    repeating = repeating_steps(recipe)
    combos = _combos(recipe, variables)
    planner = _Planner(recipe, inventory, variables, run_id, run_dir)
    instances: list[Instance] = []
    by_key: dict[tuple[str, int | None], Instance] = {}
    for step in recipe.order():
        step_combos: list[Combo | None] = list(combos) if step.id in repeating else [None]
        for combo in step_combos:
            hosts = planner.hosts(step, combo, narrowed)
            inst = Instance(step, combo, hosts, selected=step.id in selected)
            inst.enabled = planner.enabled(step, combo)
            inst.requires = _required(step, combo, by_key, repeating, len(combos))
            if inst.selected:
                for host in hosts:
                    inst.tasks.append(
                        Task(
                            inst, host, [planner.action(step, combo, host, a) for a in step.actions]
                        )
                    )
            instances.append(inst)
            by_key[(step.id, combo.index if combo else None)] = inst
    plan = Plan(recipe, inventory, selection, combos, instances, run_id, run_dir, repeating)
    planner.check_references(plan)
    _check_pull_destinations(plan)
    return plan


def _check_pull_destinations(plan: Plan) -> None:
    """A pull never overwrites another host's file: each host needs its own destination."""
    for inst in plan.instances:
        for index, action in enumerate(inst.step.actions):
            if action.kind != "pull" or len(inst.tasks) < 2:
                continue
            destinations = {text_of(task.actions[index].to or ()) for task in inst.tasks}
            if len(destinations) < len(inst.tasks):
                raise plan.recipe.error(
                    f"pull: to = {action.to!r} is the same for several hosts: put {{host}} in "
                    f"it (or leave it out: the default is {{combo_dir}}/{{host}}/)",
                    inst.step,
                    action.line,
                )


def _selected(recipe: Recipe, selection: Selection) -> set[str]:
    ids = {step.id for step in recipe.steps}
    for name in (selection.start, *selection.only):
        if name is not None and name not in ids:
            raise RecipeError(
                f"no step {name!r} (steps: {', '.join(sorted(ids))})", source=recipe.source
            )
    chosen = set(ids)
    if selection.start is not None:
        chosen = {selection.start} | recipe.descendants(selection.start)
    if selection.only:
        chosen &= set(selection.only)
    return chosen


def _narrowing(
    recipe: Recipe, inventory: Inventory | None, pattern: str | None, exclude: str | None = None
) -> set[str] | None:
    if pattern is None and exclude is None:
        return None
    if inventory is None:
        flag = "-g" if pattern is not None else "-x"
        raise RecipeError(f"{flag} needs an inventory (-i FILE)", source=recipe.source)
    try:
        chosen = {host.name for host in inventory.select(pattern or "all")}
    except ConfigError as exc:
        raise RecipeError(f"-g {pattern!r}: {exc.message}", source=recipe.source) from None
    if exclude is None:
        return chosen
    try:  # a -x term that names nothing is an error, as with -g
        return chosen & {host.name for host in inventory.select("all", exclude)}
    except ConfigError as exc:
        raise RecipeError(f"-x {exclude!r}: {exc.message}", source=recipe.source) from None


def _combos(recipe: Recipe, variables: Mapping[str, Any]) -> list[Combo]:
    keys = list(recipe.matrix)
    if not keys:
        return [Combo(0, {})]
    # --var on a matrix key narrows the sweep: one value, or a list of values
    axes = []
    for key in keys:
        given = variables.get(key, recipe.matrix[key])
        values = list(given) if isinstance(given, list | tuple) else [given]
        axes.append(values or list(recipe.matrix[key]))
    product = itertools.product(*axes)
    return [
        Combo(index, dict(zip(keys, values, strict=True))) for index, values in enumerate(product)
    ]


def _required(
    step: Step,
    combo: Combo | None,
    by_key: Mapping[tuple[str, int | None], Instance],
    repeating: set[str],
    combos: int,
) -> list[Instance]:
    required: list[Instance] = []
    for name in step.requires:
        if name not in repeating:
            required.append(by_key[(name, None)])
        elif combo is not None:
            required.append(by_key[(name, combo.index)])
        else:  # a step run once after a repeated one: after every combination
            required.extend(by_key[(name, index)] for index in range(combos))
    return required


class _Planner:
    def __init__(
        self,
        recipe: Recipe,
        inventory: Inventory | None,
        variables: Mapping[str, Any],
        run_id: str,
        run_dir: Path,
    ) -> None:
        self.recipe = recipe
        self.inventory = inventory
        self.variables = variables
        self.run_id = run_id
        self.run_dir = run_dir

    def resolver(self, step: Step, combo: Combo | None, host: str | None) -> Any:
        recipe = self.recipe
        inventory = self.inventory
        inv_host: Host | None = inventory.get(host) if inventory and host else None
        combo_slug = combo.slug if combo is not None else ""
        combo_dir = self.run_dir / combo_slug if combo_slug else self.run_dir
        builtins: dict[str, Any] = {
            "recipe": recipe.name,
            "recipe_dir": str(recipe.directory.absolute()),
            "step": step.id,
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            "combo": combo_slug,
            "combo_dir": str(combo_dir),
        }
        if host is not None:
            builtins["host"] = host
            builtins["hostname"] = inv_host.hostname if inv_host else host
            builtins["user"] = (inv_host.user if inv_host else None) or ""

        def resolve(field: Field) -> Any:
            if field.kind == "group":
                if inventory is None or field.name not in inventory.groups:
                    raise KeyError(f"no group {field.name!r} in the inventory")
                members = inventory.members(field.name)
                return " ".join(h.name for h in inventory if h.name in members)
            name = field.name
            if combo is not None and name in combo.values:
                return combo.values[name]  # a --var on a matrix key chose the combos
            if name in self.variables:
                return self.variables[name]
            if name in recipe.vars:
                return recipe.vars[name]
            if inv_host is not None and name in inv_host.vars:
                return inv_host.vars[name]
            if name in builtins:
                return builtins[name]
            if name in BUILTINS:
                raise KeyError(f"{{{name}}} is not known here")
            where = f" (nor a variable of host {host})" if host else ""
            raise KeyError(
                f"unknown name {name!r}: not a --var, matrix key, [vars] entry or built-in{where}"
            )

        return resolve

    def render(
        self, text: str, step: Step, combo: Combo | None, host: str | None, line: int | None = None
    ) -> Parts:
        try:
            return render(parse(text), self.resolver(step, combo, host), keep_deferred=True)
        except KeyError as exc:
            raise self.recipe.error(str(exc.args[0]), step, line) from None
        except TemplateError as exc:  # checked by the loader already
            raise self.recipe.error(str(exc), step, line) from None

    def hosts(self, step: Step, combo: Combo | None, narrowed: set[str] | None) -> list[str]:
        if step.is_local:
            return [LOCAL_HOST]
        assert step.hosts is not None
        if self.inventory is None:
            raise self.recipe.error("hosts: an inventory is needed (-i FILE)", step)
        line = step.line_of("hosts")
        pattern = text_of(self.render(step.hosts, step, combo, None, line))
        try:
            names = [host.name for host in self.inventory.select(pattern)]
        except ConfigError as exc:
            raise self.recipe.error(f"hosts {pattern!r}: {exc.message}", step, line) from None
        if narrowed is not None:
            names = [name for name in names if name in narrowed]
        return names

    def enabled(self, step: Step, combo: Combo | None) -> bool:
        if isinstance(step.enabled, bool):
            return step.enabled
        line = step.line_of("enabled")
        value = text_of(self.render(step.enabled, step, combo, None, line)).strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise self.recipe.error(
            f"enabled: {step.enabled!r} gives {value!r}, not true or false", step, line
        )

    def action(self, step: Step, combo: Combo | None, host: str, action: Action) -> RenderedAction:
        target = None if step.is_local else host
        texts = [action.text] if isinstance(action.text, str) else list(action.text)

        def one(text: str) -> Parts:
            return self.render(text, step, combo, target, action.line)

        rendered = tuple(one(text) for text in texts)
        if action.kind in ("script", "push"):
            rendered = tuple((self._local_path(text_of(part), step, action),) for part in rendered)
        to: Parts | None = None
        if action.kind == "pull":
            destination = action.to if action.to is not None else "{combo_dir}/{host}/"
            to = (self._run_path(text_of(one(destination)), action.to is None),)
        elif action.to is not None:
            to = one(action.to)
        return RenderedAction(action.kind, rendered, tuple(one(arg) for arg in action.args), to)

    def _local_path(self, name: str, step: Step, action: Action) -> str:
        path = self.recipe.directory / os.path.expanduser(name)  # ~nosuchuser: kept
        if action.kind == "script" and not path.is_file():
            raise self.recipe.error(f"script: file not found: {path}", step, action.line)
        if action.kind == "push" and not path.exists():
            raise self.recipe.error(f"push: file not found: {path}", step, action.line)
        return str(path)

    def _run_path(self, name: str, is_dir: bool) -> str:
        path = Path(os.path.expanduser(name))
        text = str(path if path.is_absolute() else self.run_dir / path)
        # a pull destination is a directory when it says so, or by default (per host)
        return text + "/" if (is_dir or name.endswith("/")) and not text.endswith("/") else text

    def check_references(self, plan: Plan) -> None:
        """Deferred references that cannot resolve, given the hosts of each instance."""
        for inst in plan.instances:
            if not inst.runs:
                continue
            for action in inst.step.actions:
                for _, text in action.templates():
                    for fld in _fields(text):
                        self._check_reference(plan, inst, fld, action.line)

    def _check_reference(self, plan: Plan, inst: Instance, fld: Field, line: int | None) -> None:
        if fld.kind != "cap" or fld.joined:
            return
        source = next(s for s in self.recipe.steps if s.capture == fld.name)
        sources = [s for s in _ancestor_instances(inst) if s.step.id == source.id]
        for src in sources:
            if fld.host is not None:
                if fld.host not in src.hosts:
                    raise self.recipe.error(
                        f"{fld.source}: step {source.id!r} does not run on {fld.host!r}",
                        inst.step,
                        line,
                    )
            elif (inst.step.is_local or any(h not in src.hosts for h in inst.hosts)) and len(
                src.hosts
            ) != 1:
                raise self.recipe.error(
                    f"{fld.source}: step {source.id!r} runs on {len(src.hosts)} hosts, not on "
                    f"each host of this one: write {{cap.{fld.name}@HOST}} or "
                    f"{{cap.{fld.name}[*]}}",
                    inst.step,
                    line,
                )


def _fields(text: str) -> list[Field]:
    return [part for part in parse(text) if isinstance(part, Field)]


def _ancestor_instances(inst: Instance) -> list[Instance]:
    seen: dict[int, Instance] = {}
    todo = list(inst.requires)
    while todo:
        current = todo.pop()
        if id(current) not in seen:
            seen[id(current)] = current
            todo.extend(current.requires)
    return list(seen.values())
