"""Close every SSH connection a scheduler used: remotest first, gateways last.

Upstream apssh's ``close_ssh_in_scheduler`` / ``co_close_ssh_in_scheduler``:
the nodes of every SshJob in the scheduler (nested schedulers included) and,
by default, the gateways they go through. Jobs never close their node's
connection themselves, since nodes are shared between jobs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from apssh_cli.engine.job import SshJob
from apssh_cli.ssh.node import SshNode, close_nodes

__all__ = ["close_ssh_in_scheduler", "co_close_ssh_in_scheduler", "scheduler_nodes"]


def scheduler_nodes(scheduler: Any, manage_gateways: bool = True) -> list[SshNode]:
    """The SshNodes of the scheduler's jobs (nested schedulers too), and their gateways.

    Args:
        scheduler: an asynciojobs Scheduler (ours or asynciojobs' own).
        manage_gateways: add every gateway on the way to those nodes.
    """
    found: dict[int, SshNode] = {}
    for job in _jobs(scheduler):
        node = getattr(job, "node", None)
        if not isinstance(job, SshJob) or not isinstance(node, SshNode):
            continue
        while node is not None and id(node) not in found:
            found[id(node)] = node
            node = node.gateway if manage_gateways else None
    return list(found.values())


def _jobs(scheduler: Any) -> Iterable[Any]:
    # asynciojobs' iterate_jobs() walks nested schedulers and yields only jobs
    return list(scheduler.iterate_jobs())


async def co_close_ssh_in_scheduler(scheduler: Any, manage_gateways: bool = True) -> None:
    """Close the connections of the scheduler's nodes, the remotest first.

    Args:
        scheduler: an asynciojobs Scheduler, nested schedulers included.
        manage_gateways: also close the gateways (after the nodes behind them);
            False closes only the nodes that jobs run on.
    """
    nodes = scheduler_nodes(scheduler, manage_gateways)
    if manage_gateways:
        await close_nodes(nodes)  # by depth: remotest first, gateways last
        return
    by_distance: dict[int, list[SshNode]] = {}
    for node in nodes:
        by_distance.setdefault(node.distance(), []).append(node)
    for distance in sorted(by_distance, reverse=True):
        await asyncio.gather(
            *(node.close() for node in by_distance[distance]), return_exceptions=True
        )


def close_ssh_in_scheduler(scheduler: Any, manage_gateways: bool = True) -> None:
    """The synchronous form of :func:`co_close_ssh_in_scheduler`.

    Raises:
        RuntimeError: called while an event loop runs: await the co_ form instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(co_close_ssh_in_scheduler(scheduler, manage_gateways))
        return
    raise RuntimeError(
        "close_ssh_in_scheduler() inside a running event loop: "
        "use 'await co_close_ssh_in_scheduler(scheduler)'"
    )
