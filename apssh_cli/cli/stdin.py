"""The local stdin of `apssh run`, read once and given to every host's command.

As clush does: when stdin is not a terminal, `apssh run` reads it to its end
before anything connects, and every host's command reads the same bytes
(``echo hello | apssh -g nodes cat``). What is read is kept in memory up to
:data:`MEMORY_LIMIT`; past it, the whole input goes to a private temporary file
(mode 0600, in ``$TMPDIR``), removed when apssh exits, and each host's upload
streams from that file. Each host receives the input as one SFTP upload into
its command's private directory (see :class:`apssh_cli.commands.Run`'s
``stdin``): the remote command's channel stdin stays with the watcher that ends
the command when the session goes (:mod:`apssh_cli.ssh.remote_wrapper`).

Import-light: the standard library only.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

MEMORY_LIMIT = 16 * 1024 * 1024  # bytes of stdin kept in memory; past it, a temporary file
_CHUNK = 1024 * 1024

StdinSource = bytes | Path


def wanted(choice: bool | None, *, script: bool, stream: object | None = None) -> bool:
    """Whether to read stdin: ``--stdin`` / ``--no-stdin`` when given; else not for a
    script (``-s``), and only when stdin is not a terminal. A closed stdin is never read."""
    terminal = _is_terminal(sys.stdin if stream is None else stream)
    if terminal is None:
        return False
    if choice is not None:
        return choice
    return not script and not terminal


def _is_terminal(stream: object | None) -> bool | None:
    """Whether ``stream`` is a terminal; None: no stdin at all (closed, or None)."""
    if stream is None or getattr(stream, "closed", False):
        return None
    try:
        descriptor = stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):  # not a file (pytest's captured stdin)
        return None
    try:
        os.fstat(descriptor)
    except OSError:  # descriptor 0 closed by the caller (`apssh ... <&-`)
        return None
    return os.isatty(descriptor)


@contextlib.contextmanager
def read_stdin(
    stream: BinaryIO | None = None, *, memory_limit: int = MEMORY_LIMIT
) -> Iterator[StdinSource | None]:
    """Read ``stream`` (stdin's bytes by default) to its end.

    Yields the bytes (at most ``memory_limit``), or the path of a private temporary
    file holding them all (removed when the block ends, whatever happens), or None
    for an empty input (the commands then read /dev/null, as without stdin).
    """
    source = stream if stream is not None else sys.stdin.buffer
    head = _read_up_to(source, memory_limit + 1)
    if not head:
        yield None
        return
    if len(head) <= memory_limit:
        yield head
        return
    # mkstemp: mode 0600, a name nobody else can take
    descriptor, name = tempfile.mkstemp(prefix="apssh-stdin-")
    try:
        with os.fdopen(descriptor, "wb") as spill:
            spill.write(head)
            del head
            while chunk := source.read(_CHUNK):
                spill.write(chunk)
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def _read_up_to(source: BinaryIO, size: int) -> bytes:
    parts: list[bytes] = []
    left = size
    while left > 0:
        chunk = source.read(min(left, _CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)
