"""A small reader of OpenSSH's ``~/.ssh/config``: the options apssh-cli honours.

Only ``HostName``, ``User``, ``Port``, ``IdentityFile`` and ``ProxyJump`` are used,
looked up OpenSSH's way: blocks are scanned in order, the first value found for
an option wins (``IdentityFile`` accumulates), ``Host`` patterns take ``*``, ``?``
and ``!negation``, ``Include`` is followed. ``Match`` blocks are not evaluated
(they never apply). A file is parsed once per process (see :func:`load_ssh_config`),
not once per connection; no I/O happens in lookups.

>>> config = SshConfig.parse("Host n*\\n  User root\\n  Port 2222\\n")
>>> config.lookup("n1").user, config.lookup("n1").port
('root', 2222)
"""

from __future__ import annotations

import fnmatch
import getpass
import glob
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from apssh_cli.errors import ConfigError

DEFAULT_SSH_CONFIG = Path("~/.ssh/config")
_USED = {"hostname", "user", "port", "identityfile", "proxyjump"}
_MAX_INCLUDE_DEPTH = 8


@dataclass(frozen=True)
class JumpHost:
    """One hop of a ``ProxyJump`` value: ``[user@]host[:port]``."""

    host: str
    user: str | None = None
    port: int | None = None


@dataclass(frozen=True)
class HostConfig:
    """What ``~/.ssh/config`` says about one host (None: not set)."""

    hostname: str | None = None
    user: str | None = None
    port: int | None = None
    identity_files: tuple[str, ...] = ()
    proxy_jump: tuple[JumpHost, ...] | None = None  # () means "ProxyJump none"


@dataclass(frozen=True)
class _Block:
    patterns: tuple[str, ...]  # empty: applies to every host (options before any Host)
    options: tuple[tuple[str, str, int], ...]  # (keyword, value, line)
    source: str
    is_match: bool = False

    def applies_to(self, host: str) -> bool:
        if self.is_match:
            return False
        if not self.patterns:
            return True
        host = host.lower()
        matched = False
        for pattern in self.patterns:
            negated = pattern.startswith("!")
            if fnmatch.fnmatchcase(host, pattern.lstrip("!").lower()):
                if negated:
                    return False
                matched = True
        return matched


@dataclass(frozen=True)
class SshConfig:
    """A parsed ssh_config file: an ordered list of blocks."""

    blocks: tuple[_Block, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, text: str, source: str = "<string>", *, _depth: int = 0) -> SshConfig:
        """Parse the text of an ssh_config file.

        Raises:
            ConfigError: a malformed line, with the file and line number.
        """
        blocks: list[_Block] = []
        patterns: tuple[str, ...] = ()
        is_match = False
        options: list[tuple[str, str, int]] = []

        def close_block() -> None:
            if options or patterns:
                blocks.append(_Block(patterns, tuple(options), source, is_match))

        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            keyword, value = _split(line, source, number)
            key = keyword.lower()
            if key in ("host", "match"):
                close_block()
                options = []
                is_match = key == "match"
                patterns = tuple(_words(value, source, number)) if not is_match else ("*",)
            elif key == "include":
                close_block()
                options = []
                for included in _include(value, source, number, _depth):
                    # an Include inside a Host block applies only to that block's hosts
                    for block in included.blocks:
                        blocks.append(
                            _Block(
                                block.patterns or patterns,
                                block.options,
                                block.source,
                                block.is_match or is_match,
                            )
                        )
            elif key in _USED:
                options.append((key, value, number))
        close_block()
        return cls(tuple(blocks))

    @classmethod
    def read(cls, path: str | Path) -> SshConfig:
        """Parse a file; a missing file is an empty config."""
        path = Path(path).expanduser()
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return cls()
        except OSError as exc:
            raise ConfigError(f"cannot read ssh config: {exc.strerror}", source=str(path)) from exc
        return cls.parse(text, str(path))

    def lookup(self, host: str) -> HostConfig:
        """Resolve the options for ``host`` (the name given by the user)."""
        found: dict[str, tuple[str, str, int]] = {}
        identity: list[tuple[str, str, int]] = []
        for block in self.blocks:
            if not block.applies_to(host):
                continue
            for key, value, line in block.options:
                if key == "identityfile":
                    identity.append((value, block.source, line))
                else:
                    found.setdefault(key, (value, block.source, line))
        hostname = found["hostname"][0] if "hostname" in found else None
        hostname = _expand(hostname, host, host) if hostname else None
        real = hostname or host
        user = found["user"][0] if "user" in found else None
        port = None
        if "port" in found:
            value, source, line = found["port"]
            port = _port(value, source, line)
        jumps: tuple[JumpHost, ...] | None = None
        if "proxyjump" in found:
            jumps = _jumps(*found["proxyjump"])
        files = tuple(
            os.path.expanduser(_expand(value, real, host, user=user, port=port))
            for value, _, _ in identity
        )
        return HostConfig(hostname, user, port, files, jumps)


