"""Running a process on a node: stream its output, terminate it on timeout or cancel.

Both node classes start a process their own way (an SSH channel, a local
subprocess), then hand its readers, ``wait`` and ``terminate`` to
:func:`stream_process`, which sends every line to the formatter as it arrives
and makes sure that a command that times out, is cancelled or whose output
cannot be delivered (a closed stdout) is terminated and waited for.

:func:`shielded_cleanup` runs cleanup to its end even while the caller is being
cancelled, bounded in time.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import Awaitable, Callable

from apssh_cli.errors import CommandTimeoutError
from apssh_cli.log import host_logger
from apssh_cli.output import (
    STDERR,
    STDOUT,
    Formatter,
    LineSplitter,
    OutputEvent,
    Piece,
    Stream,
    current_step,
    printable_text,
)
from apssh_cli.results import CommandResult

STDERR_TAIL_LINES = 5
# terminating a process: signal, then how long to wait for it to go; TERM is sent
# twice because OpenSSH drops a signal that arrives before the session is set up
TERMINATE_STEPS = (("TERM", 0.5), ("TERM", 1.0), ("KILL", 1.0))
# bounded cleanup (rm of the private dir, killing a process) once a command is over
CLEANUP_TIMEOUT = 5.0
# terminating a remote command may first wait for its pid, then run the kill
TERMINATE_LIMIT = 2 * CLEANUP_TIMEOUT + TERMINATE_STEPS[-1][1]
# private directories of RunScript / RunString: this prefix, then a random name
PRIVATE_PREFIX = "apssh-"
_CHUNK = 65536

Reader = Callable[[int], Awaitable[bytes]]


def private_dir_name() -> str:
    """An unpredictable name for a private directory."""
    return f"{PRIVATE_PREFIX}{secrets.token_hex(12)}"


class _Emitter:
    """Turns output chunks of one stream into formatter lines; keeps a stderr tail.

    Linear in the output and bounded in memory whatever the host prints: the
    splitter cuts a line longer than MAX_LINE_BYTES into pieces, and the tail
    holds at most STDERR_TAIL_LINES of them.
    """

    def __init__(self, host: str, formatter: Formatter, stream: Stream, tail: deque[str]):
        self.host = host
        self.formatter = formatter
        self.stream = stream
        self.tail = tail
        self.splitter = LineSplitter()

    def feed(self, data: bytes) -> None:
        self._emit(self.splitter.split(data))

    def close(self) -> None:
        self._emit(self.splitter.flush())

    def _emit(self, pieces: list[Piece]) -> None:
        step = current_step()
        for text, end, cut in pieces:
            if self.stream == STDERR:  # error messages quote it: no surrogate escapes there
                self.tail.append(printable_text(text))
            self.formatter.output(OutputEvent(self.host, self.stream, text, step, end, cut))


async def _pump(read: Reader, emitter: _Emitter) -> None:
    try:
        while data := await read(_CHUNK):
            emitter.feed(data)
    finally:
        emitter.close()


async def stream_process(
    *,
    host: str,
    display: str,
    formatter: Formatter,
    read_stdout: Reader,
    read_stderr: Reader,
    wait: Callable[[], Awaitable[int]],
    terminate: Callable[[], Awaitable[None]],
    timeout: float | None,
) -> CommandResult:
    """Stream a started process's output until it exits.

    ``terminate`` (which must also wait for the process) runs whenever the
    process may still be running: on timeout, on cancellation, and when the
    output cannot be delivered (the formatter raised, e.g. a broken pipe).

    Raises:
        CommandTimeoutError: past ``timeout``.
    """
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    pumps = [
        asyncio.ensure_future(_pump(read_stdout, _Emitter(host, formatter, STDOUT, tail))),
        asyncio.ensure_future(_pump(read_stderr, _Emitter(host, formatter, STDERR, tail))),
    ]
    finished = False
    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(*pumps)
            rc = await wait()
        finished = True
    except TimeoutError:
        await shielded_cleanup(terminate(), TERMINATE_LIMIT)
        finished = True
        assert timeout is not None
        raise CommandTimeoutError(host, display, timeout) from None
    finally:
        if not finished:  # cancelled, or the output could not be delivered
            await shielded_cleanup(terminate(), TERMINATE_LIMIT)
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
    return CommandResult(display, rc, "\n".join(tail))


async def shielded_cleanup(coro: Awaitable[None], limit: float = CLEANUP_TIMEOUT) -> None:
    """Run cleanup to its end even if the caller is being cancelled (bounded in time).

    A cancellation that lands meanwhile is raised once the cleanup is over.
    """
    task = asyncio.ensure_future(asyncio.wait_for(coro, limit))
    interrupted = False
    while True:
        try:
            await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.done():  # the cleanup itself was cancelled
                raise
            interrupted = True  # e.g. a second Ctrl-C: let the cleanup finish first
        except Exception as exc:  # cleanup is best effort; the original error matters
            host_logger("-").debug("cleanup failed: %r", exc)
            break
    if interrupted:
        raise asyncio.CancelledError
