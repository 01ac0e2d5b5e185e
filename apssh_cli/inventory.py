"""Inventories: which hosts exist, how to reach each, and how they are grouped.

The format is Ansible's TOML inventory plus first-class gateways. Every top-level
table is a group with optional ``hosts`` (host pattern -> table of variables),
``vars`` and ``children``; ``all`` and ``ungrouped`` always exist::

    [all.vars]
    user = "root"

    [nodes]
    vars = { gateway = "bastion" }
    hosts = { "node[01:03]" = {}, "node04:2222" = { user = "admin" } }

    [infra.hosts]
    bastion = { hostname = "192.0.2.1", port = 2222 }

Variables resolve host first, then child groups before their parents, then
``all``; at equal depth the group whose name sorts last wins (as in Ansible).

    >>> inv = Inventory.from_toml_text(TEXT)       # doctest: +SKIP
    >>> [h.name for h in inv.select("nodes,!node02")]  # doctest: +SKIP
    ['node01', 'node03', 'node04']
    >>> [h.target for h in inv.route("node04")]   # doctest: +SKIP
    ['root@192.0.2.1:2222', 'admin@node04:2222']

Every problem raises `InventoryError` (or a subclass) naming the file, and the
line when it can be found.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from apssh_cli import hostrange
from apssh_cli.errors import HostRangeError, InventoryError, SelectionError
from apssh_cli.selection import did_you_mean, select

ALL = "all"
UNGROUPED = "ungrouped"
GROUP_KEYS = ("hosts", "vars", "children")
KNOWN_HOSTS_POLICIES = ("strict", "accept-new", "off")
CONNECTIONS = ("ssh", "local")
NO_GATEWAY = "none"

# Ansible's variable names, accepted as aliases of ours
ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "ansible_host": "hostname",
        "ansible_ssh_host": "hostname",
        "ansible_port": "port",
        "ansible_ssh_port": "port",
        "ansible_user": "user",
        "ansible_ssh_user": "user",
        "ansible_ssh_private_key_file": "identity_file",
        "ansible_private_key_file": "identity_file",
        "ansible_connection": "connection",
    }
)
KNOWN_VARIABLES = frozenset(
    {
        "hostname",
        "port",
        "user",
        "gateway",
        "identity_file",
        "known_hosts",
        "connect_timeout",
        "connection",
        "ansible_ssh_common_args",
        *ALIASES,
    }
)
# names that cannot be told apart from pattern syntax in `-g`
_BAD_NAME_CHARS = re.compile(r"[\s,&!~*?\[\]@]")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_END = re.compile(r"\s*\(at end of document\)\s*$")
_PORT_SUFFIX = re.compile(r"^(.*[^:]):([0-9]+)$", re.DOTALL)


@dataclass(frozen=True)
class Host:
    """One host, with every setting resolved.

    Attributes:
        name: the inventory name (``node01``).
        hostname: the address to connect to; the name unless set.
        port: SSH port; None for the library default (22 or ~/.ssh/config).
        user: remote user; None for the library default.
        gateway: inventory name of the host to tunnel through; None = direct.
        identity_files: private key files, ``~`` expanded.
        known_hosts_policy: "strict", "accept-new", "off", or None (default).
        known_hosts_file: a known_hosts file to use instead of the user's.
        connect_timeout: seconds, or None for the default.
        connection: "ssh", or "local" to run on this machine.
        groups: every group the host is in, ancestors included, "all" first.
        vars: every merged variable, free ones included (for templates).
        is_implicit: made up from a ProxyJump, not listed in the inventory.
    """

    name: str
    hostname: str
    port: int | None = None
    user: str | None = None
    gateway: str | None = None
    identity_files: tuple[str, ...] = ()
    known_hosts_policy: str | None = None
    known_hosts_file: str | None = None
    connect_timeout: float | None = None
    connection: str = "ssh"
    groups: tuple[str, ...] = (ALL,)
    vars: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    is_implicit: bool = False

    @classmethod
    def adhoc(
        cls,
        name: str,
        *,
        hostname: str | None = None,
        user: str | None = None,
        port: int | None = None,
        gateway: str | None = None,
        **settings: Any,
    ) -> Host:
        """Build a host outside any inventory (the CLI's ``-t`` targets).

        Args:
            name: the name shown in output.
            hostname: the address; defaults to ``name``.
            user, port, gateway: as in the inventory; ``gateway`` names a host
                that `Inventory.route` can find.
            settings: any other `Host` field (identity_files, ...).

        Raises:
            InventoryError: a bad port.
        """
        if port is not None:
            port = _check_port(port)
        return cls(
            name=name,
            hostname=hostname or name,
            user=user,
            port=port,
            gateway=None if gateway == NO_GATEWAY else gateway,
            **settings,
        )

    @classmethod
    def from_target(cls, spec: str, *, gateway: str | None = None) -> Host:
        """Build a host from ``[user@]host[:port]`` (brackets around an IPv6 address).

        Raises:
            InventoryError: an empty host or a bad port.
        """
        user, hostname, port = parse_target(spec)
        return cls.adhoc(hostname, user=user, port=port, gateway=gateway)

    @property
    def target(self) -> str:
        """``user@hostname:port``, leaving out what is not set."""
        address = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        text = f"{self.user}@{address}" if self.user else address
        return f"{text}:{self.port}" if self.port is not None else text


@dataclass(frozen=True)
class Group:
    """A group as written: its own hosts, its child groups and its variables."""

    name: str
    hosts: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)


class Inventory:
    """Hosts and groups loaded from one or more TOML files.

    Build one with `load`, `from_toml_text` or `from_dict`; an empty
    ``Inventory()`` takes ad-hoc hosts with `add_host`.
    """

    def __init__(
        self,
        hosts: Mapping[str, Host] | None = None,
        groups: Mapping[str, Group] | None = None,
        implicit: Mapping[str, Host] | None = None,
    ) -> None:
        self._hosts: dict[str, Host] = dict(hosts or {})
        self._groups: dict[str, Group] = dict(
            groups or {ALL: Group(ALL, children=(UNGROUPED,)), UNGROUPED: Group(UNGROUPED)}
        )
        self._implicit: dict[str, Host] = dict(implicit or {})
        self._members: dict[str, set[str]] | None = None

    @classmethod
    def load(cls, paths: Sequence[str | Path]) -> Inventory:
        """Read and merge inventory files, later files adding to earlier ones.

        Raises:
            InventoryError: no path, an unreadable file, or bad contents.
        """
        if not paths:
            raise InventoryError("no inventory file given")
        loader = _Loader()
        seen: set[Path] = set()
        for path in paths:
            path = Path(path)
            key = path.resolve()
            if key in seen:  # the same file twice (flag and env var): read once
                continue
            seen.add(key)
            try:
                raw = path.read_bytes()
            except OSError as exc:
                raise InventoryError(
                    f"cannot read inventory: {exc.strerror or exc}", source=str(path)
                ) from None
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                line = raw[: exc.start].count(b"\n") + 1
                raise InventoryError("not UTF-8 text", source=str(path), line=line) from None
            loader.add_text(text, str(path))
        return loader.build()

    @classmethod
    def from_toml_text(cls, text: str, source: str = "<string>") -> Inventory:
        """Build an inventory from TOML text (``source`` names it in errors)."""
        loader = _Loader()
        loader.add_text(text, source)
        return loader.build()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> Inventory:
        """Build an inventory from already parsed TOML data."""
        loader = _Loader()
        loader.add_data(data, source, None)
        return loader.build()

    @property
    def hosts(self) -> Mapping[str, Host]:
        """Every listed host, by name, in the order of first appearance."""
        return MappingProxyType(self._hosts)

    @property
    def groups(self) -> Mapping[str, Group]:
        """Every group by name, ``all`` and ``ungrouped`` included."""
        return MappingProxyType(self._groups)

    @property
    def implicit_hosts(self) -> Mapping[str, Host]:
        """Jump hosts made up from ProxyJump options: reachable, never selected."""
        return MappingProxyType(self._implicit)

    def __len__(self) -> int:
        return len(self._hosts)

    def __iter__(self) -> Iterator[Host]:
        return iter(self._hosts.values())

    def __contains__(self, name: object) -> bool:
        return name in self._hosts

    def get(self, name: str) -> Host | None:
        """The listed or implicit host called ``name``, or None."""
        return self._hosts.get(name) or self._implicit.get(name)

    def host(self, name: str) -> Host:
        """The listed or implicit host called ``name``.

        Raises:
            SelectionError: no such host; the message suggests near names.
        """
        found = self.get(name)
        if found is None:
            hint = did_you_mean(name, [*self._hosts, *self._implicit])
            raise SelectionError(f"no host named {name!r}{hint}", pattern=name)
        return found

    def members(self, group: str) -> set[str]:
        """Names of the hosts in ``group`` and in its descendants."""
        if self._members is None:
            members: dict[str, set[str]] = {name: set() for name in self._groups}
            for host in self._hosts.values():
                for name in host.groups:
                    members.setdefault(name, set()).add(host.name)
            self._members = members
        return self._members.get(group, set())

    def select(self, pattern: str = ALL, exclude: str | None = None) -> list[Host]:
        """The hosts a ``-g`` pattern names, minus the ``-x`` ones, in inventory order.

        Raises:
            SelectionError: a term matches nothing, or the pattern is malformed.
        """
        return select(self, pattern, exclude)

    def route(self, name: str | Host) -> list[Host]:
        """The gateway chain to a host, outermost first, ending with the host.

        Args:
            name: a host name, or a `Host` (e.g. ad hoc) whose gateway is here.

        Raises:
            SelectionError: unknown host.
            InventoryError: a gateway that is not here, or a gateway cycle.
        """
        host = self.host(name) if isinstance(name, str) else name
        chain = [host]
        seen = {host.name}
        while chain[0].gateway is not None:
            gateway_name = chain[0].gateway
            gateway = self.get(gateway_name)
            if gateway is None:
                raise InventoryError(
                    f"host {chain[0].name!r}: gateway {gateway_name!r} is not an inventory host"
                )
            if gateway.name in seen:
                cycle = " -> ".join([*(h.name for h in reversed(chain)), gateway.name])
                raise InventoryError(f"gateway cycle: {cycle}")
            seen.add(gateway.name)
            chain.insert(0, gateway)
        return chain

    def add_host(self, host: Host) -> None:
        """Add (or replace) a host, e.g. an ad hoc ``-t`` target, as ungrouped.

        Raises:
            InventoryError: its gateway is unknown, or makes a cycle.
        """
        groups = host.groups if UNGROUPED in host.groups else (ALL, UNGROUPED)
        host = replace(host, groups=groups)
        self.route(host)  # validate the gateway chain first
        self._hosts[host.name] = host
        ungrouped = self._groups[UNGROUPED]
        if host.name not in ungrouped.hosts:
            self._groups[UNGROUPED] = replace(ungrouped, hosts=(*ungrouped.hosts, host.name))
        self._members = None


def parse_target(spec: str) -> tuple[str | None, str, int | None]:
    """Split ``[user@]host[:port]`` into (user, host, port).

    Raises:
        InventoryError: an empty host or user, or a bad port.
    """
    user, at, rest = spec.rpartition("@")
    if at and not user:
        raise InventoryError(f"empty user in {spec!r}")
    port_text = None
    if rest.startswith("["):  # [2001:db8::1]:22
        hostname, closing, after = rest[1:].partition("]")
        if not closing or (after and not after.startswith(":")):
            raise InventoryError(f"bad address in {spec!r}")
        port_text = after[1:] if after else None
    elif rest.count(":") == 1:
        hostname, _, port_text = rest.partition(":")
    else:
        hostname = rest
    if not hostname:
        raise InventoryError(f"empty host name in {spec!r}")
    port = None
    if port_text is not None:
        if not port_text.isdigit():
            raise InventoryError(f"bad port {port_text!r} in {spec!r}")
        port = _check_port(int(port_text))
    return (user or None), hostname, port


def _check_port(port: Any) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InventoryError(f"port must be an integer from 1 to 65535, got {port!r}")
    return port


# ---------------------------------------------------------------------------
# variables with a meaning: checked where they are written, converted at the end


@dataclass(frozen=True)
class _Jump:
    """A gateway given as ssh options (ProxyJump/ProxyCommand): hops outermost first."""

    hops: tuple[tuple[str | None, str, int | None], ...]
    spec: str


def _describe(value: Any) -> str:
    kind = {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    return kind.get(type(value), type(value).__name__)


def _check_variable(key: str, value: Any) -> Any:
    """Check one meaningful variable; return the value to store (ValueError if bad)."""
    if key in ("hostname", "user"):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{key} must be a non-empty string, not {_describe(value)}")
    elif key == "port":
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise ValueError(f"port must be an integer from 1 to 65535, got {value!r}")
    elif key == "gateway":
        if not isinstance(value, str | _Jump) or not value:
            raise ValueError(
                f'gateway must be the name of an inventory host or "none", not {_describe(value)}'
            )
    elif key == "identity_file":
        files = [value] if isinstance(value, str) else value
        if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
            raise ValueError("identity_file must be a path or an array of paths")
    elif key == "known_hosts":
        _known_hosts(value)
    elif key == "connect_timeout":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 < value < float("inf")
        ):
            raise ValueError(f"connect_timeout must be a positive number of seconds, got {value!r}")
    elif key == "connection" and value not in CONNECTIONS:
        raise ValueError(f'connection must be "ssh" or "local", got {value!r}')
    return value


def _known_hosts(value: Any) -> tuple[str | None, str | None]:
    """``"strict"`` / a path / ``{policy=, file=}`` -> (policy, file)."""
    policies = ", ".join(f'"{p}"' for p in KNOWN_HOSTS_POLICIES)
    if isinstance(value, str) and value:
        if value in KNOWN_HOSTS_POLICIES:
            return value, None
        return None, os.path.expanduser(value)
    if isinstance(value, dict):
        unknown = set(value) - {"policy", "file"}
        if unknown:
            raise ValueError(f"known_hosts: unknown key {sorted(unknown)[0]!r} (use policy, file)")
        policy, path = value.get("policy"), value.get("file")
        if policy is not None and policy not in KNOWN_HOSTS_POLICIES:
            raise ValueError(f"known_hosts policy must be one of {policies}, got {policy!r}")
        if path is not None and (not isinstance(path, str) or not path):
            raise ValueError("known_hosts file must be a path")
        return policy, (os.path.expanduser(path) if path else None)
    raise ValueError(f"known_hosts must be one of {policies}, a path, or {{ policy, file }}")


def _jump_from_ssh_args(args: Any) -> _Jump | None:
    """Find ``-J`` / ``-o ProxyJump=`` / ``-o ProxyCommand='ssh -W ...'`` in ssh args."""
    if not isinstance(args, str):
        raise ValueError(f"ansible_ssh_common_args must be a string, not {_describe(args)}")
    try:
        words = shlex.split(args)
    except ValueError as exc:
        raise ValueError(f"ansible_ssh_common_args: {exc}") from None
    for index, word in enumerate(words):
        following = words[index + 1] if index + 1 < len(words) else ""
        if word == "-J" or word.startswith("-J"):
            return _parse_jump(word[2:] or following)
        if word == "-o" or (word.startswith("-o") and len(word) > 2):
            option = word[2:] or following
            found = re.match(r"\s*([A-Za-z]+)\s*[=\s]\s*(.*)", option, re.DOTALL)
            name, value = found.groups() if found else (option, "")
            if name.lower() == "proxyjump":
                return _parse_jump(value.strip())
            if name.lower() == "proxycommand":
                return _jump_from_proxy_command(value.strip())
    return None


def _parse_jump(spec: str) -> _Jump:
    if not spec or spec.lower() == "none":
        raise ValueError(f"cannot use ProxyJump {spec!r}")
    hops = []
    for hop in spec.split(","):
        try:
            hops.append(parse_target(hop.removeprefix("ssh://")))
        except InventoryError as exc:
            raise ValueError(f"bad ProxyJump: {exc.message}") from None
    return _Jump(tuple(hops), spec)


_SSH_OPTIONS_WITH_VALUE = set("BbcDEeFIiJLlmOoPpQRSWw")


def _jump_from_proxy_command(command: str) -> _Jump:
    words = shlex.split(command)
    if not words or os.path.basename(words[0]) != "ssh" or "-W" not in " ".join(words):
        raise ValueError(
            f"unsupported ProxyCommand {command!r}: only 'ssh -W %h:%p [user@]host' "
            "is understood; use the gateway variable"
        )
    user = port = None
    destination = None
    index = 1
    while index < len(words):
        word = words[index]
        if word.startswith("-") and len(word) >= 2 and word[1] in _SSH_OPTIONS_WITH_VALUE:
            value = word[2:] or (words[index + 1] if index + 1 < len(words) else "")
            index += 1 if word[2:] else 2
            if word[1] == "p":
                port = value
            elif word[1] == "l":
                user = value
            continue
        if not word.startswith("-"):
            destination = word
        index += 1
    if destination is None:
        raise ValueError(f"no destination host in ProxyCommand {command!r}")
    spec = destination
    if user and "@" not in spec:
        spec = f"{user}@{spec}"
    if port:
        spec = f"{spec}:{port}"
    return _parse_jump(spec)


class _VariableError(ValueError):
    """A bad value for one variable: ``key`` locates it."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(message)


def _normalize(raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Check a level's variables and add our names for Ansible's.

    Returns:
        The variables to store, and for each one the key it was written as.

    Raises:
        _VariableError: a meaningful variable has a bad value.
    """
    out = dict(raw)
    written = {key: key for key in raw}
    for key, value in raw.items():
        canonical = ALIASES.get(key)
        try:
            if canonical is not None:
                if key == "ansible_connection" and value in ("paramiko", "smart"):
                    value = "ssh"  # Ansible's other ssh transports
                checked = _check_variable(canonical, value)
                if canonical not in raw:  # ours wins over Ansible's at the same level
                    out[canonical], written[canonical] = checked, key
            elif key == "ansible_ssh_common_args":
                jump = _jump_from_ssh_args(value)
                if jump is not None and "gateway" not in raw:
                    out["gateway"], written["gateway"] = jump, key
            elif key in KNOWN_VARIABLES:
                out[key] = _check_variable(key, value)
        except _VariableError:
            raise
        except ValueError as exc:
            raise _VariableError(key, str(exc)) from None
    return out, written


# ---------------------------------------------------------------------------
# finding lines in the raw text: tomllib gives positions for syntax errors only


class _Locator:
    """Map TOML key paths to the lines that write them (headers and ``key =`` lines)."""

    _KEY = re.compile(r"""\s*(?:([A-Za-z0-9_-]+)|"((?:[^"\\]|\\.)*)"|'([^']*)')\s*""")

    def __init__(self, text: str) -> None:
        self.text = text
        self._paths: list[tuple[tuple[str, ...], int, int]] | None = None

    def _scan(self) -> list[tuple[tuple[str, ...], int, int]]:
        """(full key path, line, index where that line's own keys begin) per line."""
        if self._paths is None:
            paths = []
            header: tuple[str, ...] = ()
            for number, line in enumerate(self.text.splitlines(), start=1):
                stripped = line.lstrip()
                if stripped.startswith("["):
                    array = stripped.startswith("[[")
                    keys, _ = self._keys(stripped[2 if array else 1 :])
                    if keys:
                        header = tuple(keys)
                        paths.append((header, number, 0))
                    continue
                keys, rest = self._keys(stripped)
                if keys and rest.startswith("="):
                    paths.append(((*header, *keys), number, len(header)))
            self._paths = paths
        return self._paths

    def _keys(self, text: str) -> tuple[list[str], str]:
        keys: list[str] = []
        position = 0
        while True:
            match = self._KEY.match(text, position)
            if match is None:
                return [], ""
            bare, basic, literal = match.groups()
            if basic is not None:
                with contextlib.suppress(tomllib.TOMLDecodeError):
                    basic = tomllib.loads(f'k = "{basic}"')["k"]
            keys.append(next(k for k in (bare, basic, literal) if k is not None))
            position = match.end()
            if text.startswith(".", position):
                position += 1
                continue
            return keys, text[position:]

    def line(self, path: Sequence[str]) -> int | None:
        """The first line whose key path shares the most leading keys with ``path``."""
        best_size, best_line = 0, None
        for keys, number, _ in self._scan():
            size = 0
            for key, wanted in zip(keys, path, strict=False):
                if key != wanted:
                    break
                size += 1
            # a longer key path must start with ours; a shorter one must be its prefix
            if size == min(len(keys), len(path)) and size > best_size:
                best_size, best_line = size, number
        return best_line

    def dotted_host(self, group: str, host: str) -> tuple[str, int] | None:
        """An unquoted dotted key that TOML split at the host name: (whole key, line)."""
        for keys, number, start in self._scan():
            if (
                len(keys) > 3
                and keys[:3] == (group, "hosts", host)
                and start <= 2  # this line's own keys run past the host name
            ):
                return ".".join(keys[2:]), number
        return None


