"""Which hosts a command runs on, and how to reach each of them.

A `Target` is a host name plus its route: the SSH hops to go through, gateways
first, the host itself last. Each hop is an inventory `Host`; a hop written in
``-t`` is an ad hoc one (`Host.from_target`), whose unset fields leave the choice
to the node's defaults and to ``~/.ssh/config``. Targets come from the inventory
(``-g``/``-x``) and from ``-t`` specs written for hosts outside any inventory::

    node1                 a host name (or an inventory host's name)
    root@node1:2222       user, host, port
    bastion->root@node1   through a gateway (chains: a->b->c)
    node[01-03]           a host range, expanded
    @FILE                 the targets listed in FILE (one or more per line, # comments)

`build_nodes` turns the targets into nodes, one per host, sharing a single node
per distinct gateway hop so that a gateway is connected to only once. It takes
the node classes as arguments: this module never imports asyncssh.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from apssh_cli.durations import parse_duration
from apssh_cli.errors import ConfigError, InventoryError
from apssh_cli.inventory.hostrange import split_top_level
from apssh_cli.inventory.model import ALL, UNGROUPED, Host, Inventory
from apssh_cli.inventory.selection import evaluate

ROUTE_SEPARATOR = "->"
# what OpenSSH refuses in a host name ("hostname contains invalid characters"): a
# name reaches ProxyCommand's %h, which a shell runs
_SHELL_CHARACTERS = set("'`\"$\\;&<>|(){}")


def hostname_problem(name: str) -> str | None:
    """Why ssh would refuse ``name`` as a host name (None: it would not).

    >>> hostname_problem("node1.lab")
    >>> hostname_problem("$(reboot)")
    "hostname contains invalid characters ('$', '(', ')')"
    """
    bad = [
        char
        for char in name
        if char in _SHELL_CHARACTERS or char.isspace() or ord(char) < 32 or ord(char) == 127
    ]
    if bad:
        shown = ", ".join(repr(char) for char in dict.fromkeys(bad))
        return f"hostname contains invalid characters ({shown})"
    if name.startswith("-"):
        return "hostname contains invalid characters (a leading '-')"
    return None


@dataclass(frozen=True)
class Target:
    """A host to run on: its name as shown in output, and its route.

    Args:
        name: the inventory name, or the host name of a ``-t`` spec.
        route: gateways outermost first, the host itself last.
        from_inventory: True when the name can be looked up again in the inventory.
    """

    name: str
    route: tuple[Host, ...]
    from_inventory: bool = False

    @property
    def host(self) -> Host:
        """The last hop: the host itself."""
        return self.route[-1]

    @property
    def gateways(self) -> tuple[Host, ...]:
        """The hops before the host, outermost first."""
        return self.route[:-1]

    @property
    def is_local(self) -> bool:
        """True when the host runs commands on this machine (``connection = "local"``)."""
        return self.host.connection == "local"

    def spec(self) -> str:
        """How to name this target again with ``-t`` (what ``--failed-to`` writes)."""
        if self.from_inventory:
            return self.name
        return ROUTE_SEPARATOR.join(hop.target for hop in self.route)

    def describe(self) -> str:
        """One line for ``--dry-run``: the name and the hops it goes through."""
        if self.is_local:
            return f"{self.name}  (local)"
        return f"{self.name}  " + " -> ".join(hop.target for hop in self.route)


@dataclass(frozen=True)
class Overrides:
    """Command-line settings that apply to every target (flags win over the inventory).

    Args:
        user: ``-l``: the user of every host, and of gateways that have none.
        gateway: ``-G``: a route prepended to every target that has no gateway.
        keys: ``-k``: identity files tried first, on every hop.
        known_hosts: ``--known-hosts``: the host key policy of every hop.
        connect_timeout: ``--connect-timeout``, seconds, on every hop.
        default_user, default_known_hosts, default_connect_timeout: the same
            from apssh's config file or environment: only for hops that set
            none (the inventory, or a ``user@`` in ``-t``, wins over them).
    """

    user: str | None = None
    gateway: tuple[Host, ...] = ()
    keys: tuple[str, ...] = ()
    known_hosts: str | None = None
    connect_timeout: float | None = None
    default_user: str | None = None
    default_known_hosts: str | None = None
    default_connect_timeout: float | None = None


# ---------------------------------------------------------------- parsing


def split_specs(text: str) -> list[str]:
    """Split a comma-separated ``-t`` value, keeping commas inside ``[...]`` ranges.

    >>> split_specs("a,node[1,3],b")
    ['a', 'node[1,3]', 'b']
    """
    return [part.strip() for part in split_top_level(text) if part.strip()]


def parse_hop(text: str, *, source: str | None = None, line: int | None = None) -> Host:
    """Parse ``[user@]host[:port]`` (``[v6addr]:port`` for IPv6) into an ad hoc Host.

    The inventory's `Host.from_target` does the parsing.

    Raises:
        ConfigError: empty host or user, or a port that is not 1..65535.
    """

    def fail(problem: str) -> ConfigError:
        return ConfigError(f"bad target {text!r}: {problem}", source=source, line=line)

    try:
        host = Host.from_target(text.strip())
    except InventoryError as exc:
        raise fail(exc.message) from exc
    if any(char.isspace() for char in host.hostname):
        raise fail("white space in host name")
    problem = hostname_problem(host.hostname)
    if problem is not None:
        raise fail(problem)
    return host


def parse_route(text: str, *, source: str | None = None, line: int | None = None) -> list[Host]:
    """Parse ``gw->...->host`` into hops, outermost first.

    Raises:
        ConfigError: an empty hop (``a->->b``), or a bad hop.
    """
    pieces = text.split(ROUTE_SEPARATOR)
    if any(not piece.strip() for piece in pieces):
        raise ConfigError(f"bad target {text!r}: empty hop in route", source=source, line=line)
    return [parse_hop(piece, source=source, line=line) for piece in pieces]


@dataclass(frozen=True)
class TargetSpec:
    """One ``-t`` word, before it is resolved: its route, and where it was written."""

    text: str
    route: tuple[Host, ...]
    source: str | None = None
    line: int | None = None


def read_specs(values: Iterable[str], *, _depth: int = 0) -> list[TargetSpec]:
    """Parse ``-t`` values: comma lists, routes, ``@FILE`` references.

    Raises:
        ConfigError: a file that cannot be read (or includes itself), a bad spec
            (with file:line for specs read from a file).
    """
    specs: list[TargetSpec] = []
    for value in values:
        for word in split_specs(value):
            if word.startswith("@"):
                specs.extend(_read_spec_file(word[1:], _depth))
            else:
                specs.append(TargetSpec(word, tuple(parse_route(word))))
    return specs


def _read_spec_file(path: str, depth: int) -> list[TargetSpec]:
    if depth > 8:
        raise ConfigError("target files include each other too deeply", source=path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read target file: {exc.strerror or exc}", source=path) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("target file is not UTF-8 text", source=path) from exc
    specs: list[TargetSpec] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        content = raw.split("#", 1)[0]
        for chunk in content.split():
            for word in split_specs(chunk):
                if word.startswith("@"):
                    specs.extend(_read_spec_file(word[1:], depth + 1))
                else:
                    route = parse_route(word, source=path, line=number)
                    specs.append(TargetSpec(word, tuple(route), source=path, line=number))
    return specs


# ---------------------------------------------------------------- resolving


def inventory_target(inventory: Inventory, name: str) -> Target:
    """The target of an inventory host, with its gateways from the inventory."""
    return Target(name=name, route=tuple(inventory.route(name)), from_inventory=True)


def resolve_targets(
    *,
    inventory: Inventory | None,
    pattern: str | None,
    exclude: str | None,
    specs: Sequence[TargetSpec],
    overrides: Overrides = Overrides(),
    expand: Callable[[str], list[str]] | None = None,
) -> list[Target]:
    """The hosts to run on, in order, without duplicates, with overrides applied.

    Args:
        inventory: the loaded inventory, or None when only ``-t`` is used.
        pattern: ``-g``: the inventory hosts to select.
        exclude: ``-x``: hosts removed from the whole selection, ``-t`` included
            (a pattern over inventory names and ``-t`` target names).
        specs: the parsed ``-t`` targets; a bare name that names an inventory host
            stands for that host, gateways and settings included.
        overrides: the command-line settings.
        expand: host range expansion (``node[1-3]``), apssh_cli.inventory.hostrange.expand.

    Raises:
        ConfigError: ``-g`` without an inventory, a range in a gateway hop.
        SelectionError: a ``-g`` or ``-x`` term that names no group or host.
    """
    targets: list[Target] = []
    if pattern is not None:
        if inventory is None:
            raise ConfigError("-g needs an inventory: give -i FILE or set APSSH_INVENTORY")
        targets.extend(inventory_target(inventory, host.name) for host in inventory.select(pattern))
    known = inventory.hosts if inventory is not None else {}
    for spec in specs:
        targets.extend(_spec_targets(spec, inventory, known, expand))
    excluded = _excluded_names(inventory, exclude, targets)
    unique: dict[str, Target] = {}
    for target in targets:
        if target.name not in excluded and target.name not in unique:
            unique[target.name] = apply_overrides(target, overrides)
    for target in unique.values():
        check_hostnames(target)
    return list(unique.values())


def check_hostnames(target: Target) -> None:
    """Refuse a target whose hops have a host name ssh would refuse (before any shell
    of a ``ProxyCommand`` sees it).

    Raises:
        ConfigError: naming the host and the characters.
    """
    if target.is_local:
        return
    for hop in target.route:
        problem = hostname_problem(hop.hostname)
        if problem is not None:
            where = f"host {target.name!r}" if hop is target.host else f"gateway {hop.name!r}"
            raise ConfigError(f"{where}: {problem}: {hop.hostname!r}")


def _spec_targets(
    spec: TargetSpec,
    inventory: Inventory | None,
    known: Mapping[str, Host],
    expand: Callable[[str], list[str]] | None,
) -> list[Target]:
    *gateways, last = spec.route
    for hop in gateways:
        if "[" in hop.hostname:
            raise ConfigError(
                f"bad target {spec.text!r}: a gateway cannot be a host range",
                source=spec.source,
                line=spec.line,
            )
    names = [last.hostname]
    if "[" in last.hostname and ":" not in last.hostname:
        if expand is None:
            raise ConfigError(f"bad target {spec.text!r}: host ranges are not available")
        try:
            names = expand(last.hostname)
        except ConfigError as exc:
            raise ConfigError(
                f"bad target {spec.text!r}: {exc.message}", source=spec.source, line=spec.line
            ) from exc
    if inventory is not None:
        gateways = _inventory_hops(gateways, inventory)
    targets: list[Target] = []
    for name in names:
        if inventory is not None and _is_plain(last) and name in known:
            if not gateways:  # the inventory host itself, gateways included
                targets.append(inventory_target(inventory, name))
                continue
            host = known[name]
        else:
            host = replace(last, name=name, hostname=name)
        targets.append(Target(name=name, route=(*gateways, host)))
    return targets


def _is_plain(hop: Host) -> bool:
    return hop.user is None and hop.port is None


def _inventory_hops(hops: Sequence[Host], inventory: Inventory) -> list[Host]:
    """Gateway hops, where a bare inventory host name stands for that host.

    The first hop also brings the inventory gateways of its host.
    """
    result: list[Host] = []
    for index, hop in enumerate(hops):
        if _is_plain(hop) and hop.hostname in inventory.hosts:
            route = inventory_target(inventory, hop.hostname).route
            result.extend(route if index == 0 else route[-1:])
        else:
            result.append(hop)
    return result


def _excluded_names(
    inventory: Inventory | None, exclude: str | None, targets: Sequence[Target]
) -> set[str]:
    """The names ``-x`` removes: a pattern over the inventory and the ``-t`` targets' names.

    Every term must name something, as in ``-g``: a typo in ``-x`` is an error
    (`SelectionError`), never a silent run on the host meant to be left out.
    """
    if not exclude:
        return set()
    names = _with_target_names(inventory, targets)
    if exclude in names.hosts:  # one name, even "::1", which the ':' separator would split
        return {exclude}
    return evaluate(names, exclude)


def _with_target_names(inventory: Inventory | None, targets: Sequence[Target]) -> Inventory:
    """The inventory plus each ``-t`` target name it lacks, as an ungrouped host."""
    known = dict(inventory.hosts) if inventory is not None else {}
    extra = [target.name for target in targets if target.name not in known]
    if inventory is not None and not extra:
        return inventory
    groups = dict(inventory.groups) if inventory is not None else dict(Inventory().groups)
    ungrouped = groups[UNGROUPED]
    groups[UNGROUPED] = replace(ungrouped, hosts=(*ungrouped.hosts, *dict.fromkeys(extra)))
    for name in extra:
        known[name] = Host(name=name, hostname=name, groups=(ALL, UNGROUPED))
    return Inventory(known, groups)


def apply_overrides(target: Target, overrides: Overrides) -> Target:
    """Apply the command-line settings to every hop of a target."""
    route = list(target.route)
    needs_gateway = len(route) == 1 and not target.is_local
    # a host given with -G is not sent through itself
    if needs_gateway and all(hop.hostname != route[0].hostname for hop in overrides.gateway):
        route = [*overrides.gateway, *route]
    new_route: list[Host] = []
    for index, hop in enumerate(route):
        is_host = index == len(route) - 1
        changes: dict[str, Any] = {}
        if overrides.user is not None:
            # -l wins over the inventory for the host; a user written in -t wins over -l
            explicit = not target.from_inventory and hop.user is not None
            if (is_host and not explicit) or hop.user is None:
                changes["user"] = overrides.user
        if overrides.keys:
            keys = dict.fromkeys([*overrides.keys, *hop.identity_files])
            changes["identity_files"] = tuple(keys)
        if overrides.known_hosts is not None:
            changes["known_hosts_policy"] = overrides.known_hosts
        if overrides.connect_timeout is not None:
            changes["connect_timeout"] = overrides.connect_timeout
        for name, value in (
            ("user", overrides.default_user),
            ("known_hosts_policy", overrides.default_known_hosts),
            ("connect_timeout", overrides.default_connect_timeout),
        ):
            if value is not None and name not in changes and getattr(hop, name) is None:
                changes[name] = value
        new_route.append(replace(hop, **changes) if changes else hop)
    return replace(target, route=tuple(new_route))


def resolve_gateway(
    text: str, inventory: Inventory | None, expand: Callable[[str], list[str]] | None = None
) -> tuple[Host, ...]:
    """The route of ``-G GATEWAY``: an inventory host's route, or a spec (chains allowed)."""
    if inventory is not None and text in inventory.hosts:
        return inventory_target(inventory, text).route
    route = parse_route(text)
    if any("[" in hop.hostname and ":" not in hop.hostname for hop in route):
        raise ConfigError(f"bad gateway {text!r}: a gateway cannot be a host range")
    return tuple(route)


