"""Checks of a whole recipe: the step graph, the templates, which steps repeat.

Run by the loader (no inventory needed) and by the planner (with the ``--var``
names). Names that only an inventory can define (host variables) are returned,
not refused, so that ``check`` without ``-i`` still works.
"""

from __future__ import annotations

from apssh_cli.recipe.model import ACTION_KINDS, Recipe, Step
from apssh_cli.recipe.template import (
    IN_DOUBLE,
    IN_SINGLE,
    WORD,
    Field,
    TemplateError,
    fields,
    parse,
    refusal,
    shell_places,
)

BUILTINS = (
    "host",
    "hostname",
    "user",
    "recipe",
    "recipe_dir",
    "step",
    "run_id",
    "run_dir",
    "combo",
    "combo_dir",
)
HOST_BUILTINS = ("host", "hostname", "user")


def check_graph(recipe: Recipe) -> None:
    """Unknown ids in requires/stop_after, cycles, captures defined twice.

    Raises:
        RecipeError: the first problem.
    """
    ids = {step.id for step in recipe.steps}
    for step in recipe.steps:
        for key, names in (("requires", step.requires), ("stop_after", step.stop_after)):
            for name in names:
                if name not in ids:
                    raise recipe.error(f"{key}: unknown step {name!r}", step)
                if name == step.id:
                    raise recipe.error(f"{key}: a step cannot name itself", step)
    # cycles: depth-first search, reporting the loop
    state: dict[str, int] = {}

    def visit(step_id: str, path: list[str]) -> None:
        state[step_id] = 1
        for required in recipe.step(step_id).requires:
            if state.get(required) == 1:
                loop = [*path[path.index(required) :], required]
                raise recipe.error(f"cycle in requires: {' -> '.join(loop)}", recipe.step(required))
            if required not in state:
                visit(required, [*path, required])
        state[step_id] = 2

    for step in recipe.steps:
        if step.id not in state:
            visit(step.id, [step.id])
    captures: dict[str, str] = {}
    for step in recipe.steps:
        if step.capture is not None:
            if step.capture in captures:
                raise recipe.error(
                    f"capture {step.capture!r} is already the capture of step "
                    f"{captures[step.capture]!r}",
                    step,
                )
            captures[step.capture] = step.id


def repeating_steps(recipe: Recipe) -> set[str]:
    """The steps that run once per matrix combination.

    A step repeats when one of its templates names a matrix key (or ``combo``,
    ``combo_dir``), or when it requires a step that repeats; ``once`` wins.
    """
    keys = set(recipe.matrix)
    if not keys:
        return set()
    keys |= {"combo", "combo_dir"}
    repeating: set[str] = set()
    for step in recipe.order():
        if step.once:
            continue
        named = {
            f.name
            for _, text in step_templates(step)
            for f in safe_fields(text)
            if f.kind == "name"
        }
        if named & keys or any(req in repeating for req in step.requires):
            repeating.add(step.id)
    return repeating


def safe_fields(text: str) -> list[Field]:
    """The fields of a template, none for one the loader refuses (checked there)."""
    try:
        return fields(text)
    except TemplateError:
        return []


def step_templates(step: Step) -> list[tuple[str, str]]:
    """Every template of a step: (key, text)."""
    pairs: list[tuple[str, str]] = []
    if step.hosts is not None:
        pairs.append(("hosts", step.hosts))
    if isinstance(step.enabled, str):
        pairs.append(("enabled", step.enabled))
    for action in step.actions:
        pairs.extend(action.templates())
    return pairs


