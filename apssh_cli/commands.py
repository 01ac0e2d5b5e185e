"""The commands an SshJob runs on its node: Run, RunScript, RunString, Push, Pull.

Each command runs on a node (:class:`~apssh_cli.ssh.node.SshNode`,
:class:`~apssh_cli.ssh.node.LocalNode` or anything with the same methods) and returns a
:class:`~apssh_cli.results.CommandResult`.
Whether a return code is a failure is the command's business (``allowed_exits``);
what a failure does (stop, or go on) is the job's.

Command lines, as in upstream apssh and as ``ssh host a b`` does: the parts of
``Run(*parts)`` are joined with spaces and the remote shell reads the result, so
``Run("tail -n", 1, "/etc/hosts")`` and ``Run("echo", "$(hostname)")`` work as
written (pipes, variables, ``$(...)``). For data you did not write yourself (a
file name with spaces, a user's input), :meth:`Run.quoted` quotes every part.
The arguments of RunScript and RunString follow the same rule
(``RunScript.quoted``, ``RunString.quoted``).

A part may be a :class:`~apssh_cli.deferred.Deferred`: it is rendered when the
command runs, from values that earlier commands captured
(``capture=Capture(name, variables)``).
"""

from __future__ import annotations

import abc
import asyncio
import functools
import os
import shlex
import signal
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from apssh_cli.deferred import Capture
from apssh_cli.errors import CommandTimeoutError, ConfigError
from apssh_cli.output import STDERR, STDOUT, BoundedText, Formatter, OutputEvent, current_step
from apssh_cli.results import CommandResult
from apssh_cli.ssh.local_node import LocalNode
from apssh_cli.ssh.process import shielded_cleanup

if TYPE_CHECKING:
    from apssh_cli.ssh.node import NodeLike, SshNode

ExitSpec = int | str
# a part of a command line: anything whose str() is the text (Deferred renders late)
Part = object
_SCRIPT_MODE = 0o700
_INCLUDE_MODE = 0o600


# the name of the stdin file in a command's private directory (a script's includes
# cannot take it: their names are checked against it)
STDIN_NAME = ".apssh-stdin"

StdinData = bytes | str | Path


def _stdin_content(stdin: StdinData | None) -> bytes | Path | None:
    """``stdin=`` as install_files takes it: bytes, or a local file (streamed)."""
    if stdin is None or isinstance(stdin, bytes | Path):
        return stdin
    if isinstance(stdin, str):
        return stdin.encode("utf-8")
    raise TypeError(f"stdin must be bytes, str or a Path, not {type(stdin).__name__}")


def parse_allowed_exits(allowed: Iterable[ExitSpec] | None) -> frozenset[int]:
    """Turn ``allowed_exits`` into the set of accepted return codes.

    Integers are exit statuses. A signal name (``"TERM"`` or ``"SIGTERM"``) accepts
    death by that signal, as reported by SSH (-15) or by a shell (128 + 15).

    >>> sorted(parse_allowed_exits([1, "TERM"]))
    [-15, 1, 143]

    Raises:
        ConfigError: an unknown signal name, or a status outside 0..255.
    """
    codes: set[int] = set()
    for item in allowed or ():
        if isinstance(item, bool):
            raise ConfigError(f"allowed exit {item!r} is not a status or a signal name")
        if isinstance(item, int) or (isinstance(item, str) and item.strip().isdigit()):
            code = int(item)
            if not 0 <= code <= 255:
                raise ConfigError(f"allowed exit {item!r} is not in 0..255")
            codes.add(code)
            continue
        name = str(item).strip().upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        try:
            number = int(signal.Signals[name])
        except KeyError:
            raise ConfigError(f"allowed exit {item!r}: unknown signal name") from None
        codes.update((-number, 128 + number))
    return frozenset(codes)


