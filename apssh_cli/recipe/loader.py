"""Read a recipe file into a :class:`~apssh_cli.recipe.model.Recipe`, or say what is wrong.

Every problem is one :class:`~apssh_cli.recipe.model.RecipeError` with the file,
the step and the line when they are known: TOML syntax, unknown keys, wrong
types, bad ids, unknown or cyclic ``requires``, missing script files, malformed
templates, names that nothing defines, captures read from a step that is not an
ancestor. Checks that need the inventory (patterns, host variables) are the
planner's (:mod:`apssh_cli.recipe.planner`).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from apssh_cli.inventory.selection import did_you_mean
from apssh_cli.recipe.checks import check_graph, check_templates
from apssh_cli.recipe.model import (
    ACTION_KINDS,
    FORMAT,
    ID_PATTERN,
    SYNC_MODES,
    VAR_PATTERN,
    Action,
    Recipe,
    RecipeError,
    Step,
    parse_duration,
)

RECIPE_KEYS = {"name", "description", "format", "window", "timeout"}
TOP_KEYS = {"recipe", "vars", "matrix", "step"}
STEP_KEYS = {
    "id",
    "hosts",
    "requires",
    "sync",
    "critical",
    "max_fail",
    "timeout",
    "window",
    "retries",
    "ok_exits",
    "capture",
    "always",
    "background",
    "stop_after",
    "enabled",
    "once",
    "do",
    *ACTION_KINDS,
    "args",
    "to",
}
ACTION_KEYS = {*ACTION_KINDS, "args", "to"}
_MAX_FAIL = re.compile(r"(\d+(?:\.\d+)?)%")


class _Lines:
    """Where keys were written: the ``[[step]]`` headers, and the keys under each."""

    _HEADER = re.compile(r"\s*(\[\[?)\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]?")
    _KEY = re.compile(r"\s*([A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')\s*(?:\.|=)")

    def __init__(self, text: str) -> None:
        self.keys: dict[tuple[Any, ...], int] = {}
        section: tuple[Any, ...] = ()
        steps = -1
        dos = -1
        for number, raw in enumerate(text.splitlines(), start=1):
            header = self._HEADER.match(raw)
            if header:
                name = header.group(2).replace(" ", "").replace('"', "").replace("'", "")
                if header.group(1) == "[[" and name == "step":
                    steps += 1
                    dos = -1
                    section = ("step", steps)
                elif header.group(1) == "[[" and name == "step.do" and steps >= 0:
                    dos += 1
                    section = ("step", steps, "do", dos)
                else:
                    section = tuple(name.split("."))
                self.keys.setdefault(section, number)
                continue
            key = self._KEY.match(raw)
            if key:
                self.keys.setdefault((*section, key.group(1).strip("\"'")), number)

    def line(self, *path: Any) -> int | None:
        """The line of the longest known prefix of ``path``."""
        for size in range(len(path), 0, -1):
            found = self.keys.get(tuple(path[:size]))
            if found is not None:
                return found
        return None


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file.

    Raises:
        RecipeError: the file cannot be read, or is not a valid recipe.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RecipeError(f"cannot read recipe: {exc.strerror or exc}", source=str(path)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise RecipeError("not UTF-8 text", source=str(path), line=line) from None
    return parse_recipe(text, path)


def parse_recipe(text: str, path: str | Path = "<recipe>") -> Recipe:
    """Validate recipe text; ``path`` names it and anchors relative paths.

    Raises:
        RecipeError: what is wrong, with file, step and line.
    """
    path = Path(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message, line = _toml_error(str(exc), text)
        raise RecipeError(f"invalid TOML: {message}", source=str(path), line=line) from None
    except RecursionError:
        raise RecipeError("invalid TOML: nested too deeply", source=str(path)) from None
    return _Builder(data, _Lines(text), path).build()


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def _toml_error(message: str, text: str) -> tuple[str, int | None]:
    found = _TOML_POSITION.search(message)
    if found:
        return f"{message[: found.start()]} (column {found.group(2)})", int(found.group(1))
    if "end of document" in message:
        return message.replace("(at end of document)", "(at end of file)"), text.count("\n") + 1
    return message, None


class _Builder:
    def __init__(self, data: dict[str, Any], lines: _Lines, path: Path) -> None:
        self.data = data
        self.lines = lines
        self.path = path
        self.source = str(path)

    def fail(self, message: str, *key: Any, step: str | None = None) -> RecipeError:
        return RecipeError(message, source=self.source, line=self.lines.line(*key), step=step)

    # ------------------------------------------------------------ top level

    def build(self) -> Recipe:
        for key in self.data:
            if key not in TOP_KEYS:
                raise self.fail(unknown_key(key, TOP_KEYS, known=True), key)
        head = self.data.get("recipe")
        if not isinstance(head, dict):
            raise self.fail("missing [recipe] table (name and format are required)", "recipe")
        for key in head:
            if key not in RECIPE_KEYS:
                raise self.fail(
                    f"[recipe]: {unknown_key(key, RECIPE_KEYS, known=True)}", "recipe", key
                )
        if "format" not in head:
            raise self.fail("[recipe]: format is required (format = 1)", "recipe")
        if head["format"] != FORMAT or isinstance(head["format"], bool):
            raise self.fail(
                f"[recipe]: format {head['format']!r} is not supported (this apssh reads "
                f"format = {FORMAT})",
                "recipe",
                "format",
            )
        name = head.get("name")
        if not isinstance(name, str) or not ID_PATTERN.fullmatch(name):
            raise self.fail(
                '[recipe]: name is required, made of a-z 0-9 _ - (e.g. name = "sweep")',
                "recipe",
                "name",
            )
        description = head.get("description", "")
        if not isinstance(description, str):
            raise self.fail("[recipe]: description must be a string", "recipe", "description")
        window = self.positive_int(head, "window", ("recipe", "window"), None)
        timeout = self.duration(head, "timeout", ("recipe", "timeout"), None)
        variables = self.variables()
        matrix = self.matrix()
        steps = self.steps()
        recipe = Recipe(
            name=name,
            path=self.path,
            steps=tuple(steps),
            description=description,
            window=window,
            timeout=timeout,
            vars=variables,
            matrix=matrix,
        )
        check_graph(recipe)
        check_templates(recipe)
        return recipe

    def variables(self) -> dict[str, Any]:
        table = self.data.get("vars", {})
        if not isinstance(table, dict):
            raise self.fail("[vars] must be a table", "vars")
        for key, value in table.items():
            if not VAR_PATTERN.fullmatch(key):
                raise self.fail(f"[vars]: bad name {key!r} (letters, digits, _)", "vars", key)
            if not is_value(value):
                raise self.fail(
                    f"[vars]: {key} must be a string, number, boolean or a list of them",
                    "vars",
                    key,
                )
        return dict(table)

    def matrix(self) -> dict[str, tuple[Any, ...]]:
        table = self.data.get("matrix", {})
        if not isinstance(table, dict):
            raise self.fail("[matrix] must be a table", "matrix")
        matrix: dict[str, tuple[Any, ...]] = {}
        for key, values in table.items():
            if not VAR_PATTERN.fullmatch(key):
                raise self.fail(f"[matrix]: bad name {key!r} (letters, digits, _)", "matrix", key)
            if not isinstance(values, list) or not values:
                raise self.fail(f"[matrix]: {key} must be a non-empty list", "matrix", key)
            if not all(is_scalar(value) for value in values):
                raise self.fail(
                    f"[matrix]: {key}: values must be strings, numbers or booleans",
                    "matrix",
                    key,
                )
            # by the text that names a combination: 1 and "1" would share its directory
            if len({str(value) for value in values}) != len(values):
                raise self.fail(f"[matrix]: {key}: a value is repeated", "matrix", key)
            matrix[key] = tuple(values)
        return matrix

    # ------------------------------------------------------------ steps

    def steps(self) -> list[Step]:
        raw = self.data.get("step")
        if raw is None:
            raise self.fail("no [[step]]: a recipe needs at least one step")
        if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
            raise self.fail("step must be an array of tables: write [[step]]", "step")
        steps: list[Step] = []
        seen: dict[str, int] = {}
        for index, table in enumerate(raw):
            step = self.step(index, table)
            if step.id in seen:
                raise self.fail(
                    f"duplicate id (step {seen[step.id] + 1} has it too)",
                    "step",
                    index,
                    "id",
                    step=step.id,
                )
            seen[step.id] = index
            steps.append(step)
        return steps

    def step(self, index: int, table: dict[str, Any]) -> Step:
        at: tuple[Any, ...] = ("step", index)
        step_id = table.get("id")
        if not isinstance(step_id, str) or not ID_PATTERN.fullmatch(step_id):
            shown = f" {step_id!r}" if step_id is not None else ""
            raise self.fail(
                f"step {index + 1}: id{shown} is required, made of a-z 0-9 _ -", *at, "id"
            )

        def fail(message: str, *key: Any) -> RecipeError:
            return self.fail(message, *at, *key, step=step_id)

        for key in table:
            if key not in STEP_KEYS:
                raise fail(unknown_key(key, STEP_KEYS), key)
        hosts = table.get("hosts")
        if hosts is not None and (not isinstance(hosts, str) or not hosts.strip()):
            raise fail("hosts must be a non-empty pattern string", "hosts")
        actions = self.actions(table, at, fail)
        has_local = any(action.kind == "local" for action in actions)
        if has_local and hosts is not None:
            raise fail("a local step runs on the controller: remove hosts", "hosts")
        if has_local and len(actions) > 1:
            raise fail('a local step has one action: local = "..."', "do")
        if hosts is None and not has_local:
            raise fail('hosts is required (or local = "..." to run on the controller)')
        requires = self.id_list(table, "requires", fail)
        stop_after = self.id_list(table, "stop_after", fail)
        sync = table.get("sync", "all")
        if sync not in SYNC_MODES:
            raise fail(f'sync must be "all" or "host", not {sync!r}', "sync")
        flags = {}
        for key, default in (("critical", True), ("always", False), ("background", False)):
            flags[key] = table.get(key, default)
            if not isinstance(flags[key], bool):
                raise fail(f"{key} must be true or false", key)
        once = table.get("once", False)
        if not isinstance(once, bool):
            raise fail("once must be true or false", "once")
        enabled = table.get("enabled", True)
        if not isinstance(enabled, bool | str):
            raise fail('enabled must be true, false or a template such as "{flag}"', "enabled")
        if stop_after and not flags["background"]:
            raise fail("stop_after goes with background = true", "stop_after")
        max_fail = table.get("max_fail", 0)
        if isinstance(max_fail, str):
            match = _MAX_FAIL.fullmatch(max_fail.strip())
            if match is None or float(match.group(1)) > 100:
                raise fail('max_fail must be a number of hosts or "N%" (0-100)', "max_fail")
            max_fail = max_fail.strip()
        elif isinstance(max_fail, bool) or not isinstance(max_fail, int) or max_fail < 0:
            raise fail('max_fail must be a number of hosts (>= 0) or "N%"', "max_fail")
        retries = table.get("retries", 0)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise fail("retries must be a whole number >= 0", "retries")
        ok_exits = table.get("ok_exits", [0])
        if not isinstance(ok_exits, list) or not ok_exits:
            raise fail("ok_exits must be a non-empty list of exit statuses", "ok_exits")
        from apssh_cli.commands import parse_allowed_exits
        from apssh_cli.errors import ConfigError

        try:
            parse_allowed_exits(ok_exits)
        except ConfigError as exc:
            raise fail(f"ok_exits: {exc.message}", "ok_exits") from None
        capture = table.get("capture")
        if capture is not None and (
            not isinstance(capture, str) or not VAR_PATTERN.fullmatch(capture)
        ):
            raise fail("capture must be a name (letters, digits, _)", "capture")
        if capture is not None and flags["background"]:
            raise fail(
                "a background step cannot capture (its output ends when it is stopped)", "capture"
            )
        return Step(
            id=step_id,
            actions=tuple(actions),
            hosts=hosts,
            requires=requires,
            sync=sync,
            critical=flags["critical"],
            max_fail=max_fail,
            timeout=self.duration(table, "timeout", (*at, "timeout"), None, step=step_id),
            window=self.positive_int(table, "window", (*at, "window"), None, step=step_id),
            retries=retries,
            ok_exits=tuple(ok_exits),
            capture=capture,
            always=flags["always"],
            background=flags["background"],
            stop_after=stop_after,
            enabled=enabled,
            once=once,
            line=self.lines.line(*at),
            lines={
                key: line for key in table if (line := self.lines.keys.get((*at, key))) is not None
            },
        )

    def id_list(self, table: dict[str, Any], key: str, fail: Any) -> tuple[str, ...]:
        value = table.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise fail(f"{key} must be a list of step ids", key)
        return tuple(value)

    def actions(self, table: dict[str, Any], at: tuple[Any, ...], fail: Any) -> list[Action]:
        kinds = [kind for kind in ACTION_KINDS if kind in table]
        if "do" in table:
            if kinds:
                raise fail(f"give either do or {kinds[0]}, not both", kinds[0])
            for key in ("args", "to"):
                if key in table:
                    raise fail(f"with do, {key} goes inside each [[step.do]]", key)
            entries = table["do"]
            if not isinstance(entries, list) or not entries:
                raise fail("do must be a non-empty list of actions: [[step.do]]", "do")
            actions = []
            for number, entry in enumerate(entries):
                if not isinstance(entry, dict):
                    raise fail(f"do[{number + 1}] must be a table", "do", number)
                for key in entry:
                    if key not in ACTION_KEYS:
                        hint = did_you_mean(key, sorted(ACTION_KEYS))
                        raise fail(
                            f"do[{number + 1}]: unknown key {key!r}{hint} (an action: "
                            f"{', '.join(ACTION_KINDS)}, with args or to)",
                            "do",
                            number,
                            key,
                        )
                actions.append(self.action(entry, (*at, "do", number), fail, f"do[{number + 1}]: "))
            return actions
        if not kinds:
            raise fail(f"no action: give one of {', '.join(ACTION_KINDS)}, or [[step.do]]")
        return [self.action(table, at, fail, "")]

    def action(self, table: dict[str, Any], at: tuple[Any, ...], fail: Any, prefix: str) -> Action:
        kinds = [kind for kind in ACTION_KINDS if kind in table]
        if len(kinds) != 1:
            if not kinds:
                raise fail(f"{prefix}no action (one of {', '.join(ACTION_KINDS)})", *at[2:])
            raise fail(
                f"{prefix}one action per entry, not {' and '.join(kinds)}", *at[2:], kinds[1]
            )
        kind = kinds[0]
        where = (*at[2:], kind)
        value = table[kind]
        line = self.lines.line(*at, kind)
        args: tuple[str, ...] = ()
        if "args" in table:
            if kind not in ("script", "string"):
                raise fail(f"{prefix}args go with script or string, not {kind}", *at[2:], "args")
            raw_args = table["args"]
            if not isinstance(raw_args, list) or not all(is_scalar(arg) for arg in raw_args):
                raise fail(f"{prefix}args must be a list of strings or numbers", *at[2:], "args")
            args = tuple(_scalar_text(arg) for arg in raw_args)
        to = table.get("to")
        if to is not None and kind not in ("push", "pull"):
            raise fail(f"{prefix}to goes with push or pull, not {kind}", *at[2:], "to")
        if to is not None and (not isinstance(to, str) or not to):
            raise fail(f"{prefix}to must be a path", *at[2:], "to")
        if kind == "push" and to is None:
            raise fail(f'{prefix}push needs to = "remote path"', *where)
        if kind in ("push", "pull"):
            sources = [value] if isinstance(value, str) else value
            if (
                not isinstance(sources, list)
                or not sources
                or not all(isinstance(item, str) and item for item in sources)
            ):
                raise fail(f"{prefix}{kind} must be a path or a list of paths", *where)
            if kind == "push":
                for source in sources:
                    self.local_file(source, f"{prefix}push", where, fail, directory_ok=True)
            return Action(kind, tuple(sources), to=to, line=line)
        if not isinstance(value, str) or not value.strip():
            raise fail(f"{prefix}{kind} must be a non-empty string", *where)
        if kind == "script":
            self.local_file(value, f"{prefix}script", where, fail)
        return Action(kind, value, args=args, line=line)

    def local_file(
        self, name: str, what: str, where: tuple[Any, ...], fail: Any, directory_ok: bool = False
    ) -> None:
        """A file named without templates must exist (relative to the recipe's directory)."""
        if "{" in name:
            return  # checked once rendered, by the planner
        # os.path leaves an unknown ~user as written (Path.expanduser raises)
        path = self.path.parent / os.path.expanduser(name)
        if not (path.is_file() or (directory_ok and path.is_dir())):
            raise fail(f"{what}: file not found: {name} (looked for {path})", *where)

    # ------------------------------------------------------------ values

    def positive_int(
        self,
        table: Mapping[str, Any],
        key: str,
        at: tuple[Any, ...],
        default: int | None,
        step: str | None = None,
    ) -> int | None:
        value = table.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(f"{key} must be a whole number >= 1", *at, step=step)
        return value

    def duration(
        self,
        table: Mapping[str, Any],
        key: str,
        at: tuple[Any, ...],
        default: float | None,
        step: str | None = None,
    ) -> float | None:
        value = table.get(key, default)
        if value is None:
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.fail(f"{key}: {exc}", *at, step=step) from None


def unknown_key(key: str, keys: Collection[str], *, known: bool = False) -> str:
    """``unknown key 'requries' (did you mean requires?)``, as the inventory says it.

    ``known``: a short list of keys, listed when no near one is found.
    """
    hint = did_you_mean(key, sorted(keys))
    if not hint and known:
        hint = f" (known: {', '.join(sorted(keys))})"
    return f"unknown key {key!r}{hint}"


def is_scalar(value: Any) -> bool:
    """A string, number or boolean: a matrix value, an argument."""
    return isinstance(value, str | int | float | bool)


def is_value(value: Any) -> bool:
    """What a variable holds (``[vars]``, ``--var``): a scalar or a list of scalars."""
    return is_scalar(value) or (isinstance(value, list) and all(is_scalar(v) for v in value))


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
