"""`apssh lab up|status|down`: a disposable local testbed, a bastion and nodes behind it.

The topology code is the apssh_cli.lab package, the same that the integration tests use.
Files go to --dir ($APSSH_LAB_DIR, else ./.lab); containers are labelled with the
lab's name, so `down` finds them even when those files are gone.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import click

from apssh_cli import lab as lab_core

_dir_option = click.option(
    "--dir",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the lab's files go [default: $APSSH_LAB_DIR, else ./.lab].",
)
_name_option = click.option(
    "--name",
    default=None,
    help="The lab's name on the Docker engine [default: the one recorded in --dir, "
    "else derived from its path].",
)


def _resolve(state_dir: Path | None, name: str | None) -> tuple[Path, str]:
    state_dir = state_dir or lab_core.default_state_dir()
    return state_dir, name or lab_core.default_lab_name(state_dir)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def lab() -> None:
    """Start, inspect or remove a local testbed behind a bastion (needs Docker).

    \b
    Examples:
      apssh lab up --nodes 3
      apssh -i .lab/inventory.toml -g nodes uptime
      apssh lab down
    """


@lab.command()
@click.option(
    "--nodes", type=click.IntRange(1, 50), default=lab_core.DEFAULT_NODES, show_default=True
)
@click.option(
    "--inventory",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the TOML inventory [default: DIR/inventory.toml].",
)
@_dir_option
@_name_option
def up(nodes: int, inventory: Path | None, state_dir: Path | None, name: str | None) -> None:
    """Start a bastion and NODES nodes reachable only through it.

    The bastion is published on 127.0.0.1; the nodes sit on a private Docker
    network. Prints the inventory to use and how to take the lab down.

    \b
    Examples:
      apssh lab up --nodes 3
      apssh lab up --nodes 10 --dir /tmp/lab10 --name lab10
    """
    state_dir, name = _resolve(state_dir, name)
    lab_core.check_startable(state_dir, name)  # before saying "starting"
    click.echo(f"starting lab {name!r}: a bastion and {_nodes(nodes)}...", err=True)
    topology = lab_core.lab_up(state_dir, name=name, nodes=nodes, inventory=inventory)
    shown = _shown(topology.inventory)
    click.echo(
        f"lab {name!r} is up: bastion on {topology.bastion.host}:{topology.bastion.port}, "
        f"{_nodes(nodes)} behind it (on Docker network {topology.network})\n"
        f"inventory:   {shown}\n"
        f"known_hosts: {_shown(topology.known_hosts)}\n"
        f"try:\n"
        f"  apssh -i {shlex.quote(shown)} -g nodes uptime\n"
        f"  apssh inventory -i {shlex.quote(shown)} list\n"
        f"  apssh lab status{_lab_args(state_dir, name)}\n"
        f"  apssh lab down{_lab_args(state_dir, name)}"
    )


@lab.command()
@_dir_option
@_name_option
@click.pass_context
def status(ctx: click.Context, state_dir: Path | None, name: str | None) -> None:
    """Show the lab's containers, and whether anything is stale.

    Stale: a container missing or not running, the bastion published on another
    port than the inventory says, a generated file gone. Each such line says how
    to fix it, and the exit status is then 1 (0 when all is well or no lab is up).

    \b
    Examples:
      apssh lab status
      apssh lab status --dir /tmp/lab10
    """
    state_dir, name = _resolve(state_dir, name)
    report = lab_core.lab_report(state_dir, name)
    if not report.is_up:
        click.echo(f"lab {name!r} is not running")
        return
    click.echo(f"lab {name!r}:")
    width = max(len(row.name) for row in report.containers)
    for row in report.containers:
        click.echo(f"{row.name:<{width}}  {row.role:<8} {row.status:<8} {row.address}")
    if report.inventory is not None:
        click.echo(f"inventory: {_shown(report.inventory)}")
    if report.is_ok:
        click.echo("status: ok")
        return
    for stale in report.stale:
        click.echo(f"stale: {stale.what}; fix: {stale.fix}")
    ctx.exit(1)


@lab.command()
@_dir_option
@_name_option
def down(state_dir: Path | None, name: str | None) -> None:
    """Remove the lab's containers, network and generated files.

    Nothing up is not an error: `down` may run twice (in a clean-up step, say).

    \b
    Examples:
      apssh lab down
      apssh lab down --dir /tmp/lab10
    """
    state_dir, name = _resolve(state_dir, name)
    containers, networks, files = lab_core.lab_down(state_dir, name)
    if containers or networks:
        click.echo(
            f"lab {name!r} removed: {containers} container(s), {networks} network(s), "
            f"{files} file(s)"
        )
    else:
        # nothing to do is not a failure: `down` in a clean-up step may run twice
        leftovers = f" (removed its {files} leftover file(s))" if files else ""
        click.echo(f"no lab {name!r} is up: nothing to remove{leftovers}")


def _nodes(count: int) -> str:
    return "node1" if count == 1 else f"{count} nodes node1..node{count}"


def _shown(path: Path) -> str:
    # relative to the current directory when inside it: easier to copy and paste
    resolved = path.resolve()
    if resolved.is_relative_to(Path.cwd()):
        return os.path.relpath(resolved)
    return str(resolved)


def _lab_args(state_dir: Path, name: str) -> str:
    args = ""
    if state_dir != lab_core.default_state_dir():
        args += f" --dir {shlex.quote(str(state_dir))}"
    if name != lab_core.default_lab_name(state_dir):
        args += f" --name {shlex.quote(name)}"
    return args
