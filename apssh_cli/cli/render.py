"""What the user sees of a run: streamed lines, gathered output, JSON, files, progress, summary.

One `Renderer` receives every event of a run (a host starts, a line of output, a
host is done) and writes to the sinks chosen on the command line:

- streamed ``host: line`` (default; short names aligned), ``--raw``, ``--format``;
- ``--gather``: identical (output, status) printed once under a folded host list;
- ``--json``: one object per host as it completes, then one summary object;
- ``--out-dir``: ``DIR/<host>.out`` and ``DIR/<host>.err``; ``--mark``, ``--failed-to``;
- a live progress line on stderr (terminals only) that never tears output lines;
- the final summary on stderr, and the exit status.

Colour (``--color``, :func:`colour_wanted`): host names and statuses, on a
terminal only unless ``--color always``; ``NO_COLOR`` turns the default off. The
codes are apssh's own, put around text that is already escaped: a host's text
never carries a code to the terminal.

Remote text is untrusted: every line for a person (streamed, ``--format``, ``-b``,
notes and error lines) goes through :func:`~apssh_cli.output.escape_text`, and a
``-b`` block indents its hosts' lines (:data:`GATHER_INDENT`), so that no host can
print a header of its own; ``--raw-output`` passes the lines through unescaped.
``--json`` and ``--out-dir`` keep the exact text (JSON escapes it, see `json_line`).

It is built on the library's sinks (:mod:`apssh_cli.output`); only ``--json`` and
``--gather`` keep output, bounded per host (:data:`~apssh_cli.output.DEFAULT_CAPTURE_BYTES`).
This module is pure Python (no asyncssh): the fleet engine drives it, and tests
drive it directly.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import shutil
import string
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import click

from apssh_cli.cli.exitcodes import ExitCode
from apssh_cli.errors import ConfigError
from apssh_cli.inventory.hostrange import fold
from apssh_cli.inventory.secrets import SecretMask
from apssh_cli.inventory.targets import Target
from apssh_cli.output import (
    CUT_MARK,
    DEFAULT_CAPTURE_BYTES,
    MAX_LINE_BYTES,
    STDERR,
    CaptureFormatter,
    EscapeLogFilter,
    Formatter,
    HostFormatter,
    OutputEvent,
    SubdirFormatter,
    TeeFormatter,
    current_step,
    escape_text,
)
from apssh_cli.results import HostResult, Status, exit_code

FORMAT_FIELDS = ("host", "fqdn", "user", "line", "time", "step")
JSON_SCHEMA_VERSION = 1

# every line of a -b block starts with this: a host's own line can never start at
# the first column, where the rules and the header of a block are
GATHER_INDENT = "  "

# what JSON output escapes although json.dumps(ensure_ascii=False) would not: C1
# controls, Unicode format controls and separators (a terminal that shows the JSON
# cannot be driven by them) and lone surrogates, the bytes that were not UTF-8
# (\udc80-\udcff: Python's json.loads and "surrogateescape" give the bytes back)
_JSON_UNSAFE = re.compile(
    "[\x7f-\x9f\xad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ud800-\udfff]"
)

# summary lines, in this order: (label, statuses)
SUMMARY_ROWS: tuple[tuple[str, tuple[Status, ...]], ...] = (
    ("failed", (Status.FAILED,)),
    ("timed out", (Status.TIMEOUT,)),
    ("unreachable", (Status.UNREACHABLE,)),
    ("auth refused", (Status.AUTH_REFUSED,)),
    ("hostkey refused", (Status.HOSTKEY_REFUSED,)),
    ("interrupted", (Status.INTERRUPTED,)),
    ("not started", (Status.SKIPPED,)),
)


COLOR_CHOICES = ("auto", "always", "never")
HOST_COLOUR = "cyan"
STATUS_COLOURS: dict[Status, str] = {
    Status.OK: "green",
    Status.FAILED: "red",
    Status.SKIPPED: "yellow",
    Status.INTERRUPTED: "yellow",
    Status.TIMEOUT: "yellow",
    Status.UNREACHABLE: "magenta",
    Status.AUTH_REFUSED: "magenta",
    Status.HOSTKEY_REFUSED: "magenta",
}


def colour_wanted(choice: str, stream: Any, environ: Mapping[str, str] | None = None) -> bool:
    """Whether to colour what goes to ``stream``: ``--color always|never``, or for
    ``auto`` a terminal (not ``TERM=dumb``) when ``NO_COLOR`` is unset or empty."""
    if choice == "always":
        return True
    if choice == "never":
        return False
    environ = os.environ if environ is None else environ
    if environ.get("NO_COLOR") or environ.get("TERM") == "dumb":
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def paint(text: str, colour: str | None, on: bool, *, bold: bool = False) -> str:
    """``text`` in ``colour`` when ``on`` (apssh's own text only, never a host's)."""
    if not on or colour is None:
        return text
    return click.style(text, fg=colour, bold=bold or None)


def exit_status(results: Iterable[HostResult], *, interrupted: bool = False) -> ExitCode:
    """The exit status of a run: 130 after Ctrl-C, else the most severe status present."""
    return exit_code((result.status for result in results), interrupted=interrupted)


def check_format(template: str) -> None:
    """Check a ``--format`` template before anything runs.

    Raises:
        ConfigError: an unknown field, or a malformed template.
    """
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ConfigError(f"bad --format {template!r}: {exc}") from exc
    for name in fields:
        if name not in FORMAT_FIELDS:
            known = ", ".join("{" + known + "}" for known in FORMAT_FIELDS)
            raise ConfigError(f"bad --format {template!r}: unknown field {{{name}}} (use {known})")


def short_names(targets: Sequence[Target]) -> dict[str, str]:
    """Names to show: without the domain when that keeps them distinct (not for addresses)."""
    shorts: dict[str, str] = {}
    for target in targets:
        name = target.name
        if "." in name and not _is_address(name):
            name = name.split(".", 1)[0]
        shorts[target.name] = name
    if len(set(shorts.values())) < len(shorts):
        return {target.name: target.name for target in targets}
    return shorts


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class OutputOptions:
    """The output choices of the command line.

    Args:
        raw: ``--raw``: lines without the host prefix.
        raw_output: ``--raw-output``: remote text printed unescaped (control
            characters reach the terminal; see docs/cli.md for the risk).
        fmt: ``--format``: a template with {host} {fqdn} {user} {line} {time} and strftime codes.
        gather: ``--gather``: identical outputs printed once, at the end.
        json: ``--json``: JSON lines on stdout instead of text.
        out_dir: ``--out-dir``: per-host files; nothing is streamed on stdout.
        mark: ``--mark``: also write succeeded.txt and failed.txt in out_dir.
        failed_to: ``--failed-to``: write the targets to retry, for ``-t @FILE``.
        progress: show the live progress line (only on a terminal).
        summary: print the final summary on stderr.
        color_stdout: colour host names on stdout (streamed lines, ``-b`` headers).
        color_stderr: colour host names and statuses on stderr.
    """

    raw: bool = False
    raw_output: bool = False
    fmt: str | None = None
    gather: bool = False
    json: bool = False
    out_dir: Path | None = None
    mark: bool = False
    failed_to: Path | None = None
    progress: bool = False
    summary: bool = True
    color_stdout: bool = False
    color_stderr: bool = False

    @property
    def captures(self) -> bool:
        """Whether output must be kept per host (gathered, JSON, or out-dir marks)."""
        return self.gather or self.json

    @property
    def streams(self) -> bool:
        """Whether lines are printed as they come."""
        return not (self.gather or self.json or self.out_dir is not None)


@dataclass
class _HostState:
    target: Target
    started: float | None = None
    done: bool = False


class _GuardedStream:
    """A terminal stream shared with the progress line, and that may go away.

    Each write clears the progress line first and draws it again after, so that
    output lines are never torn; a broken stdout (`apssh ... | head`) is noted
    once and further writes are dropped.
    """

    def __init__(self, renderer: Renderer, stream: TextIO, *, is_stdout: bool) -> None:
        self._renderer = renderer
        self._stream = stream
        self._is_stdout = is_stdout
        self._flush_pending = False

    def write(self, text: str) -> int:
        renderer = self._renderer
        if self._is_stdout and renderer.stdout_broken:
            return 0
        renderer._clear_progress()
        try:
            self._stream.write(text)
            if renderer.options.progress:  # the progress line comes next: flush first
                self._stream.flush()
            else:
                self._flush_soon()
        except BrokenPipeError:
            self._broken()
            return 0
        renderer._redraw()
        return len(text)

    def _flush_soon(self) -> None:
        # one flush per turn of the event loop, not one per line: a chunk of output
        # holds many lines, and a flush is a system call
        if self._flush_pending:
            return
        import asyncio  # here, where it is needed (a flush inside a run)

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # outside a run (tests, the summary): now
            self.flush()
            return
        self._flush_pending = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_pending = False
        try:
            self._stream.flush()
        except BrokenPipeError:
            if self._is_stdout:
                self._renderer._stdout_gone()
            # a closed stderr: nowhere left to say anything; the exit status still tells

    def _broken(self) -> None:
        if not self._is_stdout:
            raise BrokenPipeError("stderr was closed")
        self._renderer._stdout_gone()


class Renderer(Formatter):
    """The sink of a command-line run: builds the output sinks the options ask for.

    It is the formatter every node writes to, and the observer of the fleet
    engine (host started, host done). Lines go to sinks of
    :mod:`apssh_cli.output`: a :class:`~apssh_cli.output.HostFormatter` for streamed
    text (aligned short names, ``--raw``, ``--format``), a bounded
    :class:`~apssh_cli.output.CaptureFormatter` only for ``--json`` and ``--gather``,
    a :class:`~apssh_cli.output.SubdirFormatter` for ``--out-dir``. Nothing else
    keeps output: a streamed run holds no line in memory.

    Args:
        targets: every host of the run, in order.
        options: the output choices.
        stdout: where output goes (remote stdout, JSON, gathered output).
        stderr: remote stderr, errors, progress and summary.
        clock: seconds, monotonic (tests pass a fake one).
        localtime: the time used by ``--format`` ({time} and strftime codes).
        width: the terminal width, for the progress line.
        verbose: show connection failures and command events as notes.
        capture_bytes: what ``--json`` and ``--gather`` keep per host and stream.
    """

    def __init__(
        self,
        targets: Sequence[Target],
        options: OutputOptions,
        *,
        stdout: TextIO,
        stderr: TextIO,
        clock: Callable[[], float] = time.monotonic,
        localtime: Callable[[], time.struct_time] = time.localtime,
        width: Callable[[], int] = lambda: shutil.get_terminal_size().columns,
        verbose: bool = False,
        capture_bytes: int | None = DEFAULT_CAPTURE_BYTES,
    ) -> None:
        super().__init__(verbose=verbose)
        if options.fmt is not None:
            check_format(options.fmt)
        self.options = options
        self._out = _GuardedStream(self, stdout, is_stdout=True)
        self._err = _GuardedStream(self, stderr, is_stdout=False)
        self._raw_err = stderr
        self._clock = clock
        self._localtime = localtime
        self._width = width
        self._hosts = {target.name: _HostState(target) for target in targets}
        # a path template may have put an inventory secret in a command or an error
        self._secrets = SecretMask.of_hosts(hop for target in targets for hop in target.route)
        self._short = short_names(targets)
        self._pad = max((len(name) for name in self._short.values()), default=0)
        self._results: dict[str, HostResult] = {}
        self._gathered: dict[str, str] = {}  # identical outputs share one string
        self._started_at = clock()
        self._progress_shown = False
        self.stdout_broken = False
        # called once when stdout goes away (`apssh ... | head`): the run stops
        self.on_broken_stdout: Callable[[], None] | None = None
        if options.out_dir is not None:
            try:
                options.out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"cannot create --out-dir: {exc.strerror or exc}", source=str(options.out_dir)
                ) from exc
        self._stream_sink = self._streamer(targets)
        self._capture = (
            CaptureFormatter(max_bytes=capture_bytes, exact=True) if options.captures else None
        )
        self._files = (
            SubdirFormatter(options.out_dir, out_suffix=".out", err_suffix=".err")
            if options.out_dir is not None
            else None
        )
        sinks = [self._stream_sink, self._capture, self._files]
        self._sink = TeeFormatter(*(sink for sink in sinks if sink is not None))

    def _streamer(self, targets: Sequence[Target]) -> Formatter | None:
        options = self.options
        if not (options.streams or options.gather):
            return None
        if options.raw:
            template = "{line}"
        elif options.fmt is not None:
            template = options.fmt
        else:
            template = "{label} {line}"

        def streamer(coloured: bool) -> HostFormatter:
            fields = {
                target.name: {
                    "host": self._short[target.name],
                    "label": self._padded(target.name, coloured),
                    "fqdn": target.host.hostname,
                    "user": target.host.user or "",
                }
                for target in targets
            }
            # out and err are our guarded streams (typed as text streams for the sink)
            return HostFormatter(
                template,
                stdout=self._out,  # type: ignore[arg-type]
                stderr=self._err,  # type: ignore[arg-type]
                fields=fields,
                localtime=self._localtime,
                escape=not options.raw_output,
            )

        to_stderr = _StderrOnly(streamer(options.color_stderr))
        if options.gather:  # gathered stdout is printed at the end; stderr as it comes
            return to_stderr
        if options.color_stdout == options.color_stderr:
            return streamer(options.color_stdout)
        return _ByStream(streamer(options.color_stdout), to_stderr)

    # ------------------------------------------------------------ events

    def host_started(self, name: str) -> None:
        """A host's job started (it counts as running for the progress line)."""
        state = self._hosts.get(name)
        if state is not None and state.started is None:
            state.started = self._clock()
            self._redraw()

    def output(self, event: OutputEvent) -> None:
        """One line of a host's output, to every sink."""
        if event.host not in self._hosts:  # a gateway's own output, if any: not part of the run
            return
        if self._secrets:  # to every sink: terminal, --gather, --json, --out-dir files
            event = event._replace(line=self._secrets.text(event.line))
        self._sink.output(event)

    def note(self, name: str, text: str) -> None:
        """A verbose event (connected, command started or done): one line on stderr."""
        state = self._hosts.get(name)
        on = self.options.color_stderr
        # a gateway is not one of the run's hosts
        label = self._padded(name, on) if state is not None else paint(f"{name}:", HOST_COLOUR, on)
        # notes quote errors and the library's log, which may quote remote names
        self._err.write(f"{label} -- {escape_text(self._secrets.text(text))}\n")

    # the events below come only from verbose (-v) nodes; "connected" is left to
    # the library's log ("connected to ADDR via GATEWAY")
    def connected(self, host: str) -> None:
        pass

    def connect_failed(self, host: str, error: Exception) -> None:
        if self.verbose:  # otherwise the host's [unreachable] line says it
            self.note(host, f"connection failed: {error}")

    def command_started(self, host: str, command: str) -> None:
        self.note(host, f"start: {command}")

    def command_done(self, host: str, command: str, rc: int | None) -> None:
        self.note(host, f"done: {command} (rc={rc})")

    def command_failed(self, host: str, command: str, message: str) -> None:
        """A transfer failed: its host's ``[failed]`` line says why, so the terminal
        gets no stderr line of it too; files and captures (``-o``, ``--json``) do."""
        event = OutputEvent(host, STDERR, message, current_step())
        if self.options.gather:  # -b shows no error for a failed host: its stderr says it
            self.output(event)
            return
        if host not in self._hosts:
            return
        event = event._replace(line=self._secrets.text(event.line))
        for sink in (self._capture, self._files):
            if sink is not None:
                sink.output(event)

    def host_done(self, result: HostResult) -> None:
        """A host finished (any status): JSON object, error line, files closed."""
        state = self._hosts.get(result.host)
        if state is None or state.done:
            return
        state.done = True
        if result.error:
            result.error = self._secrets.text(result.error)
        if self._capture is not None:
            result.stdout = self._capture.stdout(result.host)
            result.stderr = self._capture.stderr(result.host)
            self._capture.forget(result.host)
            if self.options.gather:
                result.stdout = self._gathered.setdefault(result.stdout, result.stdout)
            if self.options.json:  # printed now: nothing to keep
                record = host_record(result)
                result.stdout = result.stderr = ""
        self._results[result.host] = result
        if self._files is not None:
            self._files.close_host(result.host, create=result.status is not Status.SKIPPED)
        if self.options.json:
            self._out.write(json_line(record) + "\n")
        elif self.stdout_broken:  # stopping quietly: `apssh ... | head`
            pass
        elif result.status is not Status.OK and result.error and not self.options.gather:
            error = escape_text(result.error)
            on = self.options.color_stderr
            label = self._padded(result.host, on)
            status = paint(f"[{result.status}]", STATUS_COLOURS.get(result.status), on)
            self._err.write(f"{label} {status} {error}\n")
        else:
            self._redraw()

    def tick(self) -> None:
        """Redraw the progress line (the slowest host's time moves on)."""
        self._redraw()

    def finish(self, results: Sequence[HostResult], *, interrupted: bool = False) -> ExitCode:
        """End of the run: remaining records, gathered output, files, summary; the exit status.

        Args:
            results: one per target; hosts never reported get reported here
                (as skipped when absent from ``results``).
            interrupted: the run was stopped (Ctrl-C, a signal).
        """
        for result in results:
            if result.host not in self._results:
                self.host_done(result)
        for name in self._hosts:
            if name not in self._results:  # never reported: never started
                self.host_done(HostResult(name, Status.SKIPPED))
        ordered = [self._results[name] for name in self._hosts if name in self._results]
        status = exit_status(ordered, interrupted=interrupted)
        self._clear_progress()
        duration = self._clock() - self._started_at
        if self.options.gather:
            self._print_gathered(ordered)
        if self.options.json:
            record = summary_record(ordered, status, duration)
            self._out.write(json.dumps(record) + "\n")
        self._out.flush()
        self._write_lists(ordered)
        if self.options.summary:
            lines = summary_lines(
                ordered, duration, interrupted=interrupted, colour=self.options.color_stderr
            )
            for text in lines:
                self._raw_err.write(text + "\n")
        self._raw_err.flush()
        return status

    def close(self) -> None:
        """Close any file still open (after an error)."""
        self._sink.close()

    # ------------------------------------------------------------ text

    def _label(self, state: _HostState) -> str:
        return (self._short[state.target.name] + ":").ljust(self._pad + 1)

    def _padded(self, name: str, coloured: bool) -> str:
        """A host's label, aligned; the colour goes around the name, not the padding."""
        label = self._short[name] + ":"
        return paint(label, HOST_COLOUR, coloured) + " " * (self._pad + 1 - len(label))

    def _print_gathered(self, results: Sequence[HostResult]) -> None:
        groups: dict[tuple[str, str, int | None, str | None], list[str]] = {}
        for result in results:
            if result.status is Status.SKIPPED:
                continue
            error = result.error if result.status is not Status.FAILED else None
            key = (result.stdout, str(result.status), result.rc, error)
            groups.setdefault(key, []).append(result.host)
        on = self.options.color_stdout
        for (stdout, status, rc, error), names in groups.items():
            header = f"{fold(names)} ({len(names)})"
            shown = paint(header, HOST_COLOUR, on)
            trouble = ""
            if status != str(Status.OK):
                trouble += f" {status}"
            if rc not in (None, 0):
                trouble += f" rc={rc}"
            header += trouble
            shown += paint(trouble, STATUS_COLOURS.get(Status(status)), on)
            if error:
                header += f": {escape_text(error)}"
                shown += f": {escape_text(error)}"
            rule = "-" * min(max(len(header), 15), 79)
            self._out.write(f"{rule}\n{shown}\n{rule}\n")
            if stdout:
                self._out.write(self._block(stdout))

    def _block(self, text: str) -> str:
        """A gathered output as printed: each line indented, escaped, long ones cut."""
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        shown = []
        escape = not self.options.raw_output
        for line in lines:
            line = line.removesuffix("\r")
            # the capture joined the pieces of long lines again: cut them as streaming does
            while len(line) > MAX_LINE_BYTES:
                piece, line = line[:MAX_LINE_BYTES], line[MAX_LINE_BYTES:]
                shown.append(GATHER_INDENT + (escape_text(piece) if escape else piece) + CUT_MARK)
            shown.append(GATHER_INDENT + (escape_text(line) if escape else line))
        return "".join(line + "\n" for line in shown)

    def _write_lists(self, results: Sequence[HostResult]) -> None:
        failed = [r for r in results if r.status is not Status.OK]
        if self.options.failed_to is not None:
            specs = [self._hosts[r.host].target.spec() for r in failed]
            self._write_names(self.options.failed_to, specs)
        if self.options.mark and self.options.out_dir is not None:
            ok = [r.host for r in results if r.status is Status.OK]
            self._write_names(self.options.out_dir / "succeeded.txt", ok)
            self._write_names(self.options.out_dir / "failed.txt", [r.host for r in failed])

    def _write_names(self, path: Path, names: Sequence[str]) -> None:
        # the hosts have run: a list that cannot be written is reported, not fatal
        try:
            path.write_text("".join(name + "\n" for name in names), encoding="utf-8")
        except OSError as exc:
            self._raw_err.write(f"apssh: cannot write {path}: {exc.strerror or exc}\n")

    # ------------------------------------------------------------ progress

    def _stdout_gone(self) -> None:
        if not self.stdout_broken:
            self.stdout_broken = True
            if self.on_broken_stdout is not None:
                self.on_broken_stdout()

    def _clear_progress(self) -> None:
        if self._progress_shown:
            self._raw_err.write("\r\x1b[K")
            self._raw_err.flush()
            self._progress_shown = False

    def _redraw(self) -> None:
        if not self.options.progress:
            return
        text = self.progress_text()[: max(10, self._width() - 1)]
        self._raw_err.write("\r\x1b[K" + text)
        self._raw_err.flush()
        self._progress_shown = True

    def progress_text(self) -> str:
        """The progress line: done/total, failed so far, running, the slowest running host."""
        total = len(self._hosts)
        done = len(self._results)
        failed = sum(1 for r in self._results.values() if r.status is not Status.OK)
        now = self._clock()
        running = [
            (now - state.started, name)
            for name, state in self._hosts.items()
            if state.started is not None and not state.done
        ]
        text = f"apssh: {done}/{total} done, {failed} failed, {len(running)} running"
        if running:
            elapsed, name = max(running)
            text += f", slowest {self._short[name]} {elapsed:.0f}s"
        return text


