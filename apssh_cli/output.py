"""Output sinks: where the output of remote (and local) commands goes.

A node sends every decoded line of its commands' output, as it arrives, as an
:class:`OutputEvent` (host, stream, line, step) to its formatter's
:meth:`Formatter.output`. The library never prints anything itself: a sink decides.
Nothing is kept in memory unless a sink's job is to keep it (capture, gather,
JSON records), and what such a sink keeps per host is bounded.

Sinks (all are :class:`Formatter` subclasses; all accept ``verbose=``):

- :class:`HostFormatter` (the default): ``host:line``, or any ``{field}`` template
  (``{host}``, ``{line}``, ``{time}``, ``{step}``, strftime codes, extra per-host fields).
- Upstream apssh's formatters, with its ``@line@`` / ``@host@`` / ``@user@`` /
  ``@time@`` placeholders: :class:`TerminalFormatter` (``custom_format, verbose``),
  :class:`RawFormatter`, :class:`ColonFormatter`, :class:`TimeColonFormatter`,
  :class:`VerboseFormatter`.
- :class:`SubdirFormatter`: one file per host (``DIR/<host>``, ``DIR/<host>.err``).
- :class:`CaptureFormatter`: keeps lines in memory per host, bounded
  (:data:`DEFAULT_CAPTURE_BYTES`); upstream's ``start_capture()`` / ``get_capture()``.
- :class:`TeeFormatter`: several sinks at once.

Custom formatters written for upstream apssh override ``line(line, datatype,
hostname)``: ``line`` ends with its newline, ``datatype`` is
:data:`EXTENDED_DATA_STDERR` for stderr and None for stdout. That still works:
the default :meth:`Formatter.output` calls it. A sink that needs the context (the
step) overrides :meth:`Formatter.output` instead.

:class:`LineSplitter` turns the byte chunks a channel delivers into lines: bytes
that are not valid UTF-8 are replaced (never an exception), and a last line
without a newline is flushed at the end.
"""

from __future__ import annotations

import codecs
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple

Stream = Literal["stdout", "stderr"]

STDOUT: Stream = "stdout"
STDERR: Stream = "stderr"

# the SSH protocol's data type code of stderr ("extended data" 1): what upstream's
# line() receives as ``datatype`` for stderr (stdout is None)
EXTENDED_DATA_STDERR = 1

# what a capturing sink keeps per host and stream, in characters of text (newlines
# included); past it, lines are counted but not kept, and the text says so
DEFAULT_CAPTURE_BYTES = 1 << 20

# the step of the work that is running (a recipe step, or a job's own name): set by
# the job for its task, read where a line is emitted, so that nodes and commands need
# not pass it along (each asyncio task sees its own value)
_CURRENT_STEP: ContextVar[str | None] = ContextVar("apssh_cli_step", default=None)


class OutputEvent(NamedTuple):
    """One line of output with its context (a named tuple: one is made per line, cheaply).

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


def datatype_of(stream: Stream) -> int | None:
    """Upstream's ``datatype`` for a stream: EXTENDED_DATA_STDERR, or None for stdout."""
    return EXTENDED_DATA_STDERR if stream == STDERR else None


def _sys_stream(stream: Stream) -> IO[str]:
    return sys.stderr if stream == STDERR else sys.stdout


