"""The values of an inventory: `Host`, `Group`, and what ``inventory check`` reports.

`HostConflict` (a host listed twice with different connection settings) and
`VariableTypo` (``prot`` for ``port``) are warnings, errors with ``--strict``.
Both the loader (`apssh_cli.inventory.loader`), which builds these values, and
`apssh_cli.inventory.model.Inventory`, which holds them, import this module;
it imports neither.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from apssh_cli.inventory.hostvars import NO_GATEWAY, check_port, parse_target

__all__ = [
    "ALL",
    "GROUP_KEYS",
    "HOST_CONNECTION_VARIABLES",
    "UNGROUPED",
    "Group",
    "Host",
    "HostConflict",
    "VariableTypo",
]

ALL = "all"
UNGROUPED = "ungrouped"
GROUP_KEYS = ("hosts", "vars", "children")
# set on a host in two groups with different values: `HostConflict`
HOST_CONNECTION_VARIABLES = ("hostname", "port", "user", "gateway")


@dataclass(frozen=True)
class Host:
    """One host, with every setting resolved.

    Attributes:
        name: the inventory name (``node01``).
        hostname: the address to connect to; the name unless set.
        port: SSH port; None for the library default (22 or ~/.ssh/config).
        user: remote user; None for the library default.
        gateway: inventory name of the host to tunnel through; None = direct.
        identity_files: private key files, ``~`` expanded, relative ones made
            relative to the inventory file that wrote them.
        known_hosts_policy: "strict", "accept-new", "off", or None (default).
        known_hosts_file: a known_hosts file to use instead of the user's (its
            path resolved like identity_files).
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
            port = check_port(port)
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
class HostConflict:
    """A host listed in two groups whose own tables disagree on how to reach it.

    The later listing wins (the usual precedence); `apssh inventory check`
    reports this as a warning, an error with ``--strict``.

    Attributes:
        host: the host's name.
        variable: one of `HOST_CONNECTION_VARIABLES`.
        first, second: the two values, as written in TOML (``22``, ``"bob"``).
        first_place, second_place: ``file:line`` of each listing.
        first_group, second_group: the group of each listing.
    """

    host: str
    variable: str
    first: str
    first_place: str
    first_group: str
    second: str
    second_place: str
    second_group: str

    def __str__(self) -> str:
        return (
            f"{self.second_place}: host {self.host!r} listed again with {self.variable} = "
            f"{self.second} (group {self.second_group!r}), was {self.first} at "
            f"{self.first_place} (group {self.first_group!r})"
        )


@dataclass(frozen=True)
class VariableTypo:
    """A variable whose name is one typo away from a connection variable (``prot``).

    It is kept as a free variable, so the connection does not use it; `apssh
    inventory check` reports it as a warning, an error with ``--strict``.

    Attributes:
        name: the name as written.
        intended: the connection variable it is probably meant to be.
        place: ``file:line`` where it is written.
        where: the key path (``nodes.vars``, ``nodes.hosts.node1``).
    """

    name: str
    intended: str
    place: str
    where: str

    def __str__(self) -> str:
        return (
            f"{self.place}: {self.where}: {self.name!r} is not a connection setting, "
            f"did you mean {self.intended!r}? (kept as a free variable: not used to connect)"
        )


@dataclass(frozen=True)
class Group:
    """A group as written: its own hosts, its child groups and its variables."""

    name: str
    hosts: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
