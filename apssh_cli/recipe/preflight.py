"""What a run's options say against its recipe, checked before anything connects.

The loader checks a recipe alone and the planner resolves it against an
inventory; this module checks what only the command line brings, once a plan
exists (:func:`preflight`), so that a mistake is one message and exit 1, not an
abort after connecting:

- ``--var`` text that looks like TOML but does not parse (``count=[1,``), a table
  or a list of lists, a matrix key given no value or the same value twice: errors;
  a ``--var`` name that no template uses (nor a matrix key): a warning;
- ``--only`` / ``--from`` leaving out the step a selected step's capture comes from:
  without ``--resume`` an error; with it, the resumed run must hold that capture;
- a step that runs but whose pattern (after ``-g`` / ``-x``) selects no host, and an
  ``{ok.STEP}`` / ``{failed.STEP}`` of a step left out (always empty): warnings (the
  command line makes them errors with ``--strict``).

Errors are :class:`~apssh_cli.recipe.model.RecipeError` (file, step, line);
warnings are returned as text. Pure: no SSH, no asyncio.
"""

from __future__ import annotations

import datetime
import json
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from apssh_cli.inventory.selection import did_you_mean
from apssh_cli.recipe.checks import safe_fields, step_templates
from apssh_cli.recipe.journal import read_previous
from apssh_cli.recipe.loader import is_scalar, is_value
from apssh_cli.recipe.model import VAR_PATTERN, Action, Recipe, RecipeError
from apssh_cli.recipe.template import Field

if TYPE_CHECKING:
    from apssh_cli.recipe.planner import Instance, Plan

# the first character of a TOML value that is no bare word: its text must then parse
_TOML_OPENERS = ("[", "{", '"', "'")
_DATES = (datetime.date, datetime.time, datetime.datetime)


def parse_variables(items: Iterable[str]) -> dict[str, Any]:
    """``--var KEY=VALUE`` items: VALUE read as TOML (``10``, ``true``, ``[1, 2]``), else text.

    A VALUE that opens as TOML does (``[``, ``{``, a quote) must be valid TOML; a
    TOML date stays the text written (a recipe's values are strings, numbers,
    booleans and lists of them).

    >>> parse_variables(["n=10", "name=node 1", "sizes=[1, 2]", "day=2026-12-03"])
    {'n': 10, 'name': 'node 1', 'sizes': [1, 2], 'day': '2026-12-03'}

    Raises:
        RecipeError: an item without ``=``, a bad name, a VALUE that looks like TOML
            and is not.
    """
    variables: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not VAR_PATTERN.fullmatch(key):
            raise RecipeError(f"--var {item!r}: write KEY=VALUE (KEY: letters, digits, _)")
        variables[key] = _value(key, text)
    return variables


def _value(key: str, text: str) -> Any:
    try:
        parsed = tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError as exc:
        if text.strip().startswith(_TOML_OPENERS):
            raise RecipeError(
                f"--var {key}={text}: not valid TOML ({_toml_reason(exc)}); for a string, "
                f"quote it: {key}={_toml_string(text)}"
            ) from None
        return text
    if set(parsed) != {"v"} or isinstance(parsed["v"], _DATES):
        return text  # `a=1\nb=2` is no single value; a date is the text written
    return parsed["v"]


def _toml_string(text: str) -> str:
    """``text`` as a TOML string: a literal one when it can be, else a basic one."""
    literal = "'" not in text and not any(
        (char < " " and char != "\t") or char == "\x7f" for char in text
    )  # a literal string holds no quote and no control character but tab
    if literal:
        return f"'{text}'"
    # JSON's escapes are TOML's, but for DEL, which TOML wants escaped too
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_reason(exc: tomllib.TOMLDecodeError) -> str:
    """tomllib's message, placed in the value rather than in ``v = VALUE``."""
    reason, _, where = str(exc).partition(" (at ")
    column = re.search(r"column (\d+)", where)
    if "line 1," in where and column:
        return f"{reason.lower()} at character {int(column.group(1)) - len('v = ')}"
    return f"{reason.lower()} at the end" if "end of document" in where else reason.lower()


def check_variables(recipe: Recipe, variables: Mapping[str, Any]) -> None:
    """The ``--var`` values are values a recipe can take, and a matrix key's are a sweep.

    Raises:
        RecipeError: a table or a list of lists; for a matrix key, an empty list, a
            value that is not a string, number or boolean, or the same value twice
            (two combinations would share one directory and one journal key).
    """
    for name, value in variables.items():
        if name not in recipe.matrix:
            if not is_value(value):
                raise RecipeError(
                    f"--var {name}: {_shown(value)} is not a value a recipe takes (a string, "
                    "number, boolean or a list of them)",
                    source=recipe.source,
                )
            continue
        values = list(value) if isinstance(value, list | tuple) else [value]
        if not values:
            recipe_values = ", ".join(_shown(v) for v in recipe.matrix[name])
            raise RecipeError(
                f"--var {name}=[]: a matrix key needs at least one value (without --var: "
                f"the recipe's {recipe_values})",
                source=recipe.source,
            )
        if not all(is_scalar(v) for v in values):
            raise RecipeError(
                f"--var {name}: the values of a matrix key are strings, numbers or booleans, "
                f"not {_shown(value)}",
                source=recipe.source,
            )
        seen: set[str] = set()
        for item in values:
            slug = str(item)  # what names the combination: 1 and "1" are one
            if slug in seen:
                raise RecipeError(
                    f"--var {name}: {_shown(item)} is given twice (each value is one "
                    "combination of the sweep)",
                    source=recipe.source,
                )
            seen.add(slug)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_shown(item) for item in value) + "]"
    return str(value)


