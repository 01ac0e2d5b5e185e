"""The commands an SshJob runs on its node: Run, RunScript, RunString, Push, Pull.

Each command runs on a node (:class:`~apssh_cli.ssh.node.SshNode`,
:class:`~apssh_cli.ssh.node.LocalNode` or anything with the same methods) and returns a
:class:`~apssh_cli.results.CommandResult`.
Whether a return code is a failure is the command's business (``allowed_exits``);
what a failure does (stop, or go on) is the job's.

Quoting in :class:`Run`: a **single** string is handed to the remote shell as it
is (pipes, redirections, variables work: ``Run("ls /tmp | wc -l")``); **several**
arguments are an argv, each one shell-quoted (``Run("touch", "a file")`` makes one
file named ``a file``), as with :mod:`subprocess`.
"""

from __future__ import annotations

import abc
import asyncio
import os
import shlex
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apssh_cli.errors import CommandTimeoutError, ConfigError
from apssh_cli.output import STDERR, OutputEvent, current_step
from apssh_cli.results import CommandResult
from apssh_cli.ssh.process import shielded_cleanup

if TYPE_CHECKING:
    from apssh_cli.ssh.node import NodeLike, SshNode

ExitSpec = int | str
_SCRIPT_MODE = 0o700
_INCLUDE_MODE = 0o600


def parse_allowed_exits(allowed: Sequence[ExitSpec]) -> frozenset[int]:
    """Turn ``allowed_exits`` into the set of accepted return codes.

    Integers are exit statuses. A signal name (``"TERM"`` or ``"SIGTERM"``) accepts
    death by that signal, as reported by SSH (-15) or by a shell (128 + 15).

    >>> sorted(parse_allowed_exits([1, "TERM"]))
    [-15, 1, 143]

    Raises:
        ConfigError: an unknown signal name, or a status outside 0..255.
    """
    codes: set[int] = set()
    for item in allowed:
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


class Command(abc.ABC):
    """Base class of commands.

    Args:
        allowed_exits: return codes (or signal names) that count as success besides 0.
        timeout: seconds; None: the job's default (itself None: no limit).
        label: how the command is shown (default: derived from the command).
    """

    def __init__(
        self,
        *,
        allowed_exits: Sequence[ExitSpec] = (),
        timeout: float | None = None,
        label: str | None = None,
    ) -> None:
        self.allowed_exits = tuple(allowed_exits)
        self._allowed = parse_allowed_exits(self.allowed_exits)
        self.timeout = timeout
        self.label = label

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

    def describe(self) -> str:
        """The command as shown to the user."""
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


class Run(Command):
    """Run a command that exists on the node.

    One string goes to the remote shell as it is; several arguments are each
    shell-quoted (an argv).

    Raises:
        ValueError: no argument.
    """

    def __init__(
        self,
        *argv: str | int | Path,
        allowed_exits: Sequence[ExitSpec] = (),
        timeout: float | None = None,
        label: str | None = None,
    ) -> None:
        if not argv:
            raise ValueError("Run needs a command")
        super().__init__(allowed_exits=allowed_exits, timeout=timeout, label=label)
        self.argv = tuple(str(arg) for arg in argv)

    @property
    def command_line(self) -> str:
        """What the remote shell receives."""
        if len(self.argv) == 1:
            return self.argv[0]
        return shlex.join(self.argv)

    def _default_label(self) -> str:
        return self.command_line

    async def co_run(
        self, node: NodeLike, *, timeout: float | None = None, verbose: bool = False
    ) -> CommandResult:
        await node.connect()
        return await node.run_shell(
            self.command_line,
            display=self.describe(),
            timeout=self._timeout(timeout),
            verbose=verbose,
        )


class _PrivateDirCommand(Command):
    """A script installed in a private directory on the node, run from there, then removed."""

    def __init__(
        self,
        args: Sequence[str | int | Path],
        includes: Sequence[str | Path],
        allowed_exits: Sequence[ExitSpec],
        timeout: float | None,
        label: str | None,
    ) -> None:
        super().__init__(allowed_exits=allowed_exits, timeout=timeout, label=label)
        self.args = tuple(str(arg) for arg in args)
        self.includes = tuple(Path(include) for include in includes)

    @property
    @abc.abstractmethod
    def script_name(self) -> str:
        """The script's file name in the private directory."""

    @abc.abstractmethod
    def _script_content(self) -> bytes | Path: ...

    def _default_label(self) -> str:
        return shlex.join((self.script_name, *self.args))

    def _files(self) -> list[tuple[str, bytes | Path, int]]:
        files: list[tuple[str, bytes | Path, int]] = [
            (self.script_name, self._script_content(), _SCRIPT_MODE)
        ]
        for include in self.includes:
            if not include.is_file():
                raise ConfigError("include file not found", source=str(include))
            executable = include.stat().st_mode & 0o100
            files.append((include.name, include, _SCRIPT_MODE if executable else _INCLUDE_MODE))
        names = [name for name, _, _ in files]
        if len(set(names)) != len(names):
            raise ConfigError(f"script and includes must have distinct names: {names}")
        return files

    async def co_run(
        self, node: NodeLike, *, timeout: float | None = None, verbose: bool = False
    ) -> CommandResult:
        from apssh_cli.ssh.sftp import TransferError

        files = self._files()
        await node.connect()
        limit = self._timeout(timeout)
        display = self.describe()
        directory: str | None = None
        try:
            # one deadline for the whole command: installing, then running
            async with asyncio.timeout(limit) as deadline:
                directory = await node.install_files(files)
                command = (
                    f"cd {shlex.quote(directory)} && ./{shlex.join((self.script_name, *self.args))}"
                )
                # what is left, and a second: ours fires first; the node's bound follows it
                left = deadline.when()
                remaining = None if left is None else left - asyncio.get_running_loop().time() + 1
                return await node.run_shell(
                    command, display=display, verbose=verbose, timeout=remaining
                )
        except TransferError as exc:
            return _transfer_failed(node, display, exc)
        except TimeoutError:
            assert limit is not None
            raise CommandTimeoutError(node.label, display, limit) from None
        finally:
            if directory is not None:
                await shielded_cleanup(node.remove_private_dir(directory))