def join_parts(parts: Iterable[Part], *, quoted: bool = False) -> str:
    """The command line made of ``parts``: joined with spaces, or each one shell-quoted.

    >>> join_parts(["tail -n", 1, "/etc/hosts"])
    'tail -n 1 /etc/hosts'
    >>> join_parts(["touch", "a file"], quoted=True)
    "touch 'a file'"
    """
    texts = [str(part) for part in parts]
    return shlex.join(texts) if quoted else " ".join(texts)


class Command(abc.ABC):
    """Base class of commands.

    Args:
        allowed_exits: return codes (or signal names) that count as success besides 0.
        timeout: seconds; None: the job's default (itself None: no limit).
        label: how the command is shown; ``""`` hides it from graphs and listings.
        verbose: send this command's start and end to the formatter.
    """

    def __init__(
        self,
        *,
        allowed_exits: Iterable[ExitSpec] | None = None,
        timeout: float | None = None,
        label: str | None = None,
        verbose: bool = False,
    ) -> None:
        self.allowed_exits = tuple(allowed_exits or ())
        self._allowed = parse_allowed_exits(self.allowed_exits)
        self.timeout = timeout
        self.label = label
        self.verbose = verbose

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

    def describe(self) -> str:
        """The command as shown in messages: its label, or else the command itself."""
        return self.label if self.label else self._default_label()

    def label_line(self) -> str:
        """The command's line in graphs and listings: ``""`` when its label is ``""``."""
        return self.label if self.label is not None else self._default_label()

    @abc.abstractmethod
    def _default_label(self) -> str: ...

    def is_allowed(self, rc: int) -> bool:
        """Whether ``rc`` counts as success (0 always does)."""
        return rc == 0 or rc in self._allowed

    def failure_message(self, result: CommandResult) -> str | None:
        """How a failed result reads; None: "command ... exited with status N"."""
        return None

    @abc.abstractmethod
    async def co_run(
        self, node: NodeLike, *, timeout: float | None = None, verbose: bool = False
    ) -> CommandResult:
        """Run on ``node``; ``timeout`` applies when the command has none of its own.

        Raises:
            CommandTimeoutError: past the timeout (the process was terminated).
            ConnectError: the node could not be reached.
            ConfigError: a local problem (missing script...), nothing ran.
        """

    def _timeout(self, default: float | None) -> float | None:
        return self.timeout if self.timeout is not None else default


class _CaptureSink(Formatter):
    """Keeps stdout for a Capture, bounded (BoundedText); stderr goes to the node's formatter."""

    def __init__(self, forward: Formatter, max_bytes: int | None) -> None:
        self.forward = forward
        self.kept = BoundedText(max_bytes)

    def output(self, event: OutputEvent) -> None:
        if event.stream == STDOUT:
            self.kept.add(event.line + ("" if event.cut else "\n"), event.cut)
        else:
            self.forward.output(event)

    # the command's events still reach the node's formatter
    def command_started(self, host: str, command: str) -> None:
        self.forward.command_started(host, command)

    def command_done(self, host: str, command: str, rc: int | None) -> None:
        self.forward.command_done(host, command, rc)


