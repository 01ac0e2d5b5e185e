"""Connections that outlive the event loop they were opened under.

``asyncio.run()`` and asynciojobs' ``Scheduler.run()`` close their event loop when
they return, and every nepi-ng script then calls ``close_ssh_in_scheduler()``, which
runs under a new loop. An asyncssh connection belongs to its loop: once that loop is
closed, nothing can run for it (``close()`` and ``abort()`` both need the loop), and
its socket would stay open until the garbage collector finds it.

So the end of a loop is watched, with public APIs only:

- **When the loop ends** (its ``shutdown_asyncgens()``, which ``asyncio.run()`` and
  ``asyncio.Runner`` call before closing it, after the run's tasks are over), each
  direct connection opened under it is *parked*: its TCP socket is duplicated
  (``get_extra_info("socket").dup()``) and the connection aborted while the loop still
  runs, so that asyncssh and asyncio end their side cleanly (tunnels and SFTP sessions
  included: they go with the connection carrying them). The TCP connection itself stays
  up, held by a plain socket the node owns: as with upstream apssh, a run leaves its
  connections open until they are closed, and upstream's tests count them.
- **Closing** such a node (``close()``, ``close_nodes()``, ``close_ssh_in_scheduler()``),
  or connecting it again under a new loop, hangs the parked socket up: synchronous,
  no loop needed. A gateway's hang-up ends the tunnels through it on the servers.
- **A loop closed by hand** without ``shutdown_asyncgens()``: nothing was parked; the
  connection's socket is shut down (the server sees the end at once), and its
  descriptor goes with the connection object, at garbage collection.
"""

from __future__ import annotations

import asyncio
import socket
import weakref
from collections.abc import AsyncGenerator
from contextlib import suppress
from typing import Any, Protocol

__all__ = ["LoopEnd", "abandon", "hang_up", "loop_end", "park"]

# how long the end of a loop waits for the aborted connections to be cleaned up
_PARK_WAIT = 5.0


class Connection(Protocol):
    """What the end of a loop needs of a connection (asyncssh's, or a node's share
    of the --persist holder's link)."""

    def get_extra_info(self, name: str, default: Any = None) -> Any: ...
    def abort(self) -> None: ...
    async def wait_closed(self) -> None: ...


class Parkable(Protocol):
    def park(self) -> Connection | None: ...


class LoopEnd:
    """The nodes connected under one event loop, parked when the loop ends."""

    def __init__(self) -> None:
        self._nodes: weakref.WeakSet[Parkable] = weakref.WeakSet()
        self._watch: AsyncGenerator[None, None] | None = None

    async def add(self, node: Parkable) -> None:
        """Park ``node`` when the running loop ends (call it under that loop)."""
        self._nodes.add(node)
        if self._watch is None:
            self._watch = self._until_the_end()
            # its first step registers it with the running loop, which closes it at its end
            await self._watch.asend(None)

    async def _until_the_end(self) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            aborted = [conn for node in list(self._nodes) if (conn := node.park()) is not None]
            if aborted:
                await asyncio.wait(
                    [asyncio.ensure_future(conn.wait_closed()) for conn in aborted],
                    timeout=_PARK_WAIT,
                )
                await asyncio.sleep(0)  # the transports close their sockets one step later


# one per loop; a loop is kept alive by its LoopEnd's generator, itself by the nodes
_LOOP_ENDS: weakref.WeakValueDictionary[asyncio.AbstractEventLoop, LoopEnd] = (
    weakref.WeakValueDictionary()
)


def loop_end() -> LoopEnd:
    """The running loop's :class:`LoopEnd`."""
    loop = asyncio.get_running_loop()
    end = _LOOP_ENDS.get(loop)
    if end is None:
        end = _LOOP_ENDS[loop] = LoopEnd()
    return end


def park(conn: Connection) -> socket.socket | None:
    """Abort ``conn`` (a direct connection) but keep its TCP connection, on the returned
    duplicate of its socket. Call it while the connection's loop still runs."""
    kept: socket.socket | None = None
    transport_socket = conn.get_extra_info("socket")
    if transport_socket is not None:
        # no descriptor left (EMFILE), or a loop whose sockets cannot be duplicated:
        # the connection just ends with its loop
        with suppress(AttributeError, OSError):
            kept = transport_socket.dup()
    conn.abort()
    return kept


def hang_up(sock: socket.socket) -> None:
    """End a parked TCP connection (the server sees it at once) and release its descriptor."""
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def abandon(conn: Connection) -> None:
    """End a direct connection whose loop is gone without running anything on that loop.

    The socket is shut down (thread-safe, and a closed loop needs to do nothing); its
    descriptor is released with the connection object.
    """
    transport_socket = conn.get_extra_info("socket")
    if transport_socket is not None:
        with suppress(OSError):
            transport_socket.shutdown(socket.SHUT_RDWR)
