"""Nodes: where commands run. SshNode holds one SSH connection; LocalNode runs locally.

An :class:`SshNode` connects lazily, once: every job and command on the node shares
its connection as concurrent channels, and a lock prevents a double connect. A
node behind a ``gateway`` (another SshNode, itself possibly behind a gateway)
tunnels through the gateway's own connection, so N nodes behind one bastion make
exactly one connection to the bastion.

Both node classes offer the same primitives to the commands (:mod:`apssh_cli.commands`):
``run_shell`` (stream a shell command's output through the formatter, with a
timeout that terminates the process), ``install_files`` / ``remove_private_dir``
(the private directory of RunScript and RunString). SshNode adds ``push``/``pull``
over SFTP.

This module (with keys.py and hostkeys.py) is the only user of asyncssh; asyncssh
and OS errors are turned into the errors of :mod:`apssh_cli.errors` here.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import secrets
import shlex
import shutil
import signal
import stat
import tempfile
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

import asyncssh

from apssh_cli import hostkeys
from apssh_cli.errors import (
    AuthRefusedError,
    CommandTimeoutError,
    ConnectError,
    HostKeyRefusedError,
    UnreachableError,
)
from apssh_cli.keys import KeySpec, resolve_keys
from apssh_cli.log import host_logger
from apssh_cli.output import DEFAULT_FORMATTER, STDERR, STDOUT, Formatter, LineSplitter, Stream
from apssh_cli.results import CommandResult
from apssh_cli.sshconfig import DEFAULT_SSH_CONFIG, HostConfig, JumpHost, load_ssh_config

DEFAULT_PORT = 22
DEFAULT_CONNECT_TIMEOUT = 10.0
STDERR_TAIL_LINES = 5
# terminating a process: signal, then how long to wait for it to go; TERM is sent
# twice because OpenSSH drops a signal that arrives before the session is set up
_TERMINATE_STEPS = (("TERM", 0.5), ("TERM", 1.0), ("KILL", 1.0))
# bounded cleanup (rm of the private dir) once a command is over or cancelled
_CLEANUP_TIMEOUT = 5.0
_BACKOFF_FIRST = 0.5
_BACKOFF_MAX = 8.0
_CHUNK = 65536


class TransferError(Exception):
    """A Push or Pull could not complete (reported as a failed command, rc 1)."""


class NodeLike(Protocol):
    """What commands need from a node (SshNode, LocalNode, or a test double)."""

    @property
    def label(self) -> str: ...

    formatter: Formatter
    verbose: bool

    async def connect(self) -> None: ...

    async def run_shell(
        self, command: str, *, display: str, timeout: float | None = None, verbose: bool = False
    ) -> CommandResult: ...

    async def install_files(self, files: Sequence[tuple[str, bytes | Path, int]]) -> str: ...

    async def remove_private_dir(self, path: str) -> None: ...


class _Emitter:
    """Turns output chunks of one stream into formatter lines; keeps a stderr tail."""

    def __init__(self, host: str, formatter: Formatter, stream: Stream, tail: deque[str]):
        self.host = host
        self.formatter = formatter
        self.stream = stream
        self.tail = tail
        self.splitter = LineSplitter()

    def feed(self, data: bytes) -> None:
        self._emit(self.splitter.feed(data))

    def close(self) -> None:
        self._emit(self.splitter.flush())

    def _emit(self, lines: list[str]) -> None:
        for line in lines:
            if self.stream == STDERR:
                self.tail.append(line)
            self.formatter.line(self.host, line, self.stream)


async def _pump(read: Callable[[int], Awaitable[bytes]], emitter: _Emitter) -> None:
    try:
        while data := await read(_CHUNK):
            emitter.feed(data)
    finally:
        emitter.close()


async def _stream_process(
    *,
    host: str,
    display: str,
    formatter: Formatter,
    read_stdout: Callable[[int], Awaitable[bytes]],
    read_stderr: Callable[[int], Awaitable[bytes]],
    wait: Callable[[], Awaitable[int]],
    terminate: Callable[[], Awaitable[None]],
    timeout: float | None,
) -> CommandResult:
    """Stream a started process's output until it exits; terminate it on timeout or cancel."""
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    pumps = [
        asyncio.ensure_future(_pump(read_stdout, _Emitter(host, formatter, STDOUT, tail))),
        asyncio.ensure_future(_pump(read_stderr, _Emitter(host, formatter, STDERR, tail))),
    ]
    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(*pumps)
            rc = await wait()
    except TimeoutError:
        await shielded_cleanup(terminate())
        assert timeout is not None
        raise CommandTimeoutError(host, display, timeout) from None
    except asyncio.CancelledError:
        await shielded_cleanup(terminate())
        raise
    finally:
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
    return CommandResult(display, rc, "\n".join(tail))


