"""The holder process of warm connections: ``python -m apssh_cli.ssh.holder_server SOCKET IDLE``.

Started in the background by the first ``apssh ... --persist`` that finds none (see
:mod:`~apssh_cli.ssh.holder_client`), one per user and HOME. It listens on a unix
socket in the user's private control directory (mode 0600), refuses any peer of
another uid (``SO_PEERCRED``, before reading a byte), serves each client process's
link (SSH on the socket, :class:`_LinkServer`), and for each of its nodes:

- opens (or reuses) the upstream connection of the requested route, gateways
  first, with the client's own keys, host-key policy and known_hosts files
  (:func:`~apssh_cli.ssh.connection.open_connection`, as a direct run would);
- answers with the route's host keys and its number on the link; each session
  channel of the link (exec with its environment and pty, or the sftp subsystem)
  names its route and is proxied onto a new channel of that route's upstream
  connection: data both ways with flow
  control, end of input, signals, window changes, and the exit status or signal.
  When either side closes, the other is closed: a client that goes away (killed,
  timed out, cancelled) ends its remote command as a lost direct connection would,
  so the holder never keeps a remote process running.

A held connection is released after ``IDLE`` seconds without a client (the latest
request's duration), on ``apssh connections close``, or when it dies (the next
request opens a new one). The holder exits when it holds nothing, on SIGTERM,
SIGHUP or SIGINT, and when the user's session ends: it checks every second that
its socket is still in place (``$XDG_RUNTIME_DIR`` is removed at logout by
systemd-logind) and, where ``loginctl`` exists, that the session it started
in has not ended.
"""

from __future__ import annotations

import asyncio
import fcntl
import fnmatch
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from apssh_cli.errors import (
    AuthRefusedError,
    ConfigError,
    ConnectError,
    HostKeyRefusedError,
    UnreachableError,
)
from apssh_cli.log import host_logger, logger
from apssh_cli.ssh import hostkeys
from apssh_cli.ssh.connection import (
    CHANNEL_WINDOW,
    ConnectionSettings,
    Credentials,
    open_connection,
)
from apssh_cli.ssh.context import SshContext
from apssh_cli.ssh.control import read_frame_with_fds, trim_log
from apssh_cli.ssh.holder import (
    HOLDER_LINK,
    ROUTE_ENV,
    HoldKey,
    ProtocolError,
    encode_frame,
    hop_key,
    same_user,
)

CHECK_PERIOD = 1.0
REQUEST_TIMEOUT = 10.0  # a client that says nothing this long is dropped
LINGER = 3.0  # a holder that holds nothing and serves nobody exits after this


@dataclass
class Held:
    """One upstream connection the holder keeps."""

    key: HoldKey
    label: str
    conn: asyncssh.SSHClientConnection
    idle_limit: float
    gateway: Held | None = None
    created: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)
    users: int = 0  # clients attached, and held connections tunnelled through this one
    dead: bool = False

    def idle(self, now: float) -> float:
        return 0.0 if self.users else now - self.last_used

    def describe(self, now: float) -> dict[str, Any]:
        route = " > ".join(hop.describe() for hop in self.key.route)
        return {
            "label": self.label,
            "host": self.key.describe().split(" via ")[0],
            "route": route or "direct",
            "age": round(now - self.created, 1),
            "idle": round(self.idle(now), 1),
            "clients": self.users,
        }


