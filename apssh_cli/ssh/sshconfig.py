"""OpenSSH client configuration (``~/.ssh/config``, ``-F FILE``, ``-O`` options), read by asyncssh.

asyncssh implements OpenSSH's client config: ``Host`` and ``Match`` blocks
(``host``, ``originalhost``, ``user``, ``localuser``, ``exec``, ``all``...),
``Include``, ``%`` tokens, first value wins. :func:`lookup` asks it what the
configuration says about one host *before* connecting, for what apssh itself
decides: the address, port and user, the ``IdentityFile`` keys, the ``ProxyJump``
chain (so that nodes behind the same jump host share one connection to it), the
keepalive settings and the host key policy (``StrictHostKeyChecking``, the
known_hosts files, ``HostKeyAlias``, ``HostKeyAlgorithms``), ``IdentitiesOnly``
and ``IdentityAgent``. When connecting, the same files are also handed to asyncssh
(its ``config=`` option), so every other option it knows (``KexAlgorithms``,
``AddressFamily``, ``BindAddress``...) applies too.

``-O Name=value`` options (:class:`~apssh_cli.ssh.sshoptions.SshOptions`, checked
there) are config lines of the highest precedence, as ``ssh -o``: their private
file is read before the ssh_config file, so the first value wins as with ssh;
:func:`check_options` checks their values. ``StrictHostKeyChecking`` (which
asyncssh does not read) and the ``%`` tokens of ``UserKnownHostsFile`` are added
to asyncssh's reader here (:class:`_ClientConfig`). Explicit settings (SshNode
arguments, hence the inventory, ``-l``, ``-k``, ``-G``, ``--port``,
``--known-hosts``) always win over both.

tests/unit/test_sshconfig_differential.py checks, for a corpus of files, that what
:func:`lookup` resolves for every option of :data:`HONOURED` is what ``ssh -G``
(OpenSSH's own resolution) prints.

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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
from asyncssh.config import ConfigParseError, SSHClientConfig

from apssh_cli.errors import ConfigError
from apssh_cli.ssh.early import DEFAULT_SSH_CONFIG
from apssh_cli.ssh.sshoptions import (
    HONOURED,
    SshOptions,
    current_settings,
    parse_option,
    ssh_settings,
)

__all__ = [
    "DEFAULT_SSH_CONFIG",
    "HONOURED",
    "HostConfig",
    "JumpHost",
    "SshOptions",
    "check_options",
    "current_settings",
    "local_user",
    "lookup",
    "parse_jumps",
    "ssh_settings",
]

# StrictHostKeyChecking as `ssh -G` prints it, and apssh's policy for each value
_STRICT_VALUES = {
    "yes": "true",
    "true": "true",
    "ask": "ask",
    "accept-new": "accept-new",
    "no": "false",
    "off": "false",
    "false": "false",
}
_POLICY_OF = {"true": "strict", "ask": "strict", "accept-new": "accept-new", "false": "off"}


@dataclass(frozen=True)
class JumpHost:
    """One hop of a ``ProxyJump`` value: ``[user@]host[:port]``."""

    host: str
    user: str | None = None
    port: int | None = None


@dataclass(frozen=True)
class HostConfig:
    """What the ssh configuration says about one host (None: not set)."""

    hostname: str | None = None
    user: str | None = None
    port: int | None = None
    identity_files: tuple[str, ...] = ()
    proxy_jump: tuple[JumpHost, ...] | None = None  # () means "ProxyJump none"
    keepalive_interval: float | None = None  # ServerAliveInterval
    keepalive_count_max: int | None = None  # ServerAliveCountMax
    ciphers: str | None = None  # Ciphers
    strict_host_key_checking: str | None = None  # as ssh -G prints it: true, ask, accept-new, false
    user_known_hosts: tuple[str, ...] | None = None  # () means "UserKnownHostsFile none"
    global_known_hosts: tuple[str, ...] | None = None
    host_key_alias: str | None = None
    host_key_algorithms: str | None = None
    identities_only: bool | None = None
    identity_agent: str | None = None  # a socket path, or "none"

    def entries(self) -> list[str]:
        """The options the configuration set, in OpenSSH's names (what ``-v`` shows)."""
        shown = []
        for name, value in (
            ("HostName", self.hostname),
            ("User", self.user),
            ("Port", self.port),
            ("IdentityFile", " ".join(self.identity_files) or None),
            ("ProxyJump", _jumps_text(self.proxy_jump)),
            ("ServerAliveInterval", self.keepalive_interval),
            ("ServerAliveCountMax", self.keepalive_count_max),
            ("Ciphers", self.ciphers),
            ("StrictHostKeyChecking", self.strict_host_key_checking),
            ("UserKnownHostsFile", _files_text(self.user_known_hosts)),
            ("GlobalKnownHostsFile", _files_text(self.global_known_hosts)),
            ("HostKeyAlias", self.host_key_alias),
            ("HostKeyAlgorithms", self.host_key_algorithms),
            ("IdentitiesOnly", None if self.identities_only is None else str(self.identities_only)),
            ("IdentityAgent", self.identity_agent),
        ):
            if value is not None:
                shown.append(f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}")
        return shown

    @property
    def host_key_policy(self) -> str | None:
        """apssh's policy for ``StrictHostKeyChecking`` (ask is strict: apssh never prompts)."""
        if self.strict_host_key_checking is None:
            return None
        return _POLICY_OF[self.strict_host_key_checking]


