"""Click options shared by every command that picks hosts: ``-i``, ``-g``, ``-x``.

Decorate a command with `inventory_options`; it receives ``inventory`` (a tuple
of paths), ``group`` (the ``-g`` pattern or None) and ``exclude`` (the ``-x``
pattern or None). Then `load_inventory` and `Inventory.select` do the rest, or
`select_hosts` does both. Import-light on purpose: no asyncssh here.

Also the value types of numeric options (`Seconds`, `Count`): they refuse what
would make no sense (``nan``, ``inf``, zero or negative durations) before
anything runs; durations take units as recipes do (``30s``, ``2m``, ``500ms``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from apssh_cli.durations import parse_duration
from apssh_cli.errors import InventoryError

if TYPE_CHECKING:
    from apssh_cli.inventory.model import Host, HostConflict, Inventory

ENV_INVENTORY = "APSSH_INVENTORY"
NO_INVENTORY_MESSAGE = f"no inventory given: use -i FILE, or set {ENV_INVENTORY}"

F = TypeVar("F", bound=Callable[..., Any])

# the secret masks of the inventories this command loaded: its error messages use them
_loaded_secrets: list[Any] = []

# Far above any real run, low enough that every layer (asyncio timers, the remote
# wrapper's deadline arithmetic) handles it as an ordinary number.
if TYPE_CHECKING:
    _ParamType = click.ParamType[Any, Any]  # generic in recent click only
else:
    _ParamType = click.ParamType

MAX_SECONDS = 1_000_000_000
MAX_COUNT = 1_000_000
MAX_RETRIES = 100  # 100 retries at the 8 s backoff ceiling: over 13 minutes per host


class Seconds(_ParamType):
    """A duration: seconds (``2.5``) or with a unit (``500ms``, ``30s``, ``2m``, ``1h``).

    Finite and above 0 (``nan``, ``inf``, ``0``, ``-1`` refused), at most MAX_SECONDS.

    Args:
        allow_zero: accept 0 too, for options where 0 means "off".

    >>> Seconds().convert("2.5", None, None), Seconds().convert("2m", None, None)
    (2.5, 120.0)
    """

    name = "duration"

    def __init__(self, *, allow_zero: bool = False) -> None:
        self.allow_zero = allow_zero

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:  # a plain number as before (1e1 included), else a duration with its unit
            number = float(value) if not isinstance(value, bool) else math.nan
        except ValueError:
            try:
                number = parse_duration(value, allow_zero=True)
            except ValueError:
                number = math.nan
        if number == 0 and self.allow_zero:
            return 0.0
        if not (0 < number <= MAX_SECONDS):  # also False for nan
            lowest = "0 (off) or above" if self.allow_zero else "above 0"
            self.fail(
                f"expected a duration {lowest} and at most {MAX_SECONDS} s "
                f"(seconds, or with a unit: 500ms, 30s, 2m, 1h), got {value!r}",
                param,
                ctx,
            )
        return number


class Count(_ParamType):
    """A whole number from `minimum` to `maximum` (``-w``, ``--retries``).

    >>> Count(minimum=1).convert("10", None, None)
    10
    """

    name = "integer"

    def __init__(self, minimum: int, maximum: int = MAX_COUNT) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number: int | None = value
        else:
            try:
                number = int(str(value).strip(), 10)
            except ValueError:
                number = None
        if number is None or not self.minimum <= number <= self.maximum:
            self.fail(
                f"expected a whole number from {self.minimum} to {self.maximum}, got {value!r}",
                param,
                ctx,
            )
        return number


def inventory_paths(ctx: click.Context | None) -> list[str]:
    """The ``-i`` files given so far (on this command or an enclosing one), else the env var."""
    while ctx is not None:
        given = [path for path in ctx.params.get("inventory") or () if path]
        if given:
            return given
        ctx = ctx.parent
    return [path for path in os.environ.get(ENV_INVENTORY, "").split(os.pathsep) if path]


def _completion_inventory(ctx: click.Context) -> Inventory | None:
    """The inventory for shell completion, or None: completion never fails loudly."""
    from apssh_cli.inventory.model import Inventory

    paths = inventory_paths(ctx)
    # regular files only: completing must never block on a fifo or /dev/zero
    if not paths or not all(os.path.isfile(path) for path in paths):
        return None
    try:
        return Inventory.load(paths)
    except Exception:  # a broken inventory only means no suggestions
        return None


def complete_pattern(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Complete the last term of a ``-g``/``-x`` pattern with group and host names.

    ``nodes,!no`` offers ``nodes,!node1``...: the terms before the last comma and
    the term's operator (``&``, ``!``, ``@``) are kept; ``@`` offers groups only.
    """
    inventory = _completion_inventory(ctx)
    if inventory is None:
        return []
    head, comma, term = incomplete.rpartition(",")
    operators = term[: len(term) - len(term.lstrip("&!@"))]
    word = term[len(operators) :]
    names = [name for name in _group_names(inventory) if name != "ungrouped"]
    if "@" not in operators:
        names += [name for name in inventory.hosts if name not in inventory.groups]
    prefix = f"{head}{comma}{operators}"
    return [prefix + name for name in names if name.startswith(word)]


