"""Host patterns (``-g``/``-x``): Ansible's pattern language, evaluated on an Inventory.

A pattern is a list of terms separated by ``,`` (or by ``:`` when there is no
comma). A plain term adds hosts, ``&term`` keeps only hosts also in term,
``!term`` removes hosts; unions come first, then intersections, then
exclusions, whatever the order written. A pattern made only of ``&``/``!``
terms starts from ``all``.

A term is:

- ``all`` or ``*``: every host;
- a group name (its hosts and its descendants'), or ``@group`` for a group only;
- a host name;
- a glob, ``node0*`` or ``web-?``, matched against group and host names;
- a range, ``node[01:05]``: the names it expands to that exist;
- ``~regex``: group and host names that match it from their start.

::

    >>> [h.name for h in select(inventory, "web,db,&prod,!web03")]  # doctest: +SKIP
    ['web01', 'web02', 'db01']

A term that matches nothing raises `SelectionError`, which suggests near names.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from apssh_cli.errors import HostRangeError, SelectionError
from apssh_cli.inventory import hostrange

if TYPE_CHECKING:
    from apssh_cli.inventory.model import Host, Inventory

ALL_PATTERNS = ("all", "*")
_GLOB_CHARS = frozenset("*?")


def select(inventory: Inventory, pattern: str = "all", exclude: str | None = None) -> list[Host]:
    """The hosts ``pattern`` names, minus those ``exclude`` names, in inventory order.

    Args:
        inventory: where names are looked up.
        pattern: a ``-g`` pattern (see the module docstring).
        exclude: a ``-x`` pattern; its hosts are removed.

    Raises:
        SelectionError: an empty or malformed pattern, or a term that matches nothing.
    """
    names = evaluate(inventory, pattern)
    if exclude is not None:
        names -= evaluate(inventory, exclude)
    return [host for host in inventory if host.name in names]


def evaluate(inventory: Inventory, pattern: str) -> set[str]:
    """The set of host names a pattern stands for.

    Raises:
        SelectionError: as `select`.
    """
    unions: list[str] = []
    intersections: list[str] = []
    exclusions: list[str] = []
    for term in split_pattern(pattern):
        if term.startswith("!"):
            exclusions.append(term[1:])
        elif term.startswith("&"):
            intersections.append(term[1:])
        else:
            unions.append(term)
    if not unions:
        unions.append("all")
    names: set[str] = set()
    for term in unions:
        names |= _match_term(inventory, term)
    for term in intersections:
        names &= _match_term(inventory, term)
    for term in exclusions:
        names -= _match_term(inventory, term)
    return names


def split_pattern(pattern: str) -> list[str]:
    """Split a pattern into its terms, brackets kept whole.

    Raises:
        SelectionError: the pattern has no terms.
    """
    pieces = hostrange.split_top_level(pattern, ",")
    if len(pieces) == 1:  # no comma outside brackets: Ansible's older ':' separator
        pieces = hostrange.split_top_level(pattern, ":")
    terms = [piece.strip() for piece in pieces if piece.strip()]
    if not terms:
        raise SelectionError("empty host pattern", pattern=pattern)
    for term in terms:
        if term.lstrip("!&") == "" or term[:2] in ("!!", "&&", "!&", "&!"):
            raise SelectionError(f"bad term {term!r} in pattern {pattern!r}", pattern=term)
    return terms


def _match_term(inventory: Inventory, term: str) -> set[str]:
    """Host names for one term (no ``!``/``&`` prefix); SelectionError if none."""
    if term in ALL_PATTERNS:
        return set(inventory.hosts)
    if term.startswith("@"):
        group = term[1:]
        if group not in inventory.groups:
            raise _no_match(inventory, term, groups_only=True)
        return set(inventory.members(group))
    if term.startswith("~"):
        try:
            with warnings.catch_warnings():  # e.g. FutureWarning "possible nested set"
                warnings.simplefilter("ignore")
                regex = re.compile(term[1:])
        except re.error as exc:
            raise SelectionError(f"bad regular expression {term!r}: {exc}", pattern=term) from None
        found = _by_name(inventory, lambda name: regex.match(name) is not None)
    elif hostrange.has_range(term):
        try:
            names = hostrange.expand(term)
        except HostRangeError as exc:
            raise SelectionError(f"bad range in pattern: {exc.message}", pattern=term) from None
        found = set()
        for name in names:
            found |= _match_simple(inventory, name)
    else:
        found = _match_simple(inventory, term)
    if not found and not _names_something(inventory, term):
        raise _no_match(inventory, term)
    return found


def _match_simple(inventory: Inventory, term: str) -> set[str]:
    """A group, a host, or a glob over both; empty if nothing matches."""
    if _GLOB_CHARS.intersection(term):
        return _by_name(inventory, lambda name: fnmatch.fnmatchcase(name, term))
    if term in inventory.groups:
        return set(inventory.members(term))
    if term in inventory.hosts:
        return {term}
    return set()


def _by_name(inventory: Inventory, matches: Callable[[str], bool]) -> set[str]:
    found: set[str] = set()
    for group in inventory.groups:
        if matches(group):
            found |= inventory.members(group)
    found.update(name for name in inventory.hosts if matches(name))
    return found


def _names_something(inventory: Inventory, term: str) -> bool:
    """An existing but empty group is not an error: it names something."""
    name = term.removeprefix("@")
    return name in inventory.groups


def _no_match(inventory: Inventory, term: str, *, groups_only: bool = False) -> SelectionError:
    name = term.removeprefix("@")
    candidates = list(inventory.groups) if groups_only else [*inventory.groups, *inventory.hosts]
    what = "no group" if groups_only else "no group or host"
    hint = did_you_mean(name, candidates)
    return SelectionError(f"{what} matches {term!r}{hint}", pattern=term)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean a, b?)`` with up to 3 near names in their given order, or ``""``."""
    names = list(candidates)
    near = set(difflib.get_close_matches(name, names, n=3))
    ordered = [candidate for candidate in dict.fromkeys(names) if candidate in near]
    return f" (did you mean {', '.join(ordered)}?)" if ordered else ""
