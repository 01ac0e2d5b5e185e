"""The client side of warm connections: ask the holder, else connect directly.

:func:`held_connection` is what ``SshNode.connect`` calls when persist is on. It
returns an asyncssh connection *to the holder* whose channels the holder proxies
onto its held connection to the node (gateways included), or None when there is no
usable holder (absent, dead, not ours, too slow to start): the node then connects
directly, and nothing is said but a debug line. Errors of the upstream connection
itself (unreachable, keys refused, host key refused) come back from the holder and
are raised here as the direct connection would raise them.

The holder checks the host key when it connects, with the client's own policy and
known_hosts files; a connection it already holds is checked again here, against
the files as they are now: a key the client would not accept today is refused
(the held key is never trusted because it was once).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncssh

from apssh_cli.errors import (
    AuthRefusedError,
    ConfigError,
    ConnectError,
    HostKeyRefusedError,
    UnreachableError,
)
from apssh_cli.log import HostAdapter
from apssh_cli.ssh import hostkeys
from apssh_cli.ssh.connection import CHANNEL_WINDOW, ConnectionSettings
from apssh_cli.ssh.control import start_holder, started_here
from apssh_cli.ssh.early import DEFAULT_PORT
from apssh_cli.ssh.holder import (
    HOLDER_LINK,
    ROUTE_ENV,
    ProtocolError,
    encode_frame,
    read_frame,
    same_user,
    socket_path,
)

if TYPE_CHECKING:
    from apssh_cli.ssh.node import SshNode

# how long a first run waits for the holder it started to listen
START_WAIT = 3.0
# the holder answers a request at once, but for the upstream connect itself
ANSWER_MARGIN = 5.0
ACK_WAIT = 2.0

_START_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)
_STARTED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Path] = weakref.WeakKeyDictionary()

ERRORS: dict[str, type[ConnectError]] = {
    "unreachable": UnreachableError,
    "auth": AuthRefusedError,
    "hostkey": HostKeyRefusedError,
}


def hop_spec(node: SshNode, target: ConnectionSettings) -> dict[str, Any] | None:
    """What the holder needs to open ``node``'s connection like the node would,
    as JSON; None when it cannot be said (keys given as loaded objects)."""
    keys: list[str] | None = None
    if node.keys is not None:
        if not all(isinstance(key, str | Path) for key in node.keys):
            return None  # loaded keys cannot cross processes
        keys = [str(Path(key).expanduser().absolute()) for key in node.keys]  # type: ignore[arg-type]
    agent = target.identity_agent or os.environ.get("SSH_AUTH_SOCK") or "none"
    return {
        "label": node.label,
        "host": target.host,
        "port": target.port,
        "username": target.username,
        "keys": keys,
        "identity_files": [str(Path(f).expanduser()) for f in target.identity_files],
        "policy": target.host_key_policy,
        "known_hosts": [str(Path(f).expanduser().absolute()) for f in target.known_hosts],
        "host_key_alias": target.host_key_alias,
        "keepalive_interval": target.keepalive_interval,
        "keepalive_count_max": target.keepalive_count_max,
        "configs": [str(Path(p).expanduser().absolute()) for p in target.configs],
        # the key holds what the files say, not where they are: -O's file is a new
        # temporary one in each run, and an edited ssh_config means a new connection
        "config_digest": _digest(target.configs),
        "alias": target.alias,
        "ciphers": target.ciphers,
        "host_key_algorithms": target.host_key_algorithms,
        "identities_only": target.identities_only,
        "identity_agent": agent,
        "connect_timeout": node.connect_timeout,
        "user": os.environ.get("USER") or os.environ.get("LOGNAME"),
    }


def _digest(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        try:
            digest.update(Path(path).expanduser().read_bytes())
        except OSError:
            digest.update(b"unreadable " + str(path).encode())
        digest.update(b"\0")
    return digest.hexdigest()


def route_specs(node: SshNode) -> list[dict[str, Any]] | None:
    """The specs of ``node``'s route, first gateway first, ``node`` last."""
    chain: list[dict[str, Any]] = []
    current: SshNode | None = node
    while current is not None:
        target = current.resolve()
        spec = hop_spec(current, target)
        if spec is None:
            return None
        chain.append(spec)
        current = target.gateway
    return chain[::-1]


