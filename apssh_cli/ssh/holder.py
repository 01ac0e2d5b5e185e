"""Warm connections (issue 23): the parts of the connection holder built so far.

STATUS: a partial. This module holds the pieces of the holder that decide *who* may
use a held connection and *which* connection a node may reuse; the holder process,
its channel proxy, the hook in ``SshNode.connect``, ``--persist`` and
``apssh connections`` are not written yet (nothing in apssh uses this module).

Design (why it is shaped so):

- An asyncssh connection cannot cross processes, so a background holder process
  keeps the upstream connections and multiplexes channels for its clients, as
  OpenSSH's ControlMaster does. The planned transport is an asyncssh SSH *server* on
  a unix socket: each client ``asyncssh.connect(sock=...)`` to it and the holder
  proxies every channel (exec session with env, signals, exit status and stdin EOF;
  the sftp subsystem; direct-tcpip for gateways) onto the held upstream connection.
  Clients then keep asyncssh's ordinary client code, so exec, SFTP, signals and the
  remote wrapper's stdin-EOF kill (``remote_wrapper.py``) behave as on a direct
  connection: a client that goes away closes its channels, which ends the remote
  command exactly as a lost direct connection would.
- The socket lives in :func:`control_dir` (``$XDG_RUNTIME_DIR``, which the session
  manager removes when the user's session ends, else a 0700 directory of the user's
  that we create and check), mode 0600; the holder checks each peer's credentials
  with ``SO_PEERCRED`` (:func:`peer_uid`) *before* any handshake and refuses another
  uid (:func:`same_user`).
- A held connection is keyed by every setting that decides what the connection is
  or whether it may be trusted (:class:`HoldKey`): address, port, user, keys, the
  route (the keys of its gateways), the host-key policy and the known_hosts file.
  Two nodes that differ in any of them never share a connection, so a host-key
  decision stays the user's.
"""

from __future__ import annotations

import os
import socket
import stat
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["HoldKey", "control_dir", "peer_uid", "same_user", "socket_path"]

SOCKET_NAME = "holder.sock"


@dataclass(frozen=True)
class HoldKey:
    """What two connections must share to be the same held connection."""

    host: str
    port: int
    username: str | None
    keys: tuple[str, ...] | None  # key file paths (or public key blobs), in order
    known_hosts: str  # the host-key policy
    known_hosts_file: str
    route: tuple[HoldKey, ...] = ()  # gateways, first hop first

    def describe(self) -> str:
        """``user@host:port via g1 > g2`` for ``apssh connections``."""
        user = f"{self.username}@" if self.username else ""
        text = f"{user}{self.host}:{self.port}"
        if self.route:
            text += " via " + " > ".join(hop.describe() for hop in self.route)
        return text


def control_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The user's private directory for the control socket (created 0700 if needed).

    Raises:
        PermissionError: the directory exists but is another user's or open to others.
    """
    environ = os.environ if environ is None else environ
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        base = Path(runtime) / "apssh"
    else:
        base = Path(environ.get("TMPDIR") or "/tmp") / f"apssh-{os.getuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    info = os.lstat(base)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise PermissionError(f"{base} is not a directory of this user's")
    if info.st_mode & 0o077:
        raise PermissionError(f"{base} is open to other users (mode {info.st_mode & 0o777:o})")
    return base


def socket_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the holder listens."""
    return control_dir(environ) / SOCKET_NAME


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a unix socket (``SO_PEERCRED``)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def same_user(sock: socket.socket) -> bool:
    """Whether the peer runs as this process's user: the only peer a holder accepts."""
    try:
        return peer_uid(sock) == os.getuid()
    except OSError:
        return False