class _ShellCommand(Command):
    """What Run, RunScript and RunString share: x11, capture, ignore_outputs, stdin.

    A command's stdin is /dev/null, unless ``stdin`` is given: then the data is
    uploaded into a private directory on the node (mode 700, as a script is) and
    the command reads it from there (``{ CMD; } < FILE``); the directory is removed
    whatever happens. The channel's own stdin stays with the remote wrapper's
    watcher (see :mod:`apssh_cli.ssh.remote_wrapper`).
    """

    def __init__(
        self,
        *,
        allowed_exits: Iterable[ExitSpec] | None,
        timeout: float | None,
        label: str | None,
        verbose: bool,
        x11: bool,
        capture: Capture | None,
        ignore_outputs: bool,
        quoted: bool,
        stdin: StdinData | None = None,
    ) -> None:
        super().__init__(allowed_exits=allowed_exits, timeout=timeout, label=label, verbose=verbose)
        self.x11 = x11
        self.capture = capture
        self.ignore_outputs = ignore_outputs
        self.is_quoted = quoted
        self.stdin = _stdin_content(stdin)

    def failure_message(self, result: CommandResult) -> str | None:
        if isinstance(result, _FailedBeforeRunning):  # it never ran: the reason is ours
            return f"could not start: {result.stderr_tail}"
        return None

    def _stdin_files(self) -> list[tuple[str, bytes | Path, int]]:
        """The stdin file to install next to the command, if any."""
        if self.stdin is None:
            return []
        if isinstance(self.stdin, Path) and not self.stdin.is_file():
            raise ConfigError("stdin file not found", source=str(self.stdin))
        return [(STDIN_NAME, self.stdin, _INCLUDE_MODE)]

    async def _run_in_private_dir(
        self,
        node: NodeLike,
        files: list[tuple[str, bytes | Path, int]],
        make_line: Callable[[str], str],
        *,
        display: str,
        timeout: float | None,
        verbose: bool,
    ) -> CommandResult:
        """Install ``files`` in a private directory, run ``make_line(directory)``, remove it.

        One deadline for the whole: installing, then running. The directory is
        removed also on failure, timeout or cancellation.
        """
        from apssh_cli.ssh.sftp import TransferError

        await node.connect()
        directory: str | None = None
        try:
            async with asyncio.timeout(timeout) as deadline:
                directory = await node.install_files(files)
                line = make_line(directory)
                if self.stdin is not None:
                    stdin_path = shlex.quote(f"{directory}/{STDIN_NAME}")
                    line = f"{{ {line}\n}} < {stdin_path}"
                # what is left, and a second: ours fires first; the node's bound follows it
                left = deadline.when()
                remaining = None if left is None else left - asyncio.get_running_loop().time() + 1
                return await self._run_line(
                    node, line, display=display, timeout=remaining, verbose=verbose
                )
        except TransferError as exc:
            return _transfer_failed(node, display, exc)
        except TimeoutError:
            assert timeout is not None
            raise CommandTimeoutError(node.label, display, timeout) from None
        finally:
            if directory is not None:
                await shielded_cleanup(node.remove_private_dir(directory))

    async def _run_line(
        self,
        node: NodeLike,
        line: str,
        *,
        display: str,
        timeout: float | None,
        verbose: bool,
    ) -> CommandResult:
        if self.ignore_outputs:
            # no pipe stays open for a daemon it starts (e.g. an ssh tunnel)
            line = f"{{ {line}\n}} </dev/null >/dev/null 2>&1"
        extra: dict[str, Any] = {}
        sink: _CaptureSink | None = None
        if self.capture is not None:
            sink = _CaptureSink(node.formatter, self.capture.max_bytes)
            extra["formatter"] = sink
        if self.x11 and not isinstance(node, LocalNode):
            if not os.environ.get("DISPLAY"):
                raise ConfigError("x11=True needs a local X display, and DISPLAY is not set")
            extra["x11"] = True
        result = await node.run_shell(
            line, display=display, timeout=timeout, verbose=verbose or self.verbose, **extra
        )
        if sink is not None and self.capture is not None:
            self.capture.store(sink.kept.text(), truncated=sink.kept.full)
        return result


