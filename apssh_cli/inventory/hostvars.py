"""Host variables: the names that mean something, Ansible's aliases, their checks.

A level of variables (a group's ``vars`` or a host's table) goes through
`normalize`, which checks every meaningful value where it is written and adds
our name for each Ansible alias; free variables pass through untouched (for
templates). ``ansible_ssh_common_args`` yields a gateway when it carries a
ProxyJump (``-J``, ``-o ProxyJump=``, or ``-o ProxyCommand='ssh -W ...'``)::

    >>> normalize({"ansible_port": "2222", "role": "db"})[0]
    {'ansible_port': '2222', 'role': 'db', 'port': 2222}
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from apssh_cli.errors import InventoryError

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


# free variables that still mean something when connecting (targets.build_nodes)
_MEANINGFUL_FREE = frozenset({"keepalive", "persist"})


def near_known_variable(name: str) -> str | None:
    """The connection variable ``name`` is one typo away from, or None.

    One typo: a letter added, left out, changed, or two neighbours swapped
    (``hostnme``, ``prot``, ``gatway``, ``identity_files``). A name that is itself
    meaningful, or shorter than 3 letters, is never one.
    """
    known = KNOWN_VARIABLES | _MEANINGFUL_FREE
    if name in known or len(name) < 3:
        return None
    for candidate in sorted(known):
        if _one_edit_apart(name, candidate):
            return candidate
    return None


def _one_edit_apart(a: str, b: str) -> bool:
    """True when one insertion, deletion, substitution or adjacent swap turns a into b."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    start = 0
    while start < len(a) and a[start] == b[start]:
        start += 1
    if len(a) < len(b):  # one letter more in b
        return a[start:] == b[start + 1 :]
    if a[start + 1 :] == b[start + 1 :]:  # one letter changed
        return True
    swapped = start + 1 < len(a) and a[start] == b[start + 1] and a[start + 1] == b[start]
    return swapped and a[start + 2 :] == b[start + 2 :]


@dataclass(frozen=True)
class Jump:
    """A gateway given as ssh options (ProxyJump/ProxyCommand): hops outermost first."""

    hops: tuple[tuple[str | None, str, int | None], ...]
    spec: str


def describe(value: Any) -> str:
    """The TOML kind of ``value`` in words ("an array"), for error messages."""
    kind = {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    return kind.get(type(value), type(value).__name__)


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
        port = check_port(int(port_text))
    return (user or None), hostname, port


def check_port(port: Any) -> int:
    """Return ``port`` if it is an integer from 1 to 65535 (InventoryError if not)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InventoryError(f"port must be an integer from 1 to 65535, got {port!r}")
    return port


def _check_variable(key: str, value: Any) -> Any:
    """Check one meaningful variable; return the value to store (ValueError if bad)."""
    if key in ("hostname", "user"):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{key} must be a non-empty string, not {describe(value)}")
    elif key == "port":
        # InventoryError is a ValueError: normalize() reports it like the others
        value = check_port(int(value) if isinstance(value, str) and value.isdigit() else value)
    elif key == "gateway":
        if not isinstance(value, str | Jump) or not value:
            raise ValueError(
                f'gateway must be the name of an inventory host or "none", not {describe(value)}'
            )
    elif key == "identity_file":
        files = [value] if isinstance(value, str) else value
        if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
            raise ValueError("identity_file must be a path or an array of paths")
    elif key == "known_hosts":
        parse_known_hosts(value)
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


def parse_known_hosts(value: Any) -> tuple[str | None, str | None]:
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


def _jump_from_ssh_args(args: Any) -> Jump | None:
    """Find ``-J`` / ``-o ProxyJump=`` / ``-o ProxyCommand='ssh -W ...'`` in ssh args."""
    if not isinstance(args, str):
        raise ValueError(f"ansible_ssh_common_args must be a string, not {describe(args)}")
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


def _parse_jump(spec: str) -> Jump:
    if not spec or spec.lower() == "none":
        raise ValueError(f"cannot use ProxyJump {spec!r}")
    hops = []
    for hop in spec.split(","):
        try:
            hops.append(parse_target(hop.removeprefix("ssh://")))
        except InventoryError as exc:
            raise ValueError(f"bad ProxyJump: {exc.message}") from None
    return Jump(tuple(hops), spec)


_SSH_OPTIONS_WITH_VALUE = set("BbcDEeFIiJLlmOoPpQRSWw")


def _jump_from_proxy_command(command: str) -> Jump:
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


# the variables whose values name files (their Ansible aliases become these)
PATH_VARIABLES = ("identity_file", "known_hosts")


def resolve_paths(values: dict[str, Any], base_dir: str | None) -> None:
    """Make the paths in checked variables relative to ``base_dir``, in place.

    ``~`` is expanded; absolute paths stay; a known_hosts policy is not a path.
    With no ``base_dir`` (text that is not a file, a pipe), relative paths stay
    relative to the current directory.
    """

    def resolve(path: str) -> str:
        path = os.path.expanduser(path)
        return path if base_dir is None else os.path.join(base_dir, path)

    identity = values.get("identity_file")
    if isinstance(identity, str):
        values["identity_file"] = resolve(identity)
    elif isinstance(identity, list):
        values["identity_file"] = [resolve(path) for path in identity]
    known = values.get("known_hosts")
    if isinstance(known, str) and known not in KNOWN_HOSTS_POLICIES:
        values["known_hosts"] = resolve(known)
    elif isinstance(known, dict) and isinstance(known.get("file"), str):
        values["known_hosts"] = {**known, "file": resolve(known["file"])}


class VariableError(ValueError):
    """A bad value for one variable: ``key`` locates it."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(message)


def normalize(raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Check a level's variables and add our names for Ansible's.

    Returns:
        The variables to store, and for each one the key it was written as.

    Raises:
        VariableError: a meaningful variable has a bad value.
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
        except VariableError:
            raise
        except ValueError as exc:
            raise VariableError(key, str(exc)) from None
    return out, written
