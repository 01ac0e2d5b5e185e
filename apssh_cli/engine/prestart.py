"""The window and the head start: both decided before asyncssh is imported.

`default_window` (how many hosts at once) and `start_early_connections` (TCP
connects to the hosts the window runs first, see :mod:`apssh_cli.ssh.early`) use
only the standard library and the inventory, so that the command line can start
connecting, then import the SSH machinery while the round trips happen.
"""

from __future__ import annotations

import resource
from collections.abc import Sequence
from pathlib import Path

from apssh_cli.inventory.targets import Target
from apssh_cli.ssh.early import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_PORT,
    DEFAULT_SSH_CONFIG,
    EarlyConnections,
    Endpoint,
)

# hosts at once by default, if the open-files limit allows (each running host may
# hold a socket, a gateway channel and two --out-dir files)
DEFAULT_WINDOW_CAP = 50
FILES_PER_HOST = 4
# early connects at most (one thread each, for a moment): the head start matters for
# the first hosts, and a large window under a low open-files limit must not run short
EARLY_LIMIT = 64


def default_window(nofile: int | None = None) -> int:
    """``min(50, soft RLIMIT_NOFILE // 4)``, at least 1.

    Args:
        nofile: the soft open-files limit; read from the process when None.
    """
    if nofile is None:
        nofile, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if nofile == resource.RLIM_INFINITY:
            nofile = DEFAULT_WINDOW_CAP * FILES_PER_HOST
    return max(1, min(DEFAULT_WINDOW_CAP, nofile // FILES_PER_HOST))


def start_early_connections(
    targets: Sequence[Target], window: int, *, ssh_config: str | Path | None = DEFAULT_SSH_CONFIG
) -> EarlyConnections:
    """Start TCP connects to the first hop of the hosts the window starts with.

    The first hop is the host itself, or its outermost gateway (which a node
    reaches directly too); at most ``EARLY_LIMIT`` hosts, and no more than the
    default window allows under the open-files limit; none to an address that
    ``ssh_config`` could send elsewhere. Hand the result to the run
    (``FleetOptions(early_connections=...)``), which closes what nobody took.
    """
    endpoints: dict[Endpoint, float] = {}
    for target in targets[: min(window, EARLY_LIMIT, default_window())]:
        if target.is_local:
            continue
        hop = target.route[0]
        endpoint = (hop.hostname, hop.port or DEFAULT_PORT)
        timeout = hop.connect_timeout or DEFAULT_CONNECT_TIMEOUT
        endpoints[endpoint] = max(timeout, endpoints.get(endpoint, 0.0))
    return EarlyConnections(endpoints, ssh_config=ssh_config)