async def shielded_cleanup(coro: Awaitable[None], limit: float = _CLEANUP_TIMEOUT) -> None:
    """Run cleanup to its end even if the caller is being cancelled (bounded in time)."""
    task = asyncio.ensure_future(asyncio.wait_for(coro, limit))
    try:
        # if the caller is cancelled again meanwhile, the cleanup still finishes
        await asyncio.shield(task)
    except Exception as exc:  # cleanup is best effort; the original error matters
        host_logger("-").debug("cleanup failed: %r", exc)


class _PidMarker:
    """Learn the remote process's pid from a first stdout line that the user never sees.

    sshd makes the command's shell a session leader, so its pid is also the
    process group of everything the command starts: ``kill -- -pid`` ends them all.
    The wrapper prints a line with a random token and the pid, then execs the
    user's shell on the command (same pid).
    """

    def __init__(self) -> None:
        self.token = f"apssh-pid-{secrets.token_hex(8)}"
        self.pid: int | None = None
        self._checked = False
        self._buffer = b""

    def wrap(self, command: str) -> str:
        return (
            f"printf '%s %s\\n' {self.token} \"$$\"; "
            f'exec "${{SHELL:-/bin/sh}}" -c {shlex.quote(command)}'
        )

    def reader(self, read: Callable[[int], Awaitable[bytes]]) -> Callable[[int], Awaitable[bytes]]:
        async def read_past_marker(size: int) -> bytes:
            while not self._checked:
                data = await read(size)
                self._buffer += data
                line, newline, rest = self._buffer.partition(b"\n")
                if not newline and data:
                    continue  # the first line is not complete yet
                self._checked = True
                self._buffer = b""
                words = line.split()
                if newline and len(words) == 2 and words[0] == self.token.encode():
                    self.pid = int(words[1])
                    if rest:
                        return rest
                    continue
                # something printed before our marker (a noisy rc file): pass it through
                return line + newline + rest
            return await read(size)

        return read_past_marker


def _kill_group_script(pid: int) -> str:
    """TERM the process group, give it a moment, then KILL what is left."""
    # "kill -s SIG -- -PGID" is the form dash, bash and procps' kill all accept
    group = f"-- -{int(pid)}"
    return (
        f"kill -s TERM {group} 2>/dev/null || exit 0; i=0; "
        f"while [ $i -lt 10 ] && kill -s 0 {group} 2>/dev/null; do sleep 0.1; i=$((i+1)); done; "
        f"kill -s KILL {group} 2>/dev/null; exit 0"
    )


# --------------------------------------------------------------------------- SSH


@dataclass(frozen=True)
class _Target:
    """Where and how to connect, after ~/.ssh/config."""

    host: str
    port: int
    username: str | None
    identity_files: tuple[str, ...]
    gateway: SshNode | None


class _Client(asyncssh.SSHClient):
    """Per-connection callbacks: host key policy, recording, connection loss."""

    def __init__(self, node: SshNode, policy: str, file: hostkeys.KnownHostsFile):
        self._node = node
        self._policy = policy
        self._file = file
        self._pending: tuple[str, int | None, asyncssh.SSHKey] | None = None
        self.refusal: str | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        # called only for a key that is not recorded for this host
        decision = hostkeys.decide(self._policy, self._file.has_record(host, addr, port))
        if decision is hostkeys.Decision.RECORD:
            self._pending = (host, port, key)
            return True
        self.refusal = hostkeys.refusal_message(decision, host, port, self._file.path)
        return False

    def begin_auth(self, username: str) -> None:
        # the key exchange succeeded: the new host key has proven itself, record it
        if self._pending is not None:
            host, port, key = self._pending
            self._pending = None
            self._file.record(host, port, key)

    def connection_lost(self, exc: Exception | None) -> None:
        self._node._forget_connection()