def _split(line: str, source: str, number: int) -> tuple[str, str]:
    # "Keyword value", "Keyword=value" or "Keyword = value"
    match = _KEYWORD.match(line)
    if match is None:
        raise ConfigError(f"{line.split()[0]!r} has no value", source=source, line=number)
    keyword, value = match.group(1), match.group(2).strip()
    if len(value) > 1 and value.startswith('"') and value.endswith('"'):
        value = value[1:-1]
    return keyword, value


_KEYWORD = re.compile(r"^([A-Za-z]+)(?:\s*=\s*|\s+)(\S.*)$")


def _words(value: str, source: str, number: int) -> list[str]:
    try:
        return shlex.split(value)
    except ValueError as exc:
        raise ConfigError(f"bad quoting: {exc}", source=source, line=number) from exc


def _port(value: str, source: str, line: int) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ConfigError(f"bad Port {value!r}", source=source, line=line)
    return int(value)


def _jumps(value: str, source: str, line: int) -> tuple[JumpHost, ...]:
    if value.lower() == "none":
        return ()
    hops = []
    for item in value.split(","):
        spec = item.strip().removeprefix("ssh://")
        user, _, hostport = spec.rpartition("@")
        host, port = hostport, None
        if hostport.count(":") == 1:
            host, port_text = hostport.split(":")
            port = _port(port_text, source, line)
        if not host:
            raise ConfigError(f"bad ProxyJump {value!r}", source=source, line=line)
        hops.append(JumpHost(host, user or None, port))
    return tuple(hops)


def _include(value: str, source: str, number: int, depth: int) -> list[SshConfig]:
    if depth >= _MAX_INCLUDE_DEPTH:
        raise ConfigError("Include nested too deeply", source=source, line=number)
    configs = []
    for word in _words(value, source, number):
        pattern = os.path.expanduser(word)
        if not os.path.isabs(pattern):
            pattern = os.path.join(os.path.expanduser("~/.ssh"), pattern)
        for path in sorted(glob.glob(pattern)):
            text = Path(path).read_text(encoding="utf-8", errors="replace")
            configs.append(SshConfig.parse(text, path, _depth=depth + 1))
    return configs


def _expand(
    value: str, hostname: str, original: str, *, user: str | None = None, port: int | None = None
) -> str:
    """Expand the ``%`` tokens OpenSSH allows in HostName and IdentityFile."""
    tokens = {
        "%": "%",
        "h": hostname,
        "n": original,
        "d": os.path.expanduser("~"),
        "u": _local_user(),
        "r": user or _local_user(),
        "p": str(port or 22),
    }
    out = []
    index = 0
    while index < len(value):
        char = value[index]
        if char == "%" and index + 1 < len(value) and value[index + 1] in tokens:
            out.append(tokens[value[index + 1]])
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "root"


_CACHE: dict[Path, SshConfig] = {}


def load_ssh_config(path: str | Path | None = None) -> SshConfig:
    """The parsed config file (``~/.ssh/config`` by default), parsed once per process.

    Raises:
        ConfigError: the file is malformed.
    """
    key = Path(path if path is not None else DEFAULT_SSH_CONFIG).expanduser()
    config = _CACHE.get(key)
    if config is None:
        config = _CACHE[key] = SshConfig.read(key)
    return config


def clear_ssh_config_cache() -> None:
    """Forget parsed files (tests, or a long-lived program whose config changed)."""
    _CACHE.clear()
