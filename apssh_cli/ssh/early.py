"""Early connections: TCP connects started before the SSH machinery is even imported.

A cold ``apssh`` spends a few hundred milliseconds importing asyncssh before it can
send its first packet, while a TCP connect and the server's banner cost two round
trips of waiting. :class:`EarlyConnections` starts those connects first, in
background threads (the kernel and the name lookups need no interpreter time), so
that the import and the round trips overlap; a node then starts its SSH handshake
on the socket that is already open (``SshContext.early_connections``).

It is only a head start, never a change of destination: an address gets none when
the ssh_config file could send it elsewhere (its ``Host`` blocks set ``HostName``,
``Port``, ``ProxyJump``, ``ProxyCommand``...; none at all when the file has an
``Include`` or ``Match`` we would have to evaluate), and a node uses a socket only
when it connects directly to that very address and port. A socket nobody takes is
closed by :meth:`close`.

This module imports nothing but the standard library, on purpose.
"""

from __future__ import annotations

import errno
import re
import socket
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path

# the ssh_config keywords that change where a host is reached: a host whose Host
# blocks (or the lines before the first one) say any of them gets no early connection
_REDIRECTING = re.compile(
    r"^\s*(hostname|port|proxyjump|proxycommand|bindaddress|bindinterface|addressfamily"
    r"|canonicalizehostname)\b",
    re.IGNORECASE,
)
# what we would need asyncssh's parser to evaluate: anywhere, and none at all
_UNKNOWABLE = re.compile(r"^\s*(include|match)\b", re.IGNORECASE)
_HOST = re.compile(r"^\s*host(?:\s*=\s*|\s+)(.*)$", re.IGNORECASE)

Endpoint = tuple[str, int]

# errors of this machine, not of the host: the node connects again later
_LOCAL_SHORTAGES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}

# the nodes' defaults, here so that they can be read before asyncssh is imported
DEFAULT_PORT = 22
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_SSH_CONFIG = Path("~/.ssh/config")


def config_may_redirect(path: str | Path | None, host: str | None = None) -> bool:
    """Whether the ssh_config file at ``path`` might reach ``host`` elsewhere than its name.

    Conservative: the lines before the first ``Host`` and every ``Host`` block whose
    patterns match ``host`` (``*``, ``?``, ``!``, case-insensitive, as ssh) must not set
    ``HostName``, ``Port``, ``ProxyJump``, ``ProxyCommand``, a bind or address family;
    ``Include`` and ``Match`` anywhere might (they would need the real parser). With
    ``host`` None: whether it might for any host. A missing file (or None: no config)
    redirects nothing; an unreadable one might.
    """
    try:
        text = _read_config(path)
    except OSError:
        return True
    return text is not None and _may_redirect(text, host)


def _read_config(path: str | Path | None) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).expanduser().read_text(errors="replace")
    except FileNotFoundError:
        return None


def _may_redirect(text: str, host: str | None) -> bool:
    applies = True  # the lines before the first Host block apply to every host
    for line in text.splitlines():
        if _UNKNOWABLE.match(line):
            return True
        header = _HOST.match(line)
        if header is not None:
            applies = host is None or _host_matches(header.group(1), host)
        elif applies and _REDIRECTING.match(line):
            return True
    return False


def _host_matches(patterns: str, host: str) -> bool:
    """ssh_config's Host matching: one positive pattern matches, no negated one does."""
    name = host.lower()
    matched = False
    for pattern in patterns.split("#", 1)[0].replace(",", " ").split():
        negated = pattern.startswith("!")
        regex = "".join(
            ".*" if char == "*" else "." if char == "?" else re.escape(char)
            for char in pattern.lstrip("!").lower()
        )
        if re.fullmatch(regex, name):
            if negated:
                return False
            matched = True
    return matched


class EarlyConnections:
    """TCP connections opened ahead of the SSH handshakes that will use them.

    Args:
        endpoints: ``(address, port)`` to connect to now, and the connect timeout
            of each, seconds (None: the system's).
        ssh_config: the ssh_config file the nodes will honour; an address it could
            send elsewhere (see :func:`config_may_redirect`) gets no early connection.
    """

    def __init__(
        self,
        endpoints: Mapping[Endpoint, float | None],
        *,
        ssh_config: str | Path | None = DEFAULT_SSH_CONFIG,
    ) -> None:
        self._lock = threading.Lock()
        self._closed = False
        self._pending: dict[Endpoint, Future[socket.socket]] = {}
        try:
            config = _read_config(ssh_config)
        except OSError:  # unreadable: it might say anything
            return
        for endpoint, timeout in endpoints.items():
            if config is not None and _may_redirect(config, endpoint[0]):
                continue
            future: Future[socket.socket] = Future()
            self._pending[endpoint] = future
            threading.Thread(
                target=self._connect,
                args=(endpoint, timeout, future),
                name=f"early-connect {endpoint[0]}:{endpoint[1]}",
                daemon=True,
            ).start()

    @property
    def endpoints(self) -> list[Endpoint]:
        """The endpoints started and not taken yet."""
        with self._lock:
            return list(self._pending)

    def _connect(
        self, endpoint: Endpoint, timeout: float | None, future: Future[socket.socket]
    ) -> None:
        future.set_running_or_notify_cancel()  # from now on, only this thread settles it
        try:
            sock = socket.create_connection(endpoint, timeout=timeout)
        except Exception as exc:  # the taker decides what it means
            future.set_exception(exc)
            return
        with self._lock:
            closed = self._closed
        if closed:  # nobody will take it (a close() after this check: its callback closes it)
            sock.close()
            future.set_exception(ConnectionAbortedError(errno.ECONNABORTED, "closed unused"))
            return
        future.set_result(sock)

    async def take(self, address: str, port: int) -> socket.socket | None:
        """The connected socket to ``address:port`` (waiting for its connect), once.

        Returns None when no connection was started there (or it was taken already).

        Raises:
            OSError: the early connect failed (refused, unknown name, timeout...),
                as the node's own connect would have.
        """
        import asyncio  # here: importing this module costs a script no asyncio (docs/library.md)

        with self._lock:
            future = self._pending.pop((address, port), None)
        if future is None:
            return None
        try:
            sock = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            _close_when_done(future)  # the connect goes on in its thread: close what it brings
            raise
        except OSError as exc:
            if exc.errno in _LOCAL_SHORTAGES:  # ours, not the host's: connect afresh
                return None
            raise
        except Exception:  # not a connection error (a name the resolver cannot encode...):
            return None  # the node connects itself, as without early connections
        sock.settimeout(None)
        return sock

    def close(self) -> None:
        """Close every socket nobody took (those still connecting as they finish)."""
        with self._lock:
            self._closed = True
            pending, self._pending = self._pending, {}
        for future in pending.values():
            _close_when_done(future)


def _close_when_done(future: Future[socket.socket]) -> None:
    def close(done: Future[socket.socket]) -> None:
        if done.exception() is None:
            done.result().close()

    future.add_done_callback(close)