class Formatter:
    """Base class of sinks: receives output lines and life-cycle events.

    Nodes call :meth:`output` for every line; its default hands the line to
    :meth:`line` in upstream apssh's form, which by default writes it as it is
    (stdout or stderr). Override :meth:`output` to get the context (the step),
    or :meth:`line` as upstream formatters do.

    Events: nodes call :meth:`connected`, :meth:`connect_failed`,
    :meth:`command_started` and :meth:`command_done` (all but ``connect_failed``
    only from verbose nodes or jobs); by default they call upstream's
    ``connection_made``, ``connection_lost``, ``session_start`` and
    ``session_stop``, which do nothing here. Methods are called from the event
    loop thread, one at a time.

    Args:
        custom_format: upstream's line template (``@line@``, ``@host@``,
            ``@user@``, ``@time@``, strftime codes), used by :meth:`format_line`.
        verbose: show connection and command events (sinks that print them).
    """

    time_format = "%H-%M-%S"
    # class defaults, so that a subclass that does not call __init__ still works
    custom_format = "@line@"
    verbose = False

    def __init__(self, custom_format: str = "@line@", verbose: bool = False) -> None:
        self.custom_format = custom_format
        self.verbose = verbose

    # ------------------------------------------------------------ lines

    def output(self, event: OutputEvent) -> None:
        """Handle one line with its context (default: :meth:`line`, upstream style)."""
        self.line(event.line + "\n", datatype_of(event.stream), event.host)

    def line(self, line: str, datatype: int | None, hostname: str) -> None:
        """Handle one line, upstream apssh's way: ``line`` ends with its newline.

        Args:
            line: the text, newline included.
            datatype: :data:`EXTENDED_DATA_STDERR` for stderr, None for stdout.
            hostname: the node's label.
        """
        out = sys.stderr if datatype == EXTENDED_DATA_STDERR else sys.stdout
        out.write(line)

    def format_line(self, line: str, hostname: str | None = None, user: str | None = None) -> str:
        """``custom_format`` with its placeholders filled (upstream's syntax).

        ``@time@`` is ``%H-%M-%S``; strftime codes are expanded in the template
        only, never in the remote text.
        """
        template = time.strftime(self.custom_format.replace("@time@", self.time_format))
        return (
            template.replace("@host@", hostname or "")
            .replace("@user@", f"{user}@" if user else "")
            .replace("@line@", line)
        )

    def close(self) -> None:
        """Release what the sink holds (files); nothing here."""

    # ------------------------------------------------------------ events (ours)

    def connected(self, host: str) -> None:
        """The SSH connection to ``host`` is up."""
        self.connection_made(host, None, True)

    def connect_failed(self, host: str, error: Exception) -> None:
        """The connection to ``host`` could not be made."""
        self.connection_lost(host, error, None)

    def command_started(self, host: str, command: str) -> None:
        """A command starts on ``host``."""
        self.session_start(host, command)

    def command_done(self, host: str, command: str, rc: int | None) -> None:
        """A command ended on ``host``; ``rc`` is None when it timed out or was cancelled."""
        self.session_stop(host, command)

    # ------------------------------------------------------------ events (upstream's names)

    def connection_made(self, hostname: str, username: str | None, direct: bool) -> None:
        """Upstream's event: a connection is up."""

    def connection_lost(self, hostname: str, exc: Exception | None, username: str | None) -> None:
        """Upstream's event: a connection failed (``exc``) or was closed."""

    def auth_completed(self, hostname: str, username: str | None) -> None:
        """Upstream's event: authentication succeeded."""

    def session_start(self, hostname: str, command: str) -> None:
        """Upstream's event: a command starts."""

    def session_stop(self, hostname: str, command: str) -> None:
        """Upstream's event: a command ended."""

    def sftp_start(self, hostname: str) -> None:
        """Upstream's event: an SFTP session starts."""

    def sftp_stop(self, hostname: str) -> None:
        """Upstream's event: an SFTP session ended."""


def _overrides_line(formatter: Formatter, base: type[Formatter]) -> bool:
    """Whether a subclass of ``base`` overrides line() (an upstream-style custom formatter)."""
    return type(formatter).line is not base.line


