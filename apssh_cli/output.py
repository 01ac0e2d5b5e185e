"""Formatters: where the output of remote (and local) commands goes.

A node sends every decoded line of its commands' output to its formatter, as it
arrives, with the host it came from and the stream ("stdout" or "stderr"). The
library never prints anything itself: a formatter decides.

- :class:`HostFormatter` (the default) prints ``host:line``; stderr lines go to
  ``sys.stderr``.
- :class:`RawFormatter` prints lines as they are.
- :class:`TimeHostFormatter` prefixes the time and the host.
- :class:`SubdirFormatter` writes ``DIR/<host>.out`` and ``DIR/<host>.err``.
- :class:`CaptureFormatter` keeps everything in memory, per host.

:class:`LineSplitter` turns the byte chunks a channel delivers into lines: bytes
that are not valid UTF-8 are replaced (never an exception), and a last line
without a newline is flushed at the end.
"""

from __future__ import annotations

import codecs
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

Stream = Literal["stdout", "stderr"]

STDOUT: Stream = "stdout"
STDERR: Stream = "stderr"

# the step of the work that is running (a recipe step, or a job's own name): set by
# the job for its task, read where a line is emitted, so that nodes and commands need
# not pass it along (each asyncio task sees its own value)
_CURRENT_STEP: ContextVar[str | None] = ContextVar("apssh_cli_step", default=None)


@dataclass(frozen=True, slots=True)
class OutputEvent:
    """One line of output with its context.

    Args:
        host: the node's label.
        stream: ``"stdout"`` or ``"stderr"``.
        line: the decoded line, without its newline.
        step: the step it belongs to (recipes), or None.
    """

    host: str
    stream: Stream
    line: str
    step: str | None = None


def current_step() -> str | None:
    """The step of the running task, or None."""
    return _CURRENT_STEP.get()


@contextmanager
def output_step(step: str | None) -> Iterator[None]:
    """Tag the output emitted by this task (and the tasks it starts) with ``step``."""
    token = _CURRENT_STEP.set(step)
    try:
        yield
    finally:
        _CURRENT_STEP.reset(token)


