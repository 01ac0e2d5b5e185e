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
        resolve: a field's value (a KeyError propagates: an unknown name).
        keep_deferred: keep deferred fields as they are instead of resolving them.
        shell: the text is shell code: a value from hosts becomes one shell word
            where it stands (see :func:`shell_places`), unless ``:raw``. False for
            an argument (quoted whole later) or a path (no shell reads it): values
            are inserted as they are.

    Raises:
        TemplateError: a value from hosts where no quoting can hold it (a
            here-document, an arithmetic expression...); see :func:`shell_places`.

    Returns:
        The parts, merged: one string when nothing was kept.
    """
    places = shell_places(parts) if shell else {}
    out: list[Part] = []
    for index, part in enumerate(parts):
        if isinstance(part, Field) and not (keep_deferred and part.is_deferred):
            part = _insert(part, resolve(part), places.get(index, WORD if shell else PATH))
        if isinstance(part, str) and out and isinstance(out[-1], str):
            out[-1] += part
        elif part != "":
            out.append(part)
    return tuple(out)


def _insert(field: Field, value: Any, place: str) -> str:
    text = format_value(value)
    if field.quote and (not field.is_deferred or place == PATH):
        return shlex.quote(text)
    if not field.is_deferred or field.raw or place == PATH:
        return text
    # a value from a host never runs as code: one shell word, wherever it stands
    if place == WORD:
        return shlex.quote(text)
    if place == IN_SINGLE:  # close the quotes, the word, open them again
        return "'" + shlex.quote(text) + "'"
    if place == IN_DOUBLE:
        return '"' + shlex.quote(text) + '"'
    raise TemplateError(refusal(field, place))


def refusal(field: Field, place: str) -> str:
    """Why a value from hosts cannot stand at ``place``, and what to write instead."""
    raw = field.source.removesuffix("}").removesuffix(":q") + ":raw}"
    return (
        f"{field.source} {place}: a value from a host cannot be quoted there; move it out "
        f'(v={field.source}; ... "$v") or write {raw} to take it as it is'
    )


# where a shell finds a field (shell_places); anything else is why it cannot be quoted
WORD, IN_SINGLE, IN_DOUBLE, PATH = "word", "single", "double", "path"
_REFUSED = {
    "heredoc": "in a here-document",
    "comment": "in a comment (a newline in the value would end it)",
    "arith": "in an arithmetic expression",
    "aparen": "in an arithmetic expression",
    "brace": "in a ${...} expansion",
    "ansi": "in a $'...' string",
    "backtick": "in a `...` substitution (write $(...))",
}
_WORD_END = frozenset(" \t\n;&|<>()")


def shell_places(parts: Sequence[Part]) -> dict[int, str]:
    """Where a POSIX shell reading the text finds each field (by index in ``parts``).

    WORD (outside quotes, also in ``$(...)``), IN_SINGLE or IN_DOUBLE (inside
    ``'...'`` or ``"..."``), or the reason no quoting can hold a value there: a
    here-document, ``$((...))``, ``${...}``, ``$'...'``, backquotes, right after a
    ``$`` or a backslash. Fields count as balanced text (their insertion is).
    """
    items: list[str | int] = []
    for index, part in enumerate(parts):
        if isinstance(part, str):
            items.extend(part)
        else:
            items.append(index)
    places: dict[int, str] = {}
    stack = ["top"]
    heredocs: list[tuple[str | None, bool]] = []  # delimiters waiting for the end of the line
    line: list[str | int] = []  # the current line of a here-document
    count = len(items)

    def at(k: int) -> str | int:
        return items[k] if k < count else ""

    k = 0
    while k < count:
        item, state = items[k], stack[-1]
        k += 1
        if isinstance(item, int):  # a field
            if state == "heredoc":
                line.append(item)
            # inside a refused construct at any depth (`${x:-'{cap}'}`): shells disagree
            # on how quotes nest there (dash and bash did), so no quoting is trusted
            enclosing = next((s for s in reversed(stack) if s in _REFUSED), None)
            if enclosing is not None:
                places[item] = _REFUSED[enclosing]
            elif state == "single":
                places[item] = IN_SINGLE
            elif state == "double":
                places[item] = IN_DOUBLE
            elif k >= 2 and at(k - 2) == "$" and not _escaped(items, k - 2):
                places[item] = "right after a '$'"
            else:
                places[item] = WORD
            continue
        if state == "heredoc":
            if item == "\n":
                delimiter, strip = heredocs[0]
                text = "".join(c for c in line if isinstance(c, str))
                ends = delimiter is not None and len(text) == len(line)
                if ends and (text.lstrip("\t") if strip else text) == delimiter:
                    heredocs.pop(0)
                    if not heredocs:
                        stack.pop()
                line = []
            else:
                line.append(item)
            continue
        if state == "single":
            if item == "'":
                stack.pop()
            continue
        if state == "comment":
            if item == "\n":
                stack.pop()
                if heredocs:  # `cat <<E # why`: the body starts on the next line
                    stack.append("heredoc")
            continue
        if item == "\\" and state != "single":
            following = at(k)
            if isinstance(following, int):
                places[following] = "right after a backslash"
            k += 1
            continue
        if state == "ansi":
            if item == "'":
                stack.pop()
            continue
        if state == "backtick":  # it ends at the next unescaped backquote, quotes or not
            if item == "`":
                stack.pop()
            continue
        if item == "$":
            after, second = at(k), at(k + 1)
            if after == "(" and second == "(":
                stack.append("arith")
                k += 2
            elif after == "(":
                stack.append("paren")
                k += 1
            elif after == "{":
                stack.append("brace")
                k += 1
            elif after == "'" and state != "double":
                stack.append("ansi")
                k += 1
            continue
        if item == "`":
            stack.append("backtick")
            continue
        if state == "double":
            if item == '"':
                stack.pop()
            continue
        if item == "'":
            stack.append("single")
        elif item == '"':
            stack.append("double")
        elif state == "brace":
            if item == "}":
                stack.pop()
        elif state in ("arith", "aparen"):
            if item == "(":
                stack.append("aparen")
            elif item == ")" and state == "aparen":
                stack.pop()
            elif item == ")" and at(k) == ")":
                stack.pop()
                k += 1
        elif item == "(":
            if at(k) == "(":
                stack.append("arith")
                k += 1
            else:
                stack.append("paren")
        elif item == ")":
            if state == "paren":
                stack.pop()
        elif item == "#" and _word_starts(items, k - 1):
            stack.append("comment")
        elif _word_starts(items, k - 1) and _word_at(items, k - 1) in ("case", "esac"):
            if _word_at(items, k - 1) == "case":
                stack.append("case")  # its patterns end with ')': no subshell closes there
            elif state == "case":
                stack.pop()
        elif item == "<" and at(k) == "<":
            if at(k + 1) == "<":  # a here-string: a plain word follows
                k += 2
                continue
            k += 1
            strip = at(k) == "-"
            k += 1 if strip else 0
            while at(k) in (" ", "\t"):
                k += 1
            k, delimiter = _read_word(items, k, places, "in a here-document's delimiter")
            heredocs.append((delimiter, strip))
        elif item in "<>" and at(k) == "&":
            # bash expands the word after >& and <& twice: no quoting holds there
            k += 1
            while at(k) in (" ", "\t"):
                k += 1
            k, _ = _read_word(items, k, places, "after a >& or <& redirection")
        elif item == "\n" and heredocs:
            stack.append("heredoc")
    return places


def _read_word(
    items: Sequence[str | int], k: int, places: dict[int, str], reason: str
) -> tuple[int, str | None]:
    """Read one shell word from k (quotes honoured); its fields get ``reason``.

    Returns where it ends, and its text with the quotes removed: None when it holds a
    field or an expansion (then the fields after it are refused too).
    """
    quote: str | None = None
    text: list[str] = []
    known = True
    while k < len(items):
        item = items[k]
        k += 1
        if isinstance(item, int):
            places[item] = reason
            known = False
        elif quote is None and item in _WORD_END:
            return k - 1, "".join(text) if known else None
        elif item == "\\" and quote != "'":
            following = items[k] if k < len(items) else ""
            if isinstance(following, int):
                places[following] = reason
                known = False
            else:
                text.append(following)
            k += 1
        elif quote is None and item in "'\"":
            quote = item
        elif item == quote:
            quote = None
        elif quote != "'" and item in "$`":
            _refuse_from(items, k, places)  # an expansion in the word: unclear from here on
            return len(items), None
        else:
            text.append(item)
    return k, "".join(text) if known else None


def _refuse_from(items: Sequence[str | int], k: int, places: dict[int, str]) -> None:
    for item in items[k:]:
        if isinstance(item, int):
            places.setdefault(item, "where the shell's reading of the text is unclear")


def _escaped(items: Sequence[str | int], k: int) -> bool:
    """Whether the character at k follows an odd run of backslashes."""
    run = 0
    while k - run - 1 >= 0 and items[k - run - 1] == "\\":
        run += 1
    return run % 2 == 1


def _word_starts(items: Sequence[str | int], k: int) -> bool:
    return k == 0 or (isinstance(items[k - 1], str) and items[k - 1] in _WORD_END)


def _word_at(items: Sequence[str | int], k: int) -> str:
    word = []
    while k < len(items) and isinstance(items[k], str) and items[k] not in _WORD_END:
        word.append(items[k])
        k += 1
    return "".join(str(c) for c in word)


def text_of(parts: Sequence[Part]) -> str:
    """The parts as text; kept fields as written (for plans and messages)."""
    return "".join(part if isinstance(part, str) else part.source for part in parts)


def is_final(parts: Sequence[Part]) -> bool:
    """Whether nothing is left to resolve."""
    return all(isinstance(part, str) for part in parts)