# ---------------------------------------------------------------- nodes


@dataclass(frozen=True)
class NodeSettings:
    """Settings of the nodes that are the same for every hop."""

    connect_retries: int = 0
    formatter: Any = None
    verbose: bool = False
    keepalive: float | None = None  # --keepalive: wins over the hosts' `keepalive` variable


def build_nodes(
    targets: Sequence[Target],
    *,
    ssh_node: Callable[..., Any],
    local_node: Callable[..., Any],
    settings: NodeSettings = NodeSettings(),
) -> tuple[dict[str, Any], list[Any]]:
    """Create one node per target, sharing one node per distinct gateway hop.

    Args:
        targets: the resolved targets.
        ssh_node: the SshNode class (or a stand-in with the same keywords).
        local_node: the LocalNode class.
        settings: what every node gets.

    Returns:
        The node of each target, by target name; and every node created
        (gateways included), in creation order.

    Raises:
        ConfigError: a host name ssh would refuse (:func:`check_hostnames`).
    """
    by_key: dict[tuple[Any, ...], Any] = {}
    created: list[Any] = []
    result: dict[str, Any] = {}
    for target in targets:
        check_hostnames(target)  # every way to nodes (a recipe, the library) comes here
        if target.is_local:
            node = local_node(
                formatter=settings.formatter, label=target.name, verbose=settings.verbose
            )
            created.append(node)
            result[target.name] = node
            continue
        parent: Any = None
        parent_key: tuple[Any, ...] = ()
        for index, hop in enumerate(target.route):
            is_host = index == len(target.route) - 1
            # the host gets its own node even if another target has the same
            # address: its label is the target's name, which output shows
            key: tuple[Any, ...] = (_hop_key(hop), parent_key, target.name if is_host else None)
            node = by_key.get(key)
            if node is None:
                node = ssh_node(
                    hop.hostname,
                    **_node_kwargs(
                        hop, parent, settings, label=target.name if is_host else hop.name
                    ),
                )
                by_key[key] = node
                created.append(node)
            parent, parent_key = node, key
        result[target.name] = parent
    return result, created