def check_templates(recipe: Recipe, extra_names: set[str] | None = None) -> list[str]:
    """Check every template: syntax, names, captures and step references vs the DAG.

    Names a recipe cannot define itself may be host variables: they are returned
    (step: name) for the caller to check against an inventory.

    Raises:
        RecipeError: a malformed template, a capture or step reference that is
            not an ancestor's, a deferred reference where it cannot be, a host
            name in a local step.
    """
    known = set(recipe.vars) | set(recipe.matrix) | set(BUILTINS) | (extra_names or set())
    captured_by = {step.capture: step for step in recipe.steps if step.capture}
    repeating = repeating_steps(recipe)
    unresolved: list[str] = []
    for step in recipe.steps:
        ancestors = recipe.ancestors(step.id)
        for key, text in step_templates(step):
            line = _action_line(step, key)
            try:
                found = fields(text)
            except TemplateError as exc:
                raise recipe.error(f"{key}: {exc}", step, line) from None
            _check_shell_places(recipe, step, key, text, line)
            for field in found:
                where = f"{key}: {field.source}"
                if field.kind == "name":
                    if (
                        step.is_local
                        and field.name in HOST_BUILTINS
                        and field.name not in recipe.vars
                    ):
                        raise recipe.error(f"{where}: a local step has no host", step, line)
                    if field.name not in known:
                        if step.is_local:
                            raise recipe.error(f"{where}: unknown name {field.name!r}", step, line)
                        unresolved.append(f"{step.id}:{field.name}")
                    continue
                if field.kind == "group":
                    continue
                if key in ("hosts", "enabled", "script", "push", "to"):
                    raise recipe.error(
                        f"{where}: captures and host lists are known only when a task "
                        f"starts: not allowed in {key}",
                        step,
                        line,
                    )
                if field.kind == "cap":
                    source = captured_by.get(field.name)
                    if source is None:
                        raise recipe.error(f"{where}: no step captures {field.name!r}", step, line)
                    referenced = source
                else:
                    if field.name not in {s.id for s in recipe.steps}:
                        raise recipe.error(f"{where}: unknown step {field.name!r}", step, line)
                    referenced = recipe.step(field.name)
                if referenced.id not in ancestors:
                    raise recipe.error(
                        f"{where}: step {referenced.id!r} is not an ancestor of this step "
                        f"(add it to requires, directly or not)",
                        step,
                        line,
                    )
                if referenced.id in repeating and step.id not in repeating:
                    raise recipe.error(
                        f"{where}: step {referenced.id!r} runs once per combination, this "
                        f"step once for the sweep",
                        step,
                        line,
                    )
    return unresolved


SHELL_KEYS = ("run", "local", "string")  # the texts a shell reads
_RAW_EFFECT = {
    "run": "it runs as shell code on the host",
    "string": "it runs as shell code on the host",
    "local": "it runs as shell code on the controller",
}


def _check_shell_places(recipe: Recipe, step: Step, key: str, text: str, line: int | None) -> None:
    """A value from hosts where no quoting can hold it (a here-document...): an error now."""
    if key not in SHELL_KEYS:
        return
    parts = parse(text)
    for index, place in shell_places(parts).items():
        field = parts[index]
        assert isinstance(field, Field)
        if field.is_deferred and not field.raw and place not in (WORD, IN_SINGLE, IN_DOUBLE):
            raise recipe.error(f"{key}: {refusal(field, place)}", step, line)


def raw_uses(recipe: Recipe) -> list[str]:
    """Where a value from hosts is spliced unquoted (``{cap.NAME:raw}``): one line each."""
    uses: list[str] = []
    for step in recipe.steps:
        for key, text in step_templates(step):
            for field in safe_fields(text):
                if field.raw:
                    effect = _RAW_EFFECT.get(
                        key, "no effect here: an argument or a path takes a value as it is"
                    )
                    message = (
                        f"{key}: {field.source} inserts a value from hosts unquoted ({effect})"
                    )
                    uses.append(str(recipe.error(message, step, _action_line(step, key))))
    return uses


def _action_line(step: Step, key: str) -> int | None:
    if key in ("hosts", "enabled"):
        return step.line_of(key)
    if key in ACTION_KINDS or key in ("args", "to"):
        for action in step.actions:
            if action.kind == key or key in ("args", "to"):
                return action.line or step.line
    return step.line
