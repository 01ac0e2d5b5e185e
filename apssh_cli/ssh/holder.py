"""Warm connections (issue 23, ``--persist``): what the holder and its clients share.

This module holds the pieces that decide *who* may use a held connection and
*which* connection a node may reuse, and the small framed protocol spoken on the
control socket before SSH starts on it. The holder process is
:mod:`~apssh_cli.ssh.holder_server`; the client side (used by ``SshNode.connect``)
is :mod:`~apssh_cli.ssh.holder_client`.

Protocol (frames: :mod:`~apssh_cli.ssh.control`): each request is one unix-socket
connection, one request frame, one answer frame. ``{"op": "link"}`` is answered
``{"ok": true, "link": NAME}`` and followed by an SSH session *on the same socket* (the
holder is the server): the client process's one link, for all its held nodes.
``{"op": "connect", "route": [hop, ...], "link": NAME}`` is first acknowledged
(``{"ack": true}``, at once: a stuck holder is given up on quickly), then answered with
the route's host keys and its number on the link; the node's session channels on the
link carry that number in ``ROUTE_ENV`` and are proxied onto the route's held upstream
connection. ``list`` and ``close`` end after the answer.

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

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apssh_cli.ssh.control import (
    HEADER_SIZE,
    MAX_FRAME,
    ProtocolError,
    ask,
    control_dir,
    decode_frame,
    encode_frame,
    frame_length,
    peer_uid,
    read_frame,
    same_user,
    socket_path,
)

__all__ = [
    "HEADER_SIZE",
    "MAX_FRAME",
    "HoldKey",
    "ProtocolError",
    "ask",
    "control_dir",
    "decode_frame",
    "encode_frame",
    "frame_length",
    "peer_uid",
    "read_frame",
    "same_user",
    "socket_path",
]

# the SSH link between a client and its holder, on a local socket: the cheapest
# algorithms both ends have (one key exchange per node and run, data crosses it twice)
# the variable that names a channel's route on a client's link to the holder (set
# by holder_client.HeldRoute, removed by the holder before the channel goes upstream)
ROUTE_ENV = "APSSH_HOLDER_ROUTE"
HOLDER_LINK: dict[str, Any] = {
    "kex_algs": ["curve25519-sha256"],
    "encryption_algs": ["aes128-gcm@openssh.com"],
    "compression_algs": None,
}


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


_KEY_FIELDS = {"host", "port", "username", "keys", "policy", "known_hosts"}
_NOT_KEY = {"label", "connect_timeout", "configs"}  # configs: by content (config_digest)