def used_names(recipe: Recipe) -> set[str]:
    """Every name some template of the recipe reads, and the matrix keys."""
    names = set(recipe.matrix)
    for step in recipe.steps:
        for _, text in step_templates(step):
            names.update(f.name for f in safe_fields(text) if f.kind == "name")
    return names


def unused_variables(recipe: Recipe, variables: Iterable[str]) -> list[str]:
    """A warning for each ``--var`` name that the recipe never reads."""
    used = used_names(recipe)
    warnings = []
    for name in variables:
        if name not in used:
            hint = did_you_mean(name, sorted(used))
            warnings.append(
                f"{recipe.source}: --var {name}: the recipe never uses it (no template "
                f"reads {{{name}}}, and it is no matrix key){hint}"
            )
    return warnings


def empty_steps(plan: Plan) -> list[str]:
    """A warning for each step that runs but whose pattern selects no host."""
    recipe = plan.recipe
    narrowing = " ".join(
        f"{flag} {value!r}"
        for flag, value in (("-g", plan.selection.pattern), ("-x", plan.selection.exclude))
        if value is not None
    )
    warnings = []
    for step in recipe.order():
        if step.is_local:
            continue
        running = [inst for inst in plan.instances_of(step.id) if inst.runs]
        empty = [inst for inst in running if not inst.hosts]
        if not empty:
            continue
        where = f"hosts {step.hosts!r}" + (f" with {narrowing}" if narrowing else "")
        message = f"{where} selects no host: the step does nothing"
        if len(empty) < len(running):
            combos = ", ".join(inst.combo.slug for inst in empty if inst.combo is not None)
            message = f"{where} selects no host in {combos}: the step does nothing there"
        warnings.append(str(recipe.error(message, step, step.line_of("hosts"))))
    return warnings


def _left_out_sources(plan: Plan) -> Iterator[tuple[Instance, Action, Field, Instance]]:
    """(instance, action, field, source) for each deferred reference of an instance that
    runs to a step instance that does not (``--only``, ``--from``)."""
    captured_by = {step.capture: step.id for step in plan.recipe.steps if step.capture}
    for inst in plan.instances:
        if not inst.runs:
            continue
        for action in inst.step.actions:
            for _, text in action.templates():
                for fld in safe_fields(text):
                    if not fld.is_deferred:
                        continue
                    step_id = captured_by[fld.name] if fld.kind == "cap" else fld.name
                    source = inst.ancestor(step_id)
                    if source is not None and not source.selected:
                        yield inst, action, fld, source


def check_left_out_captures(plan: Plan, *, resume: bool) -> None:
    """A capture read by a step that runs comes from a step that runs, or from ``--resume``.

    Raises:
        RecipeError: its step is left out (``--only``, ``--from``) and there is no
            ``--resume``; or the resumed run holds no value of it (for that combination).
    """
    recipe = plan.recipe
    previous: dict[str, Any] | None = None
    for inst, action, fld, source in _left_out_sources(plan):
        if fld.kind != "cap":
            continue
        how = _left_out_by(plan, source.step.id)
        if not resume:
            raise recipe.error(
                f"{fld.source}: step {source.step.id!r}, which captures it, is left out by "
                f"{how}: its value would come from an earlier run; give --resume [RUN_DIR], "
                f"or run {source.step.id!r} too",
                inst.step,
                action.line,
            )
        if previous is None:
            previous = read_previous(plan.run_dir)[1]
        combo = source.combo.slug if source.combo is not None else ""
        values = previous.get(fld.name)
        if not isinstance(values, dict) or not values.get(combo):
            where = f" for {combo}" if combo else ""
            raise recipe.error(
                f"{fld.source}: the run in {plan.run_dir} has no value of {fld.name!r}{where} "
                f"(step {source.step.id!r}, left out by {how}, did not capture it there): "
                f"run {source.step.id!r} too",
                inst.step,
                action.line,
            )


def left_out_host_lists(plan: Plan) -> list[str]:
    """A warning for each ``{ok.STEP}`` / ``{failed.STEP}`` of a step left out: an empty list."""
    warnings = []
    for inst, action, fld, source in _left_out_sources(plan):
        if fld.kind in ("ok", "failed"):
            how = _left_out_by(plan, source.step.id)
            message = (
                f"{fld.source}: step {source.step.id!r} is left out by {how}: no host of it "
                "ends in this run, the list is empty (also with --resume)"
            )
            warning = str(plan.recipe.error(message, inst.step, action.line))
            if warning not in warnings:  # one per action, not one per combination
                warnings.append(warning)
    return warnings


def _left_out_by(plan: Plan, step_id: str) -> str:
    only = plan.selection.only
    if only and step_id not in only:
        return f"--only {','.join(only)}"
    return f"--from {plan.selection.start}"


def preflight(plan: Plan, *, resume: bool = False) -> list[str]:
    """Every check of this module on a plan; the warnings, for the caller to show.

    Args:
        plan: from :func:`~apssh_cli.recipe.planner.make_plan` (``selection.variables``
            are the ``--var`` values).
        resume: the run will resume ``plan.run_dir`` (its captures count).

    Raises:
        RecipeError: the first error.
    """
    variables = plan.selection.variables
    check_variables(plan.recipe, variables)
    check_left_out_captures(plan, resume=resume)
    return [
        *unused_variables(plan.recipe, variables),
        *empty_steps(plan),
        *left_out_host_lists(plan),
    ]