class _ByStream(Formatter):
    """stdout lines to one sink, stderr lines to another (each coloured for its stream)."""

    def __init__(self, stdout: Formatter, stderr: Formatter) -> None:
        super().__init__()
        self._stdout = stdout
        self._stderr = stderr

    def output(self, event: OutputEvent) -> None:
        (self._stderr if event.stream == STDERR else self._stdout).output(event)


class _StderrOnly(Formatter):
    """Passes stderr lines on (``--gather`` streams them; stdout is gathered)."""

    def __init__(self, sink: Formatter) -> None:
        super().__init__()
        self._sink = sink

    def output(self, event: OutputEvent) -> None:
        if event.stream == STDERR:
            self._sink.output(event)


# ---------------------------------------------------------------- records


def json_line(record: dict[str, Any]) -> str:
    """``record`` as one line of JSON: UTF-8 text kept, control characters escaped.

    json.dumps escapes C0 controls; C1 and format controls are escaped too, and
    the bytes that were not UTF-8 (surrogate escapes) become ``\\udc80``-``\\udcff``
    (``json.loads(line)["stdout"].encode("utf-8", "surrogateescape")`` is the
    exact output).
    """
    text = json.dumps(record, ensure_ascii=False)
    return _JSON_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def escape_library_log() -> None:
    """Escape the library's log messages (they may quote remote file names), once."""
    logger = logging.getLogger("apssh_cli")
    if not any(isinstance(item, EscapeLogFilter) for item in logger.filters):
        logger.addFilter(EscapeLogFilter())