class SshNode:
    """A remote node reached over SSH, possibly through a chain of gateways.

    Args:
        hostname: the name or address (a ``Host`` alias of ~/.ssh/config works).
        username: remote user; None: ~/.ssh/config ``User``, else the local user.
        port: None: ~/.ssh/config ``Port``, else 22.
        gateway: the node to tunnel through; None: ~/.ssh/config ``ProxyJump``, if any.
        keys: private key paths or loaded keys; None: agent + IdentityFile or default files.
        known_hosts: host key policy: ``strict``, ``accept-new`` (default) or ``off``.
        known_hosts_file: defaults to ~/.ssh/known_hosts.
        connect_timeout: seconds allowed for TCP + handshake + authentication.
        connect_retries: extra attempts when unreachable (exponential backoff);
            refused keys are never retried.
        formatter: where command output goes (default: ``host:line`` on stdout/stderr).
        verbose: send connection and command events to the formatter.
        label: the name shown in output (default: hostname).
        ssh_config: the ssh_config file to honour; None ignores it.

    Raises:
        ConfigError: an unknown known_hosts policy.
    """

    def __init__(
        self,
        hostname: str,
        *,
        username: str | None = None,
        port: int | None = None,
        gateway: SshNode | None = None,
        keys: Sequence[KeySpec] | None = None,
        known_hosts: str = hostkeys.DEFAULT_POLICY,
        known_hosts_file: str | Path | None = None,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        connect_retries: int = 0,
        formatter: Formatter | None = None,
        verbose: bool = False,
        label: str | None = None,
        ssh_config: str | Path | None = DEFAULT_SSH_CONFIG,
    ) -> None:
        self.hostname = hostname
        self.username = username
        self.port = port
        self.gateway = gateway
        self.keys = keys
        self.known_hosts = hostkeys.check_policy(known_hosts)
        self.known_hosts_file = known_hosts_file
        self.connect_timeout = connect_timeout
        self.connect_retries = connect_retries
        self.formatter = formatter if formatter is not None else DEFAULT_FORMATTER
        self.verbose = verbose
        self.label = label if label is not None else hostname
        self.ssh_config = ssh_config
        self._follow_proxyjump = True
        self._target: _Target | None = None
        self._conn: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()
        self._sftp: asyncssh.SFTPClient | None = None
        self._sftp_lock = asyncio.Lock()
        self._log = host_logger(self.label)

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
    def is_connected(self) -> bool:
        """Whether the node holds an open connection."""
        return self._conn is not None

    def resolve(self) -> _Target:
        """Apply ~/.ssh/config (read once per process) to the given settings."""
        if self._target is None:
            config = (
                load_ssh_config(self.ssh_config).lookup(self.hostname)
                if self.ssh_config is not None
                else HostConfig()
            )
            gateway = self.gateway
            if gateway is None and self._follow_proxyjump and config.proxy_jump:
                gateway = self._jump_chain(config.proxy_jump)
            self._target = _Target(
                host=config.hostname or self.hostname,
                port=self.port or config.port or DEFAULT_PORT,
                username=self.username or config.user,
                identity_files=config.identity_files,
                gateway=gateway,
            )
        return self._target

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

    async def connect(self) -> None:
        """Open the connection if needed (idempotent, safe to call concurrently).

        Raises:
            UnreachableError: refused, no route, unknown name, timeout, or a gateway failed.
            AuthRefusedError: no key was accepted.
            HostKeyRefusedError: the host key is unknown (strict) or changed.
            ConfigError: bad ~/.ssh/config, key file or known_hosts file.
        """
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

    async def _connect_with_retries(self) -> asyncssh.SSHClientConnection:
        attempt = 0
        while True:
            try:
                return await self._connect_once()
            except UnreachableError as exc:
                if attempt >= self.connect_retries:
                    raise
                delay = min(_BACKOFF_FIRST * 2**attempt, _BACKOFF_MAX)
                attempt += 1
                self._log.info("unreachable (%s), retry %d in %.1fs", exc.message, attempt, delay)
                await asyncio.sleep(delay)

    async def _connect_once(self) -> asyncssh.SSHClientConnection:
        target = self.resolve()
        tunnel: asyncssh.SSHClientConnection | None = None
        if target.gateway is not None:
            try:
                await target.gateway.connect()
            except ConnectError as exc:
                raise UnreachableError(
                    self.label, f"gateway {target.gateway.label}: {exc.message}"
                ) from exc
            tunnel = target.gateway._conn
        client_keys = resolve_keys(self.keys, target.identity_files)
        file = hostkeys.known_hosts_file(self.known_hosts_file)
        known_hosts: Any = None if self.known_hosts == hostkeys.OFF else file.load()
        client = _Client(self, self.known_hosts, file)
        options: dict[str, Any] = {}
        if target.username is not None:
            options["username"] = target.username
        if not client_keys.use_agent:
            options["agent_path"] = None
        where = f"{target.host}:{target.port}"
        if tunnel is not None:
            where += f" via {target.gateway.label if target.gateway else '?'}"
        self._log.debug("connecting to %s", where)
        try:
            conn = await asyncssh.connect(
                target.host,
                target.port,
                tunnel=tunnel,
                config=None,
                client_factory=lambda: client,
                client_keys=list(client_keys.keys) or None,
                known_hosts=known_hosts,
                connect_timeout=self.connect_timeout,
                **options,
            )
        except asyncssh.HostKeyNotVerifiable as exc:
            raise HostKeyRefusedError(self.label, client.refusal or exc.reason) from exc
        except asyncssh.PermissionDenied as exc:
            user = target.username or "the local user name"
            raise AuthRefusedError(
                self.label, f"authentication refused for {user} ({exc.reason})"
            ) from exc
        except asyncssh.ChannelOpenError as exc:
            raise UnreachableError(
                self.label, f"the gateway could not reach {target.host}:{target.port}: {exc.reason}"
            ) from exc
        except TimeoutError as exc:
            raise UnreachableError(
                self.label, f"connection to {where} timed out after {self.connect_timeout:g}s"
            ) from exc
        except asyncssh.Error as exc:
            raise UnreachableError(self.label, f"{where}: {exc.reason}") from exc
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise UnreachableError(self.label, f"cannot connect to {where}: {reason}") from exc
        self._log.info("connected to %s", where)
        return conn

    def _forget_connection(self) -> None:
        self._conn = None
        self._sftp = None

    async def close(self) -> None:
        """Close the connection (not the gateway's); the node can connect again later."""
        conn, self._conn = self._conn, None
        sftp, self._sftp = self._sftp, None
        if sftp is not None:
            sftp.exit()
        if conn is not None:
            conn.close()
            await conn.wait_closed()
            self._log.debug("closed")

    async def _connection(self) -> asyncssh.SSHClientConnection:
        await self.connect()
        assert self._conn is not None
        return self._conn

    # ------------------------------------------------------------------ commands

    async def run_shell(
        self, command: str, *, display: str, timeout: float | None = None, verbose: bool = False
    ) -> CommandResult:
        """Run ``command`` with the remote user's shell, streaming its output.

        On timeout or cancellation the remote process group is terminated (TERM,
        then KILL) and the call returns once it is gone.

        Raises:
            CommandTimeoutError: it ran past ``timeout``.
            ConnectError: the connection failed or was lost.
        """
        conn = await self._connection()
        if verbose:
            self.formatter.command_started(self.label, display)
        marker = _PidMarker()
        try:
            process = await conn.create_process(marker.wrap(command), encoding=None)
        except (asyncssh.Error, OSError) as exc:
            raise UnreachableError(self.label, f"cannot start a session: {exc}") from exc
        process.stdin.write_eof()

        async def wait() -> int:
            await process.wait(check=False)
            rc = process.returncode
            # no exit status at all: the connection went away (ssh's 255)
            return 255 if rc is None else rc

        async def terminate() -> None:
            # OpenSSH honours channel signals only for non-root users (privilege
            # separation), so the process group is also killed from a second channel
            with suppress(asyncssh.Error, OSError):
                process.send_signal("TERM")
            if marker.pid is not None:
                with suppress(ConnectError, TimeoutError):
                    await self._capture(_kill_group_script(marker.pid), timeout=_CLEANUP_TIMEOUT)
            try:
                await asyncio.wait_for(process.wait_closed(), _TERMINATE_STEPS[-1][1])
            except TimeoutError:
                process.close()

        try:
            result = await _stream_process(
                host=self.label,
                display=display,
                formatter=self.formatter,
                read_stdout=marker.reader(process.stdout.read),
                read_stderr=process.stderr.read,
                wait=wait,
                terminate=terminate,
                timeout=timeout,
            )
        except CommandTimeoutError:
            raise  # also an OSError (TimeoutError): not a lost connection
        except (asyncssh.Error, OSError) as exc:
            raise UnreachableError(self.label, f"connection lost: {exc}") from exc
        finally:
            process.close()
        if verbose:
            self.formatter.command_done(self.label, display, result.rc)
        return result

    async def _capture(self, command: str, timeout: float | None = 30.0) -> tuple[int, str, str]:
        """Run a helper command quietly; return (rc, stdout, stderr)."""
        conn = await self._connection()
        try:
            done = await asyncio.wait_for(conn.run(command, check=False), timeout)
        except (asyncssh.Error, OSError) as exc:
            raise UnreachableError(self.label, f"connection lost: {exc}") from exc
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
        name = _private_dir_name()
        rc, out, err = await self._capture(
            f'umask 077 && d="${{TMPDIR:-/tmp}}/{name}" && mkdir -m 700 -- "$d" && printf %s "$d"'
        )
        if rc != 0 or not out:
            raise TransferError(f"cannot create a private directory: {err.strip() or rc}")
        directory = out
        try:
            sftp = await self._sftp_client()
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
        if not posixpath.basename(path).startswith(_PRIVATE_PREFIX):
            raise ValueError(f"refusing to remove {path!r}: not a private directory")
        try:
            await self._capture(f"rm -rf -- {shlex.quote(path)}", timeout=_CLEANUP_TIMEOUT)
        except (ConnectError, TimeoutError) as exc:
            self._log.warning("could not remove %s: %s", path, exc)

    # ------------------------------------------------------------------ transfers

    async def _sftp_client(self) -> asyncssh.SFTPClient:
        conn = await self._connection()
        async with self._sftp_lock:
            if self._sftp is None:
                try:
                    self._sftp = await conn.start_sftp_client()
                except (asyncssh.Error, OSError) as exc:
                    raise UnreachableError(self.label, f"cannot start SFTP: {exc}") from exc
            return self._sftp

    async def push(
        self,
        localpaths: Sequence[Path],
        remotepath: str,
        *,
        recurse: bool = False,
        preserve: bool = False,
    ) -> None:
        """Copy local files (or trees) to ``remotepath`` over SFTP.

        Each file is written under a temporary name in its target directory and
        renamed when complete. Several sources need an existing remote directory.

        Raises:
            TransferError: a missing source, a directory without ``recurse``, an SFTP error.
        """
        sftp = await self._sftp_client()
        try:
            into_dir = await sftp.isdir(remotepath)
            if len(localpaths) > 1 and not into_dir:
                raise TransferError(f"{remotepath}: not a directory on the node")
            for local in localpaths:
                target = posixpath.join(remotepath, local.name) if into_dir else remotepath
                if local.is_dir():
                    if not recurse:
                        raise TransferError(f"{local}: is a directory (use recurse)")
                    await self._push_tree(sftp, local, target, preserve)
                elif local.exists():
                    await _push_file(sftp, local, target, preserve)
                else:
                    raise TransferError(f"{local}: no such file")
        except asyncssh.SFTPError as exc:
            raise TransferError(f"sftp: {exc.reason}") from exc
        except OSError as exc:
            raise TransferError(f"{exc.filename or ''}: {exc.strerror or exc}") from exc

    async def _push_tree(
        self, sftp: asyncssh.SFTPClient, root: Path, target: str, preserve: bool
    ) -> None:
        for directory, _dirs, files in os.walk(root):
            relative = Path(directory).relative_to(root)
            remote_dir = posixpath.join(target, *relative.parts) if relative.parts else target
            await sftp.makedirs(remote_dir, exist_ok=True)
            for name in sorted(files):
                await _push_file(
                    sftp, Path(directory, name), posixpath.join(remote_dir, name), preserve
                )
        if preserve:
            info = root.stat()
            await sftp.setstat(
                target,
                asyncssh.SFTPAttrs(
                    permissions=stat.S_IMODE(info.st_mode),
                    atime=int(info.st_atime),
                    mtime=int(info.st_mtime),
                ),
            )

    async def pull(
        self,
        remotepaths: Sequence[str],
        localpath: Path,
        *,
        recurse: bool = False,
        preserve: bool = False,
    ) -> None:
        """Copy files (or trees) from the node to ``localpath`` over SFTP.

        Each file is written under a temporary name next to its target and renamed
        when complete, so an interrupted transfer never leaves a truncated file
        under the final name. Several sources need an existing local directory.

        Raises:
            TransferError: a missing source, a directory without ``recurse``, an SFTP error.
        """
        sftp = await self._sftp_client()
        try:
            into_dir = localpath.is_dir()
            if len(remotepaths) > 1 and not into_dir:
                raise TransferError(f"{localpath}: not a local directory")
            for remote in remotepaths:
                name = posixpath.basename(remote.rstrip("/")) or remote
                target = localpath / name if into_dir else localpath
                if await sftp.isdir(remote):
                    if not recurse:
                        raise TransferError(f"{remote}: is a directory (use recurse)")
                    await _pull_tree(sftp, remote, target, preserve)
                else:
                    await _pull_file(sftp, remote, target, preserve)
        except asyncssh.SFTPError as exc:
            raise TransferError(f"sftp: {exc.reason}") from exc
        except OSError as exc:
            raise TransferError(f"{exc.filename or ''}: {exc.strerror or exc}") from exc


