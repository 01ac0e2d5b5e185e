"""`apssh inventory list|graph|host|check`: look at an inventory without connecting.

``-i/-g/-x`` are accepted on the group (``apssh inventory -i x.toml list``) and
on each subcommand (``apssh inventory list -i x.toml``). Nothing here imports
asyncssh or asynciojobs.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from apssh_cli.cli.options import (
    complete_group,
    complete_host,
    conflict_warning,
    inventory_options,
    load_inventory,
)
from apssh_cli.inventory import hostrange

if TYPE_CHECKING:
    from apssh_cli.inventory.model import Group, Host, Inventory

_BUILTIN_GROUPS = ("all", "ungrouped")


@click.group()
@inventory_options
def inventory(inventory: tuple[str, ...], group: str | None, exclude: str | None) -> None:
    """List, graph, check an inventory, or show one host's settings.

    \b
    Examples:
      apssh inventory -i lab.toml list -g nodes
      apssh inventory -i lab.toml graph
      apssh inventory -i lab.toml host node01
      apssh inventory -i lab.toml check
    """


def _options(
    paths: tuple[str, ...], group: str | None, exclude: str | None
) -> tuple[list[str], str | None, str | None]:
    """Combine the group's ``-i/-g/-x`` with the subcommand's: explicit flags win over env."""
    ctx = click.get_current_context()
    parent = ctx.parent
    explicit: list[str] = []
    parent_params: dict[str, Any] = parent.params if parent is not None else {}
    if (
        parent is not None
        and parent.get_parameter_source("inventory") is ParameterSource.COMMANDLINE
    ):
        explicit.extend(parent_params.get("inventory") or ())
    if ctx.get_parameter_source("inventory") is ParameterSource.COMMANDLINE:
        explicit.extend(paths)
    chosen = explicit or list(paths) or list(parent_params.get("inventory") or ())
    unique = list(dict.fromkeys(chosen))
    return (
        unique,
        group if group is not None else parent_params.get("group"),
        exclude if exclude is not None else parent_params.get("exclude"),
    )


def _selection(
    paths: tuple[str, ...], group: str | None, exclude: str | None, *, warn: bool = True
) -> tuple[Inventory, list[Host], bool]:
    """Load, select, and tell whether a pattern was given at all."""
    chosen, pattern, excluded = _options(paths, group, exclude)
    loaded = load_inventory(chosen, warn=warn)
    hosts = loaded.select(pattern or "all", excluded)
    return loaded, hosts, pattern is not None or excluded is not None


@inventory.command("list")
@inventory_options
@click.option("--json", "as_json", is_flag=True, help="Print every setting, as JSON.")
def list_(
    inventory: tuple[str, ...], group: str | None, exclude: str | None, as_json: bool
) -> None:
    """Print the selected hosts, one name per line (inventory order).

    \b
    Examples:
      apssh inventory -i lab.toml list -g nodes
      apssh inventory list -i lab.toml -g 'node[01:02]' --json
    """
    loaded, hosts, _ = _selection(inventory, group, exclude)
    if as_json:
        document = {"hosts": [host_record(loaded, host) for host in hosts]}
        click.echo(json.dumps(document, indent=2, default=str))
        return
    for host in hosts:
        click.echo(host.name)


@inventory.command()
@inventory_options
@click.option("--expand", is_flag=True, help="One line per host instead of folded ranges.")
@click.argument(
    "root", required=False, default="all", metavar="[GROUP]", shell_complete=complete_group
)
def graph(
    inventory: tuple[str, ...],
    group: str | None,
    exclude: str | None,
    expand: bool,
    root: str,
) -> None:
    """Draw the tree of groups and hosts under GROUP (default: all).

    With -g/-x, only the selected hosts and the groups that hold them are drawn.

    \b
    Examples:
      apssh inventory -i lab.toml graph
      apssh inventory -i lab.toml graph nodes --expand
      apssh inventory -i lab.toml graph -x node01
    """
    loaded, hosts, filtered = _selection(inventory, group, exclude)
    if root not in loaded.groups:
        from apssh_cli.errors import SelectionError

        raise SelectionError(f"no group named {root!r}", pattern=root)
    shown = {host.name for host in hosts}
    for line in graph_lines(loaded, root, shown if filtered else None, expand=expand):
        click.echo(line)


@inventory.command()
@inventory_options
@click.argument("name", shell_complete=complete_host)
def host(inventory: tuple[str, ...], group: str | None, exclude: str | None, name: str) -> None:
    """Show one host: its settings, the route to it, its groups and its variables.

    \b
    Examples:
      apssh inventory -i lab.toml host node01
      apssh inventory host -i site.toml -i site-secrets.toml db1
    """
    chosen, _, _ = _options(inventory, group, exclude)
    loaded = load_inventory(chosen)
    for line in host_lines(loaded, loaded.host(name)):
        click.echo(line)


@inventory.command()
@inventory_options
@click.option(
    "--strict",
    is_flag=True,
    help="Fail (exit 1) on warnings: a host listed in two groups with different "
    "hostname, port, user or gateway; a variable one typo away from a connection "
    "variable (prot, hostnme).",
)
def check(inventory: tuple[str, ...], group: str | None, exclude: str | None, strict: bool) -> None:
    """Validate the inventory (and the -g/-x patterns), then print a one-line summary.

    A host listed in two groups with different connection settings is a warning
    (the later listing wins), and so is a variable one typo away from a
    connection variable (``prot``); both are errors with --strict.

    \b
    Examples:
      apssh inventory -i lab.toml check
      apssh inventory -i lab.toml check -g 'nodes,!node01'
      apssh inventory -i site.toml -i site-secrets.toml check --strict
    """
    loaded, hosts, filtered = _selection(inventory, group, exclude, warn=False)
    conflicts, typos = loaded.conflicts, loaded.typos
    for conflict in conflicts:
        if strict:
            click.echo(f"apssh: error: {conflict}", err=True)
        else:
            click.echo(conflict_warning(conflict), err=True)
    for typo in typos:
        click.echo(f"apssh: {'error' if strict else 'warning'}: {typo}", err=True)
    if strict and (conflicts or typos):
        from apssh_cli.errors import InventoryError

        problems = []
        if conflicts:
            problems.append(_count(len(conflicts), "conflicting host definition"))
        if typos:
            problems.append(_count(len(typos), "misspelt connection variable"))
        raise InventoryError(f"{', '.join(problems)} (--strict)")
    groups = [name for name in loaded.groups if name not in _BUILTIN_GROUPS]
    summary = f"ok: {_count(len(loaded), 'host')}, {_count(len(groups), 'group')}"
    if loaded.implicit_hosts:
        summary += f", {_count(len(loaded.implicit_hosts), 'implicit gateway')}"
    if filtered:
        summary += f"; the pattern selects {_count(len(hosts), 'host')}"
    if conflicts or typos:
        summary += f"; {_count(len(conflicts) + len(typos), 'warning')}"
    click.echo(summary)


def _count(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"


def shown_vars(host: Host) -> dict[str, Any]:
    """The host's variables as printed: secrets masked at any depth (`inventory.secrets`)."""
    from apssh_cli.inventory.secrets import mask_vars

    return mask_vars(host.vars)