def complete_host(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Complete an inventory host name (``apssh inventory host NAME``)."""
    inventory = _completion_inventory(ctx)
    if inventory is None:
        return []
    return [name for name in inventory.hosts if name.startswith(incomplete)]


def complete_group(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Complete an inventory group name (``apssh inventory graph GROUP``)."""
    inventory = _completion_inventory(ctx)
    if inventory is None:
        return []
    return [name for name in _group_names(inventory) if name.startswith(incomplete)]


def _group_names(inventory: Inventory) -> list[str]:
    """``all``, the groups in file order, then ``ungrouped``."""
    builtin = ("all", "ungrouped")
    return ["all", *(name for name in inventory.groups if name not in builtin), "ungrouped"]


def inventory_options(function: F) -> F:
    """Add ``-i/--inventory``, ``-g/--group`` and ``-x/--exclude`` to a click command."""
    function = click.option(
        "-x",
        "--exclude",
        metavar="PATTERN",
        default=None,
        help="Leave out the hosts this pattern names.",
        shell_complete=complete_pattern,
    )(function)
    function = click.option(
        "-g",
        "--group",
        metavar="PATTERN",
        default=None,
        help="Hosts to use: groups, hosts, globs (node0*), ranges (node[01:05]), "
        "~regex; ',' for union, '&' to intersect, '!' to exclude. Default: all.",
        shell_complete=complete_pattern,
    )(function)
    function = click.option(
        "-i",
        "--inventory",
        metavar="FILE",
        multiple=True,
        envvar=ENV_INVENTORY,
        show_envvar=True,
        # click.Path splits the env var on os.pathsep, so it may hold several files
        type=click.Path(dir_okay=False),
        help=f"TOML inventory file; repeat to merge several (default: ${ENV_INVENTORY}, "
        f"paths separated by {os.pathsep!r}).",
    )(function)
    return function


def load_inventory(paths: Sequence[str | os.PathLike[str]], *, warn: bool = True) -> Inventory:
    """Load and merge the inventory files given with ``-i`` (or the env var).

    Args:
        warn: print a warning on stderr for each host listed in two groups with
            different connection settings (`Inventory.conflicts`), and for each
            variable one typo away from a connection variable (`Inventory.typos`).

    Raises:
        InventoryError: no file given, or a file that cannot be read or is wrong.
    """
    from apssh_cli.inventory.model import Inventory

    given = [os.fspath(path) for path in paths if os.fspath(path)]
    if not given:
        raise InventoryError(NO_INVENTORY_MESSAGE)
    inventory = Inventory.load(given)
    from apssh_cli.inventory.secrets import SecretMask

    _loaded_secrets.append(SecretMask.of_inventory(inventory))
    if warn:
        for conflict in inventory.conflicts:
            click.echo(conflict_warning(conflict), err=True)
        for typo in inventory.typos:
            click.echo(f"apssh: warning: {typo}", err=True)
    return inventory


def mask_secrets(text: str) -> str:
    """``text`` with the secrets of every inventory loaded so far masked (error messages)."""
    for mask in _loaded_secrets:
        text = mask.text(text)
    return text


def forget_secrets() -> None:
    """Start a new command: the inventories of the previous one are forgotten."""
    _loaded_secrets.clear()


def conflict_warning(conflict: HostConflict) -> str:
    """The warning line of a host listed in two groups with different settings."""
    return f"apssh: warning: {conflict}; the later one wins"


def select_hosts(
    paths: Sequence[str | os.PathLike[str]],
    group: str | None = None,
    exclude: str | None = None,
) -> tuple[Inventory, list[Host]]:
    """Load the inventory and select hosts: ``-g`` defaults to all.

    Raises:
        InventoryError: as `load_inventory`; SelectionError for a bad pattern.
    """
    inventory = load_inventory(paths)
    return inventory, inventory.select(group or "all", exclude)
