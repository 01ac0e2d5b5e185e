"""Warm connections (issue 23, ``--persist``): what the holder and its clients share.

This module holds the pieces that decide *who* may use a held connection and
*which* connection a node may reuse, and the small framed protocol spoken on the
control socket before SSH starts on it. The holder process is
:mod:`~apssh_cli.ssh.holder_server`; the client side (used by ``SshNode.connect``)
is :mod:`~apssh_cli.ssh.holder_client`.

Protocol, on one unix-socket connection: the client sends one request frame (a
4-byte big-endian length, then JSON); the holder answers one frame. For
``{"op": "connect", "route": [hop, ...]}`` the holder first acknowledges
(``{"ack": true}``, at once: a stuck holder is given up on quickly), then answers;
a ``{"ok": true}`` answer is followed by an SSH session *on the same socket* (the
holder is the server) whose channels are proxied onto the held upstream connection;
``list`` and ``close`` end after the answer.

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

import hashlib
import json
import os
import socket
import stat
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "HoldKey",
    "ProtocolError",
    "control_dir",
    "decode_frame",
    "encode_frame",
    "peer_uid",
    "same_user",
    "socket_path",
]

SOCKET_NAME = "holder.sock"
MAX_FRAME = 1 << 20  # a request names a route of a few hops: far less than this
_LENGTH = struct.Struct(">I")
# the SSH link between a client and its holder, on a local socket: the cheapest
# algorithms both ends have (one key exchange per node and run, data crosses it twice)
HOLDER_LINK: dict[str, Any] = {
    "kex_algs": ["curve25519-sha256"],
    "encryption_algs": ["aes128-gcm@openssh.com"],
    "compression_algs": None,
}


class ProtocolError(Exception):
    """A frame that is not what the protocol says (too long, not JSON, cut short)."""


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
    settings: str = ""  # every other connection setting (ciphers, agent...), canonical JSON

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
    """Where the holder listens.

    One holder per HOME: ``~`` in key, known_hosts and ssh_config paths (and
    asyncssh's default key files) mean the HOME of the process that connects, so
    runs with another HOME get a holder of their own.
    """
    environ = os.environ if environ is None else environ
    home = environ.get("HOME", "")
    if not home:
        return control_dir(environ) / SOCKET_NAME
    tag = hashlib.sha256(home.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return control_dir(environ) / f"holder-{tag}.sock"


def encode_frame(message: Mapping[str, Any]) -> bytes:
    """One protocol frame: length, then JSON."""
    body = json.dumps(message, separators=(",", ":")).encode()
    return _LENGTH.pack(len(body)) + body


def frame_length(header: bytes) -> int:
    """The body length announced by a 4-byte header.

    Raises:
        ProtocolError: longer than MAX_FRAME.
    """
    (length,) = _LENGTH.unpack(header)
    if length > MAX_FRAME:
        raise ProtocolError(f"frame of {length} bytes announced")
    return int(length)


def decode_frame(body: bytes) -> dict[str, Any]:
    """The JSON object of a frame's body.

    Raises:
        ProtocolError: not a JSON object.
    """
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("not a JSON object")
    return message


HEADER_SIZE = _LENGTH.size


async def read_frame(sock: socket.socket, peer: str) -> dict[str, Any]:
    """Read one frame from a non-blocking socket on the running loop.

    Raises:
        ProtocolError: ``peer`` (named in the message) hung up, or sent no frame.
    """
    import asyncio  # here: `apssh connections` (ask) needs no event loop

    loop = asyncio.get_running_loop()

    async def read(size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = await loop.sock_recv(sock, size - len(data))
            if not chunk:
                raise ProtocolError(f"the {peer} hung up")
            data += chunk
        return data

    return decode_frame(await read(frame_length(await read(HEADER_SIZE))))


def hop_key(hop: Mapping[str, Any], route: tuple[HoldKey, ...] = ()) -> HoldKey:
    """The key of one hop of a ``connect`` request (its gateways' keys in ``route``).

    The label and the connect timeout do not make a connection different.
    """
    rest = {k: v for k, v in hop.items() if k not in _KEY_FIELDS and k not in _NOT_KEY}
    keys = hop.get("keys")
    return HoldKey(
        host=str(hop["host"]),
        port=int(hop["port"]),
        username=hop.get("username"),
        keys=tuple(keys) if keys is not None else None,
        known_hosts=str(hop["policy"]),
        known_hosts_file=" ".join(hop.get("known_hosts", ())),
        route=route,
        settings=json.dumps(rest, sort_keys=True),
    )


# --persist: the command line's value wins over each node's own (inventory), which
# wins over the environment's and the config file's default; 0 or None: off
_PERSIST: dict[str, float | None] = {"override": None, "default": None}


def set_persist(*, override: float | None = None, default: float | None = None) -> None:
    """The process's persist durations (the command line sets them)."""
    _PERSIST["override"] = override
    _PERSIST["default"] = default


def effective_persist(own: float | None) -> float:
    """Seconds a node's connection is kept warm (0: not held)."""
    for value in (_PERSIST["override"], own, _PERSIST["default"]):
        if value is not None:
            return float(value)
    return 0.0


def ask(
    message: Mapping[str, Any], environ: Mapping[str, str] | None = None, timeout: float = 10.0
) -> dict[str, Any] | None:
    """One ``list`` or ``close`` request to this user's holder, without asyncio or
    asyncssh (``apssh connections``). None: no holder of this user answers.

    Raises:
        PermissionError: the control directory is another user's or open to others.
    """
    path = socket_path(environ)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except OSError:
            return None
        if not same_user(sock):
            return None
        try:
            sock.sendall(encode_frame(message))
            length = frame_length(_recv_exactly(sock, HEADER_SIZE))
            return decode_frame(_recv_exactly(sock, length))
        except (OSError, ProtocolError):
            return None


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ProtocolError("the holder hung up")
        data += chunk
    return data


_KEY_FIELDS = {"host", "port", "username", "keys", "policy", "known_hosts"}
_NOT_KEY = {"label", "connect_timeout", "configs"}  # configs: by content (config_digest)


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
