"""Deferred references rendered when a task starts: captures, and the hosts of a step.

``{cap.NAME}`` (this host's value, or one host's: ``{cap.NAME[host]}``), ``{cap.NAME[*]}``
(every host's that ended ok), ``{ok.STEP}`` and ``{failed.STEP}`` (hosts), read in the
nearest ancestor step instance of the task (the same matrix combination).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apssh_cli.errors import ApsshError
from apssh_cli.recipe.planner import Instance, Plan, Task
from apssh_cli.recipe.state import BAD, OK, RUNNING
from apssh_cli.recipe.template import Field, Parts, TemplateError, render, text_of

__all__ = ["Captures", "References", "combo_of", "load_captures"]

# values captured: (capture name, combination slug) -> host -> value
Captures = dict[tuple[str, str], dict[str, str]]


def combo_of(instance: Instance) -> str:
    """The slug of an instance's matrix combination ("" without a matrix)."""
    return instance.combo.slug if instance.combo is not None else ""


def load_captures(data: dict[str, Any]) -> Captures:
    """Captures as captures.json holds them (``{name: {combo: {host: value}}}``)."""
    found: Captures = {}
    for name, combos in data.items():
        for combo, values in combos.items() if isinstance(combos, dict) else ():
            if isinstance(values, dict):
                found[(name, combo)] = {str(h): str(v) for h, v in values.items()}
    return found


class References:
    """What a run knows now, to render a task's deferred references.

    Args:
        plan: the run's plan.
        captures: the values captured so far.
        status_of: a task's state now.
    """

    def __init__(self, plan: Plan, captures: Captures, status_of: Callable[[Task], str]) -> None:
        self.plan = plan
        self.captures = captures
        self.status_of = status_of

    def renderer(self, task: Task) -> Callable[[Parts, bool], str]:
        """Render a text of ``task`` (``shell``: quoted for a shell).

        Raises:
            ApsshError: a value is missing, holds a NUL byte, or cannot be quoted there.
        """

        def final(parts: Parts, shell: bool) -> str:
            try:
                return text_of(render(parts, self.resolver(task), shell=shell))
            except TemplateError as exc:  # a user value moved a capture where no quote holds
                raise ApsshError(str(exc)) from None

        return final

    def resolver(self, task: Task) -> Callable[[Field], Any]:
        """The value of each deferred reference of ``task``, as known now."""
        inst = task.instance

        def resolve(fld: Field) -> Any:
            source = self.source_instance(inst, fld)
            if fld.kind in ("ok", "failed"):
                wanted = (OK, RUNNING) if fld.kind == "ok" else BAD
                return [t.host for t in source.tasks if self.status_of(t) in wanted]
            combo = combo_of(source)
            values = self.captures.get((fld.name, combo), {})
            if fld.joined:
                hosts = [
                    t.host for t in source.tasks if t.host in values and self.status_of(t) == OK
                ]
            else:
                host = fld.host
                if host is None:
                    host = task.host if task.host in source.hosts else source.hosts[0]
                if host not in values:
                    raise ApsshError(f"{fld.source}: no value captured on {host}")
                hosts = [host]
            for host in hosts:
                # no command line can carry a NUL (sshd drops the connection on one)
                if "\0" in values[host]:
                    raise ApsshError(
                        f"{fld.source}: the value captured on {host} holds a NUL byte, "
                        "which no command can carry"
                    )
            found = [values[host] for host in hosts]
            return found if fld.joined else found[0]

        return resolve

    def source_instance(self, inst: Instance, fld: Field) -> Instance:
        """The ancestor instance a deferred reference reads."""
        if fld.kind == "cap":
            step_id = next(s.id for s in self.plan.recipe.steps if s.capture == fld.name)
        else:
            step_id = fld.name
        source = inst.ancestor(step_id)
        if source is not None:
            return source
        raise ApsshError(f"{fld.source}: step {step_id!r} is not an ancestor")  # checked before