class Holder:
    """The held connections, and the accept loop of the control socket."""

    def __init__(self, path: Path, idle: float, linger: float = LINGER) -> None:
        self.path = path
        self.default_idle = idle
        self.linger = linger
        self.held: dict[HoldKey, Held] = {}
        self._locks: dict[HoldKey, asyncio.Lock] = {}
        self._clients = 0
        self._context = SshContext()
        self._server_key = asyncssh.generate_private_key("ssh-ed25519")
        self._stop = asyncio.Event()
        self._inode: int | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self.links: dict[str, _LinkServer] = {}

    # ------------------------------------------------------------ held connections

    async def acquire(
        self, route: list[dict[str, Any]], idle: float, early: socket.socket | None = None
    ) -> tuple[Held, bool]:
        """The held connection of ``route``'s last hop (opened if needed), one more user.

        ``early``: a TCP connection to the first hop that the client opened ahead
        (see :func:`_early_socket`), now ours: the first hop's connection if that is
        opened now, else closed.

        Returns it and whether it was held already.

        Raises:
            ConnectError, ConfigError: as a direct connection.
        """
        keys: tuple[HoldKey, ...] = ()
        gateway: Held | None = None
        reused = True
        for index, hop in enumerate(route):
            key = hop_key(hop, keys)
            lock = self._locks.setdefault(key, asyncio.Lock())
            async with lock:
                held = self.held.get(key)
                if held is not None and (held.dead or held.conn.is_closed()):
                    self._drop(held)
                    held = None
                if held is None:
                    reused = False
                    try:
                        sock = early if index == 0 else None
                        held = await self._open(hop, key, gateway, idle, sock)
                    except ConnectError as exc:
                        if gateway is not None:
                            self.release(gateway)
                        raise _behind(route, index, exc) from exc
                    except BaseException:
                        if gateway is not None:
                            self.release(gateway)
                        raise
                    self.held[key] = held
                elif index == 0 and early is not None:
                    early.close()  # the first hop is held already
                held.users += 1
                held.idle_limit = idle
            if gateway is not None:
                self.release(gateway)  # the hop now holds its gateway itself
            gateway = held
            keys = (*keys, key)
        assert gateway is not None
        return gateway, reused

    async def _open(
        self,
        hop: dict[str, Any],
        key: HoldKey,
        gateway: Held | None,
        idle: float,
        sock: socket.socket | None = None,
    ) -> Held:
        target = ConnectionSettings(
            host=key.host,
            port=key.port,
            # no user: the client's local user name, not the holder's environment's
            username=key.username or hop.get("user"),
            identity_files=tuple(hop.get("identity_files") or ()),
            gateway=None,
            keepalive_interval=float(hop.get("keepalive_interval") or 0),
            keepalive_count_max=int(hop.get("keepalive_count_max") or 3),
            configs=tuple(Path(p) for p in hop.get("configs") or ()),
            alias=str(hop.get("alias") or ""),
            ciphers=hop.get("ciphers"),
            host_key_algorithms=hop.get("host_key_algorithms"),
            identities_only=bool(hop.get("identities_only")),
            identity_agent=hop.get("identity_agent"),
            host_key_policy=hostkeys.check_policy(str(hop["policy"])),
            known_hosts=tuple(hop.get("known_hosts") or ()),
            host_key_alias=hop.get("host_key_alias"),
        )
        label = str(hop.get("label") or key.host)
        known = self._context.known_hosts(target.known_hosts, alias=target.host_key_alias)
        held: Held | None = None

        def lost() -> None:
            if held is not None:
                held.dead = True
                logger.info("host=%s held connection lost", label)

        conn = await open_connection(
            label,
            target,
            Credentials(key.keys, target.host_key_policy, known),
            tunnel=gateway.conn if gateway is not None else None,
            sock=sock,
            connect_timeout=hop.get("connect_timeout"),
            on_lost=lost,
            log=host_logger(label),
        )
        held = Held(key, label, conn, idle, gateway)
        if gateway is not None:
            gateway.users += 1
        return held

    def release(self, held: Held) -> None:
        held.users = max(0, held.users - 1)
        held.last_used = time.monotonic()

    def _drop(self, held: Held) -> None:
        """Forget and close one held connection (its own gateway stays, one user less)."""
        if self.held.get(held.key) is held:
            del self.held[held.key]
        held.dead = True
        held.conn.close()
        if held.gateway is not None:
            self.release(held.gateway)
            held.gateway = None

    def close_matching(self, pattern: str | None) -> int:
        """Close the held connections whose label or host matches ``pattern`` (all: None),
        those behind them too."""
        chosen = [
            held
            for held in self.held.values()
            if pattern is None
            or fnmatch.fnmatchcase(held.label, pattern)
            or fnmatch.fnmatchcase(held.key.host, pattern)
        ]
        closed = 0
        while chosen:
            held = chosen.pop()
            if held.key not in self.held:
                continue
            behind = [other for other in self.held.values() if other.gateway is held]
            chosen.extend(behind)
            self._drop(held)
            closed += 1
        return closed

    def expire(self) -> None:
        now = time.monotonic()
        # remotest first, so that a gateway's last user goes before the gateway is judged
        for held in sorted(self.held.values(), key=lambda h: -len(h.key.route)):
            if held.dead or held.conn.is_closed():
                self._drop(held)
            elif not held.users and now - held.last_used >= held.idle_limit:
                logger.info("host=%s idle for %.0fs: released", held.label, held.idle_limit)
                self._drop(held)

    # -------------------------------------------------------------------- serving

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        listener = self._listen()
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        watcher = asyncio.ensure_future(self._watch())
        logger.info("holder %d listening at %s", os.getpid(), self.path)
        try:
            accepting = asyncio.ensure_future(self._accept(listener))
            await self._stop.wait()
            accepting.cancel()
        finally:
            watcher.cancel()
            listener.close()
            with suppress(FileNotFoundError):
                if os.stat(self.path).st_ino == self._inode:
                    self.path.unlink()
            self.close_matching(None)
            logger.info("holder %d exits", os.getpid())

    def _listen(self) -> socket.socket:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with suppress(FileNotFoundError):
            self.path.unlink()  # a dead holder's socket: we hold the lock
        old = os.umask(0o177)  # the socket is born 0600
        try:
            listener.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self._inode = os.stat(self.path).st_ino
        listener.listen(64)
        listener.setblocking(False)
        return listener

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            sock, _ = await loop.sock_accept(listener)
            if not same_user(sock):
                logger.warning("refused a peer of another user")
                sock.close()
                continue
            task = asyncio.ensure_future(self._client(sock))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _watch(self) -> None:
        """Exit when nothing is held, when the socket goes (session end), or the session."""
        quiet_since = time.monotonic()
        session = _login_session()
        while True:
            await asyncio.sleep(CHECK_PERIOD)
            self.expire()
            try:
                if os.stat(self.path).st_ino != self._inode:
                    raise FileNotFoundError
            except FileNotFoundError:
                logger.info("the control socket is gone (session ended?): exiting")
                self._stop.set()
                return
            if session is not None and not _session_alive(session):
                logger.info("login session %s ended: exiting", session)
                self._stop.set()
                return
            if self.held or self._clients:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > self.linger:
                logger.info("nothing held: exiting")
                self._stop.set()
                return

    async def _client(self, sock: socket.socket) -> None:
        self._clients += 1
        handed_over = False
        early: socket.socket | None = None
        try:
            message, fds = await asyncio.wait_for(
                read_frame_with_fds(sock, "client", 1), REQUEST_TIMEOUT
            )
            early = _early_socket(fds, message)
            op = message.get("op")
            if op == "link":
                handed_over = await self._link_client(sock)
            elif op == "connect":
                await _send(sock, {"ack": True})  # alive: the client waits for the rest
                taken, early = early, None  # the route's to use or close
                await self._connect_route(sock, message, taken)
            elif op == "list":
                now = time.monotonic()
                held = [h.describe(now) for h in self.held.values() if not h.dead]
                await _send(sock, {"ok": True, "held": held, "pid": os.getpid()})
            elif op == "close":
                pattern = message.get("pattern")
                count = self.close_matching(str(pattern) if pattern else None)
                await _send(sock, {"ok": True, "closed": count})
            else:
                await _send(sock, {"ok": False, "kind": "protocol", "message": f"op {op!r}"})
        except (OSError, ProtocolError, TimeoutError, asyncssh.Error) as exc:
            logger.info("a client failed: %s", exc)
        except Exception:  # the holder must outlive any one client
            logging.getLogger(__name__).exception("client failed")
        finally:
            self._clients -= 1
            if early is not None:
                early.close()  # brought by a request that is no connect
            if not handed_over:
                sock.close()

    async def _link_client(self, sock: socket.socket) -> bool:
        """A client's link: SSH on this socket, its channels proxied per route."""
        token = secrets.token_hex(16)
        link = _LinkServer(self, token)
        self.links[token] = link
        try:
            await _send(sock, {"ok": True, "link": token})
            await asyncssh.run_server(
                sock,
                server_factory=lambda: link,
                server_host_keys=[self._server_key],
                encoding=None,
                line_editor=False,
                window=CHANNEL_WINDOW,
                keepalive_interval=0,
                login_timeout=REQUEST_TIMEOUT,
                allow_pty=True,
                gss_host=None,  # no GSS on a local link (and no getfqdn() per client)
                x11_forwarding=False,
                agent_forwarding=False,
                **HOLDER_LINK,
            )
        except BaseException:
            link.connection_lost(None)
            raise
        return True

    async def _connect_route(
        self, sock: socket.socket, message: dict[str, Any], early: socket.socket | None
    ) -> None:
        """Acquire a route for one of a link's nodes; answer its number on the link."""
        route = message.get("route")
        if not isinstance(route, list) or not route:
            raise ProtocolError("connect: no route")
        link = self.links.get(str(message.get("link")))
        if link is None:
            await _send(sock, {"ok": False, "kind": "protocol", "message": "no such link"})
            return
        idle = float(message.get("idle") or self.default_idle)
        try:
            held, reused = await self.acquire(route, idle, early)
        except ConnectError as exc:
            await _send(sock, {"ok": False, "kind": _kind(exc), "message": exc.message})
            return
        except ConfigError as exc:
            await _send(sock, {"ok": False, "kind": "config", "message": str(exc)})
            return
        number = link.add(_Route(self, route, idle, held))
        if link.closed:  # the client went while we connected
            link.release_all()
            return
        keys = []
        hop: Held | None = held
        while hop is not None:
            server_key = hop.conn.get_server_host_key()
            keys.append(server_key.export_public_key().decode() if server_key else "")
            hop = hop.gateway
        await _send(sock, {"ok": True, "reused": reused, "host_keys": keys[::-1], "route": number})