class LineSplitter:
    """Decode a byte stream incrementally and cut it into lines.

    >>> splitter = LineSplitter()
    >>> splitter.feed(b"a\\nb")
    ['a']
    >>> splitter.feed(b"c\\n\\xff\\n")
    ['bc', '\\ufffd']
    >>> splitter.flush()
    []
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, data: bytes) -> list[str]:
        """Add a chunk; return the lines it completes (without their newline)."""
        text = self._pending + self._decoder.decode(data)
        *lines, self._pending = text.split("\n")
        return [_strip_cr(line) for line in lines]

    def flush(self) -> list[str]:
        """End of stream: return the partial last line, if any."""
        text = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        return [_strip_cr(text)] if text else []


def _strip_cr(line: str) -> str:
    # CRLF output (Windows tools, some pagers) shows as plain lines
    return line[:-1] if line.endswith("\r") else line


class Formatter:
    """Base class of formatters: receives output lines and life-cycle events.

    Subclasses override :meth:`line`; the event methods are no-ops here. Events
    other than :meth:`connect_failed` are sent only by verbose nodes or jobs.
    Methods are called from the event loop thread, one at a time.

    Nodes call :meth:`output` for every line; its default hands the line to
    :meth:`line`. A sink that needs the context (the step) overrides :meth:`output`.
    """

    def output(self, event: OutputEvent) -> None:
        """Handle one line with its context (default: :meth:`line`)."""
        self.line(event.host, event.line, event.stream)

    def line(self, host: str, text: str, stream: Stream) -> None:
        """Handle one decoded line of output (no trailing newline)."""
        out = sys.stderr if stream == STDERR else sys.stdout
        out.write(text + "\n")

    def connected(self, host: str) -> None:
        """The SSH connection to ``host`` is up."""

    def connect_failed(self, host: str, error: Exception) -> None:
        """The connection to ``host`` could not be made."""

    def command_started(self, host: str, command: str) -> None:
        """A command starts on ``host``."""

    def command_done(self, host: str, command: str, rc: int | None) -> None:
        """A command ended on ``host``; ``rc`` is None when it timed out or was cancelled."""


class HostFormatter(Formatter):
    """Print each line as ``host:line`` (the default formatter).

    Args:
        fmt: a template with ``{host}``, ``{line}`` and ``{time}`` (the current
            time as ``HH:MM:SS``); strftime codes such as ``%H`` are expanded too.
        stdout: where stdout lines go (``sys.stdout`` at the time of writing by default).
        stderr: where stderr lines and verbose events go.
    """

    def __init__(
        self,
        fmt: str = "{host}:{line}",
        *,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> None:
        self.fmt = fmt
        self._stdout = stdout
        self._stderr = stderr
        self._uses_strftime = "%" in fmt

    def render(self, host: str, text: str) -> str:
        """The line as it will be printed, without the newline."""
        fmt = self.fmt
        now = time.localtime()
        if self._uses_strftime:
            # only the template goes through strftime, never the remote text
            fmt = time.strftime(fmt, now)
        return fmt.format(host=host, line=text, time=time.strftime("%H:%M:%S", now))

    def line(self, host: str, text: str, stream: Stream) -> None:
        self._out(stream).write(self.render(host, text) + "\n")

    def _out(self, stream: Stream) -> IO[str]:
        if stream == STDERR:
            return self._stderr if self._stderr is not None else sys.stderr
        return self._stdout if self._stdout is not None else sys.stdout

    def _event(self, host: str, text: str) -> None:
        self._out(STDERR).write(f"{host}: -- {text}\n")

    def connected(self, host: str) -> None:
        self._event(host, "connected")

    def connect_failed(self, host: str, error: Exception) -> None:
        self._event(host, f"connection failed: {error}")

    def command_started(self, host: str, command: str) -> None:
        self._event(host, f"start {command}")

    def command_done(self, host: str, command: str, rc: int | None) -> None:
        self._event(host, f"done {command} (rc={rc})")


class RawFormatter(HostFormatter):
    """Print lines as they are, with no host prefix."""

    def __init__(self, *, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> None:
        super().__init__("{line}", stdout=stdout, stderr=stderr)


class TimeHostFormatter(HostFormatter):
    """Print ``HH:MM:SS host:line``."""

    def __init__(self, *, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> None:
        super().__init__("{time} {host}:{line}", stdout=stdout, stderr=stderr)


class SubdirFormatter(Formatter):
    """Write each host's output to ``directory/<host>.out`` and ``directory/<host>.err``.

    The directory is created if needed; files are opened on the first line and
    appended to (a run with several commands keeps them all). Call :meth:`close`
    at the end (the CLI and :func:`~apssh_cli.ssh.node.close_nodes` users should).

    Args:
        directory: where the files go.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._files: dict[tuple[str, Stream], IO[str]] = {}

    def path(self, host: str, stream: Stream) -> Path:
        """The file that receives ``host``'s ``stream``."""
        suffix = "err" if stream == STDERR else "out"
        safe = host.replace("/", "_")
        return self.directory / f"{safe}.{suffix}"

    def line(self, host: str, text: str, stream: Stream) -> None:
        handle = self._files.get((host, stream))
        if handle is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle = self.path(host, stream).open("a", encoding="utf-8")
            self._files[(host, stream)] = handle
        handle.write(text + "\n")
        handle.flush()

    def close(self) -> None:
        """Close the files opened so far."""
        for handle in self._files.values():
            handle.close()
        self._files.clear()


class CaptureFormatter(Formatter):
    """Keep every line in memory, per host and stream (nothing is printed).

    >>> capture = CaptureFormatter()
    >>> capture.line("n1", "hello", "stdout")
    >>> capture.stdout("n1")
    'hello\\n'
    """

    def __init__(self) -> None:
        self._lines: dict[tuple[str, Stream], list[str]] = defaultdict(list)
        self._lock = threading.Lock()

    def line(self, host: str, text: str, stream: Stream) -> None:
        with self._lock:
            self._lines[(host, stream)].append(text)

    def lines(self, host: str, stream: Stream = STDOUT) -> list[str]:
        """The lines captured for ``host`` on ``stream``, in order."""
        with self._lock:
            return list(self._lines.get((host, stream), []))

    def stdout(self, host: str) -> str:
        """Everything ``host`` wrote on stdout, one newline per line."""
        return "".join(line + "\n" for line in self.lines(host, STDOUT))

    def stderr(self, host: str) -> str:
        """Everything ``host`` wrote on stderr, one newline per line."""
        return "".join(line + "\n" for line in self.lines(host, STDERR))

    def hosts(self) -> list[str]:
        """The hosts that wrote something, sorted."""
        with self._lock:
            return sorted({host for host, _ in self._lines})


DEFAULT_FORMATTER: Formatter = HostFormatter()
