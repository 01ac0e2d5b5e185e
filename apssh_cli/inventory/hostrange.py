"""Host ranges: expand ``node[01:03]`` into names, and fold names back into ranges.

Inside brackets, a comma separates items; an item is a number or a letter, or a
range written ``start:end`` (Ansible style) or ``start-end`` (ClusterShell style),
with an optional step ``start:end:step`` (or ``start-end/step``). Zero padding
follows the start: ``[01:10]`` gives two-digit numbers, ``[1:10]`` none. Several
bracket groups multiply, and a comma outside brackets separates names::

    >>> expand("node[01:03]")
    ['node01', 'node02', 'node03']
    >>> expand("rack[1-2]-[a:b]")
    ['rack1-a', 'rack1-b', 'rack2-a', 'rack2-b']
    >>> fold(["node01", "node02", "node03", "node07", "web"])
    'node[01-03,07],web'

This module is pure: no I/O, no inventory. ``expand(fold(names))`` gives back
the same set of names for any names made of letters, digits, dots, dashes and
underscores.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from apssh_cli.errors import HostRangeError

# A pattern may not expand to more names than this: a typo such as
# node[1:10000000] must fail fast rather than eat the memory.
MAX_NAMES = 1_000_000

_NUMBER = re.compile(r"[0-9]+")
_LETTER = re.compile(r"[A-Za-z]")
_LAST_DIGITS = re.compile(r"^(.*?)([0-9]+)([^0-9]*)$", re.DOTALL)


def expand(pattern: str) -> list[str]:
    """Expand a host pattern into the list of names it stands for, in order.

    Args:
        pattern: e.g. ``"node[01:20]"``, ``"db-[a:f]"``, ``"n[1:10:2]"``,
            ``"r[1-2]n[1-3]"``, or several such patterns separated by commas.

    Returns:
        The names, in the order written, duplicates removed.

    Raises:
        HostRangeError: unbalanced brackets, an empty or malformed item, a
            reversed range, a zero step, or more than ``MAX_NAMES`` names.
    """
    names: dict[str, None] = {}
    for piece in split_top_level(pattern):
        if not piece:
            raise HostRangeError(f"empty name in {pattern!r}", fragment=pattern)
        for name in _expand_one(piece):
            names[name] = None
            if len(names) > MAX_NAMES:
                raise HostRangeError(
                    f"{pattern!r} expands to more than {MAX_NAMES} names", fragment=pattern
                )
    return list(names)


def has_range(pattern: str) -> bool:
    """Tell whether ``pattern`` holds a bracket range (and so needs expanding)."""
    return "[" in pattern or "]" in pattern


def fold(names: Iterable[str]) -> str:
    """Fold names into a compact pattern, the inverse of `expand`.

    Names that differ only in their last number are gathered, ClusterShell style:
    ``node01, node02, node03, node07`` -> ``node[01-03,07]``. Groups are sorted
    by prefix; names without digits are kept as they are. Duplicates vanish.

    Args:
        names: host names (no brackets or commas in them).

    Returns:
        A comma-separated pattern; ``""`` for no names.
    """
    # (prefix, suffix) -> digit strings; names without digits stand alone
    buckets: dict[tuple[str, str], set[str]] = {}
    plain: set[str] = set()
    for name in names:
        match = _LAST_DIGITS.match(name)
        if match is None:
            plain.add(name)
        else:
            prefix, digits, suffix = match.groups()
            buckets.setdefault((prefix, suffix), set()).add(digits)
    parts = [((name, ""), name) for name in plain]
    for (prefix, suffix), numbers in buckets.items():
        if len(numbers) == 1:
            text = f"{prefix}{next(iter(numbers))}{suffix}"
        else:
            text = f"{prefix}[{_fold_numbers(numbers)}]{suffix}"
        parts.append(((prefix, suffix), text))
    return ",".join(text for _, text in sorted(parts))


def _fold_numbers(numbers: set[str]) -> str:
    """Write digit strings as ``01-03,07``; padding is kept exactly."""
    items = sorted(numbers, key=lambda digits: (int(digits), len(digits)))
    runs: list[tuple[str, str]] = []
    start = end = items[0]
    for digits in items[1:]:
        # extend the run only if the start's padding writes this number the same way
        if int(digits) == int(end) + 1 and f"{int(digits):0{len(start)}d}" == digits:
            end = digits
        else:
            runs.append((start, end))
            start = end = digits
    runs.append((start, end))
    return ",".join(start if start == end else f"{start}-{end}" for start, end in runs)


def split_top_level(text: str, separator: str = ",") -> list[str]:
    """Split ``text`` on the separators that are outside brackets.

    Brackets nest; a ``]`` with no open ``[`` is an ordinary character, and an
    unclosed ``[`` keeps the rest of the text in one piece (range expansion then
    reports it). Pieces are returned as written: not stripped, empty ones kept.

    Args:
        text: e.g. ``"node[1,3],web"``.
        separator: one character, not a bracket.

    Returns:
        The pieces, at least one.

    >>> split_top_level("node[1,3],web")
    ['node[1,3]', 'web']
    >>> split_top_level("a[1:2]:b", ":")
    ['a[1:2]', 'b']
    """
    if "[" not in text:  # the common case, and str.split is fast
        return text.split(separator)
    pieces = []
    depth = start = 0
    for index, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]" and depth > 0:
            depth -= 1
        elif char == separator and depth == 0:
            pieces.append(text[start:index])
            start = index + 1
    pieces.append(text[start:])
    return pieces


def _expand_one(pattern: str) -> list[str]:
    """Expand one name that holds zero or more bracket groups."""
    # literal text and bracket bodies alternate: text, body, text, body, ..., text
    texts: list[str] = []
    bodies: list[list[str]] = []
    position = 0
    while True:
        opening = pattern.find("[", position)
        closing = pattern.find("]", position)
        if opening < 0:
            if closing >= 0:
                raise HostRangeError(
                    f"unmatched ']' in {pattern!r}", fragment=pattern[position : closing + 1]
                )
            texts.append(pattern[position:])
            break
        if 0 <= closing < opening:
            raise HostRangeError(
                f"unmatched ']' in {pattern!r}", fragment=pattern[position : closing + 1]
            )
        end = pattern.find("]", opening)
        if end < 0:
            raise HostRangeError(f"unclosed '[' in {pattern!r}", fragment=pattern[opening:])
        body = pattern[opening + 1 : end]
        if "[" in body:
            raise HostRangeError(f"nested '[' in {pattern!r}", fragment=pattern[opening : end + 1])
        texts.append(pattern[position:opening])
        bodies.append(_expand_body(body, pattern))
        position = end + 1

    total = 1
    for values in bodies:
        total *= len(values)
        if total > MAX_NAMES:
            raise HostRangeError(
                f"{pattern!r} expands to more than {MAX_NAMES} names", fragment=pattern
            )
    names = [texts[0]]
    for values, text in zip(bodies, texts[1:], strict=True):
        names = [f"{name}{value}{text}" for name in names for value in values]
    return names


def _expand_body(body: str, pattern: str) -> list[str]:
    """Expand the inside of one bracket group: ``01:03,07`` -> 01 02 03 07."""
    if not body.strip():
        raise HostRangeError(f"empty range '[]' in {pattern!r}", fragment=f"[{body}]")
    values: list[str] = []
    for item in body.split(","):
        values.extend(_expand_item(item.strip(), pattern))
        if len(values) > MAX_NAMES:
            raise HostRangeError(
                f"{pattern!r} expands to more than {MAX_NAMES} names", fragment=f"[{body}]"
            )
    return values


def _expand_item(item: str, pattern: str) -> list[str]:
    """Expand ``5``, ``a``, ``1:9``, ``1:9:2``, ``1-9`` or ``1-9/2``."""
    if ":" in item:
        fields = item.split(":")
        if len(fields) > 3:
            raise HostRangeError(
                f"bad range '{item}' in {pattern!r}: use start:end or start:end:step",
                fragment=item,
            )
        start, end, *rest = fields
        step_text = rest[0] if rest else "1"
    elif "-" in item[1:]:
        head, sep, step_text = item.partition("/")
        start, _, end = head.partition("-")
        if not sep:
            step_text = "1"
    else:
        if _NUMBER.fullmatch(item) or _LETTER.fullmatch(item):
            return [item]
        raise HostRangeError(
            f"bad range item '{item}' in {pattern!r}: expected a number, a letter, or start:end",
            fragment=item,
        )
    if not _NUMBER.fullmatch(step_text) or int(step_text) == 0:
        raise HostRangeError(
            f"bad step '{step_text}' in {pattern!r}: expected a positive integer", fragment=item
        )
    step = int(step_text)
    if _NUMBER.fullmatch(start) and _NUMBER.fullmatch(end):
        first, last = int(start), int(end)
        if first > last:
            raise HostRangeError(
                f"reversed range '{item}' in {pattern!r}: {start} > {end}", fragment=item
            )
        if (last - first) // step + 1 > MAX_NAMES:
            raise HostRangeError(
                f"{pattern!r} expands to more than {MAX_NAMES} names", fragment=item
            )
        width = len(start)
        return [f"{value:0{width}d}" for value in range(first, last + 1, step)]
    if _LETTER.fullmatch(start) and _LETTER.fullmatch(end) and start.islower() == end.islower():
        if start > end:
            raise HostRangeError(
                f"reversed range '{item}' in {pattern!r}: {start} > {end}", fragment=item
            )
        return [chr(code) for code in range(ord(start), ord(end) + 1, step)]
    raise HostRangeError(
        f"bad range '{item}' in {pattern!r}: both ends must be numbers, "
        "or single letters of the same case",
        fragment=item,
    )
