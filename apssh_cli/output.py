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
the default :meth:`Formatter.output` calls it (each piece of a cut line comes as a
line of its own). A sink that needs the context (the step, the exact line end)
overrides :meth:`Formatter.output` instead.

:class:`LineSplitter` turns the byte chunks a channel delivers into lines, in
linear time and bounded memory: a line longer than :data:`MAX_LINE_BYTES` is cut
into pieces (``OutputEvent.cut``), and a last line without a newline is flushed at
the end. Bytes that are not valid UTF-8 are kept as Python's "surrogate escapes"
(U+DC80-U+DCFF, never an exception): ``line.encode("utf-8", "surrogateescape")``
gives the exact bytes back, and :class:`SubdirFormatter` writes them so.

Remote output is untrusted. Every sink that prints for a person passes the text
through :func:`escape_text` (control characters, invalid bytes and invisible
Unicode controls are shown as ``\\r``, ``\\x1b``, ``\\xff``, ``\\u202e``), so that a
host cannot drive the terminal or print a line that reads as another host's;
``escape=False`` turns that off (the CLI's ``--raw-output``). Files
(:class:`SubdirFormatter`) and captures keep the exact text.
"""

from __future__ import annotations

import logging
import os
import re
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

# a line longer than this (in bytes, its newline excluded) is cut into pieces of at
# most this size, each an OutputEvent with cut=True but the last: nothing holds a
# longer line, whatever a host prints
MAX_LINE_BYTES = 1 << 16

# what printing sinks show after a piece of a cut line (the rest follows on the next line)
CUT_MARK = " [apssh: line cut]"

# what escape_text shows as \\xHH / \\uHHHH: C0 controls but tab, DEL, C1 controls,
# Unicode format controls (category Cf: bidi overrides U+202A-U+202E and isolates
# U+2066-U+2069, zero-width characters, soft hyphen, ...), the line and paragraph
# separators U+2028/U+2029, and lone surrogates (bytes that were not UTF-8). The Cf
# list is Unicode 14's (Python 3.11) plus the format controls Unicode 15 added;
# tests/unit/test_output_safety.py checks it against the running Python's unicodedata.
_UNSAFE_RANGES = (
    (0x00, 0x08), (0x0A, 0x1F), (0x7F, 0x9F), (0xAD, 0xAD), (0x600, 0x605), (0x61C, 0x61C),
    (0x6DD, 0x6DD), (0x70F, 0x70F), (0x890, 0x891), (0x8E2, 0x8E2), (0x180E, 0x180E),
    (0x200B, 0x200F), (0x2028, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F), (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB), (0xD800, 0xDFFF), (0x110BD, 0x110BD), (0x110CD, 0x110CD),
    (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
)  # fmt: skip


def _char_class(top: int) -> re.Pattern[str]:
    """The unsafe characters up to ``top``: small classes are much faster to match."""
    ranges = [(low, min(high, top)) for low, high in _UNSAFE_RANGES if low <= top]
    spans = (f"{re.escape(chr(low))}-{re.escape(chr(high))}" for low, high in ranges)
    return re.compile("[" + "".join(spans) + "]")


_UNSAFE = _char_class(0x10FFFF)
_UNSAFE_BMP = _char_class(0xFFFF)
_UNSAFE_ASCII = _char_class(0x7F)
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_ASCII_SAFE = bytes(range(0x20, 0x7F)) + b"\t"
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r"}
# bytes that were not UTF-8, as the splitter decodes them (surrogateescape)
_UNDECODABLE = re.compile("[\udc80-\udcff]")

# the step of the work that is running (a recipe step, or a job's own name): set by
# the job for its task, read where a line is emitted, so that nodes and commands need
# not pass it along (each asyncio task sees its own value)
_CURRENT_STEP: ContextVar[str | None] = ContextVar("apssh_cli_step", default=None)


class OutputEvent(NamedTuple):
    """One line of output with its context (a named tuple: one is made per line, cheaply).

    Args:
        host: the node's label.
        stream: ``"stdout"`` or ``"stderr"``.
        line: the decoded line, without its newline (bytes that were not UTF-8
            as surrogate escapes, see the module's docstring).
        step: the step it belongs to (recipes), or None.
        end: what ended it in the stream: ``"\\n"``, ``"\\r\\n"`` (the ``\\r`` is
            not in ``line``), or ``""`` (a cut piece, or a last line without a
            newline). ``line + end`` is the exact text the host wrote.
        cut: a piece of a line longer than :data:`MAX_LINE_BYTES`: the line goes
            on in the next event of this host and stream.
    """

    host: str
    stream: Stream
    line: str
    step: str | None = None
    end: str = "\n"
    cut: bool = False


def escape_text(text: str) -> str:
    """``text`` made safe to print: nothing in it can move the cursor or hide a character.

    Tab and printable characters (any script, emoji) are left as they are, and so
    is the backslash (so this is idempotent, and paths read naturally).
    Shown escaped: ``\\n`` and ``\\r``; the other C0 controls and DEL as
    ``\\xHH`` (ESC is ``\\x1b``); a byte that was not UTF-8 as ``\\xHH`` too (always
    ``\\x80``-``\\xff``); C1 controls (U+0080-U+009F), Unicode format controls
    (bidi overrides and isolates such as U+202E, zero-width characters, ...) and
    U+2028/U+2029 as ``\\uHHHH`` (or ``\\UHHHHHHHH``).

    >>> escape_text("ok\\tbenign\\rnode2: FAKE \\x1b]52;c;eA==\\x07 \\u202e \\udcff")
    'ok\\tbenign\\\\rnode2: FAKE \\\\x1b]52;c;eA==\\\\x07 \\\\u202e \\\\xff'
    """
    # fast paths, at C speed (a regular expression costs about 10 ns a character):
    # deleting the safe bytes of a long ASCII line leaves nothing (about 0.4 ns a
    # byte); isprintable() is false for every character escaped (and for a few more,
    # such as U+00A0), about 1.3 ns a character
    if len(text) > 256 and text.isascii():
        if not text.encode("ascii").translate(None, _ASCII_SAFE):
            return text
    elif text.isprintable() or ("\t" in text and text.replace("\t", " ").isprintable()):
        return text
    if text.isascii():
        return _UNSAFE_ASCII.sub(_escaped_char, text)
    pattern = _UNSAFE if _ASTRAL.search(text) else _UNSAFE_BMP
    return pattern.sub(_escaped_char, text)


def _escaped_char(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x80:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def printable_text(text: str) -> str:
    """``text`` with the bytes that were not UTF-8 replaced (U+FFFD), for strict encoders.

    What the upstream-style ``line()`` of a user's formatter, error messages and
    recipe captures receive: text that any UTF-8 stream accepts.
    """
    return _UNDECODABLE.sub("\ufffd", text) if _UNDECODABLE.search(text) else text


class EscapeLogFilter(logging.Filter):
    """Escape log messages (:func:`escape_text`): they may quote remote names (file names).

    Installed on the ``apssh_cli`` logger by the command line, so that a warning
    such as "skipping NAME" cannot drive the terminal either.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        escaped = escape_text(message)
        if escaped != message:
            record.msg, record.args = escaped, ()
        return True


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
    """Cut a byte stream into lines, in linear time and bounded memory.

    A line is decoded once it is complete (a newline never falls inside a UTF-8
    character, so no decoder state crosses lines); bytes that are not UTF-8
    become surrogate escapes. A line longer than ``max_line`` bytes is cut into
    pieces of at most ``max_line`` bytes, at a character boundary: nothing is
    held longer than that, and no byte is copied more than a bounded number of
    times (the old way, joining the unfinished line on every chunk, was quadratic).

    >>> splitter = LineSplitter(max_line=4)
    >>> splitter.split(b"a\\r\\nbc")
    [('a', '\\r\\n', False)]
    >>> splitter.split(b"defg\\n\\xff")
    [('bcde', '', True), ('fg', '\\n', False)]
    >>> splitter.flush()
    [('\\udcff', '', False)]

    Args:
        max_line: the longest line kept whole, in bytes (:data:`MAX_LINE_BYTES`).
    """

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        if max_line < 4:  # a cut must always leave room for a whole UTF-8 character
            raise ValueError(f"max_line must be at least 4, not {max_line}")
        self.max_line = max_line
        self._pending = bytearray()

    def split(self, data: bytes) -> list[Piece]:
        """Add a chunk; return the pieces it completes (lines, and pieces of long lines)."""
        pieces: list[Piece] = []
        last = data.rfind(b"\n")
        if last < 0:
            self._add(data, pieces)
            return pieces
        start = 0
        if self._pending:  # the chunk's first line ends the pending one
            first = data.find(b"\n")
            self._add(data[:first], pieces)
            pieces.append(_piece(bytes(self._pending)))
            self._pending.clear()
            start = first + 1
        if start <= last:
            block = data[start:last]  # whole lines, the last newline left out
            # a chunk holds many short lines: decode and split them in one go (C speed)
            if len(block) <= self.max_line or max(map(len, block.split(b"\n"))) <= self.max_line:
                text = _decode(block)
                if "\r" in text:
                    pieces += [_text_piece(line) for line in text.split("\n")]
                else:
                    pieces += [(line, "\n", False) for line in text.split("\n")]
            else:
                for line in block.split(b"\n"):
                    if len(line) > self.max_line:
                        self._add(line, pieces)
                        line = bytes(self._pending)
                        self._pending.clear()
                    pieces.append(_piece(line))
        self._add(data[last + 1 :], pieces)
        return pieces

    def feed(self, data: bytes) -> list[str]:
        """Add a chunk; return the texts of the pieces it completes (without newlines)."""
        return [text for text, _, _ in self.split(data)]

    def flush(self) -> list[Piece]:
        """End of stream: the last line without a newline, if any."""
        if not self._pending:
            return []
        line = bytes(self._pending)
        self._pending.clear()
        return [(_decode(line), "", False)]

    def _add(self, data: bytes, pieces: list[Piece]) -> None:
        # the unfinished line grows by at most one chunk before it is cut down again
        pending = self._pending
        pending += data
        while len(pending) > self.max_line:
            cut = _char_boundary(pending, self.max_line)
            pieces.append((_decode(bytes(pending[:cut])), "", True))
            del pending[:cut]


# what LineSplitter returns for each line or piece: (text, end, cut), as in OutputEvent
Piece = tuple[str, str, bool]


def _piece(line: bytes) -> Piece:
    return _text_piece(_decode(line))


def _text_piece(line: str) -> Piece:
    # CRLF output (Windows tools, some pagers) shows as plain lines
    if line.endswith("\r"):
        return (line[:-1], "\r\n", False)
    return (line, "\n", False)


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _char_boundary(data: bytearray, limit: int) -> int:
    """Where to cut ``data`` at most ``limit`` bytes in, not inside a UTF-8 character."""
    for cut in range(limit, limit - 4, -1):
        if data[cut] & 0xC0 != 0x80:  # not a continuation byte: a character starts here
            return cut
    return limit  # not UTF-8 there anyway


def datatype_of(stream: Stream) -> int | None:
    """Upstream's ``datatype`` for a stream: EXTENDED_DATA_STDERR, or None for stdout."""
    return EXTENDED_DATA_STDERR if stream == STDERR else None


def _sys_stream(stream: Stream) -> IO[str]:
    return sys.stderr if stream == STDERR else sys.stdout


class Formatter:
    """Base class of sinks: receives output lines and life-cycle events.

    Nodes call :meth:`output` for every line; its default hands the line to
    :meth:`line` in upstream apssh's form, which by default writes it escaped
    (:func:`escape_text`) to stdout or stderr. Override :meth:`output` to get the
    context (the step), or :meth:`line` as upstream formatters do (they receive
    :func:`printable_text`: no surrogate escapes, but control characters as the
    host wrote them, so a formatter that prints should escape them).

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
    # printing sinks show remote text through escape_text (False: the raw pass-through)
    escape = True

    def __init__(self, custom_format: str = "@line@", verbose: bool = False) -> None:
        self.custom_format = custom_format
        self.verbose = verbose

    # ------------------------------------------------------------ lines

    def output(self, event: OutputEvent) -> None:
        """Handle one line with its context (default: :meth:`line`, upstream style)."""
        text = event.line
        if type(self).line.__module__ != __name__:  # a user's line(): text it can print
            text = printable_text(text)
        self.line(text + "\n", datatype_of(event.stream), event.host)

    def line(self, line: str, datatype: int | None, hostname: str) -> None:
        """Handle one line, upstream apssh's way: ``line`` ends with its newline.

        Args:
            line: the text, newline included.
            datatype: :data:`EXTENDED_DATA_STDERR` for stderr, None for stdout.
            hostname: the node's label.
        """
        out = sys.stderr if datatype == EXTENDED_DATA_STDERR else sys.stdout
        out.write(self.shown(line.removesuffix("\n")) + "\n")

    def shown(self, text: str, cut: bool = False) -> str:
        """Remote text as printed: escaped (unless ``escape`` is off), cuts marked."""
        # unescaped, the bytes that were not UTF-8 are replaced: a strict stream takes the rest
        text = escape_text(text) if self.escape else printable_text(text)
        return text + CUT_MARK if cut else text

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

    def command_failed(self, host: str, command: str, message: str) -> None:
        """A transfer (or the install of a script) failed, for ``message``: apssh's
        words, not the host's output. By default a line on the host's stderr; a sink
        that reports failures itself (the command line's ``[failed]`` line) may say
        it there instead, once."""
        self.output(OutputEvent(host, STDERR, message, current_step()))

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


def _ending(event: OutputEvent) -> str:
    """What follows a line in exact output: its own end; a newline if it had none (the last)."""
    return event.end if event.end or event.cut else "\n"


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
        escape: show remote text escaped (:func:`escape_text`); False passes
            control characters through to the terminal, which lets a host drive it.
    """

    def __init__(
        self,
        custom_format: str = "@line@",
        verbose: bool = False,
        *,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        escape: bool = True,
    ) -> None:
        super().__init__(custom_format, verbose)
        self._stdout = stdout
        self._stderr = stderr
        self.escape = escape

    def _out(self, stream: Stream) -> IO[str]:
        chosen = self._stderr if stream == STDERR else self._stdout
        return chosen if chosen is not None else _sys_stream(stream)

    def _event(self, host: str, text: str) -> None:
        # events quote errors, which may quote the remote side: always escaped
        self._out(STDERR).write(f"{host}: -- {escape_text(text)}\n")

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

    def output(self, event: OutputEvent) -> None:
        if _overrides_line(self, TerminalFormatter):
            super().output(event)
            return
        text = self.shown(event.line, event.cut)
        self._out(event.stream).write(self.format_line(text, event.host) + "\n")

    def line(self, line: str, datatype: int | None, hostname: str) -> None:
        stream: Stream = STDERR if datatype == EXTENDED_DATA_STDERR else STDOUT
        text = self.shown(line.removesuffix("\n"))
        self._out(stream).write(self.format_line(text, hostname) + "\n")


class _FixedFormatter(TerminalFormatter):
    """A TerminalFormatter whose template is its class's ``TEMPLATE``."""

    TEMPLATE = "@line@"

    def __init__(
        self,
        *,
        verbose: bool = False,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        escape: bool = True,
    ) -> None:
        super().__init__(self.TEMPLATE, verbose, stdout=stdout, stderr=stderr, escape=escape)


class RawFormatter(_FixedFormatter):
    """Print lines without a prefix (``@line@``); escaped like every printing sink."""


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
        escape: show the remote text escaped (:func:`escape_text`, the default).
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
        escape: bool = True,
    ) -> None:
        super().__init__("@line@", verbose, stdout=stdout, stderr=stderr, escape=escape)
        self.fmt = fmt
        self.fields = fields or {}
        self.localtime = localtime
        self._uses_strftime = "%" in fmt
        self._uses_time = self._uses_strftime or "{time" in fmt
        self._values: dict[str, dict[str, Any]] = {}

    def render(self, host: str, text: str, step: str | None = None) -> str:
        """The line as it will be printed, without the newline (``text`` as it is given)."""
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
        text = self.shown(event.line, event.cut)
        self._out(event.stream).write(self.render(event.host, text, event.step) + "\n")

    def line(self, line: str, datatype: int | None, hostname: str) -> None:
        stream: Stream = STDERR if datatype == EXTENDED_DATA_STDERR else STDOUT
        text = self.shown(line.removesuffix("\n"))
        self._out(stream).write(self.render(hostname, text) + "\n")

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
        escape: bool = True,
    ) -> None:
        super().__init__(
            "{time} {host}:{line}", verbose=verbose, stdout=stdout, stderr=stderr, escape=escape
        )


class SubdirFormatter(VerboseFormatter):
    """Write each host's output to files in a directory (upstream's layout by default).

    stdout goes to ``run_name/<host>``, stderr to ``run_name/<host>.err`` (the
    suffixes are parameters: the CLI's ``-o`` uses ``.out`` and ``.err``). The
    directory is created on the first line; files are opened on a host's first
    line and appended to (a run with several commands keeps them all). Call
    :meth:`close_host` when a host is done (this keeps open files to the hosts
    that run), and :meth:`close` at the end.

    The files hold the exact bytes the hosts wrote (with the default ``@line@``
    template): control characters as they are, bytes that are not UTF-8 too, a
    ``\\r\\n`` as it came, the pieces of a cut line joined again. Only a last line
    without a newline gets one.

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
            # kept open across lines, closed by close_host: no context manager; private;
            # surrogateescape: the bytes that were not UTF-8 are written back as they came
            handle = open(  # noqa: SIM115
                path, mode, encoding="utf-8", errors="surrogateescape", opener=_private
            )
            self._files[key] = handle
            self._opened.add(key)
        return handle

    def output(self, event: OutputEvent) -> None:
        if _overrides_line(self, SubdirFormatter):
            super().output(event)
            return
        handle = self._handle(event.host, event.stream)
        handle.write(self.format_line(event.line, event.host) + _ending(event))
        handle.flush()  # so that `tail -f DIR/host` follows along

    def line(self, line: str, datatype: int | None, hostname: str) -> None:
        stream: Stream = STDERR if datatype == EXTENDED_DATA_STDERR else STDOUT
        handle = self._handle(hostname, stream)
        handle.write(self.format_line(line, hostname))
        handle.flush()

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
    """The text kept for one host and stream, up to a size; the rest only counted."""

    __slots__ = ("dropped", "full", "parts", "size")

    def __init__(self) -> None:
        self.parts: list[str] = []  # each line (or piece of a cut line) with its end
        self.size = 0
        self.dropped = 0  # lines not kept
        self.full = False


class CaptureFormatter(Formatter):
    """Keep output in memory per host and stream, up to a bound (nothing is printed).

    What is kept per host and stream is at most ``max_bytes`` characters
    (newlines included); past that, lines are counted, not kept, and the text
    returned by :meth:`stdout` / :meth:`stderr` ends with a line saying how many
    were dropped. :meth:`forget` frees a host's lines.

    The text is what the host wrote (a ``\\r\\n`` as it came, a cut line joined
    again), but for a newline after a last line that had none (several commands
    do not run into each other). Bytes that were not
    UTF-8 are replaced (U+FFFD) unless ``exact`` is set: then they stay surrogate
    escapes (``text.encode("utf-8", "surrogateescape")`` gives the bytes back).

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
        exact: keep the bytes that were not UTF-8 as surrogate escapes.
    """

    def __init__(
        self,
        custom_format: str = "@line@",
        verbose: bool = False,
        *,
        max_bytes: int | None = DEFAULT_CAPTURE_BYTES,
        exact: bool = False,
    ) -> None:
        super().__init__(custom_format, verbose)
        self.max_bytes = max_bytes
        self.exact = exact
        self._kept: dict[tuple[str, Stream], _Kept] = {}
        self._lock = threading.Lock()
        self._capture = _Kept()

    def output(self, event: OutputEvent) -> None:
        if _overrides_line(self, CaptureFormatter):
            super().output(event)
            return
        self._keep(event.host, event.stream, event.line + _ending(event), event.cut)

    def line(self, line: str, datatype: int | None, hostname: str) -> None:
        stream: Stream = STDERR if datatype == EXTENDED_DATA_STDERR else STDOUT
        self._keep(hostname, stream, line if line.endswith("\n") else line + "\n", False)

    def _keep(self, host: str, stream: Stream, text: str, cut: bool) -> None:
        with self._lock:
            kept = self._kept.get((host, stream))
            if kept is None:
                kept = self._kept[(host, stream)] = _Kept()
            self._add(kept, text, cut)
            if stream == STDOUT:
                self._add(self._capture, text, cut)

    def _add(self, kept: _Kept, text: str, cut: bool) -> None:
        if not kept.full and (self.max_bytes is None or kept.size + len(text) <= self.max_bytes):
            kept.parts.append(text)
            kept.size += len(text)
            return
        kept.full = True  # once full, nothing more: the text kept is a prefix of the output
        if not cut:  # a line is counted once, with its last piece
            kept.dropped += 1

    def lines(self, host: str, stream: Stream = STDOUT) -> list[str]:
        """The lines kept for ``host`` on ``stream``, in order (without the drop notice)."""
        with self._lock:
            kept = self._kept.get((host, stream))
            if kept is None:
                return []
            lines = self._shown("".join(kept.parts)).split("\n")
        if lines[-1] == "":  # the text ended with a newline
            lines.pop()
        return [line.removesuffix("\r") for line in lines]

    def dropped(self, host: str, stream: Stream = STDOUT) -> int:
        """How many lines of ``host`` on ``stream`` were past the bound, not kept."""
        with self._lock:
            kept = self._kept.get((host, stream))
            return kept.dropped if kept is not None else 0

    def _shown(self, text: str) -> str:
        return text if self.exact else printable_text(text)

    def _text(self, kept: _Kept | None) -> str:
        if kept is None:
            return ""
        text = self._shown("".join(kept.parts))
        dropped = kept.dropped
        if dropped:
            if not text.endswith("\n") and text:
                text += "\n"
            text += (
                f"[apssh: {dropped} more line{'s' if dropped != 1 else ''} "
                f"not kept: past {self.max_bytes} characters]\n"
            )
        return text

    def stdout(self, host: str) -> str:
        """What ``host`` wrote on stdout (bounded, see the class)."""
        with self._lock:
            return self._text(self._kept.get((host, STDOUT)))

    def stderr(self, host: str) -> str:
        """What ``host`` wrote on stderr (bounded, see the class)."""
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

    def command_failed(self, host: str, command: str, message: str) -> None:
        for sink in self.sinks:
            sink.command_failed(host, command, message)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


DEFAULT_FORMATTER: Formatter = HostFormatter()
