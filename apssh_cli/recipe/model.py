"""The recipe model: a validated recipe file, as frozen values (no I/O, no SSH).

::

    Recipe(name, format 1, vars, matrix, steps)
    └── Step(id, hosts, requires, sync, actions, critical, max_fail, ...)
        └── Action(kind, text, args, to)     kind: run script string push pull local

Templates are kept as written here; :mod:`apssh_cli.recipe.template` parses them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apssh_cli.durations import parse_duration as parse_duration
from apssh_cli.errors import ConfigError

ACTION_KINDS = ("run", "script", "string", "push", "pull", "local")
SYNC_MODES = ("all", "host")
ID_PATTERN = re.compile(r"[a-z0-9_-]+")
VAR_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
FORMAT = 1
# a host's stdout kept for a capture, at most (the rest is dropped, and said so)
CAPTURE_LIMIT = 1 << 20
# hosts at once when neither the command line nor the recipe says
DEFAULT_WINDOW = 50


class RecipeError(ConfigError):
    """A recipe (or its use with an inventory) is wrong: nothing ran.

    Args:
        message: what is wrong.
        source: the recipe file.
        line: the line, when known.
        step: the step it is about, when any.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        step: str | None = None,
    ) -> None:
        self.step = step
        super().__init__(
            message, source=source, line=line, where=f"step {step!r}" if step else None
        )


@dataclass(frozen=True)
class Action:
    """One thing a step does on each host (or on the controller, for ``local``).

    Attributes:
        kind: run, script, string, push, pull or local.
        text: the command (run, local), the script path (script), its body
            (string), or the sources (push, pull).
        args: the arguments of script and string.
        to: the destination of push (remote) and pull (local; None: the default).
        line: where it was written.
    """

    kind: str
    text: str | tuple[str, ...]
    args: tuple[str, ...] = ()
    to: str | None = None
    line: int | None = None

    def templates(self) -> list[tuple[str, str]]:
        """(what, template) pairs, for checks: every string of the action."""
        texts = [self.text] if isinstance(self.text, str) else list(self.text)
        pairs = [(self.kind, text) for text in texts]
        pairs += [("args", arg) for arg in self.args]
        if self.to is not None:
            pairs.append(("to", self.to))
        return pairs


@dataclass(frozen=True)
class Step:
    """A step of a recipe: actions run on the hosts a pattern names (see docs/recipes.md)."""

    id: str
    actions: tuple[Action, ...]
    hosts: str | None = None
    requires: tuple[str, ...] = ()
    sync: str = "all"
    critical: bool = True
    max_fail: int | str = 0
    timeout: float | None = None
    window: int | None = None
    retries: int = 0
    ok_exits: tuple[int | str, ...] = (0,)
    capture: str | None = None
    always: bool = False
    background: bool = False
    stop_after: tuple[str, ...] = ()
    enabled: bool | str = True
    once: bool = False
    line: int | None = None
    lines: Mapping[str, int] = field(default_factory=dict, compare=False)

    def line_of(self, key: str) -> int | None:
        """The line that wrote ``key`` in this step (else the step's header)."""
        return self.lines.get(key, self.line)

    @property
    def is_local(self) -> bool:
        """True for a step that runs on the controller (no hosts)."""
        return self.hosts is None

    def tolerated(self, hosts: int) -> int:
        """How many hosts may end not ok before the step fails (``max_fail``)."""
        if isinstance(self.max_fail, int):
            return self.max_fail
        percent = float(self.max_fail.rstrip("%"))
        return math.floor(hosts * percent / 100 + 1e-9)


@dataclass(frozen=True)
class Recipe:
    """A loaded and validated recipe.

    Attributes:
        name: ``[a-z0-9_-]+``.
        path: the recipe file; scripts and pushed files are relative to its directory.
        vars: ``[vars]``.
        matrix: ``[matrix]``: key -> values (the sweep is their cartesian product).
        steps: in file order.
        lines: where each top-level key was written (for later errors).
    """

    name: str
    path: Path
    steps: tuple[Step, ...]
    description: str = ""
    window: int | None = None
    timeout: float | None = None
    vars: Mapping[str, Any] = field(default_factory=dict)
    matrix: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        """The recipe's directory: relative paths start there."""
        return self.path.parent

    @property
    def source(self) -> str:
        """The recipe file, as errors name it."""
        return str(self.path)

    def step(self, step_id: str) -> Step:
        """The step called ``step_id`` (KeyError if none)."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def error(self, message: str, step: Step | None = None, line: int | None = None) -> RecipeError:
        """A RecipeError about this recipe (and a step of it)."""
        return RecipeError(
            message,
            source=self.source,
            line=line if line is not None else (step.line if step else None),
            step=step.id if step else None,
        )

    def ancestors(self, step_id: str) -> set[str]:
        """Every step that ``step_id`` requires, directly or not."""
        seen: set[str] = set()
        todo = list(self.step(step_id).requires)
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(self.step(current).requires)
        return seen

    def descendants(self, step_id: str) -> set[str]:
        """Every step that requires ``step_id``, directly or not."""
        return {step.id for step in self.steps if step_id in self.ancestors(step.id)}

    def order(self) -> list[Step]:
        """The steps in an order where each comes after what it requires (file order first)."""
        done: set[str] = set()
        ordered: list[Step] = []
        pending = list(self.steps)
        while pending:
            for step in pending:
                if all(req in done for req in step.requires):
                    ordered.append(step)
                    done.add(step.id)
                    pending.remove(step)
                    break
            else:  # a cycle: the loader refuses those
                raise self.error("cycle in requires")
        return ordered
