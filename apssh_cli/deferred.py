"""Values known only while an experiment runs: Variables, Capture and Deferred.

A Scheduler is built whole before anything runs, so a command cannot be written
with a value that an earlier command will print (a pod name, an address...).
Instead:

- ``Run("hostname", capture=Capture("name", env))`` stores the command's stdout
  (one trailing newline removed) in ``env["name"]`` once it has run; at most
  ``max_bytes`` bytes of it (1 MiB by default, the bound of every capture: whole
  lines, a prefix of the output), and ``truncated`` says whether lines were left out;
- ``Run(Deferred("ping -c1 {{name}}", env))`` is rendered just before it runs,
  with the Jinja2 template syntax, from what ``env`` holds at that time.

A name that is not known yet stays as written (``{{name}}``), so that graphs and
listings drawn before the run show the template.

>>> env = Variables()
>>> env.host = "node1"
>>> str(Deferred("ping -c1 {{host}} # {{later}}", env))
'ping -c1 node1 # {{ later }}'

Jinja2 is imported on first rendering only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class Variables(dict[str, Any]):
    """A dict whose keys are also attributes: ``env.x`` is ``env["x"]``.

    A missing attribute reads as ``""``, so a template or an f-string does not
    fail on a value that was never captured.
    """

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # keep copy/pickle protocols working
            raise AttributeError(name)
        return self.get(name, "")

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None


class Deferred:
    """A command text rendered when its command runs, from ``variables``.

    Use it where a string is expected in ``Run``, ``RunScript``/``RunString``
    arguments, or ``Service``. Beware of f-strings: ``{{x}}`` in an f-string
    becomes ``{x}``; write ``{{{{x}}}}`` there, or do not use an f-string.

    Args:
        template: Jinja2 template text (``{{ name }}``, ``{{ a + b }}``, filters...).
        variables: where the values come from (usually filled by ``Capture``).
    """

    def __init__(self, template: str, variables: Variables | dict[str, Any]) -> None:
        self.template = template
        self.variables = variables

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"Deferred({self.template!r})"

    def render(self) -> str:
        """The text with the values known now; unknown names are left as they are."""
        from jinja2 import DebugUndefined, Template

        text: str = Template(self.template, undefined=DebugUndefined).render(**self.variables)
        return text

    def dup_from_string(self, template: str) -> Deferred:
        """Another Deferred on the same variables."""
        return Deferred(template, self.variables)

    def replace(self, old: str, new: str) -> Deferred:
        """A Deferred whose template has ``old`` replaced (as ``str.replace``)."""
        return Deferred(self.template.replace(old, new), self.variables)


@dataclass
class Capture:
    """Where a command's captured stdout goes: ``variables[varname]``.

    Args:
        varname: the variable's name.
        variables: the Variables (or dict) that receives it.
        max_bytes: what is kept, in bytes (None: everything); past it, the value is
            the lines that fit (a prefix of the output) and ``truncated`` is True.

    Attributes:
        truncated: the last stored value left lines out (past ``max_bytes``).
    """

    varname: str
    variables: Variables | dict[str, Any]
    max_bytes: int | None = 1 << 20  # output.DEFAULT_CAPTURE_BYTES (a unit test ties them)
    truncated: bool = False

    def store(self, text: str, *, truncated: bool = False) -> None:
        """Record ``text`` without its trailing newline (as ``$(...)`` in a shell)."""
        self.truncated = truncated
        self.variables[self.varname] = text[:-1] if text.endswith("\n") else text
