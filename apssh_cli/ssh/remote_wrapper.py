"""The wrapper around a remote command: learn its pid before it starts, kill its group.

SSH gives no pid for a remote command, and OpenSSH ignores channel signals for
root sessions, so terminating a remote command means running ``kill`` from a
second channel, which needs the pid. sshd makes the command's shell a session
leader: its pid is also the process group of everything the command starts, and
``kill -- -pid`` ends them all.

The wrapper prints one line with a random token and its pid (a line the user
never sees), then at once execs the user's shell on the command (same pid). The
command may thus run before the client has read its pid; a command cancelled or
timed out in that moment is not lost: the client goes on reading its output
(:meth:`PidMarker.await_pid`, bounded) until the pid line arrives, then kills the
group. Output that ends without a pid line means the command has ended already.
"""

from __future__ import annotations

import asyncio
import secrets
import shlex
from collections.abc import Awaitable, Callable

Reader = Callable[[int], Awaitable[bytes]]

_CHUNK = 65536


class PidMarker:
    """The wrapper's protocol, client side: strip the pid line from the command's output.

    Args:
        on_marker: called once, when the marker line has been read (``pid`` is set,
            or None if the line could not be parsed).
    """

    def __init__(self, on_marker: Callable[[], None] = lambda: None) -> None:
        self.token = f"apssh-pid-{secrets.token_hex(8)}"
        self.pid: int | None = None
        self.seen = False
        self._on_marker = on_marker
        self._buffer = b""
        # one reader at a time until the marker is seen: the output pump, or await_pid
        self._lock = asyncio.Lock()

    def wrap(self, command: str) -> str:
        """The wrapper command line for ``command`` (given to the login shell)."""
        return (
            f"printf '%s %s\\n' {self.token} \"$$\"; "
            f'exec "${{SHELL:-/bin/sh}}" -c {shlex.quote(command)}'
        )

    def reader(self, read: Reader) -> Reader:
        """Wrap a stdout reader: output before the marker passes, the marker line does not."""

        async def read_past_marker(size: int) -> bytes:
            if not self.seen:
                async with self._lock:
                    while not self.seen:
                        passed = await self._step(read, size)
                        if passed:
                            return passed
            return await read(size)

        return read_past_marker

    async def await_pid(self, read: Reader) -> int | None:
        """Read (and drop) output until the marker line has come; its pid, or None.

        None: the output ended without a readable marker (the command is over).
        Unbounded: the caller sets the time limit.
        """
        async with self._lock:
            while not self.seen:
                await self._step(read, _CHUNK)
        return self.pid

    async def _step(self, read: Reader, size: int) -> bytes:
        """Read once while looking for the marker; return what may be passed on."""
        data = await read(size)
        if not data:  # the wrapper never printed its marker: pass all through
            return self._release()
        self._buffer += data
        return self._scan()

    def _scan(self) -> bytes:
        """Look for the marker line in the buffer; return what may be passed on now."""
        token = self.token.encode()
        start = self._buffer.find(token)
        if start < 0:
            # output before the marker (a noisy rc file) passes, but for a tail
            # that may be the beginning of the token
            cut = max(len(self._buffer) - (len(token) - 1), 0)
            passed, self._buffer = self._buffer[:cut], self._buffer[cut:]
            return passed
        end = self._buffer.find(b"\n", start)
        if end < 0:
            return b""  # the marker line is not complete yet
        words = self._buffer[start:end].split()
        if len(words) == 2 and words[1].isdigit():
            self.pid = int(words[1])
        passed = self._buffer[:start] + self._buffer[end + 1 :]
        self._buffer = b""
        self.seen = True
        self._on_marker()
        return passed

    def _release(self) -> bytes:
        passed, self._buffer = self._buffer, b""
        self.seen = True
        return passed


def kill_group_script(pid: int) -> str:
    """TERM the process group, give it a moment, then KILL what is left."""
    # "kill -s SIG -- -PGID" is the form dash, bash and procps' kill all accept
    group = f"-- -{int(pid)}"
    return (
        f"kill -s TERM {group} 2>/dev/null || exit 0; i=0; "
        f"while [ $i -lt 10 ] && kill -s 0 {group} 2>/dev/null; do sleep 0.1; i=$((i+1)); done; "
        f"kill -s KILL {group} 2>/dev/null; exit 0"
    )
