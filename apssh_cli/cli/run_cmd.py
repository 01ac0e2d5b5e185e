"""`apssh run` (the default subcommand): a command or a local script on every selected host.

``apssh -g nodes uptime`` is ``apssh run -g nodes uptime``. Options come before
the command: everything from the first word on is the remote command (``apssh
-g nodes ls -l`` runs ``ls -l``). With ``-s`` the first word is a local script,
pushed and run with the remaining words as its arguments.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import click

from apssh_cli.cli import stdin, upstream_hints
from apssh_cli.cli.exitcodes import EXIT_STATUS_HELP
from apssh_cli.cli.run_options import files_option, make_fleet_plan, run_options, run_plan
from apssh_cli.errors import ConfigError


class RunCommand(click.Command):
    """A command that remembers its raw arguments, to tell ``-- push`` from ``push``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["apssh.raw_args"] = list(args)
        return super().parse_args(ctx, args)


@click.command(
    cls=RunCommand,
    context_settings={"allow_interspersed_args": False, "help_option_names": ["-h", "--help"]},
    epilog=EXIT_STATUS_HELP,
)
@run_options
@files_option("--include", "includes", help="With -s: a file sent next to the script (repeatable).")
@click.option(
    "-s",
    "--script",
    is_flag=True,
    help="The first word is a local script: push it, run it with the other words as arguments.",
)
@click.option(
    "--stdin/--no-stdin",
    "use_stdin",
    default=None,
    help="Send the local stdin to every host's command (read once; default: when stdin "
    "is not a terminal, and not with -s).",
)
@click.argument("command", nargs=-1, required=True)
@click.pass_context
def run(
    ctx: click.Context,
    /,
    command: tuple[str, ...],
    script: bool,
    includes: tuple[str, ...],
    use_stdin: bool | None,
    **params: Any,
) -> int:
    """Run COMMAND on every selected host, at most -w hosts at a time.

    The words of COMMAND are joined with spaces and run by the remote shell, as
    ssh does (quote what the local shell must not expand). A remote command
    named like an apssh subcommand goes after `--`.

    When stdin is not a terminal it is read once and every host's command
    reads it (`--no-stdin`: never; with -s, only with `--stdin`).

    \b
    Examples:
      apssh -i lab.toml -g nodes uptime
      apssh -t root@node1,node2 -w 10 'cat > /tmp/motd' < motd.txt
      apssh -i lab.toml -g nodes -s recipes/setup.sh --force
    """
    _refuse_subcommand_name(ctx, command, script)
    if includes and not script:
        raise click.UsageError("--include goes with -s/--script")
    plan = make_fleet_plan(params)
    timeout = plan.timeout  # the command line, else APSSH_TIMEOUT or the config file
    if script:
        path = Path(command[0])
        if not path.is_file():
            raise ConfigError(
                "script not found (with -s, the first word is a local file)", source=command[0]
            )
        for include in includes:
            if not Path(include).is_file():
                raise ConfigError("include file not found", source=include)
        for warning in upstream_hints.include_warnings(command):
            click.echo(f"apssh: warning: {warning}", err=True)
        description = f"script {' '.join(command)}"
    else:
        description = " ".join(command)
    commands: dict[str, list[Any]] = {}
    if plan.dry_run:
        return run_plan(plan, commands, description=description)
    from apssh_cli.commands import Run, RunScript

    reading = stdin.wanted(use_stdin, script=script)
    with stdin.read_stdin() if reading else contextlib.nullcontext() as data:
        for target in plan.targets:
            if script:
                commands[target.name] = [
                    RunScript.quoted(
                        command[0], *command[1:], includes=includes, timeout=timeout, stdin=data
                    )
                ]
            else:
                commands[target.name] = [Run(" ".join(command), timeout=timeout, stdin=data)]
        return run_plan(plan, commands, description=description)


def _refuse_subcommand_name(ctx: click.Context, command: tuple[str, ...], script: bool) -> None:
    # `apssh -g nodes push a b` is most likely a misplaced `apssh push -g nodes a b`
    from apssh_cli.cli.main import SUBCOMMANDS

    if script or command[0] not in SUBCOMMANDS:
        return
    raw: list[str] = ctx.meta.get("apssh.raw_args", [])
    before = len(raw) - len(command) - 1
    if before >= 0 and raw[before] == "--":
        return
    raise click.UsageError(
        f"{command[0]!r} is an apssh subcommand: write `apssh {command[0]} [OPTIONS] ...`, "
        f"or put a remote command of that name after `--`"
    )
