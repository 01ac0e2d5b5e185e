"""Templates: ``{name}``, ``{name:q}``, ``{{``/``}}``, and the references of captures.

A template is parsed once into literal text and :class:`Field` references::

    >>> [f.source for f in parse("run {size} -o {cap.addr@node1:q}") if isinstance(f, Field)]
    ['{size}', '{cap.addr@node1:q}']

Field kinds: ``name`` (a variable, matrix key or built-in), ``group`` (``{group.NAME}``),
and the *deferred* ones, known only when the task starts: ``cap`` (``{cap.NAME}``,
``{cap.NAME@HOST}``, ``{cap.NAME[*]}``), ``ok`` and ``failed`` (``{ok.STEP}``).
:func:`render` fills what a resolver knows and keeps the deferred fields, so that
a plan can show them as written and the runner can finish the job later.

The deferred values come from hosts (a capture is whatever a host printed): where
they reach a shell they are shell-quoted, one word per value, unless the field
says ``:raw``; the values a user wrote (variables, matrix, built-ins) are inserted
as written, or quoted with ``:q``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

DEFERRED_KINDS = frozenset({"cap", "ok", "failed"})

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_ID = r"[a-z0-9_-]+"
_FIELD = re.compile(
    rf"(?:(?P<name>{_NAME})"
    rf"|group\.(?P<group>[A-Za-z0-9_.-]+)"
    rf"|cap\.(?P<cap>{_NAME})(?:@(?P<host>[^\s:{{}}\[\]]+)|(?P<all>\[\*\]))?"
    rf"|(?P<state>ok|failed)\.(?P<step>{_ID}))"
    r"(?P<modifier>:q|:raw)?"
)


class TemplateError(ValueError):
    """A template that cannot be parsed (unbalanced braces, a bad field)."""


@dataclass(frozen=True)
class Field:
    """One ``{...}`` reference.

    Attributes:
        kind: name, group, cap, ok or failed.
        name: the variable, group, capture or step name.
        host: ``{cap.NAME@HOST}``'s host.
        joined: ``{cap.NAME[*]}``.
        quote: ``:q``: insert the value shell-quoted (a list: as one word).
        raw: ``:raw``: a value from hosts inserted as it is, even into a shell
            command (only for deferred fields).
        source: the field as written.
    """

    kind: str
    name: str
    host: str | None = None
    joined: bool = False
    quote: bool = False
    source: str = ""
    raw: bool = False

    @property
    def is_deferred(self) -> bool:
        """Known only when the task starts (captures, host lists of a step)."""
        return self.kind in DEFERRED_KINDS


Part = str | Field
Parts = tuple[Part, ...]


def parse(text: str) -> Parts:
    """Split a template into literal text and fields.

    Raises:
        TemplateError: an unclosed ``{``, a lone ``}``, or a field that is not a name.
    """
    parts: list[Part] = []
    literal: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "{" and text.startswith("{{", index):
            literal.append("{")
            index += 2
        elif char == "}" and text.startswith("}}", index):
            literal.append("}")
            index += 2
        elif char == "}":
            raise TemplateError(f"lone '}}' at position {index + 1} (write '}}}}' for a brace)")
        elif char == "{":
            end = text.find("}", index)
            if end < 0:
                raise TemplateError(
                    f"unclosed '{{' at position {index + 1} (write '{{{{' for a brace)"
                )
            body = text[index + 1 : end]
            match = _FIELD.fullmatch(body)
            if match is None:
                raise TemplateError(f"bad reference {{{body}}}")
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(_field(match, text[index : end + 1]))
            index = end + 1
        else:
            literal.append(char)
            index += 1
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


def _field(match: re.Match[str], source: str) -> Field:
    quote = match["modifier"] == ":q"
    if match["modifier"] == ":raw" and match["cap"] is None and match["state"] is None:
        raise TemplateError(
            f"{source}: ':raw' is for values from hosts ({{cap.*}}, {{ok.*}}, {{failed.*}}); "
            "a variable is inserted as written already"
        )
    raw = match["modifier"] == ":raw"
    if match["name"] is not None:
        return Field("name", match["name"], quote=quote, source=source)
    if match["group"] is not None:
        return Field("group", match["group"], quote=quote, source=source)
    if match["cap"] is not None:
        return Field(
            "cap",
            match["cap"],
            host=match["host"],
            joined=match["all"] is not None,
            quote=quote,
            source=source,
            raw=raw,
        )
    return Field(match["state"], match["step"], quote=quote, source=source, raw=raw)


def fields(text: str) -> list[Field]:
    """The fields of a template (TemplateError if it cannot be parsed)."""
    return [part for part in parse(text) if isinstance(part, Field)]


def format_value(value: Any) -> str:
    """A variable's value as text: booleans as true/false, lists space-separated."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return " ".join(format_value(item) for item in value)
    return str(value)


Resolver = Callable[[Field], Any]


def render(
    parts: Sequence[Part], resolve: Resolver, *, keep_deferred: bool = False, shell: bool = True
) -> Parts:
    """Fill the fields that ``resolve`` knows.

    Args:
        parts: a parsed template.
        resolve: a field's value (a KeyError propagates: an unknown name); a list
            for the deferred fields that name several values (``[*]``, ``ok``).
        keep_deferred: keep deferred fields as they are instead of resolving them.
        shell: the text is shell code: values from hosts are quoted, one word
            each, unless ``:raw``. False for an argument (quoted whole later) or
            a path (no shell reads it): they are inserted as they are.

    Returns:
        The parts, merged: one string when nothing was kept.
    """
    out: list[Part] = []
    for part in parts:
        if isinstance(part, Field) and not (keep_deferred and part.is_deferred):
            part = _insert(part, resolve(part), shell)
        if isinstance(part, str) and out and isinstance(out[-1], str):
            out[-1] += part
        elif part != "":
            out.append(part)
    return tuple(out)


def _insert(field: Field, value: Any, shell: bool) -> str:
    if field.quote:
        return shlex.quote(format_value(value))
    if not (field.is_deferred and shell) or field.raw:
        return format_value(value)
    # a value from a host never runs as code: each one a single shell word
    if isinstance(value, list | tuple):
        return " ".join(shlex.quote(format_value(item)) for item in value)
    return shlex.quote(format_value(value))


def text_of(parts: Sequence[Part]) -> str:
    """The parts as text; kept fields as written (for plans and messages)."""
    return "".join(part if isinstance(part, str) else part.source for part in parts)


def is_final(parts: Sequence[Part]) -> bool:
    """Whether nothing is left to resolve."""
    return all(isinstance(part, str) for part in parts)