class Run(_ShellCommand):
    """Run a command that exists on the node.

    The parts are joined with spaces and given to the remote shell: these are
    the same command::

        Run("tail -n 1 /etc/hosts")
        Run("tail", "-n", 1, "/etc/hosts")

    Args:
        argv: the parts; a :class:`~apssh_cli.deferred.Deferred` is rendered when the
            command runs.
        allowed_exits: return codes or signal names that count as success.
        timeout: seconds (the remote process group is terminated past it).
        label: shown instead of the command; ``""`` hides it from graphs.
        verbose: report the command's start and end to the formatter.
        x11: forward X11 (an X11 program on the node shows on the local DISPLAY).
        capture: store the command's stdout (not printed) into ``capture.variables``.
        ignore_outputs: send stdin, stdout and stderr to /dev/null.
        stdin: what the command reads on its stdin: bytes, text (UTF-8), or a local
            file (a :class:`~pathlib.Path`, streamed). It is uploaded to a private
            directory on the node first (one SFTP upload per node), removed after.
            None: /dev/null.

    Raises:
        ValueError: no part.
    """

    def __init__(
        self,
        *argv: Part,
        allowed_exits: Iterable[ExitSpec] | None = None,
        timeout: float | None = None,
        label: str | None = None,
        verbose: bool = False,
        x11: bool = False,
        capture: Capture | None = None,
        ignore_outputs: bool = False,
        stdin: StdinData | None = None,
    ) -> None:
        if not argv:
            raise ValueError("Run needs a command")
        super().__init__(
            allowed_exits=allowed_exits,
            timeout=timeout,
            label=label,
            verbose=verbose,
            x11=x11,
            capture=capture,
            ignore_outputs=ignore_outputs,
            quoted=False,
            stdin=stdin,
        )
        self.argv = tuple(argv)

    @classmethod
    def quoted(cls, *argv: Part, **kwargs: Any) -> Self:
        """The same command with every part shell-quoted: an argv, as with :mod:`subprocess`.

        ``Run.quoted("touch", name)`` makes one file named as ``name`` is,
        spaces, ``$`` and quotes included. Keywords as for :class:`Run`.
        """
        command = cls(*argv, **kwargs)
        command.is_quoted = True
        return command

    @property
    def command_line(self) -> str:
        """What the remote shell receives (a Deferred part is rendered now)."""
        return join_parts(self.argv, quoted=self.is_quoted)

    def __str__(self) -> str:
        # upstream lets a Run stand where a string is expected: Run(service.start_command())
        return self.command_line

    def _default_label(self) -> str:
        return self.command_line

    async def co_run(
        self, node: NodeLike, *, timeout: float | None = None, verbose: bool = False
    ) -> CommandResult:
        files = self._stdin_files()
        await node.connect()
        line = self.command_line  # rendered here: captures made so far are known
        if files:
            return await self._run_in_private_dir(
                node,
                files,
                lambda _directory: line,
                display=self.label or line,
                timeout=self._timeout(timeout),
                verbose=verbose,
            )
        return await self._run_line(
            node,
            line,
            display=self.label or line,
            timeout=self._timeout(timeout),
            verbose=verbose,
        )


class _PrivateDirCommand(_ShellCommand):
    """A script installed in a private directory on the node, run, then removed.

    It runs in the login directory (the user's home on the node; the current
    directory on a LocalNode), so the files it writes to relative paths stay
    there; only the private directory (the script and its includes) goes.
    """

    def __init__(
        self,
        args: Sequence[Part],
        *,
        includes: Iterable[str | Path] | None,
        allowed_exits: Iterable[ExitSpec] | None,
        timeout: float | None,
        label: str | None,
        verbose: bool,
        x11: bool,
        capture: Capture | None,
        ignore_outputs: bool,
        stdin: StdinData | None,
    ) -> None:
        super().__init__(
            allowed_exits=allowed_exits,
            timeout=timeout,
            label=label,
            verbose=verbose,
            x11=x11,
            capture=capture,
            ignore_outputs=ignore_outputs,
            quoted=False,
            stdin=stdin,
        )
        self.args = tuple(args)
        self.includes = tuple(Path(include) for include in includes or ())

    @classmethod
    def quoted(cls, *args: Any, **kwargs: Any) -> Self:
        """The same command with every argument of the script shell-quoted."""
        command = cls(*args, **kwargs)
        command.is_quoted = True
        return command

    @property
    @abc.abstractmethod
    def script_name(self) -> str:
        """The script's file name in the private directory."""

    @abc.abstractmethod
    def _script_content(self) -> bytes | Path: ...

    @property
    def args_line(self) -> str:
        """The script's arguments as the shell receives them (Deferred parts rendered now)."""
        return join_parts(self.args, quoted=self.is_quoted)

    def _default_label(self) -> str:
        args = self.args_line
        return f"{self.script_name} {args}" if args else self.script_name

    def _files(self) -> list[tuple[str, bytes | Path, int]]:
        files: list[tuple[str, bytes | Path, int]] = [
            (self.script_name, self._script_content(), _SCRIPT_MODE)
        ]
        for include in self.includes:
            if not include.is_file():
                raise ConfigError("include file not found", source=str(include))
            executable = include.stat().st_mode & 0o100
            files.append((include.name, include, _SCRIPT_MODE if executable else _INCLUDE_MODE))
        files += self._stdin_files()
        names = [name for name, _, _ in files]
        if len(set(names)) != len(names):
            raise ConfigError(f"script and includes must have distinct names: {names}")
        return files

    async def co_run(
        self, node: NodeLike, *, timeout: float | None = None, verbose: bool = False
    ) -> CommandResult:
        files = self._files()

        def script_line(directory: str) -> str:
            script = shlex.quote(f"{directory}/{self.script_name}")
            args = self.args_line  # rendered now: captures made so far are known
            return f"{script} {args}" if args else script

        return await self._run_in_private_dir(
            node,
            files,
            script_line,
            display=self.describe(),
            timeout=self._timeout(timeout),
            verbose=verbose,
        )