class _Route:
    """One node's route on a link: the held connection its channels go to."""

    def __init__(
        self, holder: Holder, route: list[dict[str, Any]], idle: float, held: Held
    ) -> None:
        self._holder = holder
        self._route = route
        self._idle = idle
        self.held = held
        self._released = False
        self._replacing: asyncio.Future[asyncssh.SSHClientConnection] | None = None

    @property
    def upstream(self) -> asyncssh.SSHClientConnection:
        return self.held.conn

    async def replace(self, dead: asyncssh.SSHClientConnection) -> asyncssh.SSHClientConnection:
        """The connection to use instead of ``dead`` (one replacement for all sessions):
        the held one died unnoticed (a host rebooted, a cut that only our next write
        revealed).

        Raises:
            ConnectError, ConfigError: the new connection failed.
        """
        if self.held.conn is not dead:
            return self.held.conn
        if self._replacing is None or self._replacing.done():
            self._replacing = asyncio.ensure_future(self._reacquire())
        return await asyncio.shield(self._replacing)

    async def _reacquire(self) -> asyncssh.SSHClientConnection:
        new, _ = await self._holder.acquire(self._route, self._idle)  # drops the dead one
        old, self.held = self.held, new
        if not self._released:
            self._holder.release(old)
        logger.info("host=%s held connection was dead: replaced", new.label)
        return new.conn

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._holder.release(self.held)