def _jumps_text(jumps: tuple[JumpHost, ...] | None) -> str | None:
    if jumps is None:
        return None
    if not jumps:
        return "none"
    return ",".join(
        (f"{hop.user}@" if hop.user else "") + hop.host + (f":{hop.port}" if hop.port else "")
        for hop in jumps
    )


def _files_text(files: tuple[str, ...] | None) -> str | None:
    return None if files is None else " ".join(files) or "none"


class _ClientConfig(SSHClientConfig):
    """asyncssh's client config, plus the options it leaves to its caller.

    ``StrictHostKeyChecking`` (asyncssh has no prompt to make), and the ``%`` tokens
    of ``UserKnownHostsFile`` (asyncssh reads the file names as they are).
    """

    _percent_expand = {*SSHClientConfig._percent_expand, "UserKnownHostsFile"}  # noqa: RUF012

    def _set_strict(self, option: str, args: list[str]) -> None:
        value = args.pop(0)
        canonical = _STRICT_VALUES.get(value.lower())
        if canonical is None:
            self._error(f"Invalid {option} value: {value}")
        if option not in self._options:
            self._options[option] = canonical

    def _set_tokens(self) -> None:
        super()._set_tokens()
        # %k: the host key alias, else the name given (as OpenSSH)
        self._tokens["k"] = str(self._options.get("HostKeyAlias") or self._orig_host)

    _handlers = {  # noqa: RUF012 (asyncssh's table, read only)
        **SSHClientConfig._handlers,
        "stricthostkeychecking": ("StrictHostKeyChecking", _set_strict),
    }


