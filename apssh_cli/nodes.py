"""SshNodes for the hosts of an inventory, gateways shared: scripts need no addresses.

An experiment script (nepi-ng style) builds its SshNodes itself. With an
inventory, such as the one ``apssh lab up`` writes, it can take them from there
instead, with every setting of each host (address, port, user, key, host key
file, gateway chain)::

    nodes = nodes_from_inventory(".lab/inventory.toml", "nodes")
    node1 = nodes["node1"]        # behind the lab's bastion, as the inventory says

Nodes behind the same gateway share one gateway node, hence one connection.

``SshNode`` and ``LocalNode`` are importable from here too, as from upstream's
``apssh.nodes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from apssh_cli.inventory.model import Inventory
from apssh_cli.inventory.targets import NodeSettings, build_nodes, inventory_target
from apssh_cli.output import Formatter
from apssh_cli.ssh.node import LocalNode, SshNode

__all__ = ["LocalNode", "SshNode", "nodes_from_inventory"]


def nodes_from_inventory(
    inventory: Inventory | str | Path | Sequence[str | Path],
    pattern: str = "all",
    *,
    exclude: str | None = None,
    formatter: Formatter | None = None,
    verbose: bool = False,
    connect_retries: int = 0,
) -> dict[str, Any]:
    """One node per selected host (an SshNode, or a LocalNode for ``connection = "local"``).

    Args:
        inventory: an Inventory, or the TOML file(s) to load.
        pattern: which hosts, in the ``-g`` grammar (``"nodes"``, ``"node[1:2]"``...).
        exclude: hosts to leave out (the ``-x`` grammar).
        formatter: every node's formatter (default: ``host:line``).
        verbose: report connection and command events to the formatter.
        connect_retries: extra attempts for an unreachable host.

    Returns:
        The nodes by inventory name, in inventory order.

    Raises:
        InventoryError: the inventory cannot be read, or the pattern names nothing.
    """
    if not isinstance(inventory, Inventory):
        paths = [inventory] if isinstance(inventory, str | Path) else list(inventory)
        inventory = Inventory.load(paths)
    targets = [
        inventory_target(inventory, host.name) for host in inventory.select(pattern, exclude)
    ]
    settings = NodeSettings(connect_retries=connect_retries, formatter=formatter, verbose=verbose)
    nodes, _ = build_nodes(targets, ssh_node=SshNode, local_node=LocalNode, settings=settings)
    return nodes