@dataclass(frozen=True)
class _Origin:
    """Where something was written, for error messages."""

    source: str
    locator: _Locator | None
    path: tuple[str, ...]

    def error(self, message: str, cls: type[InventoryError] = InventoryError) -> InventoryError:
        line = self.locator.line(self.path) if self.locator else None
        return cls(message, source=self.source, line=line, where=".".join(self.path) or None)


# ---------------------------------------------------------------------------
# loading: gather raw groups and hosts over every file, then resolve


@dataclass
class _RawGroup:
    name: str
    origin: _Origin
    hosts: dict[str, None] = field(default_factory=dict)
    children: dict[str, _Origin] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    var_origins: dict[str, _Origin] = field(default_factory=dict)
    parents: set[str] = field(default_factory=set)


@dataclass
class _RawHost:
    name: str
    groups: dict[str, None] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    var_origins: dict[str, _Origin] = field(default_factory=dict)


class _Loader:
    def __init__(self) -> None:
        self.groups: dict[str, _RawGroup] = {}
        self.hosts: dict[str, _RawHost] = {}

    def add_text(self, text: str, source: str) -> None:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            message = str(exc)
            line = None
            found = _TOML_POSITION.search(message)
            if found:
                line = int(found.group(1))
                message = f"{message[: found.start()]} (column {found.group(2)})"
            elif _TOML_END.search(message):
                line = text.count("\n") + 1
                message = _TOML_END.sub(" (at end of file)", message)
            raise InventoryError(f"invalid TOML: {message}", source=source, line=line) from None
        except RecursionError:
            raise InventoryError("invalid TOML: nested too deeply", source=source) from None
        self.add_data(data, source, _Locator(text))

    def add_data(self, data: Mapping[str, Any], source: str, locator: _Locator | None) -> None:
        def origin(*path: str) -> _Origin:
            return _Origin(source, locator, path)

        if not isinstance(data, Mapping):
            raise InventoryError("an inventory must be a table of groups", source=source)
        for name, body in data.items():
            if not isinstance(body, Mapping):
                raise origin(name).error(
                    f"top-level key {name!r} is not a group: groups are tables "
                    "([name] with hosts, vars, children)"
                )
            self._check_group_name(name, origin(name))
            group = self._group(name, origin(name))
            for key, value in body.items():
                if key == "hosts":
                    self._add_hosts(group, value, origin)
                elif key == "vars":
                    if not isinstance(value, Mapping):
                        raise origin(name, key).error(
                            f"vars must be a table, not {_describe(value)}"
                        )
                    self._add_vars(group.vars, group.var_origins, value, origin(name, key))
                elif key == "children":
                    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
                        raise origin(name, key).error("children must be an array of group names")
                    for child in value:
                        group.children.setdefault(child, origin(name, key))
                else:
                    hint = ""
                    if isinstance(value, Mapping):
                        hint = f'; a group name with a dot must be quoted: ["{name}.{key}"]'
                    raise origin(name, key).error(
                        f"unknown key {key!r} in group {name!r} "
                        f"(expected {', '.join(GROUP_KEYS)}){hint}"
                    )

    def _check_group_name(self, name: str, where: _Origin) -> None:
        if not name or _BAD_NAME_CHARS.search(name):
            raise where.error(f"bad group name {name!r}: no spaces or any of , & ! ~ * ? [ ] @")

    def _group(self, name: str, where: _Origin) -> _RawGroup:
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = _RawGroup(name, where)
        return group

    def _add_vars(
        self,
        target: dict[str, Any],
        origins: dict[str, _Origin],
        raw: Mapping[str, Any],
        where: _Origin,
    ) -> None:
        try:
            values, written = _normalize(raw)
        except _VariableError as exc:
            at = _Origin(where.source, where.locator, (*where.path, exc.key))
            raise at.error(str(exc)) from None
        target.update(values)
        for key in values:
            origins[key] = _Origin(where.source, where.locator, (*where.path, written[key]))

    def _add_hosts(self, group: _RawGroup, hosts: Any, origin: Any) -> None:
        where = origin(group.name, "hosts")
        if not isinstance(hosts, Mapping):
            raise where.error(
                f"hosts must be a table of host = {{ variables }}, not {_describe(hosts)}"
            )
        for key, raw_vars in hosts.items():
            host_where: _Origin = origin(group.name, "hosts", key)
            if not isinstance(raw_vars, Mapping):
                raise host_where.error(
                    f"host {key!r}: expected a table of variables ({{}} for none), "
                    f"not {_describe(raw_vars)}"
                )
            self._check_dotted(group.name, key, raw_vars, host_where)
            names, port = self._expand_key(key, host_where)
            for name in names:
                host = self.hosts.get(name)
                if host is None:
                    host = self.hosts[name] = _RawHost(name)
                host.groups[group.name] = None
                group.hosts[name] = None
                if port is not None and "port" not in raw_vars:
                    host.vars["port"] = port
                    host.var_origins["port"] = host_where
                self._add_vars(host.vars, host.var_origins, raw_vars, host_where)

    def _check_dotted(
        self, group: str, key: str, raw_vars: Mapping[str, Any], where: _Origin
    ) -> None:
        # [g.hosts.node1.example.com] reads as host "node1" with a table "example"
        if (
            raw_vars
            and where.locator is not None
            and all(isinstance(v, Mapping) for v in raw_vars.values())
            and not KNOWN_VARIABLES.intersection(raw_vars)
        ):
            found = where.locator.dotted_host(group, key)
            if found is not None:
                dotted, line = found
                raise InventoryError(
                    f"host name {dotted!r} must be quoted: TOML reads an unquoted dotted key "
                    f'as nested tables (write "{dotted}")',
                    source=where.source,
                    line=line,
                    where=f"{group}.hosts",
                )

    def _expand_key(self, key: str, where: _Origin) -> tuple[list[str], int | None]:
        port = None
        match = _PORT_SUFFIX.match(key)
        # a ":port" suffix only outside brackets: "node[1:3]" has no port
        if match and match.group(1).count("[") == match.group(1).count("]"):
            key, port = match.group(1), int(match.group(2))
            if not 1 <= port <= 65535:
                raise where.error(f"host {key!r}: port must be from 1 to 65535, got {port}")
        try:
            names = hostrange.expand(key) if hostrange.has_range(key) else [key]
        except HostRangeError as exc:
            line = where.locator.line(where.path) if where.locator else None
            raise HostRangeError(
                exc.message,
                fragment=exc.fragment,
                source=where.source,
                line=line,
                where=".".join(where.path[:2]),
            ) from None
        for name in names:
            if not name or _BAD_NAME_CHARS.search(name) or name.count(":") > 0:
                raise where.error(
                    f"bad host name {name!r}: no spaces, commas or colons, "
                    "and [...] only for ranges"
                )
        return names, port

    def build(self) -> Inventory:
        for name in (ALL, UNGROUPED):
            self._group(name, _Origin("<implicit>", None, (name,)))
        self._check_children()
        depth = self._depths()
        # groups without a parent hang under all; hosts with no group are ungrouped
        for group in self.groups.values():
            if group.name != ALL and not group.parents:
                self.groups[ALL].children.setdefault(group.name, group.origin)
                group.parents.add(ALL)
        for host in self.hosts.values():
            if not set(host.groups) - {ALL, UNGROUPED}:
                self.groups[UNGROUPED].hosts[host.name] = None
                host.groups[UNGROUPED] = None
        ancestors = self._ancestors()
        hosts: dict[str, Host] = {}
        gateway_origins: dict[str, _Origin | None] = {}
        for raw in self.hosts.values():
            names = set().union(*(ancestors[g] for g in raw.groups), {ALL})
            order = sorted(names, key=lambda g: (depth[g], g))
            merged: dict[str, Any] = {}
            gateway_origin = None
            for name in order:
                group = self.groups[name]
                merged.update(group.vars)
                gateway_origin = group.var_origins.get("gateway", gateway_origin)
            merged.update(raw.vars)
            gateway_origin = raw.var_origins.get("gateway", gateway_origin)
            hosts[raw.name] = _make_host(raw.name, merged, tuple(order))
            gateway_origins[raw.name] = gateway_origin
        implicit = _resolve_gateways(hosts, gateway_origins)
        groups = {
            g.name: Group(
                g.name,
                hosts=tuple(g.hosts),
                children=tuple(g.children),
                vars=MappingProxyType(dict(g.vars)),
            )
            for g in self.groups.values()
        }
        return Inventory(hosts, groups, implicit)

    def _check_children(self) -> None:
        for group in self.groups.values():
            for child, where in group.children.items():
                if child not in self.groups or child == ALL:
                    hint = did_you_mean(child, self.groups)
                    what = "cannot be a child" if child == ALL else "is not a group"
                    raise where.error(f"child {child!r} of group {group.name!r} {what}{hint}")
                self.groups[child].parents.add(group.name)
        # a cycle among children: depth-first search, reporting the loop itself
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done

        def visit(name: str, path: list[str]) -> None:
            state[name] = 1
            for child in self.groups[name].children:
                if state.get(child) == 1:
                    loop = [*path[path.index(child) :], child]
                    raise (
                        self.groups[name]
                        .children[child]
                        .error(f"cycle in children: {' -> '.join(loop)}")
                    )
                if child not in state:
                    visit(child, [*path, child])
            state[name] = 2

        for name in self.groups:
            if name not in state:
                visit(name, [name])

    def _depths(self) -> dict[str, int]:
        depth: dict[str, int] = {}

        def compute(name: str) -> int:
            if name not in depth:
                parents = self.groups[name].parents - {ALL}
                depth[name] = 0 if name == ALL else 1 + max(map(compute, parents), default=0)
            return depth[name]

        for name in self.groups:
            compute(name)
        return depth

    def _ancestors(self) -> dict[str, set[str]]:
        result: dict[str, set[str]] = {}

        def compute(name: str) -> set[str]:
            if name not in result:
                found = {name}
                for parent in self.groups[name].parents:
                    found |= compute(parent)
                result[name] = found
            return result[name]

        for name in self.groups:
            compute(name)
        return result