def _temp_name(name: str) -> str:
    return f".{name}.apssh-{secrets.token_hex(6)}"


async def _push_file(sftp: asyncssh.SFTPClient, local: Path, target: str, preserve: bool) -> None:
    directory, name = posixpath.split(target)
    temporary = posixpath.join(directory, _temp_name(name))
    try:
        await sftp.put(str(local), temporary, preserve=preserve)
        try:
            await sftp.posix_rename(temporary, target)
        except asyncssh.SFTPOpUnsupported:
            # servers without the OpenSSH extension: rename refuses to overwrite
            if await sftp.exists(target):
                await sftp.remove(target)
            await sftp.rename(temporary, target)
    except BaseException:
        await shielded_cleanup(_quiet_remove(sftp, temporary))
        raise


async def _quiet_remove(sftp: asyncssh.SFTPClient, path: str) -> None:
    with suppress(asyncssh.SFTPError, OSError):
        await sftp.remove(path)


async def _pull_file(sftp: asyncssh.SFTPClient, remote: str, target: Path, preserve: bool) -> None:
    temporary = target.parent / _temp_name(target.name)
    try:
        await sftp.get(remote, str(temporary), preserve=preserve)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


async def _pull_tree(sftp: asyncssh.SFTPClient, remote: str, target: Path, preserve: bool) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for entry in await sftp.readdir(remote):
        name = entry.filename if isinstance(entry.filename, str) else entry.filename.decode()
        if name in (".", ".."):
            continue
        source = posixpath.join(remote, name)
        if await sftp.isdir(source):
            await _pull_tree(sftp, source, target / name, preserve)
        else:
            await _pull_file(sftp, source, target / name, preserve)
    if preserve:
        attrs = await sftp.stat(remote)
        if attrs.permissions is not None:
            os.chmod(target, stat.S_IMODE(attrs.permissions))
        if attrs.atime is not None and attrs.mtime is not None:
            os.utime(target, (attrs.atime, attrs.mtime))


