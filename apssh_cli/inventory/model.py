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
line when it can be found. The variables' rules live in `apssh_cli.inventory.hostvars`,
reading TOML and finding lines in `apssh_cli.inventory.tomlsource`, the loading
itself (groups, precedence, gateways) in `apssh_cli.inventory.loader`, and the
values (`Host`, `Group`, ...) in `apssh_cli.inventory.hosts`: this module imports
them all (the loader when an inventory is loaded), and none of them imports it (a
type annotation aside).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from apssh_cli.errors import InventoryError, SelectionError
from apssh_cli.inventory.hosts import (
    ALL,
    GROUP_KEYS,
    HOST_CONNECTION_VARIABLES,
    UNGROUPED,
    Group,
    Host,
    HostConflict,
    VariableTypo,
)
from apssh_cli.inventory.hostvars import (
    ALIASES,
    CONNECTIONS,
    KNOWN_HOSTS_POLICIES,
    KNOWN_VARIABLES,
    NO_GATEWAY,
    parse_target,
)
from apssh_cli.inventory.selection import did_you_mean, select
from apssh_cli.inventory.tomlsource import read_text

if TYPE_CHECKING:
    from apssh_cli.inventory.loader import Loader

__all__ = [
    "ALIASES",
    "ALL",
    "CONNECTIONS",
    "GROUP_KEYS",
    "HOST_CONNECTION_VARIABLES",
    "KNOWN_HOSTS_POLICIES",
    "KNOWN_VARIABLES",
    "NO_GATEWAY",
    "UNGROUPED",
    "Group",
    "Host",
    "HostConflict",
    "Inventory",
    "VariableTypo",
    "parse_target",
]


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
        conflicts: Sequence[HostConflict] = (),
        typos: Sequence[VariableTypo] = (),
    ) -> None:
        self._hosts: dict[str, Host] = dict(hosts or {})
        self._groups: dict[str, Group] = dict(
            groups or {ALL: Group(ALL, children=(UNGROUPED,)), UNGROUPED: Group(UNGROUPED)}
        )
        self._implicit: dict[str, Host] = dict(implicit or {})
        self._members: dict[str, set[str]] | None = None
        self._conflicts = tuple(conflicts)
        self._typos = tuple(typos)

    @classmethod
    def load(cls, paths: Sequence[str | Path]) -> Inventory:
        """Read and merge inventory files, later files adding to earlier ones.

        Relative paths in a file (identity_file, known_hosts) start at that
        file's directory (the real file's, when the path is a symlink).

        Raises:
            InventoryError: no path, an unreadable file, or bad contents.
        """
        if not paths:
            raise InventoryError("no inventory file given")
        loader = _new_loader()
        seen: set[Path] = set()
        for path in paths:
            path = Path(path)
            key = path.resolve()
            if key in seen:  # the same file twice (flag and env var): read once
                continue
            seen.add(key)
            # a pipe (-i <(...)) has no directory of its own: the cwd then
            base_dir = str(key.parent) if key.is_file() else None
            loader.add_text(read_text(path), str(path), base_dir)
        return cls(*loader.build())

    @classmethod
    def from_toml_text(
        cls, text: str, source: str = "<string>", *, base_dir: str | Path | None = None
    ) -> Inventory:
        """Build an inventory from TOML text (``source`` names it in errors).

        Relative paths (identity_file, known_hosts) start at ``base_dir``, or
        stay relative to the current directory without one.
        """
        loader = _new_loader()
        loader.add_text(text, source, os.fspath(base_dir) if base_dir is not None else None)
        return cls(*loader.build())

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], source: str = "<dict>", *, base_dir: str | Path | None = None
    ) -> Inventory:
        """Build an inventory from already parsed TOML data (``base_dir``: as `from_toml_text`)."""
        loader = _new_loader()
        loader.add_data(data, source, None, os.fspath(base_dir) if base_dir is not None else None)
        return cls(*loader.build())

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

    @property
    def conflicts(self) -> tuple[HostConflict, ...]:
        """Hosts listed in two groups with different connection settings (file order)."""
        return self._conflicts

    @property
    def typos(self) -> tuple[VariableTypo, ...]:
        """Variables one typo away from a connection variable (``prot``), in file order."""
        return self._typos

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


def _new_loader() -> Loader:
    # imported when an inventory is loaded, not before: a `-t` run never pays for it (and
    # the early connects start a few milliseconds sooner); the loader does not import this
    # module, so this is no circle
    from apssh_cli.inventory.loader import Loader

    return Loader()
