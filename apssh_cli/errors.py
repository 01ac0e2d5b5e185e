"""The exceptions of apssh-cli, all under one base class.

::

    ApsshError
    ├── ConfigError                  nothing ran; .source (file), .line, .where (key path)
    │   └── InventoryError
    │       ├── HostRangeError       .fragment: the bad piece of "node[1:x]"
    │       └── SelectionError       .pattern: unknown group or host
    ├── HostError                    .host; recorded per host, never stops the others
    │   ├── ConnectError             could not get a usable connection
    │   │   ├── UnreachableError     refused, no route, DNS, connect timeout, gateway hop
    │   │   ├── AuthRefusedError     no key was accepted
    │   │   └── HostKeyRefusedError  unknown (strict) or changed host key
    │   └── CommandError             .command, .exit_status, .stderr_tail
    │       ├── CommandFailedError   non-zero exit of a critical command
    │       └── CommandTimeoutError  also a TimeoutError
    └── LabError (in lab/model.py)   `apssh lab`: no Docker engine, no image, name in use

Messages are built from the fields, so every raise site reads the same.
"""

from __future__ import annotations

from typing import Any


class ApsshError(Exception):
    """Base class of every error apssh-cli raises on purpose."""


class ConfigError(ApsshError, ValueError):
    """Bad input (inventory, recipe, options): nothing was run.

    Args:
        message: what is wrong, in words a user can act on.
        source: the file the input came from, if any.
        line: 1-based line in that file, when known.
        where: a key path inside the file ("groups.nodes.hosts"), when known.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        where: str | None = None,
    ) -> None:
        self.message = message
        self.source = source
        self.line = line
        self.where = where
        super().__init__(self._render())

    def _render(self) -> str:
        prefix = ""
        if self.source:
            prefix = self.source
            if self.line is not None:
                prefix += f":{self.line}"
            prefix += ": "
        if self.where:
            prefix += f"{self.where}: "
        return prefix + self.message


class InventoryError(ConfigError):
    """An inventory file or inventory option is wrong."""


class HostRangeError(InventoryError):
    """A host range such as ``node[01:x]`` cannot be expanded.

    Args:
        fragment: the offending piece of the pattern.
    """

    def __init__(self, message: str, *, fragment: str, **kwargs: Any) -> None:
        self.fragment = fragment
        super().__init__(message, **kwargs)


class SelectionError(InventoryError):
    """A host pattern (``-g``/``-x``) names nothing, or is malformed.

    Args:
        pattern: the offending term.
    """

    def __init__(self, message: str, *, pattern: str, **kwargs: Any) -> None:
        self.pattern = pattern
        super().__init__(message, **kwargs)


class HostError(ApsshError):
    """Something went wrong on one host; the other hosts carry on.

    Args:
        host: the host's name as the user knows it.
        message: what happened.
    """

    def __init__(self, host: str, message: str) -> None:
        self.host = host
        self.message = message
        super().__init__(f"{host}: {message}")


class ConnectError(HostError, ConnectionError):
    """No usable SSH connection to the host (or through one of its gateways)."""


class UnreachableError(ConnectError):
    """Connection refused, timed out, no route, unknown name, or a gateway hop failed."""


class AuthRefusedError(ConnectError):
    """The server accepted none of our keys."""


class HostKeyRefusedError(ConnectError):
    """The host key is unknown (strict policy) or differs from the recorded one."""


class CommandError(HostError):
    """A remote (or local) command did not succeed.

    Args:
        host: where it ran.
        command: the command line, as shown to the user.
        exit_status: its return code, None if it never finished.
        stderr_tail: the last lines it wrote on stderr, if captured.
    """

    def __init__(
        self,
        host: str,
        command: str,
        exit_status: int | None,
        stderr_tail: str = "",
        message: str | None = None,
    ) -> None:
        self.command = command
        self.exit_status = exit_status
        self.stderr_tail = stderr_tail
        if message is None:
            message = f"command {command!r} exited with status {exit_status}"
        super().__init__(host, message)


class CommandFailedError(CommandError):
    """A critical command exited with a status that was not allowed.

    ``CommandFailedError("message")`` (upstream apssh's form) works too: no host,
    no command, and ``str(exc)`` is the message.
    """

    def __init__(
        self,
        host: str,
        command: str | None = None,
        exit_status: int | None = None,
        stderr_tail: str = "",
        message: str | None = None,
    ) -> None:
        if command is None:  # upstream's one-argument form
            super().__init__("", "", exit_status, stderr_tail, message=host)
            self.args = (host,)
            return
        super().__init__(host, command, exit_status, stderr_tail, message)


class CommandTimeoutError(CommandError, TimeoutError):
    """A command ran past its timeout; the remote process was terminated.

    Args:
        timeout: the limit, in seconds.
    """

    def __init__(self, host: str, command: str, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(
            host, command, None, message=f"command {command!r} timed out after {timeout:g}s"
        )
