"""SshContext: the state nodes share for a while (ProxyJump nodes, known_hosts files).

Nodes that share a context share the jump nodes built from ``ProxyJump`` (so
N hosts behind one jump host make one connection to it) and one reader/writer
per known_hosts file (parsed once, written under a lock). The state lives as
long as its context:

- ``SshNode(..., context=ctx)``: as long as you keep ``ctx`` (``async with
  SshContext() as ctx:`` also closes the jump nodes it made on the way out);
- no ``context=``: the context of the running event loop, which ends with the
  loop (one ``Scheduler.run()``, one ``asyncio.run()``). A node is never bound
  to a loop: used again under a new loop, it starts afresh, and what the old loop
  left open is closed first (:mod:`~apssh_cli.ssh.loopend`).

Nothing is keyed by ``id()``: jump nodes are found by their settings, the
previous hop being the node object itself.

A context may also hold :class:`~apssh_cli.ssh.early.EarlyConnections`: TCP
connections started before the nodes existed, which a node connecting directly to
one of their addresses uses instead of connecting again (the command line starts
them before importing asyncssh).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

from apssh_cli.ssh.early import EarlyConnections
from apssh_cli.ssh.hostkeys import DEFAULT_KNOWN_HOSTS, KnownHosts, KnownHostsFile
from apssh_cli.ssh.teardown import close_nodes

if TYPE_CHECKING:
    from apssh_cli.ssh.node import SshNode


class SshContext:
    """Jump nodes and known_hosts files shared by the nodes of one run."""

    def __init__(self, early_connections: EarlyConnections | None = None) -> None:
        self._jump_nodes: dict[Hashable, SshNode] = {}
        self._known_hosts: dict[Path, KnownHostsFile] = {}
        self._lock = threading.Lock()
        self.early_connections = early_connections

    @contextlib.contextmanager
    def using(self, early_connections: EarlyConnections | None) -> Iterator[None]:
        """Nodes of this context use ``early_connections`` for a while (a run); then the
        sockets nobody took are closed. None: nothing changes."""
        if early_connections is None:
            yield
            return
        self.early_connections = early_connections
        try:
            yield
        finally:
            early_connections.close()

    def known_hosts_file(self, path: str | Path | None = None) -> KnownHostsFile:
        """The context's :class:`KnownHostsFile` for ``path`` (default ``~/.ssh/known_hosts``)."""
        resolved = Path(path if path is not None else DEFAULT_KNOWN_HOSTS).expanduser().absolute()
        with self._lock:
            instance = self._known_hosts.get(resolved)
            if instance is None:
                instance = self._known_hosts[resolved] = KnownHostsFile(resolved)
            return instance

    def known_hosts(self, paths: Sequence[str | Path], alias: str | None = None) -> KnownHosts:
        """The known_hosts files ``paths`` of one host (the first one written to),
        read through the context's :class:`KnownHostsFile` objects."""
        return KnownHosts([self.known_hosts_file(path) for path in paths], alias)

    def jump_node(self, key: Hashable, make: Callable[[], SshNode]) -> SshNode:
        """The jump node for ``key`` (its settings), made by ``make()`` the first time."""
        with self._lock:
            node = self._jump_nodes.get(key)
            if node is None:
                node = self._jump_nodes[key] = make()
            return node

    @property
    def jump_nodes(self) -> list[SshNode]:
        """The jump nodes made so far."""
        return list(self._jump_nodes.values())

    async def close(self) -> None:
        """Close the jump nodes this context made (remotest first), and unused early sockets."""
        if self.early_connections is not None:
            self.early_connections.close()
        await close_nodes(self.jump_nodes)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


# the default context of each event loop: it goes away with its loop
_LOOP_CONTEXTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SshContext] = (
    weakref.WeakKeyDictionary()
)


def default_context() -> SshContext:
    """The running loop's context; outside a loop, a new one (shared with nobody)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return SshContext()
    context = _LOOP_CONTEXTS.get(loop)
    if context is None:
        context = _LOOP_CONTEXTS[loop] = SshContext()
    return context
