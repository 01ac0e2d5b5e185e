"""Closing nodes with their gateways: remotest first, so no tunnel closes under a node.

`close_nodes` needs to know of a node only how to close it and which gateway it
tunnels through (`ClosableNode`), so that both the node module and
:class:`~apssh_cli.ssh.context.SshContext` (which closes the jump nodes it made)
can import it without importing each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Protocol

__all__ = ["ClosableNode", "close_nodes", "closing"]


class ClosableNode(Protocol):
    """What closing needs of a node (SshNode and LocalNode are ones)."""

    @property
    def known_gateway(self) -> ClosableNode | None:
        """The node this one tunnels through, as far as known without reading ssh_config."""

    async def close(self) -> None:
        """Close this node's own connection (not its gateway's)."""


def _depth(node: ClosableNode) -> int:
    depth = 0
    current = node.known_gateway
    while current is not None:
        depth += 1
        current = current.known_gateway
    return depth


async def close_nodes(nodes: Iterable[ClosableNode]) -> None:
    """Close the nodes and all their gateways: remotest first, gateways last.

    Nodes at the same depth are closed concurrently.
    """
    everything: dict[int, ClosableNode] = {}
    for node in nodes:
        current: ClosableNode | None = node
        while current is not None and id(current) not in everything:
            everything[id(current)] = current
            current = current.known_gateway
    by_depth: dict[int, list[ClosableNode]] = {}
    for node in everything.values():
        by_depth.setdefault(_depth(node), []).append(node)
    for depth in sorted(by_depth, reverse=True):
        await asyncio.gather(*(node.close() for node in by_depth[depth]), return_exceptions=True)


@asynccontextmanager
async def closing(nodes: Iterable[ClosableNode]) -> AsyncIterator[None]:
    """``async with closing(nodes):`` closes them (and their gateways) on the way out."""
    nodes = list(nodes)
    try:
        yield
    finally:
        await close_nodes(nodes)