def _make_host(name: str, merged: dict[str, Any], groups: tuple[str, ...]) -> Host:
    """Turn merged, already checked variables into a Host (the gateway still unresolved)."""
    identity = merged.get("identity_file", [])
    files = [identity] if isinstance(identity, str) else identity
    policy, known_file = (
        _known_hosts(merged["known_hosts"]) if "known_hosts" in merged else (None, None)
    )
    timeout = merged.get("connect_timeout")
    gateway = merged.get("gateway")
    return Host(
        name=name,
        hostname=merged.get("hostname", name),
        port=merged.get("port"),
        user=merged.get("user"),
        gateway=None if gateway == NO_GATEWAY else gateway,
        identity_files=tuple(os.path.expanduser(f) for f in files),
        known_hosts_policy=policy,
        known_hosts_file=known_file,
        connect_timeout=float(timeout) if timeout is not None else None,
        connection=merged.get("connection", "ssh"),
        groups=groups,
        vars=MappingProxyType(merged),
    )


def _resolve_gateways(
    hosts: dict[str, Host], origins: Mapping[str, _Origin | None]
) -> dict[str, Host]:
    """Turn ProxyJump gateways into (implicit) hosts, then check names and cycles."""
    implicit: dict[str, Host] = {}
    for name, host in hosts.items():
        gateway: Any = host.gateway
        if isinstance(gateway, _Jump):
            gateway = _implicit_chain(gateway, host, hosts, implicit)
        if gateway == name:  # e.g. gateway set in [all.vars]: the gateway itself is direct
            gateway = None
        if gateway is not host.gateway:  # a jump resolved, or a self-reference dropped
            variables = dict(host.vars)
            if isinstance(variables.get("gateway"), _Jump):
                variables["gateway"] = gateway if gateway is not None else NO_GATEWAY
            hosts[name] = replace(host, gateway=gateway, vars=MappingProxyType(variables))
    known = {**implicit, **hosts}
    for name, host in hosts.items():
        if host.gateway is not None and host.gateway not in known:
            hint = did_you_mean(host.gateway, hosts)
            message = f"host {name!r}: gateway {host.gateway!r} is not an inventory host{hint}"
            where = origins.get(name)
            raise where.error(message) if where else InventoryError(message)
    for name in hosts:
        chain = [name]
        current = known[name]
        while current.gateway is not None:
            if current.gateway in chain:
                loop = " -> ".join([*chain[chain.index(current.gateway) :], current.gateway])
                message = f"gateway cycle: {loop}"
                where = origins.get(current.name)
                raise where.error(message) if where else InventoryError(message)
            chain.append(current.gateway)
            current = known[current.gateway]
    return implicit


