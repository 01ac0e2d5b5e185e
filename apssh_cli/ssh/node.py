"""Nodes: where commands run. SshNode holds one SSH connection; LocalNode runs locally.

An :class:`SshNode` connects lazily, once: every job and command on the node shares
its connection as concurrent channels, and a lock prevents a double connect. A
node behind a ``gateway`` (another SshNode, itself possibly behind a gateway)
tunnels through the gateway's own connection, so N nodes behind one bastion make
exactly one connection to the bastion.

Both node classes offer the same primitives to the commands (:mod:`apssh_cli.commands`):
``run_shell`` (stream a shell command's output through the formatter, with a
timeout that terminates the process), ``install_files`` / ``remove_private_dir``
(the private directory of RunScript and RunString). SshNode adds an SFTP session
for Push and Pull.

The pieces live next door: :mod:`~apssh_cli.ssh.connection` (one connection attempt,
host keys, retries), :mod:`~apssh_cli.ssh.remote_wrapper` (the remote pid and the
kill of a process group), :mod:`~apssh_cli.ssh.process` (streaming, terminate on
timeout or cancel), :mod:`~apssh_cli.ssh.sftp` (transfers) and
:mod:`~apssh_cli.ssh.local_node` (LocalNode, re-exported here). These modules (with
keys.py and hostkeys.py) are the only users of asyncssh; asyncssh and OS errors
are turned into the errors of :mod:`apssh_cli.errors` there.
"""

from __future__ import annotations

import asyncio
import math
import os
import posixpath
import shlex
import socket
from collections.abc import Hashable, Sequence
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

import asyncssh

from apssh_cli.errors import CommandTimeoutError, ConfigError, ConnectError, UnreachableError
from apssh_cli.log import host_logger
from apssh_cli.output import DEFAULT_FORMATTER, Formatter
from apssh_cli.results import CommandResult
from apssh_cli.ssh import holder, hostkeys, loopend
from apssh_cli.ssh.connection import (
    ConnectionSettings,
    Credentials,
    connect_error,
    open_connection,
    with_retries,
)
from apssh_cli.ssh.context import SshContext, default_context
from apssh_cli.ssh.early import DEFAULT_CONNECT_TIMEOUT, DEFAULT_PORT
from apssh_cli.ssh.keys import KeySpec
from apssh_cli.ssh.local_node import LocalNode
from apssh_cli.ssh.node_helpers import ConnectedFlag, UpstreamNodeMixin, upstream_known_hosts
from apssh_cli.ssh.process import (
    CLEANUP_TIMEOUT,
    PRIVATE_PREFIX,
    TERMINATE_LIMIT,
    TERMINATE_STEPS,
    private_dir_name,
    shielded_cleanup,
    stream_process,
)
from apssh_cli.ssh.remote_wrapper import PidMarker, kill_group_script
from apssh_cli.ssh.sftp import TransferError
from apssh_cli.ssh.sshconfig import (
    DEFAULT_SSH_CONFIG,
    HostConfig,
    JumpHost,
    SshOptions,
    config_files,
    current_settings,
    lookup,
)
from apssh_cli.ssh.teardown import close_nodes, closing

if TYPE_CHECKING:
    from apssh_cli.ssh.holder_client import HeldRoute

    # a node's connection: its own, or its share of the link to the --persist holder
    NodeConnection = asyncssh.SSHClientConnection | HeldRoute

__all__ = [
    "LocalNode",
    "NodeLike",
    "SshNode",
    "SshProxy",
    "TransferError",
    "close_nodes",
    "closing",
]

# a silent peer is declared unreachable after KEEPALIVE_COUNT_MAX keepalives
# sent KEEPALIVE_INTERVAL seconds apart went unanswered (about 45 s)
DEFAULT_KEEPALIVE_INTERVAL = 15.0
DEFAULT_KEEPALIVE_COUNT_MAX = 3
# a command with a timeout is ended by the node itself this long after it, in
# case the client could not do it (connection lost, client killed)
REMOTE_GRACE = 5.0


