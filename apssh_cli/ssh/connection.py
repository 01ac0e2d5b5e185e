"""Opening one SSH connection: host key policy, keys, retries, and errors a user can act on.

:func:`open_connection` makes one attempt (directly, or through an open gateway
connection used as a tunnel) and turns every asyncssh or OS error into an
:class:`~apssh_cli.errors.UnreachableError`, :class:`~apssh_cli.errors.AuthRefusedError`
or :class:`~apssh_cli.errors.HostKeyRefusedError`. :func:`with_retries` repeats
an attempt while the host is unreachable, with exponential backoff; refused keys
are never retried. :class:`SshNode <apssh_cli.ssh.node.SshNode>` holds the result.

Host keys are checked here, against every known_hosts file of the host
(:class:`~apssh_cli.ssh.hostkeys.KnownHosts`), never by asyncssh alone: asyncssh is
asked to offer the host key types already recorded first, then the others (as
ssh does), so that a server without a key of a recorded type presents the one it
has and is refused *as a host key problem*, saying which type it offered; offering
only the recorded types would make the server hang up, and the host would look
unreachable (and be retried). With the policy ``off`` nothing is verified, but a
key that differs from a recorded one is still said, in one warning line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import asyncssh
from asyncssh.constants import MSG_KEXINIT
from asyncssh.packet import SSHPacket

from apssh_cli.errors import (
    AuthRefusedError,
    ConfigError,
    HostKeyRefusedError,
    UnreachableError,
)
from apssh_cli.log import HostAdapter, logger
from apssh_cli.ssh import debuglog, hostkeys
from apssh_cli.ssh.early import DEFAULT_PORT
from apssh_cli.ssh.keys import ClientKeys, KeySpec, resolve_keys

if TYPE_CHECKING:
    from apssh_cli.ssh.node import SshNode

# what a channel may receive before the client acknowledges it: sized for the
# bandwidth-delay product of a pull at 50 ms RTT (8 MiB / 50 ms = 160 MiB/s);
# memory is used only when the data is not read as fast as it comes
CHANNEL_WINDOW = 8 * 1024 * 1024
# AES-GCM first: OpenSSL does it in one call per packet, where asyncssh's
# chacha20-poly1305 (OpenSSH's first choice) takes several: measured, a 64 MiB push
# costs the client about half the CPU. Unless ssh_config names its Ciphers.
PREFERRED_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
)
_BACKOFF_FIRST = 0.5


class _QuietLostWrites(logging.Filter):
    """Drop asyncio's "socket.send() raised exception." warnings.

    When a peer dies in the middle of a transfer, asyncssh flushes the packets it
    has queued before it learns of the loss, and asyncio warns once per write
    after the fifth. The loss itself is reported (the host is unreachable): the
    warnings would only bury that one line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "socket.send() raised exception."


logging.getLogger("asyncio").addFilter(_QuietLostWrites())
_BACKOFF_MAX = 8.0
T = TypeVar("T")


@dataclass(frozen=True)
class ConnectionSettings:
    """Where and how to connect, after the ssh configuration.

    ``configs`` (the ``-O`` options file, then the ssh_config file) are also handed
    to asyncssh, with ``alias`` (the name the user gave) so that it applies the
    options we do not look at ourselves the way OpenSSH would; every value set
    here wins over the files.
    """

    host: str
    port: int
    username: str | None
    identity_files: tuple[str, ...]
    gateway: SshNode | None
    keepalive_interval: float = 0.0  # seconds; 0: no keepalives
    keepalive_count_max: int = 3
    configs: tuple[Path, ...] = ()
    alias: str = ""
    ciphers: str | None = None  # Ciphers; None: PREFERRED_CIPHERS
    host_key_algorithms: str | None = None  # HostKeyAlgorithms; None: recorded types first
    identities_only: bool = False
    identity_agent: str | None = None  # IdentityAgent: a socket, "none"; None: $SSH_AUTH_SOCK
    host_key_policy: str = hostkeys.DEFAULT_POLICY
    known_hosts: tuple[str, ...] = ()  # the file new keys go to first
    host_key_alias: str | None = None
    config_entries: tuple[str, ...] = ()  # what ssh_config set, for -v