class RunScript(_PrivateDirCommand):
    """Push a local script (and its includes) to a private directory on the node; run it there.

    The directory (mode 700, unpredictable name) is removed afterwards, also when
    the script fails, times out or is cancelled. The script runs with that
    directory as its working directory: write results elsewhere.

    Args:
        local_script: the script file (it needs a ``#!`` line, or is run by sh).
        args: its arguments, each shell-quoted.
        includes: more local files copied next to it (e.g. a library it sources).
    """

    def __init__(
        self,
        local_script: str | Path,
        *args: str | int | Path,
        includes: Sequence[str | Path] = (),
        allowed_exits: Sequence[ExitSpec] = (),
        timeout: float | None = None,
        label: str | None = None,
    ) -> None:
        super().__init__(args, includes, allowed_exits, timeout, label)
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
        args: its arguments, each shell-quoted.
        remote_name: the script's file name on the node (default ``apssh-script``).
        includes: local files copied next to it.
    """

    def __init__(
        self,
        script_body: str,
        *args: str | int | Path,
        remote_name: str | None = None,
        includes: Sequence[str | Path] = (),
        allowed_exits: Sequence[ExitSpec] = (),
        timeout: float | None = None,
        label: str | None = None,
    ) -> None:
        super().__init__(args, includes, allowed_exits, timeout, label)
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
    def __init__(self, recurse: bool, preserve: bool, timeout: float | None, label: str | None):
        super().__init__(timeout=timeout, label=label)
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

        move = sftp.push if isinstance(self, Push) else sftp.pull
        sources, destination = self._paths()
        client = await node.sftp_client()
        await move(
            client,
            sources,
            destination,
            recurse=self.recurse,
            preserve=self.preserve,
            host=node.label,
        )


def _transfer_failed(node: NodeLike, display: str, exc: Exception) -> CommandResult:
    # a failed transfer reads like a failed command: a line on stderr, rc 1
    message = f"{display}: {exc}"
    node.formatter.output(OutputEvent(node.label, STDERR, message, current_step()))
    return CommandResult(display, 1, message)


class Push(_Transfer):
    """Copy local files to the node over SFTP (binary-safe).

    Each file is uploaded under a temporary name in its target directory, then
    renamed: an interrupted transfer never leaves a truncated file under its name.

    Args:
        localpaths: one path or several (then ``remotepath`` must be a directory).
        remotepath: a file name, or an existing directory to copy into.
        recurse: copy directories and their contents.
        preserve: keep modes and times.
    """

    def __init__(
        self,
        localpaths: str | Path | Sequence[str | Path],
        remotepath: str,
        recurse: bool = False,
        preserve: bool = False,
        *,
        timeout: float | None = None,
        label: str | None = None,
    ) -> None:
        super().__init__(recurse, preserve, timeout, label)
        if isinstance(localpaths, str | Path):
            localpaths = [localpaths]
        self.localpaths = tuple(Path(path) for path in localpaths)
        self.remotepath = str(remotepath)

    def _default_label(self) -> str:
        sources = " ".join(str(path) for path in self.localpaths)
        return f"push {sources} -> {self.remotepath}"

    def _paths(self) -> tuple[Sequence[Path], str]:
        return self.localpaths, self.remotepath


class Pull(_Transfer):
    """Copy files from the node to the local machine over SFTP (binary-safe).

    Each file is written under a temporary name next to its target, then renamed.

    Args:
        remotepaths: one path or several (then ``localpath`` is a directory).
        localpath: a file name, or a directory to copy into: an existing one, a
            name ending with ``/``, or any name when there are several remote
            paths. Missing local directories are created.
        recurse: copy directories and their contents.
        preserve: keep modes and times.
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
    ) -> None:
        super().__init__(recurse, preserve, timeout, label)
        if isinstance(remotepaths, str):
            remotepaths = [remotepaths]
        self.remotepaths = tuple(str(path) for path in remotepaths)
        self.localpath = Path(localpath)
        self._destination = os.fspath(localpath)  # a trailing "/" says "a directory"

    def _default_label(self) -> str:
        return f"pull {' '.join(self.remotepaths)} -> {self._destination}"

    def _paths(self) -> tuple[Sequence[str], str]:
        return self.remotepaths, self._destination