class RunScript(_PrivateDirCommand):
    """Run a local script on the node, with its arguments joined as for :class:`Run`.

    The script (and its ``includes``) is copied to a private directory on the
    node (mode 700, unpredictable name), run from the **login directory**, then
    the private directory is removed, also when the script fails, times out or
    is cancelled. Files the script writes to relative paths stay in the login
    directory (``Pull("rawdata", ...)`` afterwards finds them). An include is
    next to the script: source it as ``. "$(dirname "$0")/lib.sh"``.

    Args:
        local_script: the script file (it needs a ``#!`` line, or is run by sh).
        args: its arguments, joined with spaces (``RunScript.quoted`` quotes each one).
        includes: more local files copied next to it (e.g. a library it sources).
        allowed_exits, timeout, label, verbose, x11, capture, ignore_outputs, stdin: as
            for Run (the stdin file goes into the script's private directory).
    """

    def __init__(
        self,
        local_script: str | Path,
        *args: Part,
        includes: Iterable[str | Path] | None = None,
        allowed_exits: Iterable[ExitSpec] | None = None,
        timeout: float | None = None,
        label: str | None = None,
        verbose: bool = False,
        x11: bool = False,
        capture: Capture | None = None,
        ignore_outputs: bool = False,
        stdin: StdinData | None = None,
    ) -> None:
        super().__init__(
            args,
            includes=includes,
            allowed_exits=allowed_exits,
            timeout=timeout,
            label=label,
            verbose=verbose,
            x11=x11,
            capture=capture,
            ignore_outputs=ignore_outputs,
            stdin=stdin,
        )
        self.local_script = Path(local_script)

    @property
    def script_name(self) -> str:
        return self.local_script.name

    def _script_content(self) -> bytes | Path:
        if not self.local_script.is_file():
            raise ConfigError("script not found", source=str(self.local_script))
        return self.local_script


class RunString(_PrivateDirCommand):
    """Like RunScript, from a Python string.

    Args:
        script_body: the script's text (a ``#!`` line picks the interpreter; sh otherwise).
        args: its arguments, joined with spaces (``RunString.quoted`` quotes each one).
        remote_name: the script's file name on the node (default ``apssh-script``).
        includes: local files copied next to it.
        allowed_exits, timeout, label, verbose, x11, capture, ignore_outputs, stdin: as
            for Run (the stdin file goes into the script's private directory).
    """

    def __init__(
        self,
        script_body: str,
        *args: Part,
        remote_name: str | None = None,
        includes: Iterable[str | Path] | None = None,
        allowed_exits: Iterable[ExitSpec] | None = None,
        timeout: float | None = None,
        label: str | None = None,
        verbose: bool = False,
        x11: bool = False,
        capture: Capture | None = None,
        ignore_outputs: bool = False,
        stdin: StdinData | None = None,
    ) -> None:
        super().__init__(
            args,
            includes=includes,
            allowed_exits=allowed_exits,
            timeout=timeout,
            label=label,
            verbose=verbose,
            x11=x11,
            capture=capture,
            ignore_outputs=ignore_outputs,
            stdin=stdin,
        )
        name = remote_name or "apssh-script"
        if "/" in name or name in (".", ".."):
            raise ValueError(f"remote_name must be a plain file name, not {name!r}")
        self.script_body = script_body
        self.remote_name = name

    @property
    def script_name(self) -> str:
        return self.remote_name

    def _script_content(self) -> bytes | Path:
        return self.script_body.encode("utf-8")


