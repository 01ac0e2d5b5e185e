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

Nothing outlives its session: before the exec, the wrapper leaves a watcher in
the command's process group. The command's stdin is /dev/null; the watcher
holds the channel's stdin instead, which the client never closes while the
command runs. End of file there means the session is gone (the client closed
it, was killed, or its connection dropped and sshd noticed): if the command is
still running, the watcher ends its process group (TERM, then KILL). With a
``deadline`` it also ends the group that many seconds after the start, even
when nobody is connected any more. A command that ends normally takes the
watcher with it as soon as the client closes the channel, so background
processes the command started on purpose (``nohup server &``) are left alone.
The watcher costs two or three forks on the node, no round trip.
"""

from __future__ import annotations

import asyncio
import math
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

    def wrap(self, command: str, *, deadline: float | None = None) -> str:
        """The wrapper command line for ``command`` (given to the login shell).

        Args:
            command: what the user's shell runs.
            deadline: seconds after which the node itself ends the command's group.
        """
        return (
            f"printf '%s %s\\n' {self.token} \"$$\"; exec 3<&0; "
            f"( {_watcher(deadline)} ) >/dev/null 2>&1 </dev/null & exec 3<&-; "
            f'exec "${{SHELL:-/bin/sh}}" -c {shlex.quote(command)} </dev/null'
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


# the watcher ignores TERM: it outlives the TERM it sends to its own group, then KILLs
_END_GROUP = "kill -0 $$ 2>/dev/null && { kill -s TERM -- -$$; sleep 1; kill -s KILL -- -$$; }"


def _watcher(deadline: float | None) -> str:
    """The watcher's script: wait for the session's end (stdin on fd 3) or the deadline."""
    if deadline is None:
        return f"trap '' TERM HUP INT; while read -r _ <&3; do :; done; {_END_GROUP}"
    seconds = max(1, math.ceil(deadline))
    return (
        f"trap '' TERM HUP INT; sleep {seconds} & s=$!; "
        f"( while read -r _; do :; done <&3; kill -s KILL $s ) & exec 3<&-; "
        f"wait $s; {_END_GROUP}"
    )


def kill_group_script(pid: int) -> str:
    """TERM the process group, give it a moment, then KILL what is left."""
    # "kill -s SIG -- -PGID" is the form dash, bash and procps' kill all accept
    group = f"-- -{int(pid)}"
    return (
        f"kill -s TERM {group} 2>/dev/null || exit 0; i=0; "
        f"while [ $i -lt 10 ] && kill -s 0 {group} 2>/dev/null; do sleep 0.1; i=$((i+1)); done; "
        f"kill -s KILL {group} 2>/dev/null; exit 0"
    )