class _LinkServer(asyncssh.SSHServer):
    """One client's link to the holder: each session goes up its route's connection."""

    def __init__(self, holder: Holder, token: str) -> None:
        self._holder = holder
        self._token = token
        self.routes: dict[int, _Route] = {}
        self.closed = False
        self._sessions: list[_DownSession] = []

    def add(self, route: _Route) -> int:
        number = len(self.routes) + 1
        self.routes[number] = route
        return number

    def begin_auth(self, username: str) -> bool:
        return False  # the peer's uid was checked on the socket

    def session_requested(self) -> asyncssh.SSHServerSession[bytes]:
        session = _DownSession(self)
        self._sessions.append(session)
        return session

    def connection_requested(self, *args: Any) -> bool:
        return False  # gateways are held by the holder itself: no client tunnels

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._holder.links.pop(self._token, None)
        for session in self._sessions:
            session.close_upstream()
        self.release_all()

    def release_all(self) -> None:
        for route in self.routes.values():
            route.release()


class _DownSession(asyncssh.SSHServerSession[bytes]):
    """The client's end of a proxied session channel."""

    def __init__(self, server: _LinkServer) -> None:
        self._server = server
        self._chan: asyncssh.SSHServerChannel[bytes] | None = None
        self._up: asyncssh.SSHClientChannel[bytes] | None = None
        self._command: str | None = None
        self._subsystem: str | None = None
        self._pty: dict[str, Any] = {}
        self._pending: list[Callable[[asyncssh.SSHClientChannel[bytes]], None]] = []
        self._closed = False
        self._opening: asyncio.Future[None] | None = None

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self._chan = chan

    def pty_requested(self, term_type: str, term_size: Any, term_modes: Any) -> bool:
        self._pty = {"term_type": term_type, "term_size": term_size, "term_modes": term_modes}
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        self._command = command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        self._subsystem = subsystem
        return True

    def session_started(self) -> None:
        assert self._chan is not None
        self._chan.pause_reading()  # until the upstream channel is open
        self._opening = asyncio.ensure_future(self._open())

    async def _open(self) -> None:
        chan = self._chan
        assert chan is not None
        env = _environment(chan)
        number = env.pop(ROUTE_ENV, None) or env.pop(ROUTE_ENV.encode(), None)
        route = self._server.routes.get(_route_number(number))
        if route is None:
            logger.info("a session for no route of its link: refused")
            chan.close()
            return
        upstream = route.upstream
        try:
            try:
                up = await self._start(upstream, chan, env)
            except (asyncssh.Error, OSError):
                if not upstream.is_closed():
                    raise
                # it died under the session's start (sshd ends what a lost connection
                # started): start the session anew on a new connection
                up = await self._start(await route.replace(upstream), chan, env)
        except (asyncssh.Error, OSError, ConnectError, ConfigError) as exc:
            # as a lost connection: no exit status (the client's 255)
            logger.info("upstream session refused: %s", exc)
            chan.close()
            return
        if self._closed:  # the client left while we were opening
            up.close()
            return
        self._up = up
        for action in self._pending:
            action(up)
        self._pending.clear()
        chan.resume_reading()

    async def _start(
        self,
        upstream: asyncssh.SSHClientConnection,
        chan: asyncssh.SSHServerChannel[bytes],
        env: dict[bytes | str, bytes | str],
    ) -> asyncssh.SSHClientChannel[bytes]:
        up, _ = await upstream.create_session(
            lambda: _UpSession(chan),
            command=self._command,
            subsystem=self._subsystem,
            env=env,
            encoding=None,
            window=CHANNEL_WINDOW,
            **self._pty,
        )
        return up

    def _to_upstream(self, action: Callable[[asyncssh.SSHClientChannel[bytes]], None]) -> None:
        if self._up is not None:
            with suppress(OSError, asyncssh.Error):
                action(self._up)
        else:
            self._pending.append(action)

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self._to_upstream(lambda up: up.write(data))

    def eof_received(self) -> bool:
        self._to_upstream(lambda up: up.write_eof())
        return True  # the output side stays open until the command ends

    def signal_received(self, signal: str) -> None:
        self._to_upstream(lambda up: up.send_signal(signal))

    def break_received(self, msec: int) -> bool:
        self._to_upstream(lambda up: up.send_break(msec))
        return True

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        self._to_upstream(lambda up: up.change_terminal_size(width, height, pixwidth, pixheight))

    def pause_writing(self) -> None:
        if self._up is not None:
            self._up.pause_reading()

    def resume_writing(self) -> None:
        if self._up is not None:
            self._up.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.close_upstream()

    def close_upstream(self) -> None:
        """The client's channel is gone: close the upstream one (sshd then ends the
        command: its input closes, and the remote wrapper kills its group)."""
        self._closed = True
        if self._up is not None:
            self._up.close()