class _Transfer(Command):
    def __init__(
        self,
        recurse: bool,
        preserve: bool,
        timeout: float | None,
        label: str | None,
        verbose: bool = False,
    ) -> None:
        super().__init__(timeout=timeout, label=label, verbose=verbose)
        self.recurse = recurse
        self.preserve = preserve

    async def co_run(
        self, node: NodeLike, *, timeout: float | None = None, verbose: bool = False
    ) -> CommandResult:
        from apssh_cli.ssh.node import SshNode
        from apssh_cli.ssh.sftp import TransferError

        if not isinstance(node, SshNode):
            raise ConfigError(f"{type(self).__name__} needs an SshNode, not {node!r}")
        await node.connect()
        limit = self._timeout(timeout)
        display = self.describe()
        verbose = verbose or self.verbose
        if verbose:
            node.formatter.command_started(node.label, display)
        try:
            async with asyncio.timeout(limit):
                await self._transfer(node)
        except TransferError as exc:
            result = _transfer_failed(node, display, exc)
        except TimeoutError:
            assert limit is not None
            raise CommandTimeoutError(node.label, display, limit) from None
        else:
            result = CommandResult(display, 0)
        if verbose:
            node.formatter.command_done(node.label, display, result.rc)
        return result

    def failure_message(self, result: CommandResult) -> str | None:
        # the reason is what _transfer_failed wrote after the display
        reason = result.stderr_tail.removeprefix(f"{self.describe()}: ") or f"rc {result.rc}"
        return f"transfer failed: {self.describe()}: {reason}"

    @abc.abstractmethod
    def _paths(self) -> tuple[Sequence[Any], Any]:
        """(sources, destination), as :mod:`apssh_cli.ssh.sftp` takes them."""

    async def _transfer(self, node: SshNode) -> None:
        from apssh_cli.ssh import sftp

        sources, destination = self._paths()
        client = await node.sftp_client()
        move: Callable[..., Awaitable[None]] = sftp.pull
        if isinstance(self, Push):  # only a push spreads a large file over more sessions
            move = functools.partial(
                sftp.push,
                more_sessions=node.open_sftp_session,
                sessions=self.sessions or sftp.SESSIONS,
            )
        try:
            await move(
                client,
                sources,
                destination,
                recurse=self.recurse,
                preserve=self.preserve,
                host=node.label,
                warn=functools.partial(_skipped, node),
            )
        except sftp.SessionLostError as exc:
            if await node.sftp_session_ended():  # the host is there: the transfer failed
                raise sftp.TransferError(
                    "the server ended the SFTP session (its sftp-server exited)"
                ) from exc
            raise


