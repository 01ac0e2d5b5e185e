"""OpenSSH client configuration (``~/.ssh/config``), evaluated by asyncssh's own reader.

asyncssh implements OpenSSH's client config: ``Host`` and ``Match`` blocks
(``host``, ``originalhost``, ``user``, ``localuser``, ``exec``, ``all``...),
``Include``, ``%`` tokens, first value wins. :func:`lookup` asks it what a file
says about one host *before* connecting, for what apssh itself must decide: the
address, port and user, the ``IdentityFile`` keys, the ``ProxyJump`` chain (so
that nodes behind the same jump host share one connection to it) and the
keepalive settings. When connecting, the same file is also handed to asyncssh
(its ``config=`` option), so every other option it knows (``Ciphers``,
``IdentitiesOnly``, ``AddressFamily``, ``BindAddress``...) applies too.
Explicit settings (SshNode arguments, hence the inventory, ``-l``, ``-k``, ``-G``)
always win over the file.

There is no cache: a lookup reads the file (small) once per node, when the node
first connects. :class:`asyncssh.config.SSHClientConfig` is the class behind
asyncssh's ``config=`` option; it is not re-exported at asyncssh's top level, so
pyproject.toml bounds asyncssh below 3 and tests/unit/test_node_sshconfig.py
checks that it still behaves.
"""

from __future__ import annotations

import getpass
import os
import pwd
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asyncssh.config import ConfigParseError, SSHClientConfig

from apssh_cli.errors import ConfigError
from apssh_cli.ssh.early import DEFAULT_SSH_CONFIG

__all__ = ["DEFAULT_SSH_CONFIG", "HostConfig", "JumpHost", "local_user", "lookup", "parse_jumps"]


@dataclass(frozen=True)
class JumpHost:
    """One hop of a ``ProxyJump`` value: ``[user@]host[:port]``."""

    host: str
    user: str | None = None
    port: int | None = None


@dataclass(frozen=True)
class HostConfig:
    """What the ssh_config file says about one host (None: not set)."""

    hostname: str | None = None
    user: str | None = None
    port: int | None = None
    identity_files: tuple[str, ...] = ()
    proxy_jump: tuple[JumpHost, ...] | None = None  # () means "ProxyJump none"
    keepalive_interval: float | None = None  # ServerAliveInterval
    keepalive_count_max: int | None = None  # ServerAliveCountMax
    ciphers: str | None = None  # Ciphers: when set, asyncssh applies it (ours is not used)


def local_user() -> str:
    """The local user name, also when USER and LOGNAME are unset (cron, systemd)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        try:
            return pwd.getpwuid(os.getuid()).pw_name
        except KeyError:
            return str(os.getuid())


def lookup(
    path: str | Path, host: str, *, user: str | None = None, port: int | None = None
) -> HostConfig:
    """What the config file at ``path`` says about ``host`` (a missing file says nothing).

    Args:
        path: the ssh_config file.
        host: the name the user gave (an alias works, as with ssh).
        user: the user when already known (``Match user``, ``%r``).
        port: the port when already known (``%p``).

    Raises:
        ConfigError: the file (or a file it includes) cannot be read or parsed.
    """
    resolved = Path(path).expanduser()
    if not resolved.exists():
        return HostConfig()
    try:
        config = SSHClientConfig.load(
            None,
            [resolved],
            False,
            False,
            False,
            local_user(),
            user if user is not None else (),
            host,
            port if port is not None else (),
        )
    except ConfigParseError as exc:
        raise ConfigError(f"bad ssh config: {exc}", source=str(resolved)) from exc
    except OSError as exc:
        raise ConfigError(
            f"cannot read ssh config: {exc.strerror or exc}", source=str(exc.filename or resolved)
        ) from exc
    jump = config.get("ProxyJump", ())
    identity_files: Any = config.get("IdentityFile") or ()
    return HostConfig(
        hostname=_optional(config.get("Hostname"), str),
        user=_optional(config.get("User"), str),
        port=_optional(config.get("Port"), int),
        identity_files=tuple(os.path.expanduser(str(file)) for file in identity_files),
        proxy_jump=(
            None if jump == () else () if jump is None else parse_jumps(str(jump), str(resolved))
        ),
        keepalive_interval=_optional(config.get("ServerAliveInterval"), float),
        keepalive_count_max=_optional(config.get("ServerAliveCountMax"), int),
        ciphers=_optional(config.get("Ciphers"), str),
    )


def _optional(value: Any, kind: type[Any]) -> Any:
    return None if value is None else kind(value)


def parse_jumps(value: str, source: str = "ProxyJump") -> tuple[JumpHost, ...]:
    """Parse a ``ProxyJump`` value: ``[user@]host[:port]`` hops, comma-separated.

    >>> parse_jumps("alice@bastion:2200,ssh://gw")
    (JumpHost(host='bastion', user='alice', port=2200), JumpHost(host='gw', user=None, port=None))

    Raises:
        ConfigError: an empty hop or a bad port.
    """
    if value.lower() == "none":
        return ()
    hops = []
    for item in value.split(","):
        spec = item.strip().removeprefix("ssh://")
        user, _, hostport = spec.rpartition("@")
        host, port = hostport, None
        if hostport.count(":") == 1:
            host, port_text = hostport.split(":")
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise ConfigError(f"bad ProxyJump {value!r}: port {port_text!r}", source=source)
            port = int(port_text)
        if not host:
            raise ConfigError(f"bad ProxyJump {value!r}: empty hop", source=source)
        hops.append(JumpHost(host, user or None, port))
    return tuple(hops)