def _hop_key(hop: Host) -> tuple[Any, ...]:
    return (
        hop.hostname,
        hop.port,
        hop.user,
        hop.identity_files,
        hop.known_hosts_policy,
        hop.known_hosts_file,
        hop.connect_timeout,
    )


def _node_kwargs(hop: Host, gateway: Any, settings: NodeSettings, *, label: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "username": hop.user,
        "port": hop.port,
        "gateway": gateway,
        "keys": list(hop.identity_files) or None,
        "known_hosts_file": hop.known_hosts_file,
        "connect_retries": settings.connect_retries,
        "formatter": settings.formatter,
        "verbose": settings.verbose,
        "label": label,
    }
    # leave the node's own defaults in place when nothing was said
    if hop.known_hosts_policy is not None:
        kwargs["known_hosts"] = hop.known_hosts_policy
    if hop.connect_timeout is not None:
        kwargs["connect_timeout"] = hop.connect_timeout
    keepalive = settings.keepalive if settings.keepalive is not None else _keepalive(hop)
    if keepalive is not None:
        kwargs["keepalive_interval"] = keepalive
    persist = _persist(hop)
    if persist is not None:
        kwargs["persist"] = persist
    return kwargs


def _persist(hop: Host) -> float | None:
    """The host's ``persist`` variable: seconds its connection is kept warm (0: off)."""
    value = hop.vars.get("persist")
    if value is None:
        return None
    try:
        return parse_duration(value, allow_zero=True)
    except ValueError:
        raise ConfigError(
            f'host {hop.name}: persist must be a duration ("10m", seconds; 0: off), not {value!r}'
        ) from None


def _keepalive(hop: Host) -> float | None:
    """The host's ``keepalive`` variable: seconds between keepalives, 0 disables them."""
    value = hop.vars.get("keepalive")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e9:
        raise ConfigError(f"host {hop.name}: keepalive must be a number of seconds >= 0")
    return float(value)