def local_user() -> str:
    """The local user name, also when USER and LOGNAME are unset (cron, systemd)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        try:
            return pwd.getpwuid(os.getuid()).pw_name
        except KeyError:
            return str(os.getuid())


# ---------------------------------------------------------------- lookup


def check_options(options: SshOptions) -> None:
    """Check the values of ``-O`` options as asyncssh reads them (``Port=x`` is refused).

    Raises:
        ConfigError: naming the option.
    """
    if not options:
        return
    config = lookup_files(options.path, None, "localhost")
    # algorithm names: asyncssh refuses unknown ones only when connecting
    for name, value, keyword in (
        ("HostKeyAlgorithms", config.host_key_algorithms, "server_host_key_algs"),
        ("Ciphers", config.ciphers, "encryption_algs"),
    ):
        if value is None:
            continue
        try:
            asyncssh.SSHClientConnectionOptions(
                config=None, known_hosts=None, client_keys=None, agent_path=None, **{keyword: value}
            )
        except ValueError as exc:
            given = next(line for line in options.lines if parse_option(line)[0] == name)
            raise ConfigError(f"bad -O {given!r}: {exc}") from None


def config_files(options: SshOptions | None, path: str | Path | None) -> list[Path]:
    """The config files asyncssh reads, highest precedence first: the ``-O`` file,
    then the ssh_config file when it exists (a missing one says nothing, as with ssh)."""
    files = []
    if options:
        assert options.path is not None
        files.append(options.path)
    if path is not None:
        resolved = Path(path).expanduser()
        if resolved.exists():
            files.append(resolved)
    return files


def lookup(
    path: str | Path | None,
    host: str,
    *,
    user: str | None = None,
    port: int | None = None,
    options: SshOptions | None = None,
) -> HostConfig:
    """What the ``-O`` options, then the config file at ``path``, say about ``host``.

    Args:
        path: the ssh_config file (None, or a missing file: none).
        host: the name the user gave (an alias works, as with ssh).
        user: the user when already known (``Match user``, ``%r``).
        port: the port when already known (``%p``).
        options: the ``-O`` options, read first.

    Raises:
        ConfigError: the file (or a file it includes) cannot be read or parsed.
    """
    files = config_files(options, path)
    if not files:
        return HostConfig()
    return lookup_files(files[0], files[1] if len(files) > 1 else None, host, user, port)


def lookup_files(
    first: Path | None,
    second: Path | None,
    host: str,
    user: str | None = None,
    port: int | None = None,
) -> HostConfig:
    """:func:`lookup` on config files already chosen."""
    files = [file for file in (first, second) if file is not None]
    try:
        config = _ClientConfig.load(
            None,
            files,
            False,
            False,
            False,
            local_user(),
            user if user is not None else (),
            host,
            port if port is not None else (),
        )
    except ConfigParseError as exc:
        raise _parse_error(exc, files) from exc
    except OSError as exc:
        raise ConfigError(
            f"cannot read ssh config: {exc.strerror or exc}", source=str(exc.filename or files[-1])
        ) from exc
    assert isinstance(config, _ClientConfig)
    return _host_config(config, files[-1])


def _parse_error(exc: ConfigParseError, files: Sequence[Path]) -> ConfigError:
    options = SshOptions._files
    text = str(exc)
    for lines, path in options.items():
        prefix = f"{path} line "
        if text.startswith(prefix):  # a -O option: name it, not our private file
            number, _, reason = text[len(prefix) :].partition(": ")
            given = lines[int(number) - 1] if number.isdigit() else "?"
            return ConfigError(f"bad -O {given!r}: {reason}")
    return ConfigError(f"bad ssh config: {exc}", source=str(files[-1]))


def _host_config(config: SSHClientConfig, source: Path) -> HostConfig:
    jump = config.get("ProxyJump", ())
    identity_files: Any = config.get("IdentityFile") or ()
    agent = config.get("IdentityAgent", ())
    return HostConfig(
        hostname=_optional(config.get("Hostname"), str),
        user=_optional(config.get("User"), str),
        port=_optional(config.get("Port"), int),
        identity_files=tuple(os.path.expanduser(str(file)) for file in identity_files),
        proxy_jump=(
            None if jump == () else () if jump is None else parse_jumps(str(jump), str(source))
        ),
        keepalive_interval=_optional(config.get("ServerAliveInterval"), float),
        keepalive_count_max=_optional(config.get("ServerAliveCountMax"), int),
        ciphers=_optional(config.get("Ciphers"), str),
        strict_host_key_checking=_optional(config.get("StrictHostKeyChecking"), str),
        user_known_hosts=_paths(config.get("UserKnownHostsFile")),
        global_known_hosts=_paths(config.get("GlobalKnownHostsFile")),
        host_key_alias=_optional(config.get("HostKeyAlias"), str),
        host_key_algorithms=_optional(config.get("HostKeyAlgorithms"), str),
        identities_only=_optional(config.get("IdentitiesOnly"), bool),
        # asyncssh reads "none" as None
        identity_agent=(
            None if agent == () else "none" if agent is None else _agent_path(str(agent))
        ),
    )


def _paths(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(os.path.expanduser(str(item)) for item in value)


def _agent_path(value: str) -> str:
    # OpenSSH's spelling for "the socket in $SSH_AUTH_SOCK"
    if value == "SSH_AUTH_SOCK":
        return os.environ.get("SSH_AUTH_SOCK", "") or "none"
    return os.path.expanduser(value)


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
