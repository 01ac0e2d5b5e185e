"""The control socket of warm connections: where it lives, who may use it, its frames.

Shared by the holder (:mod:`~apssh_cli.ssh.holder_server`), its clients and the
command server (:mod:`apssh_cli.cli.command_server`). Standard library only, and
nothing slow to import (no dataclasses, no typing at run time): the ``apssh``
launcher (:mod:`apssh_cli.cli.launch`) imports it on every call.

A frame is a 4-byte big-endian length, then a JSON object.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import struct
import sys

TYPE_CHECKING = False  # not typing's: importing typing costs the launcher ~10 ms
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Any

SOCKET_NAME = "holder.sock"
MAX_FRAME = 1 << 20  # a request names a route of a few hops: far less than this
_LENGTH = struct.Struct(">I")


class ProtocolError(Exception):
    """A frame that is not what the protocol says (too long, not JSON, cut short)."""


def control_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The user's private directory for the control socket (created 0700 if needed).

    Raises:
        PermissionError: the directory exists but is another user's or open to others.
    """
    from pathlib import Path

    return Path(control_dir_name(environ))


def control_dir_name(environ: Mapping[str, str] | None = None) -> str:
    """:func:`control_dir` as a string, without pathlib (the launcher's ~4 ms).

    Raises:
        PermissionError: the directory exists but is another user's or open to others.
    """
    environ = os.environ if environ is None else environ
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        base = os.path.join(runtime, "apssh")
    else:
        base = os.path.join(environ.get("TMPDIR") or "/tmp", f"apssh-{os.getuid()}")
    with contextlib.suppress(FileExistsError):
        os.mkdir(base, 0o700)
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
    import hashlib

    tag = hashlib.sha256(home.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return control_dir(environ) / f"holder-{tag}.sock"


_STARTED_HERE: set[str] = set()  # the holders this process started


def started_here(path: Path) -> bool:
    """Whether this process started a holder for ``path`` (the launcher does, early)."""
    return str(path) in _STARTED_HERE


def holds_nothing_yet(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this user's holder cannot hold a connection yet: none listens, or this
    process has just started it (a ``--persist`` run may then open its first TCP
    connections early and hand them to the holder)."""
    try:
        path = socket_path(environ)
    except OSError:
        return False
    return started_here(path) or not listening(path)


def mark_started(path: Path) -> None:
    """Say that this process has started a holder for ``path`` (by other means)."""
    _STARTED_HERE.add(str(path))


def start_holder(path: Path, idle: float) -> None:
    """Start a holder for ``path`` in the background (its own session, its log
    next to the socket); it outlives this process."""
    import subprocess  # here: the launcher imports this module on every call

    log = path.with_suffix(".log")
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        subprocess.Popen(
            [sys.executable, "-m", "apssh_cli.ssh.holder_server", str(path), f"{idle:g}"],
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            start_new_session=True,  # not killed with our terminal's process group
            close_fds=True,
            cwd="/",
        )
    finally:
        os.close(fd)
    _STARTED_HERE.add(str(path))


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
FD_SIZE = struct.calcsize("i")


def received_fds(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    """The descriptors (``SCM_RIGHTS``) in the ancillary data of one ``recvmsg``."""
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            whole = len(payload) - len(payload) % FD_SIZE
            fds.extend(struct.unpack(f"{whole // FD_SIZE}i", payload[:whole]))
    return fds


async def read_frame(sock: socket.socket, peer: str) -> dict[str, Any]:
    """Read one frame from a non-blocking socket on the running loop.

    Raises:
        ProtocolError: ``peer`` (named in the message) hung up, or sent no frame.
    """
    message, _fds = await read_frame_with_fds(sock, peer, 0)
    return message


async def read_frame_with_fds(
    sock: socket.socket, peer: str, max_fds: int
) -> tuple[dict[str, Any], list[int]]:
    """:func:`read_frame`, and the descriptors (at most ``max_fds``) sent with it.

    Raises:
        ProtocolError: ``peer`` hung up, or sent no frame (its descriptors are closed).
    """
    import asyncio  # here: `apssh connections` (ask) needs no event loop

    loop = asyncio.get_running_loop()
    fds: list[int] = []

    async def readable() -> None:
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(sock.fileno(), wake)
        try:
            await ready
        finally:
            loop.remove_reader(sock.fileno())

    async def read(size: int) -> bytes:
        data = b""
        while len(data) < size:
            if max_fds and not data:  # descriptors come with a message's first byte
                try:
                    chunk, ancillary, _flags, _address = sock.recvmsg(
                        size, socket.CMSG_SPACE(max_fds * FD_SIZE)
                    )
                except BlockingIOError:
                    await readable()
                    continue
                fds.extend(received_fds(ancillary))
            else:
                chunk = await loop.sock_recv(sock, size - len(data))
            if not chunk:
                raise ProtocolError(f"the {peer} hung up")
            data += chunk
        return data

    try:
        header = await read(HEADER_SIZE)
        max_fds = 0  # only with the header
        return decode_frame(await read(frame_length(header))), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


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
            return recv_frame(sock, "holder")
        except (OSError, ProtocolError):
            return None


def recv_frame(sock: socket.socket, peer: str) -> dict[str, Any]:
    """Read one frame from a blocking socket.

    Raises:
        ProtocolError: ``peer`` hung up, or sent no frame.
    """
    return decode_frame(_recv_exactly(sock, frame_length(_recv_exactly(sock, HEADER_SIZE)), peer))


def _recv_exactly(sock: socket.socket, size: int, peer: str = "holder") -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ProtocolError(f"the {peer} hung up")
        data += chunk
    return data


def trim_log(log: Path, limit: int = 1 << 20) -> None:
    """A new holder or command server starts its log afresh once it is over ``limit``
    bytes (its stderr is that file, opened for appending by whoever started it)."""
    with contextlib.suppress(OSError):
        if os.stat(log).st_size > limit:
            os.truncate(log, 0)


def listening(path: str | Path) -> bool:
    """Whether something listens on the unix socket ``path`` (connects, says nothing)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


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