async def _exchange(
    sock: socket.socket,
    request: dict[str, Any],
    timeout: float | None,
    early: socket.socket | None = None,
    acknowledged: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Send ``request`` (with the ``early`` TCP connection, which the holder then
    owns) and return the answer; ``acknowledged`` is called once a connect's
    request was acknowledged."""
    frame = encode_frame(request)
    if early is not None:
        try:
            frame = frame[socket.send_fds(sock, [frame], [early.fileno()]) :]
        except BlockingIOError:
            pass  # the holder connects itself
        finally:
            early.close()
    if frame:
        await asyncio.get_running_loop().sock_sendall(sock, frame)

    def answer() -> Awaitable[dict[str, Any]]:
        return read_frame(sock, "holder")

    # a holder that is alive acknowledges a connect at once, before its upstream
    # connect: one that is stopped or stuck costs ACK_WAIT, not a connect timeout
    if request.get("op") == "connect":
        if "ack" not in await asyncio.wait_for(answer(), ACK_WAIT):
            raise ProtocolError("no acknowledgement from the holder")
        acknowledged()
    return await asyncio.wait_for(answer(), timeout)


async def _open_control(path: Path, log: HostAdapter) -> socket.socket | None:
    """A connection to the holder at ``path`` (None: nobody listens, or not our user)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, str(path))
    except OSError:
        sock.close()
        return None
    if not same_user(sock):  # a socket planted by someone else: never talk to it
        log.warning("refusing the holder at %s: it is not run by this user", path)
        sock.close()
        return None
    return sock


async def control_socket(
    log: HostAdapter, *, start: float | None = None, environ: dict[str, str] | None = None
) -> socket.socket | None:
    """A connection to this user's holder; with ``start`` (an idle duration), start
    one when none listens and wait (bounded) for it. None: no holder."""
    try:
        path = socket_path(environ)
    except OSError as exc:
        log.debug("no holder: %s", exc)
        return None
    sock = await _open_control(path, log)
    if sock is not None or start is None:
        return sock
    # the nodes of one run start one holder between them, not one each
    loop = asyncio.get_running_loop()
    lock = _START_LOCKS.setdefault(loop, asyncio.Lock())
    async with lock:
        sock = await _open_control(path, log)
        if sock is not None:
            return sock
        if _STARTED.get(loop) == path:
            return None  # started once by this run and gone or too slow: direct
        _STARTED[loop] = path
        if started_here(path):
            log.debug("waiting for the holder the launcher started at %s", path)
        else:
            try:
                start_holder(path, start)
            except OSError as exc:
                log.debug("cannot start a holder: %s", exc)
                return None
            log.debug("started a holder at %s", path)
        deadline = time.monotonic() + START_WAIT
        while time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            sock = await _open_control(path, log)
            if sock is not None:
                return sock
    return None


async def request(
    message: dict[str, Any], log: HostAdapter, timeout: float = 10.0
) -> dict[str, Any] | None:
    """One ``list`` or ``close`` request; None: no holder runs."""
    sock = await control_socket(log)
    if sock is None:
        return None
    with sock:
        try:
            return await _exchange(sock, message, timeout)
        except (OSError, ProtocolError, TimeoutError):
            return None


class _HolderClient(asyncssh.SSHClient):
    held = True  # what node.py asks (conn.get_owner().held) before an X11 request

    def __init__(self) -> None:
        self.on_lost: dict[int, Callable[[], None]] = {}  # per HeldRoute

    def connection_lost(self, exc: Exception | None) -> None:
        for forget in list(self.on_lost.values()):
            forget()


class _Link:
    """This process's one SSH connection to the holder (per event loop and holder):
    the channels of every held node go over it, each tagged with its route (the
    ``ROUTE_ENV`` variable, which the holder removes). One handshake per run, not
    one per node: with 20 nodes, that was most of a warm run's local work."""

    def __init__(self, conn: asyncssh.SSHClientConnection, token: str, path: Path) -> None:
        self.conn = conn
        self.token = token
        self.path = path
        self.loop = asyncio.get_running_loop()
        self.routes: set[HeldRoute] = set()

    @property
    def client(self) -> _HolderClient:
        owner = self.conn.get_owner()
        assert isinstance(owner, _HolderClient)
        return owner


# event loop -> holder socket -> the link being opened or open (None: could not)
_LINKS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[Path, asyncio.Future[_Link | None]]
] = weakref.WeakKeyDictionary()


