"""Inventory loading: gather groups and hosts over every file, then resolve them.

`Loader` takes parsed TOML tables one file at a time (hosts, vars and children
accumulate across files), and `Loader.build` checks the group tree, merges each
host's variables by precedence, and resolves gateways, ProxyJump ones included,
into the values of `apssh_cli.inventory.hosts`: `build` returns what an
`Inventory` is made of (`Loaded`), so that this module needs no `Inventory`
and `Inventory.load` can import it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

from apssh_cli.errors import HostRangeError, InventoryError
from apssh_cli.inventory import hostrange, tomlsource
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
    KNOWN_VARIABLES,
    NO_GATEWAY,
    Jump,
    VariableError,
    describe,
    near_known_variable,
    normalize,
    parse_known_hosts,
    resolve_paths,
)
from apssh_cli.inventory.selection import did_you_mean
from apssh_cli.inventory.tomlsource import Locator, Origin

# names that cannot be told apart from pattern syntax in `-g`
_BAD_NAME_CHARS = re.compile(r"[\s,&!~*?\[\]@]")
_PORT_SUFFIX = re.compile(r"^(.*[^:]):([0-9]+)$", re.DOTALL)
_T = TypeVar("_T")


class Loaded(NamedTuple):
    """What `Loader.build` resolved: the arguments of `Inventory` (in its order)."""

    hosts: dict[str, Host]
    groups: dict[str, Group]
    implicit: dict[str, Host]
    conflicts: tuple[HostConflict, ...]
    typos: tuple[VariableTypo, ...]


@dataclass
class _RawGroup:
    name: str
    origin: Origin
    hosts: dict[str, None] = field(default_factory=dict)
    children: dict[str, Origin] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    var_origins: dict[str, Origin] = field(default_factory=dict)
    parents: set[str] = field(default_factory=set)


@dataclass
class _RawHost:
    name: str
    groups: dict[str, None] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    var_origins: dict[str, Origin] = field(default_factory=dict)
    # connection variable -> (value, group, where) of the latest listing that set it
    listed: dict[str, tuple[Any, str, Origin]] = field(default_factory=dict)


class Loader:
    """Gathers raw groups and hosts from one file after another; `build` resolves them."""

    def __init__(self) -> None:
        self.groups: dict[str, _RawGroup] = {}
        self.hosts: dict[str, _RawHost] = {}
        self.conflicts: list[HostConflict] = []
        self._base_dir: str | None = None  # of the file being added
        # by (file:line, key path, name): a range's table is read once per host
        self.typos: dict[tuple[str, str, str], VariableTypo] = {}

    def add_text(self, text: str, source: str, base_dir: str | None = None) -> None:
        """Add a file's TOML text (errors name ``source`` and the line).

        ``base_dir`` is where its relative paths start (the file's directory);
        None leaves them relative to the current directory.
        """
        self.add_data(tomlsource.parse(text, source), source, Locator(text), base_dir)

    def add_data(
        self,
        data: Mapping[str, Any],
        source: str,
        locator: Locator | None,
        base_dir: str | None = None,
    ) -> None:
        """Add parsed TOML tables; ``locator`` finds lines in their text, if any."""
        self._base_dir = base_dir

        def origin(*path: str) -> Origin:
            return Origin(source, locator, path)

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
                            f"vars must be a table, not {describe(value)}"
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

    def _check_group_name(self, name: str, where: Origin) -> None:
        if not name or _BAD_NAME_CHARS.search(name):
            raise where.error(f"bad group name {name!r}: no spaces or any of , & ! ~ * ? [ ] @")

    def _group(self, name: str, where: Origin) -> _RawGroup:
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = _RawGroup(name, where)
        return group

    def _add_vars(
        self,
        target: dict[str, Any],
        origins: dict[str, Origin],
        raw: Mapping[str, Any],
        where: Origin,
    ) -> dict[str, Any]:
        try:
            values, written = normalize(raw)
        except VariableError as exc:
            raise where.child(exc.key).error(str(exc)) from None
        resolve_paths(values, self._base_dir)
        target.update(values)
        for key in values:
            origins[key] = where.child(written[key])
        for key in raw:
            intended = near_known_variable(key)
            if intended is not None:
                place, path = _place(where.child(key)), ".".join(where.path)
                typo = VariableTypo(key, intended, place, path)
                self.typos.setdefault((place, path, key), typo)
        return values

    def _add_hosts(self, group: _RawGroup, hosts: Any, origin: Any) -> None:
        where = origin(group.name, "hosts")
        if not isinstance(hosts, Mapping):
            raise where.error(
                f"hosts must be a table of host = {{ variables }}, not {describe(hosts)}"
            )
        for key, raw_vars in hosts.items():
            host_where: Origin = origin(group.name, "hosts", key)
            if not isinstance(raw_vars, Mapping):
                raise host_where.error(
                    f"host {key!r}: expected a table of variables ({{}} for none), "
                    f"not {describe(raw_vars)}"
                )
            self._check_dotted(group.name, key, raw_vars, host_where)
            names, port = self._expand_key(key, host_where)
            for name in names:
                host = self.hosts.get(name)
                if host is None:
                    host = self.hosts[name] = _RawHost(name)
                host.groups[group.name] = None
                group.hosts[name] = None
                listing: dict[str, Any] = {}
                if port is not None and "port" not in raw_vars:
                    host.vars["port"] = listing["port"] = port
                    host.var_origins["port"] = host_where
                listing.update(self._add_vars(host.vars, host.var_origins, raw_vars, host_where))
                self._note_listing(host, group.name, listing)

    def _note_listing(self, host: _RawHost, group: str, listing: Mapping[str, Any]) -> None:
        """Record a conflict when another group's listing set a connection variable otherwise."""
        for key in HOST_CONNECTION_VARIABLES:
            if key not in listing:
                continue
            value, where = listing[key], host.var_origins[key]
            previous = host.listed.get(key)
            if previous is not None and previous[1] != group and previous[0] != value:
                self.conflicts.append(
                    HostConflict(
                        host=host.name,
                        variable=key,
                        first=_as_toml(previous[0]),
                        first_place=_place(previous[2]),
                        first_group=previous[1],
                        second=_as_toml(value),
                        second_place=_place(where),
                        second_group=group,
                    )
                )
            host.listed[key] = (value, group, where)

    def _check_dotted(
        self, group: str, key: str, raw_vars: Mapping[str, Any], where: Origin
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

    def _expand_key(self, key: str, where: Origin) -> tuple[list[str], int | None]:
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
            raise HostRangeError(
                exc.message,
                fragment=exc.fragment,
                source=where.source,
                line=where.line(),
                where=".".join(where.path[:2]),
            ) from None
        for name in names:
            if not name or _BAD_NAME_CHARS.search(name) or name.count(":") > 0:
                raise where.error(
                    f"bad host name {name!r}: no spaces, commas or colons, "
                    "and [...] only for ranges"
                )
        return names, port

    def build(self) -> Loaded:
        """Check the group tree, merge each host's variables, resolve the gateways."""
        for name in (ALL, UNGROUPED):
            self._group(name, Origin("<implicit>", None, (name,)))
        self._check_children()
        # all is 0, so a group right under it is 1 with or without the link to it
        depth = self._over_parents(lambda g, up: 0 if g == ALL else 1 + max(up, default=0))
        # groups without a parent hang under all; hosts with no group are ungrouped
        for group in self.groups.values():
            if group.name != ALL and not group.parents:
                self.groups[ALL].children.setdefault(group.name, group.origin)
                group.parents.add(ALL)
        for host in self.hosts.values():
            if not set(host.groups) - {ALL, UNGROUPED}:
                self.groups[UNGROUPED].hosts[host.name] = None
                host.groups[UNGROUPED] = None
        ancestors = self._over_parents(lambda g, up: {g}.union(*up))
        hosts: dict[str, Host] = {}
        gateway_origins: dict[str, Origin | None] = {}
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
        return Loaded(hosts, groups, implicit, tuple(self.conflicts), tuple(self.typos.values()))

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

    def _over_parents(self, value: Callable[[str, list[_T]], _T]) -> dict[str, _T]:
        """``value(group, [the result of each parent])`` for every group, memoized."""
        result: dict[str, _T] = {}

        def compute(name: str) -> _T:
            if name not in result:
                result[name] = value(name, [compute(p) for p in self.groups[name].parents])
            return result[name]

        for name in self.groups:
            compute(name)
        return result


def _place(where: Origin) -> str:
    """``file:line`` (or the file alone when the line is not known)."""
    line = where.line()
    return f"{where.source}:{line}" if line is not None else where.source


def _as_toml(value: Any) -> str:
    """A variable's value as it reads in TOML (a ProxyJump as its spec)."""
    if isinstance(value, Jump):
        value = value.spec
    return json.dumps(value) if isinstance(value, str) else str(value)


def _error_at(where: Origin | None, message: str) -> InventoryError:
    """An error at ``where``, or without a place when it is not known."""
    return where.error(message) if where else InventoryError(message)


def _make_host(name: str, merged: dict[str, Any], groups: tuple[str, ...]) -> Host:
    """Turn merged, already checked variables into a Host (the gateway still unresolved)."""
    identity = merged.get("identity_file", [])
    files = [identity] if isinstance(identity, str) else identity
    policy, known_file = (
        parse_known_hosts(merged["known_hosts"]) if "known_hosts" in merged else (None, None)
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
    hosts: dict[str, Host], origins: Mapping[str, Origin | None]
) -> dict[str, Host]:
    """Turn ProxyJump gateways into (implicit) hosts, then check names and cycles."""
    implicit: dict[str, Host] = {}
    for name, host in hosts.items():
        gateway: Any = host.gateway
        if isinstance(gateway, Jump):
            gateway = _implicit_chain(gateway, host, hosts, implicit)
        if gateway == name:  # e.g. gateway set in [all.vars]: the gateway itself is direct
            gateway = None
        if gateway is not host.gateway:  # a jump resolved, or a self-reference dropped
            variables = dict(host.vars)
            if isinstance(variables.get("gateway"), Jump):
                variables["gateway"] = gateway if gateway is not None else NO_GATEWAY
            hosts[name] = replace(host, gateway=gateway, vars=MappingProxyType(variables))
    known = {**implicit, **hosts}
    for name, host in hosts.items():
        if host.gateway is not None and host.gateway not in known:
            hint = did_you_mean(host.gateway, hosts)
            message = f"host {name!r}: gateway {host.gateway!r} is not an inventory host{hint}"
            raise _error_at(origins.get(name), message)
    for name in hosts:
        chain = [name]
        current = known[name]
        while current.gateway is not None:
            if current.gateway in chain:
                loop = " -> ".join([*chain[chain.index(current.gateway) :], current.gateway])
                message = f"gateway cycle: {loop}"
                raise _error_at(origins.get(current.name), message)
            chain.append(current.gateway)
            current = known[current.gateway]
    return implicit


def _implicit_chain(
    jump: Jump, host: Host, hosts: Mapping[str, Host], implicit: dict[str, Host]
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
    assert previous is not None  # a Jump has at least one hop
    return previous


def _hop_text(user: str | None, hostname: str, port: int | None) -> str:
    return Host(name=hostname, hostname=hostname, user=user, port=port).target
