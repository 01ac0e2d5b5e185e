"""Click options shared by every command that picks hosts: ``-i``, ``-g``, ``-x``.

Decorate a command with `inventory_options`; it receives ``inventory`` (a tuple
of paths), ``group`` (the ``-g`` pattern or None) and ``exclude`` (the ``-x``
pattern or None). Then `load_inventory` and `Inventory.select` do the rest, or
`select_hosts` does both. Import-light on purpose: no asyncssh here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from apssh_cli.errors import InventoryError

if TYPE_CHECKING:
    from apssh_cli.inventory.model import Host, Inventory

ENV_INVENTORY = "APSSH_INVENTORY"
NO_INVENTORY_MESSAGE = f"no inventory given: use -i FILE, or set {ENV_INVENTORY}"

F = TypeVar("F", bound=Callable[..., Any])


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


def load_inventory(paths: Sequence[str | os.PathLike[str]]) -> Inventory:
    """Load and merge the inventory files given with ``-i`` (or the env var).

    Raises:
        InventoryError: no file given, or a file that cannot be read or is wrong.
    """
    from apssh_cli.inventory.model import Inventory

    given = [os.fspath(path) for path in paths if os.fspath(path)]
    if not given:
        raise InventoryError(NO_INVENTORY_MESSAGE)
    return Inventory.load(given)


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
