"""LocalNode: Run, RunScript and RunString on the local machine, through the same formatters.

A command runs with /bin/sh in its own session (a new process group), so that a
timeout, a cancellation or an output that cannot be delivered ends the whole
group: TERM, then KILL. The process is always waited for before the command
returns, so no child is left behind for a closed event loop to reap.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Self

from apssh_cli.output import DEFAULT_FORMATTER, Formatter
from apssh_cli.results import CommandResult
from apssh_cli.ssh.process import (
    CLEANUP_TIMEOUT,
    PRIVATE_PREFIX,
    TERMINATE_STEPS,
    shielded_cleanup,
    stream_process,
)

Process = asyncio.subprocess.Process


class LocalNode:
    """The local machine: runs Run, RunScript and RunString with /bin/sh.

    Args:
        formatter: where output goes (default: ``host:line``).
        label: the name shown in output.
        verbose: send command events to the formatter.
    """

    def __init__(
        self, formatter: Formatter | None = None, label: str = "localhost", verbose: bool = False
    ) -> None:
        self.formatter = formatter if formatter is not None else DEFAULT_FORMATTER
        self.label = label
        self.verbose = verbose

    def __repr__(self) -> str:
        return f"<LocalNode {self.label}>"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Nothing to do: kept so that LocalNode and SshNode are interchangeable."""

    async def close(self) -> None:
        """Nothing to do."""

    @property
    def known_gateway(self) -> None:
        """None: no gateway (what `close_nodes` follows)."""
        return None

    async def run_shell(
        self,
        command: str,
        *,
        display: str,
        timeout: float | None = None,
        verbose: bool = False,
        formatter: Formatter | None = None,
        x11: bool = False,
    ) -> CommandResult:
        """Run ``command`` with /bin/sh in its own process group, streaming its output.

        ``formatter`` replaces the node's for this command (a capture); ``x11``
        changes nothing here (the local DISPLAY is inherited).

        Raises:
            CommandTimeoutError: it ran past ``timeout`` (the process group was killed).
        """
        formatter = formatter if formatter is not None else self.formatter
        if verbose:
            formatter.command_started(self.label, display)
        process = await _start(command)
        assert process.stdout is not None and process.stderr is not None
        result = await stream_process(
            host=self.label,
            display=display,
            formatter=formatter,
            read_stdout=process.stdout.read,
            read_stderr=process.stderr.read,
            wait=process.wait,
            terminate=lambda: _terminate(process),
            timeout=timeout,
        )
        if verbose:
            formatter.command_done(self.label, display, result.rc)
        return result

    async def install_files(self, files: Sequence[tuple[str, bytes | Path, int]]) -> str:
        """Create a private local directory (mode 700) holding ``files``."""
        directory = tempfile.mkdtemp(prefix=PRIVATE_PREFIX)
        try:
            for filename, content, mode in files:
                path = Path(directory, filename)
                if isinstance(content, Path):
                    shutil.copyfile(content, path)
                else:
                    path.write_bytes(content)
                path.chmod(mode)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        return directory

    async def remove_private_dir(self, path: str) -> None:
        """Remove a directory made by :meth:`install_files`."""
        shutil.rmtree(path, ignore_errors=True)


async def _start(command: str) -> Process:
    """Start ``command``; a cancellation meanwhile still ends (and reaps) the process."""
    starting = asyncio.ensure_future(
        asyncio.create_subprocess_shell(
            command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group: killed as a whole
        )
    )
    try:
        return await asyncio.shield(starting)
    except asyncio.CancelledError:
        await shielded_cleanup(_terminate_started(starting))
        raise


async def _terminate_started(starting: asyncio.Future[Process]) -> None:
    process = await starting
    await _terminate(process)


async def _terminate(process: Process) -> None:
    """TERM the process group, then KILL it; return once the process is reaped."""
    for name, grace in TERMINATE_STEPS:
        try:
            os.killpg(process.pid, getattr(signal, f"SIG{name}"))
        except ProcessLookupError:
            break  # the group is gone (the shell may still need reaping)
        try:
            await asyncio.wait_for(process.wait(), grace)
            break
        except TimeoutError:
            continue
    # a killed process goes at once; wait for it so that it never outlives the loop
    await asyncio.wait_for(process.wait(), CLEANUP_TIMEOUT)
    # the shell is gone; whatever is left of its group did not go with it
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