class NodeLike(Protocol):
    """What commands need from a node (SshNode, LocalNode, or a test double)."""

    @property
    def label(self) -> str: ...

    formatter: Formatter
    verbose: bool

    async def connect(self) -> None: ...

    async def run_shell(
        self,
        command: str,
        *,
        display: str,
        timeout: float | None = None,
        verbose: bool = False,
        formatter: Formatter | None = None,
        x11: bool = False,
    ) -> CommandResult: ...

    async def install_files(self, files: Sequence[tuple[str, bytes | Path, int]]) -> str: ...

    async def remove_private_dir(self, path: str) -> None: ...


class SshNode(UpstreamNodeMixin):
    """A remote node reached over SSH, possibly through a chain of gateways.

    Args:
        hostname: the name or address (a ``Host`` alias of ~/.ssh/config works).
        username: remote user; None: ~/.ssh/config ``User``, else the local user.
        port: None: ~/.ssh/config ``Port``, else 22.
        gateway: the node to tunnel through; None: ~/.ssh/config ``ProxyJump``, if any.
        keys: private key paths or loaded keys; None: agent + IdentityFile or default files.
        known_hosts: host key policy: ``strict``, ``accept-new`` or ``off``; None:
            the ssh configuration's ``StrictHostKeyChecking``, else accept-new. A
            file path (as upstream apssh takes it) means that file, the policy as for None.
        known_hosts_file: the known_hosts file (new keys are written there);
            None: the ssh configuration's ``UserKnownHostsFile``, else
            ~/.ssh/known_hosts (and ~/.ssh/known_hosts2, only read). The
            ``GlobalKnownHostsFile`` ones are read too, as ssh does.
        connect_timeout: seconds allowed for TCP + handshake + authentication.
        connect_retries: extra attempts when unreachable (exponential backoff);
            refused keys are never retried.
        formatter: where command output goes (default: ``host:line`` on stdout/stderr).
        verbose: send connection and command events to the formatter.
        label: the name shown in output (default: hostname).
        ssh_config: the ssh_config file to honour; None ignores it. The default:
            ~/.ssh/config, or the file of the enclosing
            :func:`~apssh_cli.ssh.sshconfig.ssh_settings` block (``-F``).
        ssh_options: ``-O`` options (``"Name=value"``, OpenSSH's names, only those
            of :data:`~apssh_cli.ssh.sshconfig.HONOURED`): read before the
            ssh_config file, so their first value wins. None: those of the
            enclosing ``ssh_settings`` block.
        timeout: upstream's name for ``connect_timeout``.
        debug: upstream's flag: report connection events (as ``verbose``).

    An empty ``keys`` (upstream's ``load_agent_keys()`` with no agent) means the
    default keys, as upstream does.
        keepalive_interval: seconds between SSH keepalives when the peer is
            silent; 0 disables them. None: ``ServerAliveInterval`` of the
            ssh_config, else 15.
        keepalive_count_max: unanswered keepalives before the host is declared
            unreachable. None: ``ServerAliveCountMax``, else 3.
        context: the :class:`~apssh_cli.ssh.context.SshContext` whose jump nodes
            and known_hosts files this node shares; None: the running loop's.
        persist: keep the connection warm for this many idle seconds in the
            user's holder process, and reuse a held one (docs/persist.md); 0: off.
            None: the process default (``--persist``), else off.

    Raises:
        ConfigError: an unknown known_hosts policy, a negative keepalive setting.
    """

    def __init__(
        self,
        hostname: str,
        *,
        username: str | None = None,
        port: int | None = None,
        gateway: SshNode | None = None,
        keys: Sequence[KeySpec] | None = None,
        known_hosts: str | Path | None = None,
        known_hosts_file: str | Path | None = None,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        connect_retries: int = 0,
        formatter: Formatter | None = None,
        verbose: bool = False,
        label: str | None = None,
        ssh_config: str | Path | None = DEFAULT_SSH_CONFIG,
        timeout: float | None = None,
        debug: bool = False,
        keepalive_interval: float | None = None,
        keepalive_count_max: int | None = None,
        context: SshContext | None = None,
        ssh_options: Sequence[str] | SshOptions | None = None,
        persist: float | None = None,
    ) -> None:
        # upstream apssh's spellings: known_hosts=<file>, timeout=, debug=
        policy: str | None = None  # None: decided by the ssh configuration when resolving
        if known_hosts is not None:
            policy, known_hosts_file = upstream_known_hosts(known_hosts, known_hosts_file)
            if policy != known_hosts:  # upstream's file path: no policy given
                policy = None
        if timeout is not None:
            connect_timeout = timeout
        self.debug = debug
        verbose = verbose or debug
        keys = keys if keys else None  # upstream: no keys given means the default ones
        self.hostname = hostname
        self.username = username
        self.port = port
        self.gateway = gateway
        self.keys = keys
        self.known_hosts = hostkeys.check_policy(policy) if policy is not None else None
        self.known_hosts_file = known_hosts_file
        self.connect_timeout = connect_timeout
        self.connect_retries = connect_retries
        self.formatter = formatter if formatter is not None else DEFAULT_FORMATTER
        self.verbose = verbose
        self.label = label if label is not None else hostname
        settings = current_settings()
        # the default object itself: the enclosing ssh_settings() block's file (-F) applies
        self.ssh_config = settings.config if ssh_config is DEFAULT_SSH_CONFIG else ssh_config
        if ssh_options is None:
            ssh_options = settings.options
        self.ssh_options = (
            ssh_options if isinstance(ssh_options, SshOptions) else SshOptions(ssh_options)
        )
        self.keepalive_interval = _non_negative("keepalive_interval", keepalive_interval)
        self.keepalive_count_max = _non_negative("keepalive_count_max", keepalive_count_max)
        self.context = context
        self.persist = _non_negative("persist", persist)
        self._follow_proxyjump = True
        self._target: ConnectionSettings | None = None
        self._log = host_logger(self.label)
        # connection state, bound to one event loop (see _bind_loop)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: NodeConnection | None = None
        self._lock = asyncio.Lock()
        self._sftp: asyncssh.SFTPClient | None = None
        self._sftp_lock = asyncio.Lock()
        # the TCP connection its loop left open at its end, until closed (see loopend)
        self._parked: socket.socket | None = None
        self._loop_end: loopend.LoopEnd | None = None

    def __repr__(self) -> str:
        via = f" via {self.gateway.label}" if self.gateway is not None else ""
        return f"<SshNode {self.label}{via}>"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ---------------------------------------------------------------- connection

    @property
    def is_connected(self) -> ConnectedFlag:
        """Whether the node holds an open connection (``node.is_connected()`` works too)."""
        return ConnectedFlag(self._conn is not None)

    def resolve(self) -> ConnectionSettings:
        """Apply the ssh_config file (read once per node) to the given settings.

        Raises:
            ConfigError: the ssh_config file cannot be read or parsed.
        """
        if self._target is None:
            config = (
                lookup(
                    self.ssh_config,
                    self.hostname,
                    user=self.username,
                    port=self.port,
                    options=self.ssh_options,
                )
                if self.ssh_config is not None or self.ssh_options
                else HostConfig()
            )
            gateway = self.gateway
            if gateway is None and self._follow_proxyjump and config.proxy_jump:
                gateway = self._jump_chain(config.proxy_jump)
            interval = _first(self.keepalive_interval, config.keepalive_interval)
            count = _first(self.keepalive_count_max, config.keepalive_count_max)
            self._target = ConnectionSettings(
                host=config.hostname or self.hostname,
                port=self.port or config.port or DEFAULT_PORT,
                username=self.username or config.user,
                identity_files=config.identity_files,
                gateway=gateway,
                keepalive_interval=_first(interval, DEFAULT_KEEPALIVE_INTERVAL),
                keepalive_count_max=int(_first(count, DEFAULT_KEEPALIVE_COUNT_MAX)),
                configs=tuple(config_files(self.ssh_options, self.ssh_config)),
                alias=self.hostname,
                ciphers=config.ciphers,
                host_key_algorithms=config.host_key_algorithms,
                identities_only=bool(config.identities_only),
                identity_agent=config.identity_agent,
                host_key_policy=self.known_hosts
                or config.host_key_policy
                or hostkeys.DEFAULT_POLICY,
                known_hosts=_known_hosts_files(self.known_hosts_file, config),
                host_key_alias=config.host_key_alias,
                config_entries=tuple(config.entries()),
            )
        return self._target

    def _context(self) -> SshContext:
        if self.context is None:
            # the running loop's, kept for the node's life: its jump nodes stay shared
            self.context = default_context()
        return self.context

    @property
    def effective_gateway(self) -> SshNode | None:
        """The gateway actually used: the given one, or the ProxyJump chain's last hop."""
        return self.resolve().gateway

    def _jump_chain(self, hops: Sequence[JumpHost]) -> SshNode:
        previous: SshNode | None = None
        for hop in hops:
            previous = _jump_node(self, hop, previous)
        assert previous is not None
        return previous

    def _bind_loop(self) -> None:
        """Start afresh under a new event loop: a connection or lock of another loop is dead.

        What the previous loop left open is closed first (see :mod:`~apssh_cli.ssh.loopend`).
        """
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None:
                self._log.debug("used under a new event loop: connection state reset")
                self._end_previous_loop()
            self._loop = loop
            self._loop_end = None
            self._conn = None
            self._sftp = None
            self._lock = asyncio.Lock()
            self._sftp_lock = asyncio.Lock()

    async def connect(self) -> None:
        """Open the connection if needed (idempotent, safe to call concurrently).

        Raises:
            UnreachableError: refused, no route, unknown name, timeout, or a gateway failed.
            AuthRefusedError: no key was accepted.
            HostKeyRefusedError: the host key is unknown (strict) or changed.
            ConfigError: bad ~/.ssh/config, key file or known_hosts file.
        """
        self._bind_loop()
        if self._conn is not None:
            return
        async with self._lock:
            if self._conn is not None:
                return
            try:
                self._conn = await self._connect_with_retries()
            except ConnectError as exc:
                self.formatter.connect_failed(self.label, exc)
                raise
            if self.verbose:
                self.formatter.connected(self.label)
            self._loop_end = loopend.loop_end()
            await self._loop_end.add(self)

    async def _connect_with_retries(self) -> NodeConnection:
        return await with_retries(self._connect_once, self.connect_retries, self._log)

    async def _connect_once(self) -> NodeConnection:
        target = self.resolve()
        persist = holder.effective_persist(self.persist)
        if persist > 0:
            from apssh_cli.ssh.holder_client import held_connection

            held = await held_connection(self, persist, self._log, self._forget_connection)
            if held is not None:
                return held
        tunnel: asyncssh.SSHClientConnection | None = None
        if target.gateway is not None:
            try:
                await target.gateway.connect()
            except ConnectError as exc:
                raise UnreachableError(
                    self.label, f"gateway {target.gateway.label}: {exc.message}"
                ) from exc
            gateway_conn = target.gateway._conn
            if gateway_conn is None or isinstance(gateway_conn, asyncssh.SSHClientConnection):
                tunnel = gateway_conn
            else:
                raise ConfigError(
                    f"host {self.label}: its gateway {target.gateway.label} is held by "
                    "--persist and it is not: give both the same persist"
                )
        context = self._context()
        known = context.known_hosts(target.known_hosts, alias=target.host_key_alias)
        sock = None
        if tunnel is None and context.early_connections is not None:
            try:
                sock = await context.early_connections.take(target.host, target.port)
            except OSError as exc:  # what our own connect would have met
                raise connect_error(self.label, target, self.connect_timeout, exc) from exc
        return await open_connection(
            self.label,
            target,
            Credentials(self.keys, target.host_key_policy, known),
            tunnel=tunnel,
            sock=sock,
            connect_timeout=self.connect_timeout,
            on_lost=self._forget_connection,
            log=self._log,
        )

    def _forget_connection(self) -> None:
        self._conn = None
        self._sftp = None

    def _tunnelled(self) -> bool:
        return self._target is not None and self._target.gateway is not None

    @property
    def known_gateway(self) -> SshNode | None:
        """The node this one tunnels through: the ProxyJump hop once ssh_config was read,
        else the ``gateway`` given (no lookup here: what `close_nodes` follows)."""
        return self._target.gateway if self._target is not None else self.gateway

    def park(self) -> NodeConnection | None:
        """The loop ends: keep a direct connection's TCP connection open, abort the rest.

        Returns the connection to wait for. One behind a gateway is left alone: it ends
        with its gateway's abort, and its server keeps it as long as the gateway's TCP
        connection lives. Called by :class:`~apssh_cli.ssh.loopend.LoopEnd`.
        """
        conn, self._conn = self._conn, None
        self._sftp = None
        if conn is not None and not self._tunnelled():
            self._parked = loopend.park(conn)
        return conn

    def _hang_up_parked(self) -> None:
        parked, self._parked = self._parked, None
        if parked is not None:
            loopend.hang_up(parked)
            self._log.debug("closed (the connection of an ended event loop)")

    def _end_previous_loop(self) -> None:
        """Close what a previous loop left: a parked socket, or a connection."""
        self._hang_up_parked()
        if self._conn is not None and not self._tunnelled():
            # that loop ended without shutdown_asyncgens(): nothing could be parked
            loopend.abandon(self._conn)
            self._log.debug("shut down (the connection of another event loop)")

    async def close(self) -> None:
        """Close the connection (not the gateway's); the node can connect again later.

        A connection opened under a loop that has ended since is closed too (its socket,
        and so, for a gateway, the tunnels through it).
        """
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            self._bind_loop()  # closes what the other loop left
        self._hang_up_parked()  # parked under this very loop, as it ends
        conn, self._conn = self._conn, None
        sftp, self._sftp = self._sftp, None
        if sftp is not None:
            sftp.exit()
        if conn is not None:
            conn.close()
            await conn.wait_closed()
            self._log.debug("closed")

    async def _connection(self) -> NodeConnection:
        await self.connect()
        assert self._conn is not None
        return self._conn

    # ------------------------------------------------------------------ commands

    async def run_shell(
        self,
        command: str,
        *,
        display: str,
        timeout: float | None = None,
        verbose: bool = False,
        formatter: Formatter | None = None,
        x11: bool = False,
    ) -> CommandResult:
        """Run ``command`` with the remote user's shell, streaming its output.

        ``formatter`` replaces the node's for this command (a capture);
        ``x11`` asks for X11 forwarding.

        Its stdin is /dev/null. On timeout or cancellation its process group
        is terminated (TERM, then KILL) and the call returns once it is gone; if
        that comes before its pid is known, apssh first waits (bounded) for the
        pid (see :mod:`~apssh_cli.ssh.remote_wrapper`). The node ends the command
        by itself if the session disappears, and ``REMOTE_GRACE`` seconds after
        ``timeout`` if the client could not.

        Raises:
            CommandTimeoutError: it ran past ``timeout``.
            ConnectError: the connection failed or was lost.
        """
        conn = await self._connection()
        formatter = formatter if formatter is not None else self.formatter
        if verbose:
            formatter.command_started(self.label, display)
        marker = PidMarker()
        deadline = None if timeout is None else timeout + REMOTE_GRACE
        wrapped = marker.wrap(command, deadline=deadline)
        process = await self._start_process(conn, wrapped, marker, x11)

        async def wait() -> int:
            await process.wait(check=False)
            rc = process.returncode
            # no exit status at all: the connection went away (ssh's 255)
            return 255 if rc is None else rc

        async def terminate() -> None:
            await self._terminate(process, marker)

        try:
            result = await stream_process(
                host=self.label,
                display=display,
                formatter=formatter,
                read_stdout=marker.reader(process.stdout.read),
                read_stderr=process.stderr.read,
                wait=wait,
                terminate=terminate,
                timeout=timeout,
            )
        except CommandTimeoutError:
            raise  # also an OSError (TimeoutError): not a lost connection
        except (asyncssh.Error, OSError) as exc:
            raise UnreachableError(self.label, self._lost(exc)) from exc
        finally:
            process.close()
        if verbose:
            formatter.command_done(self.label, display, result.rc)
        return result

    async def _start_process(
        self,
        conn: NodeConnection,
        wrapped: str,
        marker: PidMarker,
        x11: bool = False,
    ) -> asyncssh.SSHClientProcess[bytes]:
        """Open a session running ``wrapped`` (its stdin stays open: the wrapper watches it).

        Cancelled meanwhile, the command is terminated once the session is open.
        """
        starting = asyncio.ensure_future(_open_session(conn, wrapped, x11))
        try:
            return await asyncio.shield(starting)
        except asyncio.CancelledError:
            await shielded_cleanup(self._abandon(starting, marker), TERMINATE_LIMIT)
            raise
        except (asyncssh.Error, OSError) as exc:
            raise UnreachableError(self.label, f"cannot start a session: {exc}") from exc

    async def _abandon(
        self, starting: asyncio.Future[asyncssh.SSHClientProcess[bytes]], marker: PidMarker
    ) -> None:
        """End a command whose start was cancelled, once its session is open (or failed)."""
        try:
            process = await starting
        except (asyncssh.Error, OSError):
            return
        try:
            await self._terminate(process, marker)
        finally:
            process.close()

    async def _terminate(
        self, process: asyncssh.SSHClientProcess[bytes], marker: PidMarker
    ) -> None:
        """End a command that may still run, and wait (bounded) for its session to close."""
        # OpenSSH honours channel signals only for non-root users (privilege
        # separation), so the process group is also killed from a second channel
        with suppress(asyncssh.Error, OSError):
            process.send_signal("TERM")
        if not marker.seen:
            # the command may run already: its pid line is on the way, unless the
            # output ends first (the command is over, nothing to kill)
            with suppress(asyncssh.Error, OSError, TimeoutError):
                await asyncio.wait_for(marker.await_pid(process.stdout.read), CLEANUP_TIMEOUT)
        if marker.pid is not None:
            with suppress(ConnectError, TimeoutError):
                await self._capture(kill_group_script(marker.pid), timeout=CLEANUP_TIMEOUT)
        try:
            await asyncio.wait_for(process.wait_closed(), TERMINATE_STEPS[-1][1])
        except TimeoutError:
            process.close()

    def _lost(self, exc: BaseException) -> str:
        """The message of a connection lost under a command or transfer."""
        reason = exc.reason if isinstance(exc, asyncssh.Error) else str(exc)
        if "keepalive" in reason:
            target = self.resolve()
            return (
                f"connection lost: no answer to {target.keepalive_count_max} keepalives "
                f"sent {target.keepalive_interval:g}s apart"
            )
        if not reason or reason.lower().rstrip(".") == "connection lost":
            return "connection lost"
        return f"connection lost: {reason}"

    async def _capture(self, command: str, timeout: float | None = 30.0) -> tuple[int, str, str]:
        """Run a helper command quietly; return (rc, stdout, stderr)."""
        conn = await self._connection()
        try:
            done = await asyncio.wait_for(conn.run(command, check=False), timeout)
        except (asyncssh.Error, OSError) as exc:
            raise UnreachableError(self.label, self._lost(exc)) from exc
        out = done.stdout if isinstance(done.stdout, str) else ""
        err = done.stderr if isinstance(done.stderr, str) else ""
        return (255 if done.returncode is None else done.returncode), out, err

    async def install_files(self, files: Sequence[tuple[str, bytes | Path, int]]) -> str:
        """Create a private directory (mode 700, unpredictable name) holding ``files``.

        Args:
            files: (name, content or local path, mode) triples.

        Returns:
            the directory's path on the node.
        """
        name = private_dir_name()
        rc, out, err = await self._capture(
            f'umask 077 && d="${{TMPDIR:-/tmp}}/{name}" && mkdir -m 700 -- "$d" && printf %s "$d"'
        )
        if rc != 0 or not out:
            raise TransferError(f"cannot create a private directory: {err.strip() or rc}")
        directory = out
        try:
            sftp = await self.sftp_client()
            for filename, content, mode in files:
                path = posixpath.join(directory, filename)
                if isinstance(content, Path):
                    await sftp.put(str(content), path)
                else:
                    async with sftp.open(path, "wb") as handle:
                        await handle.write(content)
                await sftp.chmod(path, mode)
        except BaseException:
            await shielded_cleanup(self.remove_private_dir(directory))
            raise
        return directory

    async def remove_private_dir(self, path: str) -> None:
        """Remove a directory made by :meth:`install_files` (best effort, bounded)."""
        if not posixpath.basename(path).startswith(PRIVATE_PREFIX):
            raise ValueError(f"refusing to remove {path!r}: not a private directory")
        try:
            await self._capture(f"rm -rf -- {shlex.quote(path)}", timeout=CLEANUP_TIMEOUT)
        except (ConnectError, TimeoutError) as exc:
            self._log.warning("could not remove %s: %s", path, exc)

    # ------------------------------------------------------------------ transfers

    async def sftp_client(self) -> asyncssh.SFTPClient:
        """The node's SFTP session (opened once, on first use), for :mod:`apssh_cli.ssh.sftp`."""
        conn = await self._connection()  # binds the node to this loop
        async with self._sftp_lock:
            if self._sftp is None:
                try:
                    self._sftp = await conn.start_sftp_client()
                except (asyncssh.Error, OSError) as exc:
                    raise UnreachableError(
                        self.label, f"cannot start SFTP: {self._lost(exc)}"
                    ) from exc
            return self._sftp

    async def sftp_session_ended(self) -> bool:
        """After a transfer's SFTP session ended: True if the connection stands (only
        the session ended: the server's sftp-server exited); the dead session is
        forgotten either way, so the next transfer starts a new one."""
        self._sftp = None
        await asyncio.sleep(0.1)  # a lost connection's callbacks run first
        conn = self._conn
        return conn is not None and not conn.is_closed()

    async def open_sftp_session(self) -> asyncssh.SFTPClient:
        """One more SFTP session on the node's connection, for the caller to close
        (``exit()``): the extra sessions a large transfer is spread over."""
        conn = await self._connection()
        return await conn.start_sftp_client()