async def _link(persist: float, log: HostAdapter) -> _Link | None:
    """This loop's link to the holder (opened, and the holder started, if needed)."""
    loop = asyncio.get_running_loop()
    links = _LINKS.setdefault(loop, {})
    try:
        path = socket_path()
    except OSError as exc:
        log.debug("no holder: %s", exc)
        return None
    opening = links.get(path)
    if opening is not None:
        link = await asyncio.shield(opening)
        if link is None or not link.conn.is_closed():
            return link
    opening = links[path] = loop.create_future()
    link = None
    try:
        link = await _open_link(path, persist, log)
    finally:
        if link is None:
            del links[path]  # the next node tries again (a holder may start meanwhile)
        opening.set_result(link)
    return link


async def _open_link(path: Path, persist: float, log: HostAdapter) -> _Link | None:
    sock = await control_socket(log, start=persist)
    if sock is None:
        log.debug("persist: no holder, connecting directly")
        return None
    try:
        answer = await _exchange(sock, {"op": "link"}, ANSWER_MARGIN)
        if not answer.get("ok") or not isinstance(answer.get("link"), str):
            sock.close()
            return None
        conn = await asyncssh.connect(
            "holder",
            sock=sock,
            config=None,  # no ~/.ssh/config entry applies to the local link
            known_hosts=None,  # the holder is this user's process (checked on the socket)
            username="apssh",
            client_keys=None,
            agent_path=None,
            preferred_auth="none",
            window=CHANNEL_WINDOW,
            keepalive_interval=0,
            connect_timeout=ANSWER_MARGIN,
            server_host_key_algs=["ssh-ed25519"],
            gss_host=None,  # no GSS on a local link
            **HOLDER_LINK,
            client_factory=_HolderClient,
        )
    except (OSError, ProtocolError, asyncssh.Error, TimeoutError, ValueError) as exc:
        # ValueError: asyncssh's own option checks (no local user name): the direct
        # connection says it as a ConfigError
        sock.close()
        log.debug("persist: the holder failed (%s), connecting directly", exc)
        return None
    return _Link(conn, str(answer["link"]), path)


class HeldRoute:
    """A node's connection through the holder: what :class:`~apssh_cli.ssh.node.SshNode`
    uses of a connection, on the shared link, for its own route.

    Closing it releases the node's share of the link; the link closes with its last
    route (the holder then releases the held connections, which stay warm).
    """

    def __init__(self, link: _Link, route: int, on_lost: Callable[[], None]) -> None:
        self._link = link
        self._route = str(route)
        self._closed = False
        link.routes.add(self)
        link.client.on_lost[id(self)] = on_lost

    def _env(self, env: Any) -> dict[str, str]:
        tagged = dict(env or {})
        tagged[ROUTE_ENV] = self._route
        return tagged

    async def create_process(self, command: str, **kwargs: Any) -> asyncssh.SSHClientProcess[Any]:
        kwargs["env"] = self._env(kwargs.get("env"))
        return await self._link.conn.create_process(command, **kwargs)

    async def run(self, command: str, **kwargs: Any) -> asyncssh.SSHCompletedProcess:
        kwargs["env"] = self._env(kwargs.get("env"))
        return await self._link.conn.run(command, **kwargs)

    async def start_sftp_client(self, **kwargs: Any) -> asyncssh.SFTPClient:
        kwargs["env"] = self._env(kwargs.get("env"))
        return await self._link.conn.start_sftp_client(**kwargs)

    def get_owner(self) -> _HolderClient:
        return self._link.client

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return default  # a local link: nothing to keep open after a loop's end
        return self._link.conn.get_extra_info(name, default)

    def is_closed(self) -> bool:
        return self._closed or self._link.conn.is_closed()

    def close(self) -> None:
        self._release(self._link.conn.close)

    def abort(self) -> None:
        self._release(self._link.conn.abort)

    async def wait_closed(self) -> None:
        if not self._link.routes:
            await self._link.conn.wait_closed()

    def _release(self, end: Callable[[], None]) -> None:
        if self._closed:
            return
        self._closed = True
        link = self._link
        link.routes.discard(self)
        link.client.on_lost.pop(id(self), None)
        if not link.routes:
            links = _LINKS.get(link.loop, {})
            opening = links.get(link.path)
            if opening is not None and opening.done() and opening.result() is link:
                del links[link.path]
            end()