_PRIVATE_PREFIX = "apssh-"


def _private_dir_name() -> str:
    return f"{_PRIVATE_PREFIX}{secrets.token_hex(12)}"


# jump nodes built from ProxyJump are shared, so nodes behind the same jump host
# share its connection too
_JUMP_NODES: dict[tuple[Any, ...], SshNode] = {}


def _jump_node(origin: SshNode, hop: JumpHost, previous: SshNode | None) -> SshNode:
    keys_id = None if origin.keys is None else tuple(id(key) for key in origin.keys)
    key = (
        hop.host,
        hop.user,
        hop.port,
        id(previous),
        origin.known_hosts,
        origin.known_hosts_file,
        origin.ssh_config,
        keys_id,
    )
    node = _JUMP_NODES.get(key)
    if node is None:
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
        )
        node._follow_proxyjump = False  # a jump host's own ProxyJump would loop
        _JUMP_NODES[key] = node
    return node


# ------------------------------------------------------------------------- local


class LocalNode:
    """The local machine: runs Run, RunScript and RunString with /bin/sh.

    Args:
        formatter: where output goes (default: ``host:line``).
        label: the name shown in output.
        verbose: send command events to the formatter.
    """

    def __init__(
        self, formatter: Formatter | None = None, label: str = "localhost", verbose: bool = False
    ) -> None:
        self.formatter = formatter if formatter is not None else DEFAULT_FORMATTER
        self.label = label
        self.verbose = verbose

    def __repr__(self) -> str:
        return f"<LocalNode {self.label}>"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Nothing to do: kept so that LocalNode and SshNode are interchangeable."""

    async def close(self) -> None:
        """Nothing to do."""

    async def run_shell(
        self, command: str, *, display: str, timeout: float | None = None, verbose: bool = False
    ) -> CommandResult:
        """Run ``command`` with /bin/sh in its own process group, streaming its output.

        Raises:
            CommandTimeoutError: it ran past ``timeout`` (the process group was killed).
        """
        if verbose:
            self.formatter.command_started(self.label, display)
        process = await asyncio.create_subprocess_shell(
            command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group: killed as a whole
        )
        assert process.stdout is not None and process.stderr is not None

        async def terminate() -> None:
            for name, grace in _TERMINATE_STEPS:
                try:
                    os.killpg(process.pid, getattr(signal, f"SIG{name}"))
                except ProcessLookupError:
                    return
                try:
                    await asyncio.wait_for(process.wait(), grace)
                    return
                except TimeoutError:
                    continue

        result = await _stream_process(
            host=self.label,
            display=display,
            formatter=self.formatter,
            read_stdout=process.stdout.read,
            read_stderr=process.stderr.read,
            wait=process.wait,
            terminate=terminate,
            timeout=timeout,
        )
        if verbose:
            self.formatter.command_done(self.label, display, result.rc)
        return result

    async def install_files(self, files: Sequence[tuple[str, bytes | Path, int]]) -> str:
        """Create a private local directory (mode 700) holding ``files``."""
        directory = tempfile.mkdtemp(prefix=_PRIVATE_PREFIX)
        try:
            for filename, content, mode in files:
                path = Path(directory, filename)
                if isinstance(content, Path):
                    shutil.copyfile(content, path)
                else:
                    path.write_bytes(content)
                path.chmod(mode)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        return directory

    async def remove_private_dir(self, path: str) -> None:
        """Remove a directory made by :meth:`install_files`."""
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------- closing


def _known_gateway(node: SshNode | LocalNode) -> SshNode | None:
    # no ~/.ssh/config lookup here: a node never resolved has no ProxyJump chain to close
    if not isinstance(node, SshNode):
        return None
    return node._target.gateway if node._target is not None else node.gateway


def _depth(node: SshNode | LocalNode) -> int:
    depth = 0
    current = _known_gateway(node)
    while current is not None:
        depth += 1
        current = _known_gateway(current)
    return depth


async def close_nodes(nodes: Iterable[SshNode | LocalNode]) -> None:
    """Close the nodes and all their gateways: remotest first, gateways last.

    Nodes at the same depth are closed concurrently.
    """
    everything: dict[int, SshNode | LocalNode] = {}
    for node in nodes:
        current: SshNode | LocalNode | None = node
        while current is not None and id(current) not in everything:
            everything[id(current)] = current
            current = _known_gateway(current)
    by_depth: dict[int, list[SshNode | LocalNode]] = {}
    for node in everything.values():
        by_depth.setdefault(_depth(node), []).append(node)
    for depth in sorted(by_depth, reverse=True):
        await asyncio.gather(*(node.close() for node in by_depth[depth]), return_exceptions=True)


@asynccontextmanager
async def closing(nodes: Iterable[SshNode | LocalNode]) -> AsyncIterator[None]:
    """``async with closing(nodes):`` closes them (and their gateways) on the way out."""
    nodes = list(nodes)
    try:
        yield
    finally:
        await close_nodes(nodes)