async def _open_session(
    conn: NodeConnection, wrapped: str, x11: bool = False
) -> asyncssh.SSHClientProcess[bytes]:
    """Start ``wrapped``; no end-of-file on its stdin: that would tell the wrapper we left.

    Raises:
        ConfigError: X11 asked for on a connection held by ``--persist``'s holder, which
            does not forward X11 (refused here, in words, rather than failing in sshd).
    """
    if x11 and getattr(conn.get_owner(), "held", False):
        raise ConfigError(
            "X11 forwarding does not go through the --persist holder: "
            "run this command without --persist (or persist = 0 for this host)"
        )
    extra: dict[str, Any] = {"x11_forwarding": True} if x11 else {}
    return await conn.create_process(wrapped, encoding=None, **extra)


SshProxy = SshNode
"""Upstream apssh's name for a node (its SshNode differs only by defaults)."""


def _non_negative(name: str, value: float | int | None) -> Any:
    if value is not None and not 0 <= value < math.inf:  # also refuses nan
        raise ConfigError(f"{name} must be a number of 0 or more, not {value!r}")
    return value


def _known_hosts_files(given: str | Path | None, config: HostConfig) -> tuple[str, ...]:
    """The known_hosts files of a host, the one new keys go to first: the given file,
    else UserKnownHostsFile, else ssh's defaults; then the GlobalKnownHostsFile ones."""
    if given is not None:
        user: tuple[str, ...] = (str(given),)
    elif config.user_known_hosts is not None:
        user = config.user_known_hosts
    else:
        user = hostkeys.DEFAULT_USER_KNOWN_HOSTS
    if not user:  # UserKnownHostsFile none: new keys have nowhere to go, as with ssh
        user = (os.devnull,)
    system = _first(config.global_known_hosts, hostkeys.DEFAULT_GLOBAL_KNOWN_HOSTS)
    return (*user, *system)