def _size(path: str | Path) -> int:
    """A local file's size; 0 for what is missing or unreadable (the push says why later)."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _skipped(node: NodeLike, message: str) -> None:
    # what a transfer leaves out (a FIFO in a tree) reads like a command's warning: a
    # line on the host's stderr, seen without -v
    node.formatter.output(OutputEvent(node.label, STDERR, message, current_step()))


def _transfer_failed(node: NodeLike, display: str, exc: Exception) -> CommandResult:
    # a failed transfer reads like a failed command: rc 1, and the reason once (by
    # default a line on stderr; the command line says it in its [failed] line)
    message = f"{display}: {exc}"
    node.formatter.command_failed(node.label, display, message)
    return _FailedBeforeRunning(display, 1, message)


class _FailedBeforeRunning(CommandResult):
    """The result of a transfer that failed (a push, a pull, a script's install)."""


class Push(_Transfer):
    """Copy local files to the node over SFTP (binary-safe).

    Each file is uploaded under a temporary name in its target directory, then
    renamed: an interrupted transfer never leaves a truncated file under its name.

    Args:
        localpaths: one path or several (then ``remotepath`` must be a directory).
        remotepath: a file name, or an existing directory to copy into.
        recurse: copy directories and their contents.
        preserve: keep modes and times.
        sessions: the SFTP sessions of the node's connection a file of 8 MiB or
            more is spread over, the node's own included (OpenSSH's sshd gives each a
            2 MiB window: one session moves about 2 MiB per round trip). None: 4; 1:
            the node's session only. Those the server refuses are done without.
        timeout, label, verbose: as for Run.
    """

    def __init__(
        self,
        localpaths: str | Path | Sequence[str | Path],
        remotepath: str,
        recurse: bool = False,
        preserve: bool = False,
        *,
        sessions: int | None = None,
        timeout: float | None = None,
        label: str | None = None,
        verbose: bool = False,
    ) -> None:
        super().__init__(recurse, preserve, timeout, label, verbose)
        if sessions is not None and (isinstance(sessions, bool) or not 1 <= sessions <= 64):
            raise ConfigError(f"sessions must be a number from 1 to 64, not {sessions!r}")
        self.sessions = sessions
        if isinstance(localpaths, str | Path):
            localpaths = [localpaths]
        self.localpaths = tuple(Path(path) for path in localpaths)
        self.remotepath = str(remotepath)

    def _default_label(self) -> str:
        sources = " ".join(str(path) for path in self.localpaths)
        return f"push {sources} -> {self.remotepath}"

    def largest_file(self) -> int:
        """The size of the largest local file this push moves (0 if none is there)."""
        from apssh_cli.ssh.sftp import walk_files

        sizes = [0]
        for path in self.localpaths:
            if path.is_dir() and self.recurse:
                for directory, files in walk_files(path):
                    sizes += (_size(directory / name) for name in files)
            elif path.is_file():
                sizes.append(_size(path))
        return max(sizes)

    def _paths(self) -> tuple[Sequence[Path], str]:
        return self.localpaths, self.remotepath


class Pull(_Transfer):
    """Copy files from the node to the local machine over SFTP (binary-safe).

    Each file is written under a temporary name next to its target, then renamed.
    A copy gets the remote file's mode bits, less the umask (a 0600 file stays
    private). Only regular files are read: a FIFO, a socket or a device met in a
    tree is skipped with a line on the host's stderr; one named in ``remotepaths``
    fails the transfer (rc 1).

    Args:
        remotepaths: one path or several (then ``localpath`` is a directory).
        localpath: a file name, or a directory to copy into: an existing one, a
            name ending with ``/``, or any name when there are several remote
            paths. Missing local directories are created.
        recurse: copy directories and their contents.
        preserve: keep modes and times.
        timeout, label, verbose: as for Run.
    """

    def __init__(
        self,
        remotepaths: str | Sequence[str],
        localpath: str | Path,
        recurse: bool = False,
        preserve: bool = False,
        *,
        timeout: float | None = None,
        label: str | None = None,
        verbose: bool = False,
    ) -> None:
        super().__init__(recurse, preserve, timeout, label, verbose)
        if isinstance(remotepaths, str):
            remotepaths = [remotepaths]
        self.remotepaths = tuple(str(path) for path in remotepaths)
        self.localpath = Path(localpath)
        self._destination = os.fspath(localpath)  # a trailing "/" says "a directory"

    def _default_label(self) -> str:
        return f"pull {' '.join(self.remotepaths)} -> {self._destination}"

    def _paths(self) -> tuple[Sequence[str], str]:
        return self.remotepaths, self._destination
