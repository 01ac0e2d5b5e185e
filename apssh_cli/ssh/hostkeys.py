"""Host key policies (strict, accept-new, off) and the known_hosts file they use.

The decision itself is pure (:func:`decide`): it is asked only about a key that
is *not* among the keys recorded for the host, and answers

- ``strict``: refuse (unknown or changed alike);
- ``accept-new``: record it if the host has no recorded key at all (trust on first
  use), refuse it otherwise (a changed key is always refused);
- ``off``: never asked (verification is disabled).

With ``accept-new`` the key is written to the file only once the key exchange
has succeeded (when authentication begins), never from a failed handshake.
Connections opened at the same time may both meet a host that was new when they
started: the file is re-read under a per-file lock before each write, so a key
another connection has just recorded is accepted and never written twice, and
only a *different* key is refused.

A host's keys may be recorded in several files (:class:`KnownHosts`): the
``UserKnownHostsFile`` entries (new keys are written to the first) and the
``GlobalKnownHostsFile`` ones (only read), as with ssh. A ``HostKeyAlias`` is the
name keys are looked up and recorded under (without the port, as ssh).

A key of a type the host has no record of is refused like a changed key, and
the message says so (:func:`refusal_message`): which type the server offered,
which are recorded.
"""

from __future__ import annotations

import enum
import fcntl
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apssh_cli.errors import ConfigError
from apssh_cli.log import logger

if TYPE_CHECKING:
    import asyncssh

STRICT = "strict"
ACCEPT_NEW = "accept-new"
OFF = "off"
POLICIES = (STRICT, ACCEPT_NEW, OFF)
DEFAULT_POLICY = ACCEPT_NEW
DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")
# OpenSSH's defaults: the user's files (new keys go to the first), the system's
DEFAULT_USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
DEFAULT_GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")


class Decision(enum.Enum):
    """What to do with a host key that is not recorded for the host."""

    RECORD = "record"  # accept and write it down (accept-new, host never seen)
    REFUSE_UNKNOWN = "refuse-unknown"  # strict, host never seen
    REFUSE_CHANGED = "refuse-changed"  # the host has other keys recorded


def check_policy(policy: str) -> str:
    """Return ``policy`` if it names a policy.

    Raises:
        ConfigError: an unknown policy name.
    """
    if policy not in POLICIES:
        raise ConfigError(
            f"unknown host key policy {policy!r} (expected one of: {', '.join(POLICIES)})"
        )
    return policy


def decide(policy: str, host_has_record: bool) -> Decision:
    """Decide about a presented key that is not among the host's recorded keys."""
    if host_has_record:
        return Decision.REFUSE_CHANGED
    if policy == ACCEPT_NEW:
        return Decision.RECORD
    return Decision.REFUSE_UNKNOWN


def host_pattern(host: str, port: int | None) -> str:
    """The name a known_hosts line uses: ``host``, or ``[host]:port`` off port 22."""
    if port in (None, 22):
        return host
    return f"[{host}]:{port}"


def refusal_message(
    decision: Decision,
    host: str,
    port: int | None,
    path: Path,
    *,
    presented: str | None = None,
    offered: Sequence[str] = (),
    recorded: Sequence[str] = (),
) -> str:
    """An actionable message for a refused key.

    Args:
        presented: the type of the key the server presented.
        offered: the host key algorithms the server offers (its key exchange),
            when known; else ``presented`` is what it offered.
        recorded: the types recorded for the host: when ``presented`` is none of
            them, the message says the server offers no key of a recorded type.
    """
    name = host_pattern(host, port)
    if decision is Decision.REFUSE_CHANGED:
        if presented is not None and recorded and presented not in recorded:
            types = ", ".join(offered) if offered else presented
            return (
                f"host key for {name}: the server offers {types}, but only "
                f"{', '.join(recorded)} is recorded in {path} (refused as a changed key; "
                f"if the host was reinstalled: ssh-keygen -R '{name}' -f {path})"
            )
        return (
            f"host key for {name} differs from the one recorded in {path} "
            f"(possible man-in-the-middle; if the host was reinstalled: "
            f"ssh-keygen -R '{name}' -f {path})"
        )
    return f"host key for {name} is unknown and the policy is strict (not in {path})"


@dataclass(frozen=True)
class _Snapshot:
    stamp: tuple[int, int]  # (mtime_ns, size): reloaded when the file changes
    known_hosts: asyncssh.SSHKnownHosts