async def held_connection(
    node: SshNode, persist: float, log: HostAdapter, on_lost: Callable[[], None]
) -> HeldRoute | None:
    """The node's connection through the holder, or None (connect directly).

    Raises:
        ConnectError: the holder could not connect upstream (as a direct connect would).
        ConfigError: the same, for bad key or known_hosts files.
    """
    route = route_specs(node)
    if route is None:
        log.debug("persist: keys given as objects cannot be held, connecting directly")
        return None
    link = await _link(persist, log)
    if link is None:
        return None
    timeouts = [hop.get("connect_timeout") or 0 for hop in route]
    limit = sum(timeouts) + ANSWER_MARGIN if all(timeouts) else None
    request = {"op": "connect", "route": route, "idle": persist, "link": link.token}
    early, sent = await _early_connection(node, route[0])
    try:
        sock = await control_socket(log)
        if sock is None:
            return None
        with sock:
            answer = await _exchange(sock, request, limit, early, sent)
        if not answer.get("ok"):
            _raise_refusal(node.label, answer)
            return None  # an answer we do not understand: as no holder
        _check_held_keys(node, answer.get("host_keys", []))
        held = HeldRoute(link, int(answer["route"]), on_lost)
    except (OSError, ProtocolError, TimeoutError, KeyError, ValueError) as exc:
        log.debug("persist: the holder failed (%s), connecting directly", exc)
        return None
    finally:
        sent()  # the next nodes to the same first hop wait no more
        if early is not None:
            early.close()  # the holder has its own copy, if it was sent
    log.info("connected through the holder (%s)", "reused" if answer.get("reused") else "new")
    return held


# per loop, per first hop: settled when the request bringing its early connection
# has been acknowledged (the holder is opening that hop by then)
_EARLY_SENT: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, int], asyncio.Future[None]]
] = weakref.WeakKeyDictionary()


async def _early_connection(
    node: SshNode, first: dict[str, Any]
) -> tuple[socket.socket | None, Callable[[], None]]:
    """The early TCP connection to the route's first hop (see
    :mod:`apssh_cli.ssh.early`) for the holder to open that hop on, and what to
    call once the request carrying it is acknowledged.

    One node's request brings it; the other nodes to the same first hop send
    theirs after that one's acknowledgement, so that the holder opens the hop on
    the early connection rather than on a new one. None: no early connection
    (taken, failed: then the holder connects itself and says what it meets).
    """
    early = node._context().early_connections
    if early is None:
        return None, lambda: None
    endpoint = (str(first["host"]), int(first["port"]))
    sent = _EARLY_SENT.setdefault(asyncio.get_running_loop(), {})
    pending = sent.get(endpoint)
    if pending is not None:
        await asyncio.shield(pending)
        return None, lambda: None
    done = sent[endpoint] = asyncio.get_running_loop().create_future()

    def settle() -> None:
        if not done.done():
            done.set_result(None)

    try:
        sock = await early.take(*endpoint)
    except OSError:
        sock = None
    if sock is None:
        settle()
    return sock, settle


def _raise_refusal(label: str, answer: dict[str, Any]) -> None:
    kind, message = answer.get("kind"), str(answer.get("message", ""))
    if kind == "config":
        raise ConfigError(message)
    error = ERRORS.get(str(kind))
    if error is not None:
        raise error(label, message)


def _check_held_keys(node: SshNode, keys: Sequence[str]) -> None:
    """Judge the host keys of a held route as a direct connection would now.

    Raises:
        HostKeyRefusedError: a key this node (or one of its gateways) would refuse.
    """
    hops: list[SshNode] = []
    current: SshNode | None = node
    while current is not None:
        hops.append(current)
        current = current.resolve().gateway
    hops.reverse()
    if len(keys) != len(hops):
        raise ProtocolError("the holder sent no key for every hop")
    for hop, text in zip(hops, keys, strict=True):
        target = hop.resolve()
        if target.host_key_policy == hostkeys.OFF:
            continue
        key = asyncssh.import_public_key(text)
        known = hop._context().known_hosts(target.known_hosts, alias=target.host_key_alias)
        port = None if target.port == DEFAULT_PORT else target.port
        decision = known.judge(target.host_key_policy, target.host, "", port, key)
        if decision is None:
            continue
        if decision is hostkeys.Decision.RECORD and known.record(target.host, port, key):
            continue
        if decision is hostkeys.Decision.RECORD:
            decision = hostkeys.Decision.REFUSE_CHANGED
        refusal = known.refusal(decision, target.host, port, key)
        label = node.label if hop is node else f"gateway {hop.label}"
        if hop is node:
            raise HostKeyRefusedError(node.label, refusal)
        raise UnreachableError(node.label, f"{label}: {refusal}")


def close_quietly(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.close()