class _UpSession(asyncssh.SSHClientSession[bytes]):
    """The upstream end of a proxied session: output down, then the exit status."""

    def __init__(self, down: asyncssh.SSHServerChannel[bytes]) -> None:
        self._down = down
        self._up: asyncssh.SSHClientChannel[bytes] | None = None
        self._exit: tuple[Any, ...] | None = None

    def connection_made(self, chan: asyncssh.SSHClientChannel[bytes]) -> None:
        self._up = chan

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        with suppress(OSError, asyncssh.Error):
            self._down.write(data, datatype)

    def eof_received(self) -> bool:
        with suppress(OSError, asyncssh.Error):
            self._down.write_eof()
        return True  # wait for the exit status and the server's close

    def exit_status_received(self, status: int) -> None:
        self._exit = (status,)

    def exit_signal_received(self, signal: str, core_dumped: bool, msg: str, lang: str) -> None:
        self._exit = (signal, core_dumped, msg, lang)

    def pause_writing(self) -> None:
        self._down.pause_reading()

    def resume_writing(self) -> None:
        self._down.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        # all output was passed on before this: now the status, then the close
        with suppress(OSError, asyncssh.Error):
            if self._exit is None:
                self._down.close()
            elif len(self._exit) == 1:
                self._down.exit(self._exit[0])
            else:
                self._down.exit_with_signal(*self._exit)