def _first(*values: Any) -> Any:
    return next((value for value in values if value is not None), None)


def _key_identity(key: KeySpec) -> Hashable:
    # paths by name; loaded keys by their public half (an SSHKey is not hashable)
    if isinstance(key, str | Path):
        return str(Path(key).expanduser())
    return key.public_data


def _jump_node(origin: SshNode, hop: JumpHost, previous: SshNode | None) -> SshNode:
    """The shared node for one ProxyJump hop of ``origin`` (in origin's context)."""
    keys = None if origin.keys is None else tuple(_key_identity(key) for key in origin.keys)
    key = (
        hop.host,
        hop.user,
        hop.port,
        previous,  # the node itself (hashed by identity, and kept alive by the key)
        origin.known_hosts,
        str(origin.known_hosts_file),
        str(origin.ssh_config),
        origin.ssh_options,
        keys,
        origin.connect_timeout,
        origin.keepalive_interval,
        origin.keepalive_count_max,
    )

    def make() -> SshNode:
        node = SshNode(
            hop.host,
            username=hop.user,
            port=hop.port,
            gateway=previous,
            keys=origin.keys,
            known_hosts=origin.known_hosts,
            known_hosts_file=origin.known_hosts_file,
            connect_timeout=origin.connect_timeout,
            formatter=origin.formatter,
            ssh_config=origin.ssh_config,
            ssh_options=origin.ssh_options,
            keepalive_interval=origin.keepalive_interval,
            keepalive_count_max=origin.keepalive_count_max,
            context=context,
            persist=origin.persist,
        )
        node._follow_proxyjump = False  # a jump host's own ProxyJump would loop
        return node

    context = origin._context()
    return context.jump_node(key, make)