@dataclass(frozen=True)
class Credentials:
    """What proves who we are and who the server is."""

    keys: Sequence[KeySpec] | None
    policy: str
    known_hosts: hostkeys.KnownHosts


class _Client(asyncssh.SSHClient):
    """Per-connection callbacks: host key policy, recording, connection loss."""

    def __init__(
        self,
        policy: str,
        known: hostkeys.KnownHosts,
        on_lost: Callable[[], None],
        label: str = "",
    ) -> None:
        self._label = label
        self._policy = policy
        self._known = known
        self._on_lost = on_lost
        self._pending: tuple[str, int | None, asyncssh.SSHKey] | None = None
        self._conn: asyncssh.SSHClientConnection | None = None
        self.refusal: str | None = None

    def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
        self._conn = conn
        debuglog.register(conn, self._label)  # -vv: asyncssh's lines name the host

    def server_offer(self) -> list[str]:
        """The host key algorithms the server offers in its key exchange ([] unknown).

        asyncssh keeps the server's KEXINIT message but has no public accessor for it.
        """
        payload = getattr(self._conn, "_server_kexinit", b"")
        if not isinstance(payload, bytes) or not payload:
            return []
        try:
            packet = SSHPacket(payload[1:] if payload[0] == MSG_KEXINIT else payload)
            packet.get_bytes(16)  # cookie
            packet.get_namelist()  # key exchange algorithms
            return [name.decode("ascii") for name in packet.get_namelist()]
        except (asyncssh.Error, ValueError, UnicodeDecodeError):  # not what we expect
            return []

    def negotiation_refusal(self, host: str, port: int) -> str | None:
        """Why the key exchange failed, when it did on the host key algorithms: the
        server offers none of the ones apssh accepts (None: it does not say so)."""
        ours = getattr(self._conn, "_server_host_key_algs", None)
        theirs = self.server_offer()
        if not ours or not theirs or set(theirs) & {alg.decode("ascii") for alg in ours}:
            return None
        accepted = ", ".join(alg.decode("ascii") for alg in ours)
        return (
            f"host key for {hostkeys.host_pattern(host, port)}: the server offers "
            f"{', '.join(theirs)}, none of the types accepted ({accepted}; see HostKeyAlgorithms)"
        )

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        # called for a key that was not recorded when this connection started;
        # another connection to the same host may have recorded it since
        if self._policy == hostkeys.OFF:
            self._warn_if_changed(host, addr, port, key)
            return True
        decision = self._known.judge(self._policy, host, addr, port, key)
        if decision is None:
            return True
        if decision is hostkeys.Decision.RECORD:
            self._pending = (host, port, key)
            return True
        self.refusal = self._known.refusal(decision, host, port, key, self.server_offer())
        return False

    def _warn_if_changed(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> None:
        """Policy off: accept, but say it when the key differs from a recorded one."""
        try:
            decision = self._known.judge(hostkeys.STRICT, host, addr, port, key)
        except ConfigError:  # an unreadable known_hosts: off never needed it
            return
        if decision is hostkeys.Decision.REFUSE_CHANGED:
            message = self._known.refusal(decision, host, port, key)
            logger.warning(
                "host=%s host key policy off, connecting anyway: %s", self._label, message
            )

    def begin_auth(self, username: str) -> None:
        # the key exchange succeeded: the new host key has proven itself, record it
        if self._pending is not None:
            host, port, key = self._pending
            self._pending = None
            if not self._known.record(host, port, key):
                # another connection recorded a different key for this new host meanwhile
                decision = hostkeys.Decision.REFUSE_CHANGED
                self.refusal = self._known.refusal(decision, host, port)
                raise asyncssh.HostKeyNotVerifiable(self.refusal)

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_lost()


def host_key_algorithms(known: Sequence[asyncssh.SSHKey]) -> list[str]:
    """The host key algorithms to offer: those of the recorded keys first, then the
    others asyncssh offers by default (certificates first), as OpenSSH orders them."""
    from asyncssh.public_key import get_default_certificate_algs, get_default_public_key_algs

    first = [alg for key in known for alg in key.sig_algorithms]
    rest = get_default_certificate_algs() + get_default_public_key_algs()
    return list(dict.fromkeys(alg.decode("ascii") for alg in [*first, *rest]))


async def open_connection(
    label: str,
    target: ConnectionSettings,
    credentials: Credentials,
    *,
    tunnel: asyncssh.SSHClientConnection | None,
    connect_timeout: float | None,
    on_lost: Callable[[], None],
    log: HostAdapter,
    sock: socket.socket | None = None,
) -> asyncssh.SSHClientConnection:
    """One connection attempt to ``target`` (through ``tunnel`` when given).

    ``sock``: a TCP connection to ``target`` already open (an early connection):
    the SSH handshake starts on it; the attempt owns it from then on.

    Raises:
        UnreachableError: refused, no route, unknown name, timeout, or the gateway
            could not reach the target.
        AuthRefusedError: no key was accepted.
        HostKeyRefusedError: the host key is unknown (strict) or changed.
        ConfigError: bad key file or known_hosts file.
    """
    client_keys = resolve_keys(credentials.keys, target.identity_files)
    known = credentials.known_hosts
    client = _Client(credentials.policy, known, on_lost, label)
    options: dict[str, Any] = {}
    if target.username is not None:
        options["username"] = target.username
    if not client_keys.use_agent or target.identity_agent == "none":
        options["agent_path"] = None
    elif client_keys.agent_path is not None:
        options["agent_path"] = client_keys.agent_path
    elif target.identity_agent is not None:
        options["agent_path"] = target.identity_agent
    if target.identities_only and options.get("agent_path", ()) is not None:
        # the agent may sign only for the keys offered from files, as ssh does
        if client_keys.keys:
            options["agent_identities"] = list(client_keys.keys)
        else:
            options["agent_path"] = None
    options["encryption_algs"] = target.ciphers or list(PREFERRED_CIPHERS)
    port = None if target.port == DEFAULT_PORT else target.port
    if target.host_key_algorithms is not None:
        options["server_host_key_algs"] = target.host_key_algorithms
    elif credentials.policy != hostkeys.OFF:
        options["server_host_key_algs"] = host_key_algorithms(known.match(target.host, "", port)[0])
    where = f"{target.host}:{target.port}"
    if tunnel is not None:
        where += f" via {target.gateway.label if target.gateway else '?'}"
    early = " (on its early TCP connection)" if sock is not None else ""
    keys_offered = _keys_offered(client_keys, options, target)
    log.info("resolved: %s", _resolution(target, where, keys_offered, credentials.policy))
    log.debug("connecting to %s%s", where, early)
    try:
        conn = await asyncssh.connect(
            target.alias or target.host if target.configs else target.host,
            target.port,
            # never asyncssh's own ProxyJump connections: gateways are nodes, shared
            tunnel=tunnel,
            sock=sock,
            config=list(target.configs) or None,
            client_factory=lambda: client,
            # () lets asyncssh ask the agent; None would turn the agent off too
            client_keys=list(client_keys.keys) or (() if client_keys.use_agent else None),
            # every key is judged by _Client, with the recorded ones trusted here
            known_hosts=known.match if credentials.policy != hostkeys.OFF else _trust_nothing,
            host_key_alias=known.alias,
            connect_timeout=connect_timeout,
            keepalive_interval=target.keepalive_interval,
            keepalive_count_max=target.keepalive_count_max,
            window=CHANNEL_WINDOW,
            **options,
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        raise HostKeyRefusedError(label, client.refusal or exc.reason) from exc
    except asyncssh.PermissionDenied as exc:
        user = target.username or "the local user name"
        tried = f"keys tried: {keys_offered}" if keys_offered else "no key to offer"
        raise AuthRefusedError(
            label, f"authentication refused for {user} ({exc.reason}); {tried}"
        ) from exc
    except asyncssh.ChannelOpenError as exc:
        raise UnreachableError(
            label, f"the gateway could not reach {target.host}:{target.port}: {exc.reason}"
        ) from exc
    except asyncssh.Error as exc:
        # a server offering no host key type we accept hangs up: not an unreachable host
        refusal = client.negotiation_refusal(target.host, target.port)
        if refusal is not None:
            raise HostKeyRefusedError(label, refusal) from exc
        raise UnreachableError(label, f"{where}: {exc.reason}") from exc
    except OSError as exc:  # TimeoutError included
        raise connect_error(label, target, connect_timeout, exc, where=where) from exc
    except ValueError as exc:
        # asyncssh's own checks of its options: an unknown local user name (USER unset
        # and no passwd entry), a Ciphers or KexAlgorithms line it does not know...
        raise ConfigError(f"{label}: cannot connect: {exc}") from exc
    log.info("connected to %s%s", where, early)
    return conn


def _keys_offered(
    client_keys: ClientKeys, options: dict[str, Any], target: ConnectionSettings
) -> str:
    """The keys a connection offers, as a person knows them ("" when none)."""
    offered = list(client_keys.sources)
    agent = options.get("agent_path", ())
    if agent == ():
        agent = target.identity_agent or os.environ.get("SSH_AUTH_SOCK") or None
    if agent and (client_keys.keys or client_keys.use_agent):
        offered.append(f"the keys of the ssh-agent at {agent}")
    return ", ".join(offered)


def _resolution(target: ConnectionSettings, where: str, keys: str, policy: str) -> str:
    """What -v says before a connection: route, user, keys, known_hosts, ssh_config."""
    user = target.username or "(the local user)"
    known = " ".join(target.known_hosts) or "none"
    configs = " ".join(str(path) for path in target.configs) or "none"
    entries = f" ({'; '.join(target.config_entries)})" if target.config_entries else ""
    return (
        f"{user}@{where}; keys: {keys or 'none'}; known_hosts: {known} (policy {policy}); "
        f"ssh_config: {configs}{entries}"
    )


def _trust_nothing(host: str, addr: str, port: int | None) -> tuple[list[Any], ...]:
    # policy off: every key goes to _Client, which accepts it (and warns on a changed one)
    return [], [], []


def connect_error(
    label: str,
    target: ConnectionSettings,
    connect_timeout: float | None,
    exc: OSError,
    *,
    where: str | None = None,
) -> UnreachableError:
    """The UnreachableError for an OS-level connect failure (timeout, refused, no route...)."""
    where = where or f"{target.host}:{target.port}"
    if isinstance(exc, TimeoutError):
        after = f" after {connect_timeout:g}s" if connect_timeout is not None else ""
        return UnreachableError(label, f"connection to {where} timed out{after}")
    reason = exc.strerror or str(exc) or type(exc).__name__
    return UnreachableError(label, f"cannot connect to {where}: {reason}")


async def with_retries(attempt: Callable[[], Awaitable[T]], retries: int, log: HostAdapter) -> T:
    """Await ``attempt()``; while it raises UnreachableError, retry up to ``retries`` times.

    The delays double from 0.5s up to 8s; each retry is logged (INFO).
    """
    done = 0
    while True:
        try:
            return await attempt()
        except UnreachableError as exc:
            if done >= retries:
                raise
            delay = min(_BACKOFF_FIRST * 2**done, _BACKOFF_MAX)
            done += 1
            log.info("unreachable (%s), retry %d in %.1fs", exc.message, done, delay)
            await asyncio.sleep(delay)