class KnownHostsFile:
    """One known_hosts file: parsed on demand (cached until it changes), appended to.

    Nodes get theirs from their :class:`~apssh_cli.ssh.context.SshContext`, so
    that the nodes of a run share one per file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._snapshot: _Snapshot | None = None
        self._lock = threading.Lock()  # one per instance; flock covers other instances

    def load(self) -> asyncssh.SSHKnownHosts:
        """The file's entries (empty if it does not exist).

        Raises:
            ConfigError: the file cannot be read or parsed.
        """
        import asyncssh

        try:
            info = self.path.stat()
        except FileNotFoundError:
            return asyncssh.import_known_hosts("")
        stamp = (info.st_mtime_ns, info.st_size)
        snapshot = self._snapshot
        if snapshot is None or snapshot.stamp != stamp:
            try:
                text = self.path.read_text(encoding="utf-8", errors="replace")
                parsed = asyncssh.import_known_hosts(text)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot use known_hosts: {exc}", source=str(self.path)) from exc
            snapshot = self._snapshot = _Snapshot(stamp, parsed)
        return snapshot.known_hosts

    def has_record(self, host: str, addr: str, port: int | None) -> bool:
        """Whether any key or CA is recorded for this host (by name or address)."""
        matched = self.load().match(host, addr, port)
        trusted_keys, trusted_cas = matched[0], matched[1]
        return bool(trusted_keys or trusted_cas)

    def has_key(self, host: str, addr: str, port: int | None, key: asyncssh.SSHKey) -> bool:
        """Whether ``key`` itself is recorded for this host (by name or address)."""
        trusted_keys = self.load().match(host, addr, port)[0]
        return any(known.public_data == key.public_data for known in trusted_keys)

    def judge(
        self, policy: str, host: str, addr: str, port: int | None, key: asyncssh.SSHKey
    ) -> Decision | None:
        """What to do with ``key`` presented by ``host``: None when it is already recorded.

        The file is read afresh, so a key another connection recorded since this
        one started is found here.
        """
        with self._lock:
            if self.has_key(host, addr, port, key):
                return None
            return decide(policy, self.has_record(host, addr, port))

    def record(self, host: str, port: int | None, key: asyncssh.SSHKey) -> bool:
        """Append ``key`` for ``host``; the file (and ~/.ssh) are created private.

        Under the file's lock, the file is read again first: a key already
        recorded for the host is not written twice (True), and another key
        recorded meanwhile is left alone (False: the caller refuses the host).
        """
        public = key.export_public_key("openssh").decode("ascii").split()
        entry = f"{host_pattern(host, port)} {public[0]} {public[1]}\n"
        with self._lock:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                # the threading lock covers this process; flock covers other apssh runs
                # writing the same file at the same time (closing the file releases it)
                fcntl.flock(fd, fcntl.LOCK_EX)
                if self.has_key(host, "", port, key):
                    return True
                if self.has_record(host, "", port):
                    return False
                # an existing file that does not end with a newline must not glue lines
                if os.fstat(fd).st_size and not self._ends_with_newline():
                    entry = "\n" + entry
                os.write(fd, entry.encode("ascii"))
            finally:
                os.close(fd)
        logger.info("host=%s recorded host key (%s) in %s", host, public[0], self.path)
        return True

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"


class KnownHosts:
    """The known_hosts files of one host, as ssh reads them.

    Args:
        files: every file read, the one new keys are written to first (the
            first ``UserKnownHostsFile``); the others are only read.
        name: the name keys are recorded under (a ``HostKeyAlias``), instead of
            the host's: then without port nor address, as ssh.
    """

    def __init__(self, files: Sequence[KnownHostsFile], name: str | None = None) -> None:
        self.files = tuple(files)
        self.alias = name

    @property
    def path(self) -> Path:
        """The file new keys go to."""
        return self.files[0].path

    def _where(self, host: str, addr: str, port: int | None) -> tuple[str, str, int | None]:
        if self.alias is not None:
            return self.alias, "", None
        return host, addr, port

    def match(
        self, host: str, addr: str, port: int | None
    ) -> tuple[list[Any], list[Any], list[Any]]:
        """(trusted keys, trusted CAs, revoked keys) over every file, for asyncssh."""
        host, addr, port = self._where(host, addr, port)
        keys: list[Any] = []
        cas: list[Any] = []
        revoked: list[Any] = []
        for file in self.files:
            matched = file.load().match(host, addr, port)
            keys += matched[0]
            cas += matched[1]
            revoked += matched[2]
        return keys, cas, revoked

    def recorded_types(self, host: str, addr: str, port: int | None) -> list[str]:
        """The key types recorded for the host (``ssh-ed25519``...), in file order."""
        keys = self.match(host, addr, port)[0]
        return list(dict.fromkeys(key.get_algorithm() for key in keys))

    def judge(
        self, policy: str, host: str, addr: str, port: int | None, key: asyncssh.SSHKey
    ) -> Decision | None:
        """What to do with ``key`` presented by ``host``: None when it is recorded
        (in any file, read afresh)."""
        host, addr, port = self._where(host, addr, port)
        if any(file.has_key(host, addr, port, key) for file in self.files):
            return None
        return decide(policy, any(file.has_record(host, addr, port) for file in self.files))

    def record(self, host: str, port: int | None, key: asyncssh.SSHKey) -> bool:
        """Write ``key`` to the first file (see :meth:`KnownHostsFile.record`)."""
        host, _, port = self._where(host, "", port)
        return self.files[0].record(host, port, key)

    def refusal(
        self,
        decision: Decision,
        host: str,
        port: int | None,
        key: asyncssh.SSHKey | None = None,
        offered: Sequence[str] = (),
    ) -> str:
        """The message for a refused ``key`` (see :func:`refusal_message`)."""
        recorded = self.recorded_types(host, "", port) if key is not None else []
        host, _, port = self._where(host, "", port)
        return refusal_message(
            decision,
            host,
            port,
            self.path,
            presented=key.get_algorithm() if key is not None else None,
            offered=offered,
            recorded=recorded,
        )