def host_record(result: HostResult) -> dict[str, Any]:
    """The JSON object of one host (see docs/cli.md; a stable schema)."""
    return {
        "host": result.host,
        "status": str(result.status),
        "rc": result.rc,
        "duration": round(result.duration, 3),
        "stdout": result.stdout,
        "stderr": result.stderr,
        "error": result.error,
    }


def summary_record(results: Sequence[HostResult], status: int, duration: float) -> dict[str, Any]:
    """The final JSON object: counts per status, duration, exit status."""
    counts = {str(item): 0 for item in Status}
    for result in results:
        counts[str(result.status)] += 1
    return {
        "summary": {
            "version": JSON_SCHEMA_VERSION,
            "hosts": len(results),
            **counts,
            "duration": round(duration, 3),
            "exit_status": int(status),
        }
    }


def summary_lines(
    results: Sequence[HostResult],
    duration: float,
    *,
    interrupted: bool = False,
    colour: bool = False,
) -> list[str]:
    """The human summary: counts, then a folded host list per kind of trouble."""
    counts: dict[Status, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    parts = [
        paint(f"{count} {status}", STATUS_COLOURS.get(status), colour)
        for status, count in sorted(counts.items(), key=_severity)
    ]
    head = f"apssh: {len(results)} host{'s' if len(results) != 1 else ''} in {duration:.1f}s"
    if interrupted:
        head += " (interrupted)"
    lines = [head + ": " + ", ".join(parts) if parts else head]
    width = max(len(label) for label, _ in SUMMARY_ROWS)
    for label, statuses in SUMMARY_ROWS:
        chosen = [r for r in results if r.status in statuses]
        if not chosen:
            continue
        if statuses == (Status.FAILED,):
            by_rc: dict[int | None, list[str]] = {}
            for result in chosen:
                by_rc.setdefault(result.rc, []).append(result.host)
            text = ", ".join(
                f"{fold(names)} (rc={rc})" for rc, names in sorted(by_rc.items(), key=_rc_key)
            )
        else:
            text = fold([r.host for r in chosen])
        shown = paint(label, STATUS_COLOURS.get(statuses[0]), colour)
        lines.append(f"  {shown}{' ' * (width - len(label))}  {text}")
    return lines


def _severity(item: tuple[Status, int]) -> tuple[int, str]:
    order = list(Status)
    return (order.index(item[0]), str(item[0]))


def _rc_key(item: tuple[int | None, list[str]]) -> int:
    return -1 if item[0] is None else item[0]