class VerboseFormatter(Formatter):
    """Upstream's base of printing formatters: events go to stderr when ``verbose``.

    Args:
        custom_format: the line template (see :meth:`Formatter.format_line`).
        verbose: print connection and command events on stderr.
        stdout: where stdout lines go (default: ``sys.stdout`` at the time of writing).
        stderr: where stderr lines and events go.
    """

    def __init__(
        self,
        custom_format: str = "@line@",
        verbose: bool = False,
        *,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> None:
        super().__init__(custom_format, verbose)
        self._stdout = stdout
        self._stderr = stderr

    def _out(self, stream: Stream) -> IO[str]:
        chosen = self._stderr if stream == STDERR else self._stdout
        return chosen if chosen is not None else _sys_stream(stream)

    def _event(self, host: str, text: str) -> None:
        self._out(STDERR).write(f"{host}: -- {text}\n")

    def connection_made(self, hostname: str, username: str | None, direct: bool) -> None:
        if self.verbose:
            self._event(hostname, "connected")

    def connection_lost(self, hostname: str, exc: Exception | None, username: str | None) -> None:
        # a failure is always shown, a normal close only when verbose
        if exc is not None:
            self._event(hostname, f"connection failed: {exc}")
        elif self.verbose:
            self._event(hostname, "connection closed")

    def session_start(self, hostname: str, command: str) -> None:
        if self.verbose:
            self._event(hostname, f"start {command}")

    def session_stop(self, hostname: str, command: str) -> None:
        if self.verbose:
            self._event(hostname, f"done {command}")


class TerminalFormatter(VerboseFormatter):
    """Print each line through upstream's template: stdout to stdout, stderr to stderr.

    >>> import io
    >>> out = io.StringIO()
    >>> TerminalFormatter("@host@ said @line@", stdout=out).line("hi\\n", None, "n1")
    >>> out.getvalue()
    'n1 said hi\\n'
    """

    def line(self, line: str, datatype: int | None, hostname: str) -> None:
        stream: Stream = STDERR if datatype == EXTENDED_DATA_STDERR else STDOUT
        self._out(stream).write(self.format_line(line, hostname))


class _FixedFormatter(TerminalFormatter):
    """A TerminalFormatter whose template is its class's ``TEMPLATE``."""

    TEMPLATE = "@line@"

    def __init__(
        self,
        *,
        verbose: bool = False,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> None:
        super().__init__(self.TEMPLATE, verbose, stdout=stdout, stderr=stderr)


class RawFormatter(_FixedFormatter):
    """Print lines as they are (``@line@``)."""


class ColonFormatter(_FixedFormatter):
    """Print ``host:line`` (upstream's ``@user@@host@:@line@``)."""

    TEMPLATE = "@user@@host@:@line@"


class TimeColonFormatter(_FixedFormatter):
    """Print ``HH-MM-SS:host:line`` (upstream's ``@time@:@host@:@line@``)."""

    TEMPLATE = "@time@:@host@:@line@"


class HostFormatter(VerboseFormatter):
    """Print each line through a ``{field}`` template (the default: ``host:line``).

    Args:
        fmt: a template with ``{host}``, ``{line}``, ``{step}`` (empty when none),
            ``{time}`` (``HH:MM:SS``), any field of ``fields``; strftime codes
            such as ``%H`` are expanded in the template (never in remote text).
        verbose: print ``connected`` events (nodes send the others only when verbose).
        stdout: where stdout lines go (``sys.stdout`` at the time of writing by default).
        stderr: where stderr lines and events go.
        fields: extra fields per host (``{"n1": {"fqdn": "n1.lab"}}``); they may
            override ``host`` (the CLI shows short, aligned names that way).
        localtime: the clock of ``{time}`` and strftime codes (tests fix it).
    """

    def __init__(
        self,
        fmt: str = "{host}:{line}",
        *,
        verbose: bool = False,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        fields: Mapping[str, Mapping[str, Any]] | None = None,
        localtime: Callable[[], time.struct_time] = time.localtime,
    ) -> None:
        super().__init__("@line@", verbose, stdout=stdout, stderr=stderr)
        self.fmt = fmt
        self.fields = fields or {}
        self.localtime = localtime
        self._uses_strftime = "%" in fmt
        self._uses_time = self._uses_strftime or "{time" in fmt
        self._values: dict[str, dict[str, Any]] = {}

    def render(self, host: str, text: str, step: str | None = None) -> str:
        """The line as it will be printed, without the newline."""
        # one dict per host, reused: this runs for every line of output
        values = self._values.get(host)
        if values is None:
            values = self._values[host] = {"host": host, **self.fields.get(host, {})}
        values["step"] = step or ""
        values["line"] = text
        fmt = self.fmt
        if self._uses_time:
            now = self.localtime()
            if self._uses_strftime:
                # only the template goes through strftime, never the remote text
                fmt = time.strftime(fmt, now)
            values["time"] = time.strftime("%H:%M:%S", now)
        return fmt.format_map(values)

    def output(self, event: OutputEvent) -> None:
        if _overrides_line(self, HostFormatter):
            super().output(event)
            return
        self._out(event.stream).write(self.render(event.host, event.line, event.step) + "\n")

    def line(self, line: str, datatype: int | None, hostname: str) -> None:
        stream: Stream = STDERR if datatype == EXTENDED_DATA_STDERR else STDOUT
        self._out(stream).write(self.render(hostname, line.removesuffix("\n")) + "\n")

    # events are printed whenever the node sends them (it sends them when verbose)
    def connection_made(self, hostname: str, username: str | None, direct: bool) -> None:
        self._event(hostname, "connected")

    def session_start(self, hostname: str, command: str) -> None:
        self._event(hostname, f"start {command}")

    def command_done(self, host: str, command: str, rc: int | None) -> None:
        self._event(host, f"done {command} (rc={rc})")


class TimeHostFormatter(HostFormatter):
    """Print ``HH:MM:SS host:line``."""

    def __init__(
        self,
        *,
        verbose: bool = False,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> None:
        super().__init__("{time} {host}:{line}", verbose=verbose, stdout=stdout, stderr=stderr)


class SubdirFormatter(VerboseFormatter):
    """Write each host's output to files in a directory (upstream's layout by default).

    stdout goes to ``run_name/<host>``, stderr to ``run_name/<host>.err`` (the
    suffixes are parameters: the CLI's ``-o`` uses ``.out`` and ``.err``). The
    directory is created on the first line; files are opened on a host's first
    line and appended to (a run with several commands keeps them all). Call
    :meth:`close_host` when a host is done (this keeps open files to the hosts
    that run), and :meth:`close` at the end.

    Args:
        run_name: the directory.
        verbose: also write ``connected`` and command events into the stdout file.
        out_suffix: added to the host name for stdout.
        err_suffix: added to the host name for stderr.
    """

    def __init__(
        self,
        run_name: str | Path,
        *,
        verbose: bool = False,
        out_suffix: str = "",
        err_suffix: str = ".err",
    ) -> None:
        super().__init__("@line@", verbose)
        self.directory = Path(run_name)
        self.out_suffix = out_suffix
        self.err_suffix = err_suffix
        self._files: dict[tuple[str, Stream], IO[str]] = {}
        self._opened: set[tuple[str, Stream]] = set()

    @property
    def run_name(self) -> str:
        """The directory, as upstream names it."""
        return str(self.directory)

    def path(self, host: str, stream: Stream) -> Path:
        """The file that receives ``host``'s ``stream``."""
        suffix = self.err_suffix if stream == STDERR else self.out_suffix
        safe = host.replace("/", "_")
        return self.directory / f"{safe}{suffix}"

    def _handle(self, host: str, stream: Stream) -> IO[str]:
        key = (host, stream)
        handle = self._files.get(key)
        if handle is None:
            # private to the user: the files hold remote output
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            # the first open of a run starts the file afresh; later ones append
            mode = "a" if key in self._opened else "w"
            path = self.path(host, stream)
            # kept open across lines, closed by close_host: no context manager
            handle = open(path, mode, encoding="utf-8", opener=_private)  # noqa: SIM115
            self._files[key] = handle
            self._opened.add(key)
        return handle

    def line(self, line: str, datatype: int | None, hostname: str) -> None:
        stream: Stream = STDERR if datatype == EXTENDED_DATA_STDERR else STDOUT
        handle = self._handle(hostname, stream)
        handle.write(self.format_line(line, hostname))
        handle.flush()  # so that `tail -f DIR/host` follows along

    def _event(self, host: str, text: str) -> None:
        self._handle(host, STDOUT).write(f"-- {text}\n")

    def close_host(self, host: str, *, create: bool = False) -> None:
        """Close ``host``'s files; with ``create``, make sure both exist (maybe empty)."""
        for stream in (STDOUT, STDERR):
            if create:
                self._handle(host, stream)
            handle = self._files.pop((host, stream), None)
            if handle is not None:
                handle.close()

    def close(self) -> None:
        """Close the files still open."""
        for handle in self._files.values():
            handle.close()
        self._files.clear()


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


class _Kept:
    """The lines kept for one host and stream, up to a size; the rest only counted."""

    __slots__ = ("dropped", "lines", "size")

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.size = 0
        self.dropped = 0


class CaptureFormatter(Formatter):
    """Keep lines in memory per host and stream, up to a bound (nothing is printed).

    What is kept per host and stream is at most ``max_bytes`` characters
    (newlines included); past that, lines are counted, not kept, and the text
    returned by :meth:`stdout` / :meth:`stderr` ends with a line saying how many
    were dropped. :meth:`forget` frees a host's lines.

    Upstream's API is there too: :meth:`start_capture` and :meth:`get_capture`
    (the stdout of every host since the last start, in arrival order, under the
    same bound).

    >>> capture = CaptureFormatter()
    >>> capture.output(OutputEvent("n1", "stdout", "hello"))
    >>> capture.stdout("n1")
    'hello\\n'

    Args:
        custom_format: upstream's template (kept for compatibility; captured text is raw).
        verbose: accepted for compatibility; nothing is printed.
        max_bytes: the bound per host and stream (None: no bound).
    """

    def __init__(
        self,
        custom_format: str = "@line@",
        verbose: bool = False,
        *,
        max_bytes: int | None = DEFAULT_CAPTURE_BYTES,
    ) -> None:
        super().__init__(custom_format, verbose)
        self.max_bytes = max_bytes
        self._kept: dict[tuple[str, Stream], _Kept] = {}
        self._lock = threading.Lock()
        self._capture = _Kept()

    def output(self, event: OutputEvent) -> None:
        if _overrides_line(self, CaptureFormatter):
            super().output(event)
            return
        self._keep(event.host, event.stream, event.line)

    def line(self, line: str, datatype: int | None, hostname: str) -> None:
        stream: Stream = STDERR if datatype == EXTENDED_DATA_STDERR else STDOUT
        self._keep(hostname, stream, line.removesuffix("\n"))

    def _keep(self, host: str, stream: Stream, text: str) -> None:
        with self._lock:
            kept = self._kept.get((host, stream))
            if kept is None:
                kept = self._kept[(host, stream)] = _Kept()
            self._add(kept, text)
            if stream == STDOUT:
                self._add(self._capture, text)

    def _add(self, kept: _Kept, text: str) -> None:
        size = len(text) + 1
        if kept.dropped or (self.max_bytes is not None and kept.size + size > self.max_bytes):
            kept.dropped += 1
            return
        kept.lines.append(text)
        kept.size += size

    def lines(self, host: str, stream: Stream = STDOUT) -> list[str]:
        """The lines kept for ``host`` on ``stream``, in order (without the drop notice)."""
        with self._lock:
            kept = self._kept.get((host, stream))
            return list(kept.lines) if kept is not None else []

    def dropped(self, host: str, stream: Stream = STDOUT) -> int:
        """How many lines of ``host`` on ``stream`` were past the bound, not kept."""
        with self._lock:
            kept = self._kept.get((host, stream))
            return kept.dropped if kept is not None else 0

    def _text(self, kept: _Kept | None) -> str:
        if kept is None:
            return ""
        text = "".join(line + "\n" for line in kept.lines)
        if kept.dropped:
            text += (
                f"[apssh: {kept.dropped} more line{'s' if kept.dropped != 1 else ''} "
                f"not kept: past {self.max_bytes} characters]\n"
            )
        return text

    def stdout(self, host: str) -> str:
        """What ``host`` wrote on stdout, one newline per line (bounded, see the class)."""
        with self._lock:
            return self._text(self._kept.get((host, STDOUT)))

    def stderr(self, host: str) -> str:
        """What ``host`` wrote on stderr, one newline per line (bounded, see the class)."""
        with self._lock:
            return self._text(self._kept.get((host, STDERR)))

    def hosts(self) -> list[str]:
        """The hosts that wrote something, sorted."""
        with self._lock:
            return sorted({host for host, _ in self._kept})

    def forget(self, host: str) -> None:
        """Drop what was kept for ``host`` (once it has been read)."""
        with self._lock:
            for stream in (STDOUT, STDERR):
                self._kept.pop((host, stream), None)

    def start_capture(self) -> None:
        """Upstream's API: start an empty capture (of every host's stdout)."""
        with self._lock:
            self._capture = _Kept()

    def get_capture(self) -> str:
        """Upstream's API: the stdout lines received since :meth:`start_capture`."""
        with self._lock:
            return self._text(self._capture)


class TeeFormatter(Formatter):
    """Send every line and event to several sinks, in order.

    Args:
        sinks: the formatters that receive everything.
        verbose: accepted like every formatter's; each sink has its own.
    """

    def __init__(self, *sinks: Formatter, verbose: bool = False) -> None:
        super().__init__(verbose=verbose)
        self.sinks = list(sinks)

    def output(self, event: OutputEvent) -> None:
        for sink in self.sinks:
            sink.output(event)

    def line(self, line: str, datatype: int | None, hostname: str) -> None:
        for sink in self.sinks:
            sink.line(line, datatype, hostname)

    def connected(self, host: str) -> None:
        for sink in self.sinks:
            sink.connected(host)

    def connect_failed(self, host: str, error: Exception) -> None:
        for sink in self.sinks:
            sink.connect_failed(host, error)

    def command_started(self, host: str, command: str) -> None:
        for sink in self.sinks:
            sink.command_started(host, command)

    def command_done(self, host: str, command: str, rc: int | None) -> None:
        for sink in self.sinks:
            sink.command_done(host, command, rc)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


DEFAULT_FORMATTER: Formatter = HostFormatter()
