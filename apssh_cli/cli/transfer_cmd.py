"""`apssh push` and `apssh pull`: copy files to and from every selected host over SFTP.

Paths may use ``{host}`` (the host's name), ``{hostname}``, ``{user}``, ``{port}``
and the host's inventory variables: ``apssh push -g nodes conf/{host}.toml /etc/app.toml``.
``pull`` writes into ``LOCALDIR/<host>/`` unless LOCALDIR itself uses ``{host}``;
two hosts whose LOCALDIR would be one directory (or one inside the other) are
refused before anything runs.
Same targets, window, output options, summary and exit status as `run`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import click

from apssh_cli.cli.exitcodes import EXIT_STATUS_HELP
from apssh_cli.cli.run_options import (
    FleetPlan,
    expand_path,
    make_fleet_plan,
    run_plan,
    transfer_options,
)
from apssh_cli.errors import ConfigError

_SETTINGS = {"help_option_names": ["-h", "--help"]}


def _transfer_options(function: Any) -> Any:
    function = click.option(
        "-p", "--preserve", is_flag=True, help="Keep modes and modification times."
    )(function)
    function = click.option(
        "-r", "-R", "--recursive", "recurse", is_flag=True, help="Copy directories recursively."
    )(function)
    return transfer_options(function)


@click.command(context_settings=_SETTINGS, epilog=EXIT_STATUS_HELP)
@_transfer_options
@click.argument("paths", nargs=-1, required=True, metavar="LOCAL... REMOTE")
def push(paths: tuple[str, ...], recurse: bool, preserve: bool, **params: Any) -> int:
    """Copy LOCAL files to REMOTE on every selected host.

    REMOTE is a file name, or a directory to copy into (it must be one when
    several LOCAL files are given). Paths may use {host}, {hostname}, {user},
    {port} and the host's inventory variables.

    \b
    Examples:
      apssh push -i lab.toml -g nodes data.tar /tmp/
      apssh push -i lab.toml -g nodes -r -p conf/ /etc/app/
      apssh push -i lab.toml -g nodes 'keys/{host}.pub' .ssh/authorized_keys
    """
    if len(paths) < 2:
        raise click.UsageError("push needs LOCAL... and REMOTE")
    *sources, remote = paths
    plan = make_fleet_plan(params)
    commands: dict[str, list[Any]] = {}
    for target in plan.targets:
        locals_ = [expand_path(source, target, what="local path") for source in sources]
        for local in locals_:
            path = Path(local)
            if not path.exists():
                raise ConfigError("no such local file", source=local)
            if path.is_dir() and not recurse:
                raise ConfigError("is a directory (use -r to copy directories)", source=local)
        commands[target.name] = [locals_, expand_path(remote, target, what="remote path")]
    return _run_transfers(plan, commands, "push", recurse, preserve, f"push {' '.join(paths)}")


@click.command(context_settings=_SETTINGS, epilog=EXIT_STATUS_HELP)
@_transfer_options
@click.argument("paths", nargs=-1, required=True, metavar="REMOTE... LOCALDIR")
def pull(paths: tuple[str, ...], recurse: bool, preserve: bool, **params: Any) -> int:
    """Copy REMOTE files from every selected host into LOCALDIR/<host>/.

    Paths may use {host}, {hostname}, {user}, {port} and the host's inventory
    variables. When LOCALDIR uses one, it is each host's own directory and no
    <host> level is added; two hosts may not share one (refused before anything
    runs). A copy keeps the remote mode bits (less the umask); FIFOs, sockets and
    devices are not read. A host whose pull fails leaves no empty directory.

    \b
    Examples:
      apssh pull -i lab.toml -g nodes /tmp/apssh-measure.csv results/
      apssh pull -i lab.toml -g nodes -r /var/log/app 'logs/{host}'
      apssh pull -t root@node1 -t root@node2 /etc/os-release .
    """
    if len(paths) < 2:
        raise click.UsageError("pull needs REMOTE... and LOCALDIR")
    *sources, local_dir = paths
    plan = make_fleet_plan(params)
    templated = "{" in local_dir
    commands: dict[str, list[Any]] = {}
    for target in plan.targets:
        remotes = [expand_path(source, target, what="remote path") for source in sources]
        if templated:
            directory = Path(expand_path(local_dir, target, what="local directory"))
        else:
            directory = Path(local_dir) / target.name.replace("/", "_")
        commands[target.name] = [remotes, directory]
    _refuse_shared_directories({name: directory for name, (_, directory) in commands.items()})
    description = f"pull {' '.join(paths)}"
    if plan.dry_run:
        return _run_transfers(plan, commands, "pull", recurse, preserve, description)
    created: list[Path] = []
    try:
        for _, directory in commands.values():
            _make_directory(directory, created)
        return _run_transfers(plan, commands, "pull", recurse, preserve, description)
    finally:
        _remove_empty(created)


def _make_directory(directory: Path, created: list[Path]) -> None:
    """Create ``directory`` and its missing parents; note each one created, parents first."""
    missing = [path for path in (directory, *directory.parents) if not path.exists()]
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create local directory: {exc.strerror or exc}", source=str(directory)
        ) from exc
    created.extend(reversed(missing))


def _remove_empty(created: list[Path]) -> None:
    """Remove the directories this pull created and left empty (a host that failed),
    deepest first; one that holds anything stays."""
    for path in reversed(created):
        with contextlib.suppress(OSError):
            path.rmdir()


def _refuse_shared_directories(directories: dict[str, Path]) -> None:
    """Refuse two hosts whose pull writes one local directory, or one inside the other's:
    the second host's files would replace the first's (``results/{site}``, one site)."""
    owners: dict[Path, str] = {}
    for host, directory in directories.items():
        resolved = directory.resolve()  # through links: two spellings of one place
        if (other := owners.get(resolved)) is not None:
            raise ConfigError(
                f"hosts {other} and {host} would pull into the same local directory "
                f"{directory}: give each host its own (with {{host}})"
            )
        owners[resolved] = host
    for resolved, host in owners.items():
        for parent in resolved.parents:
            if (other := owners.get(parent)) is not None:
                raise ConfigError(
                    f"host {host}'s local directory {directories[host]} is inside host "
                    f"{other}'s ({directories[other]}): give each host its own (with {{host}})"
                )


def _run_transfers(
    plan: FleetPlan,
    arguments: dict[str, list[Any]],
    kind: str,
    recurse: bool,
    preserve: bool,
    description: str,
) -> int:
    commands: dict[str, list[Any]] = {}
    if not plan.dry_run:
        from apssh_cli.commands import Pull, Push

        command_class = Push if kind == "push" else Pull
        for name, (sources, destination) in arguments.items():
            commands[name] = [
                command_class(
                    sources, destination, recurse=recurse, preserve=preserve, timeout=plan.timeout
                )
            ]
    return run_plan(plan, commands, description=description)
