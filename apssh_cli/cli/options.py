"""Click options shared by every command that picks hosts: ``-i``, ``-g``, ``-x``.

Decorate a command with `inventory_options`; it receives ``inventory`` (a tuple
of paths), ``group`` (the ``-g`` pattern or None) and ``exclude`` (the ``-x``
pattern or None). Then `load_inventory` and `Inventory.select` do the rest, or
`select_hosts` does both. Import-light on purpose: no asyncssh here.

Also the value types of numeric options (`Seconds`, `Count`): they refuse what
would make no sense (``nan``, ``inf``, zero or negative durations) before
anything runs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from apssh_cli.errors import InventoryError

if TYPE_CHECKING:
    from apssh_cli.inventory.model import Host, HostConflict, Inventory

ENV_INVENTORY = "APSSH_INVENTORY"
NO_INVENTORY_MESSAGE = f"no inventory given: use -i FILE, or set {ENV_INVENTORY}"

F = TypeVar("F", bound=Callable[..., Any])

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
    """A duration in seconds: a finite number above 0 (``nan``, ``inf``, ``0``, ``-1`` refused).

    >>> Seconds().convert("2.5", None, None)
    2.5
    """

    name = "seconds"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        else:
            try:
                number = float(str(value).strip())
            except ValueError:
                number = math.nan
        if not (0 < number <= MAX_SECONDS):  # also False for nan
            self.fail(
                f"expected a number of seconds above 0 and at most {MAX_SECONDS}, got {value!r}",
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


def inventory_options(function: F) -> F:
    """Add ``-i/--inventory``, ``-g/--group`` and ``-x/--exclude`` to a click command."""
    function = click.option(
        "-x",
        "--exclude",
        metavar="PATTERN",
        default=None,
        help="Leave out the hosts this pattern names.",
    )(function)
    function = click.option(
        "-g",
        "--group",
        metavar="PATTERN",
        default=None,
        help="Hosts to use: groups, hosts, globs (node0*), ranges (node[01:05]), "
        "~regex; ',' for union, '&' to intersect, '!' to exclude. Default: all.",
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
            different connection settings (`Inventory.conflicts`).

    Raises:
        InventoryError: no file given, or a file that cannot be read or is wrong.
    """
    from apssh_cli.inventory.model import Inventory

    given = [os.fspath(path) for path in paths if os.fspath(path)]
    if not given:
        raise InventoryError(NO_INVENTORY_MESSAGE)
    inventory = Inventory.load(given)
    if warn:
        for conflict in inventory.conflicts:
            click.echo(conflict_warning(conflict), err=True)
    return inventory


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