def _early_socket(fds: list[int], message: dict[str, Any]) -> socket.socket | None:
    """The TCP connection a ``connect`` request brought for its route's first hop:
    the client opened it while it imported (a plain run's head start), so that the
    first run of a script is not slower for going through a new holder. Anything
    else sent along is closed."""
    route = message.get("route")
    first = route[0] if isinstance(route, list) and route and isinstance(route[0], dict) else {}
    early = None
    for fd in fds:
        sock = socket.socket(fileno=fd)
        port = None
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
            with suppress(OSError):
                port = sock.getpeername()[1]
        if early is None and port is not None and port == first.get("port"):
            early = sock
        else:
            sock.close()
    return early


def _environment(chan: asyncssh.SSHServerChannel[bytes]) -> dict[bytes | str, bytes | str]:
    env: dict[bytes | str, bytes | str] = {}
    env.update(chan.get_environment())
    return env


def _route_number(value: bytes | str | None) -> int:
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def _behind(route: list[dict[str, Any]], index: int, exc: ConnectError) -> ConnectError:
    """The error of hop ``index`` as the route's last node reports it: each gateway
    on the way names itself, as nested direct connects do."""
    if index == len(route) - 1:
        return exc
    message = exc.message
    for hop in route[index:-1]:
        message = f"gateway {hop.get('label')}: {message}"
    return UnreachableError(str(route[-1].get("label")), message)


def _kind(exc: ConnectError) -> str:
    if isinstance(exc, AuthRefusedError):
        return "auth"
    if isinstance(exc, HostKeyRefusedError):
        return "hostkey"
    return "unreachable"


async def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    await asyncio.get_running_loop().sock_sendall(sock, encode_frame(message))


def _login_session() -> str | None:
    """The systemd login session this holder started in (None: not under logind)."""
    session = os.environ.get("XDG_SESSION_ID")
    return session if session and Path("/run/systemd/sessions").is_dir() else None


def _session_alive(session: str) -> bool:
    state = Path("/run/systemd/sessions") / session
    return state.exists()


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: python -m apssh_cli.ssh.holder_server SOCKET IDLE [LINGER]", file=sys.stderr)
        return 2
    path, idle = Path(argv[0]), float(argv[1])
    linger = float(argv[2]) if len(argv) == 3 else LINGER
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s holder[%(process)d] %(message)s", stream=sys.stderr
    )
    logger.setLevel(logging.INFO)
    # asyncssh's own INFO lines (every channel opened and closed) cost the holder
    # ~15% of its CPU per served run: its warnings and errors are enough here
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    lock_fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another holder runs for this socket
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    trim_log(path.with_suffix(".log"))
    asyncio.run(Holder(path, idle, linger).serve())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