def host_record(inventory: Inventory, host: Host) -> dict[str, Any]:
    """A host as JSON-ready data, with its route (names, outermost first)."""
    return {
        "name": host.name,
        "hostname": host.hostname,
        "port": host.port,
        "user": host.user,
        "gateway": host.gateway,
        "route": [hop.name for hop in inventory.route(host)],
        "identity_files": list(host.identity_files),
        "known_hosts_policy": host.known_hosts_policy,
        "known_hosts_file": host.known_hosts_file,
        "connect_timeout": host.connect_timeout,
        "connection": host.connection,
        "groups": list(host.groups),
        "vars": shown_vars(host),
    }


def route_text(inventory: Inventory, host: Host) -> str:
    """``admin@bastion:2222 -> root@node01``: each hop's user, address and port."""
    if host.connection == "local":
        return "local"
    return " -> ".join(hop.target for hop in inventory.route(host))


def host_lines(inventory: Inventory, host: Host) -> list[str]:
    """The text of `apssh inventory host NAME`."""

    def show(value: Any) -> str:
        if value is None or value == ():
            return "-"
        if isinstance(value, tuple):
            return ", ".join(str(item) for item in value)
        return f"{value:g}" if isinstance(value, float) else str(value)

    known_hosts = show(host.known_hosts_policy)
    if host.known_hosts_file:
        known_hosts += f" (file {host.known_hosts_file})"
    title = f"{host.name} (implicit gateway)" if host.is_implicit else host.name
    rows = [
        ("hostname", show(host.hostname)),
        ("port", show(host.port)),
        ("user", show(host.user)),
        ("gateway", show(host.gateway)),
        ("route", route_text(inventory, host)),
        ("identity_files", show(host.identity_files)),
        ("known_hosts", known_hosts),
        ("connect_timeout", show(host.connect_timeout)),
        ("connection", host.connection),
        ("groups", show(host.groups)),
    ]
    lines = [title, *(f"  {key:<16} {value}" for key, value in rows)]
    lines.append("  vars" if host.vars else "  vars             -")
    for key, value in sorted(shown_vars(host).items()):
        lines.append(f"    {key} = {json.dumps(value, default=str)}")
    return lines


def graph_lines(
    inventory: Inventory, root: str, shown: set[str] | None = None, *, expand: bool = False
) -> list[str]:
    """The tree of `apssh inventory graph`: ``@group`` lines, hosts folded unless ``expand``.

    Args:
        shown: when given, only these hosts and the groups holding some of them.
    """
    groups = inventory.groups

    def visible(group: Group) -> bool:
        return shown is None or bool(inventory.members(group.name) & shown)

    def leaves(group: Group) -> list[str]:
        names = [name for name in group.hosts if shown is None or name in shown]
        if expand or len(names) < 2:
            return names
        return [hostrange.fold(names)] if names else []

    lines = [f"@{root}"]

    def walk(group: Group, indent: str) -> None:
        children = [groups[name] for name in group.children if visible(groups[name])]
        items: list[tuple[str, Group | None]] = [(f"@{c.name}", c) for c in children]
        items += [(leaf, None) for leaf in leaves(group)]
        for index, (label, child) in enumerate(items):
            last = index == len(items) - 1
            lines.append(f"{indent}{'└── ' if last else '├── '}{label}")
            if child is not None:
                walk(child, indent + ("    " if last else "│   "))

    walk(groups[root], "")
    return lines