def _implicit_chain(
    jump: _Jump, host: Host, hosts: Mapping[str, Host], implicit: dict[str, Host]
) -> str:
    """Name the host for the last hop of ``jump``, making implicit hosts as needed."""
    previous: str | None = None
    for index, (user, hostname, port) in enumerate(jump.hops):
        listed = hosts.get(hostname)
        if (
            listed is not None
            and previous is None
            and user in (None, listed.user)
            and port in (None, listed.port)
        ):
            previous = hostname  # the jump names an inventory host: use it as it is
            continue
        name = ",".join(_hop_text(*hop) for hop in jump.hops[: index + 1])
        if name not in implicit:
            # connection settings follow the first host that needs the jump
            implicit[name] = Host(
                name=name,
                hostname=hostname,
                port=port,
                user=user,
                gateway=previous,
                identity_files=host.identity_files,
                known_hosts_policy=host.known_hosts_policy,
                known_hosts_file=host.known_hosts_file,
                connect_timeout=host.connect_timeout,
                groups=(),
                vars=MappingProxyType({}),
                is_implicit=True,
            )
        previous = name
    assert previous is not None  # a _Jump has at least one hop
    return previous


def _hop_text(user: str | None, hostname: str, port: int | None) -> str:
    return Host(name=hostname, hostname=hostname, user=user, port=port).target
