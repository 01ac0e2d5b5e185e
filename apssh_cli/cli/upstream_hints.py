"""What to tell users who type upstream apssh's flags (parmentelat's ``apssh`` command).

Three flags mean something else here (docs/migrating.md has the whole table):

- upstream's ``-g`` is a gateway; ours is a group pattern, the gateway is ``-G``: a ``-g``
  error gains a hint when there is no inventory or the value looks like a host, not a group;
- upstream's ``-t FILE`` reads targets from an existing file; ours reads ``-t @FILE``:
  a ``-t`` word that is an existing file is refused when it holds a ``/`` (no host name does)
  and warned about otherwise (a host may be named like a file in the current directory);
- upstream's ``-i`` is an include; ours is ``--include``, and ``-i`` after ``-s SCRIPT`` goes
  to the script as an argument: warned about when the word after it is a local file.

Pure functions of the arguments (and of the files they name): no SSH, no click.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from apssh_cli.errors import ConfigError

if TYPE_CHECKING:
    from apssh_cli.inventory.model import Inventory

__all__ = ["gateway_hint", "include_warnings", "target_file_warnings"]

# [user@]host[:port] whose host has a dot (a domain, an IPv4 address) or that names a user
_HOST_LIKE = re.compile(r"^(?:[\w.+-]+@)?[\w-]+(?:\.[\w-]+)*(?::\d+)?$")
_PATTERN_SYNTAX = set(",&!~*?[]")


def gateway_hint(pattern: str, inventory: Inventory | None) -> str | None:
    """The hint for a failed ``-g PATTERN``, if upstream's gateway option may be meant.

    Args:
        pattern: the ``-g`` value.
        inventory: the loaded inventory, or None when none was given.
    """
    upstream = f"upstream apssh's -g (gateway) is -G here: -G {pattern}"
    if inventory is None:
        return f"-g picks inventory groups; {upstream}"
    if _PATTERN_SYNTAX & set(pattern) or pattern in inventory.groups:
        return None
    if pattern in inventory.hosts or not _HOST_LIKE.match(pattern):
        return None
    if "." in pattern or "@" in pattern:
        return f"no group named {pattern!r}; {upstream}"
    return None


def target_file_warnings(values: Iterable[str]) -> list[str]:
    """Warnings for ``-t`` words that are existing files (upstream reads targets from them).

    Raises:
        ConfigError: a word with a ``/`` that is a file: it cannot be a host name.
    """
    from apssh_cli.inventory.targets import split_specs

    warnings: list[str] = []
    for value in values:
        for word in split_specs(value):
            if word.startswith("@") or not os.path.isfile(word):
                continue
            if "/" in word:
                raise ConfigError(
                    f"-t {word}: a file, not a host; -t @{word} reads targets from it "
                    "(upstream apssh's -t FILE)"
                )
            warnings.append(
                f"-t {word} is taken as a host name, but {word} is also a local file: "
                f"-t @{word} reads targets from it (upstream apssh's -t FILE)"
            )
    return warnings


def include_warnings(script_words: Sequence[str]) -> list[str]:
    """Warnings for ``-i FILE`` after ``-s SCRIPT`` (upstream's include) where FILE exists.

    Args:
        script_words: the script and its arguments, as given after ``-s``.
    """
    warnings: list[str] = []
    script, arguments = script_words[0], script_words[1:]
    for flag, value in itertools.pairwise(arguments):
        if flag in ("-i", "--includes") and os.path.isfile(value):
            warnings.append(
                f"{flag} {value} after the script goes to {script} as arguments, and "
                f"{value} is not sent; upstream apssh's {flag} (include) is --include here, "
                f"before the script: --include {value} -s {script}"
            )
    return warnings
