"""Entry point of `apssh`: routing to subcommands, and errors turned into exit codes.

`apssh [OPTIONS] COMMAND...` runs COMMAND on the selected hosts (the `run`
subcommand is the default); `apssh inventory|push|pull|lab ...` are subcommands.
Subcommand modules are imported only when used, so `apssh --help` stays fast and
never imports asyncssh.
"""

from __future__ import annotations

import sys
import traceback
from importlib import import_module
from typing import Any

import click

from apssh_cli import __version__
from apssh_cli.cli.exitcodes import EXIT_STATUS_HELP, ExitCode
from apssh_cli.cli.options import forget_secrets, mask_secrets
from apssh_cli.errors import ApsshError

# subcommand name -> "module:attribute", imported on demand
SUBCOMMANDS: dict[str, str] = {
    "run": "apssh_cli.cli.run_cmd:run",
    "push": "apssh_cli.cli.transfer_cmd:push",
    "pull": "apssh_cli.cli.transfer_cmd:pull",
    "inventory": "apssh_cli.cli.inventory_cmd:inventory",
    "lab": "apssh_cli.cli.lab_cmd:lab",
    "recipe": "apssh_cli.cli.recipe_cmd:recipe",
    "connections": "apssh_cli.cli.connections_cmd:connections",
}
DEFAULT_SUBCOMMAND = "run"
SUBCOMMAND_HELP = {
    "run": "Run a command on the selected hosts (the default: `apssh -g nodes uptime`).",
    "push": "Copy local files to the selected hosts over SFTP.",
    "pull": "Copy files from the selected hosts into LOCALDIR/<host>/.",
    "inventory": "List, graph, check an inventory, or show one host's settings.",
    "lab": "Start, inspect or remove a local testbed behind a bastion (Docker).",
    "recipe": "Run, plan, check or graph an experiment written as a TOML recipe.",
    "connections": "List or close the warm connections kept by --persist.",
}


class ApsshGroup(click.Group):
    """A group whose first word picks a subcommand, and anything else means `run`.

    `apssh -g nodes uptime` is `apssh run -g nodes uptime`. Options may also come
    before a subcommand's name: `apssh -i lab.toml inventory graph` is
    `apssh inventory -i lab.toml graph`. A remote command whose name is also a
    subcommand is given after `--`: `apssh -g nodes -- lab`.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        command: click.Command = getattr(import_module(module_name), attribute)
        ctx.meta[_SUBCOMMAND_PATH] = f"{ctx.command_path} {cmd_name}"
        _accept_debug(command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            # click's parser raises some errors ("Option '-o' requires an argument")
            # without a context: name the subcommand in the hint all the same
            if exc.ctx is None and _SUBCOMMAND_PATH in ctx.meta:
                exc.apssh_command_path = ctx.meta[_SUBCOMMAND_PATH]  # type: ignore[attr-defined]
            raise

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # describe subcommands without importing them (keeps --help fast)
        rows = [(name, SUBCOMMAND_HELP[name]) for name in sorted(SUBCOMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Leading group options stay with the group; the first other word decides.
        index = 0
        while index < len(args) and args[index] in _GROUP_FLAGS:
            index += 1
        if index < len(args) and args[index] not in SUBCOMMANDS:
            rest = args[index:]
            moved = self._options_before_subcommand(ctx, rest)
            args = [*args[:index], *(moved or [DEFAULT_SUBCOMMAND, *rest])]
        return super().parse_args(ctx, args)

    def _options_before_subcommand(self, ctx: click.Context, rest: list[str]) -> list[str] | None:
        """`-i x.toml inventory graph` -> `inventory -i x.toml graph`; None if not that form.

        The run command's own parser finds where the options end, so that option
        values (`-g push`) are never taken for a subcommand's name.
        """
        run = self.get_command(ctx, DEFAULT_SUBCOMMAND)
        assert run is not None
        try:
            with run.make_context(DEFAULT_SUBCOMMAND, list(rest), resilient_parsing=True) as probe:
                words: tuple[str, ...] = probe.params.get("command") or ()
                is_script = bool(probe.params.get("script"))
        except click.ClickException:
            return None
        if not words or words[0] not in SUBCOMMANDS or is_script:
            return None
        position = len(rest) - len(words)
        if position > 0 and rest[position - 1] == "--":
            return None  # `apssh -g nodes -- lab`: a remote command named lab
        return [words[0], *rest[:position], *words[1:]]


_SUBCOMMAND_PATH = "apssh.subcommand_path"  # in ctx.meta: "apssh run" once resolved
_DEBUG_READY: set[int] = set()  # ids of the commands that accept --debug already


def _accept_debug(command: click.Command) -> None:
    """``--debug`` among any command's options (``apssh -g nodes --debug uptime``,
    ``apssh recipe run --debug x.toml``): `main` reads it from the command line."""
    if id(command) in _DEBUG_READY:
        return
    _DEBUG_READY.add(id(command))
    if not any("--debug" in param.opts for param in command.params):
        command.params.append(
            click.Option(["--debug"], is_flag=True, hidden=True, expose_value=False)
        )
    if isinstance(command, click.Group):
        for subcommand in command.commands.values():
            _accept_debug(subcommand)


_GROUP_FLAGS = {"--debug", "--version", "-V", "--help", "-h"}


@click.group(
    cls=ApsshGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EXIT_STATUS_HELP,
)
@click.version_option(__version__, "-V", "--version", prog_name="apssh")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Run commands, scripts and transfers on many hosts over SSH.

    `apssh COMMAND...` is `apssh run COMMAND...`; `apssh SUBCOMMAND --help` tells more.

    \b
    Examples:
      apssh -i lab.toml -g nodes uptime
      apssh -t node1,root@node2 -w 10 -- cat /etc/os-release
      apssh -i lab.toml -g nodes -s recipes/facts.sh
      apssh push -i lab.toml -g nodes data.tar /tmp/

    Coming from parmentelat's apssh: -g is a group pattern here (its gateway
    option is -G), -t @FILE reads targets from FILE, -s's includes go with
    --include, and the default remote user is the inventory's, ~/.ssh/config's
    or your local user name (upstream's SshNode: root); see docs/migrating.md.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv: list[str] | None = None) -> None:
    """Run `apssh` and exit with one of the statuses of ExitCode."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    forget_secrets()
    try:
        status = cli.main(args=argv, prog_name="apssh", standalone_mode=False)
    except click.exceptions.Exit as exc:
        status = exc.exit_code
    except click.Abort:
        click.echo("apssh: interrupted", err=True)
        status = ExitCode.INTERRUPTED
    except KeyboardInterrupt:
        click.echo("apssh: interrupted", err=True)
        status = ExitCode.INTERRUPTED
    except click.UsageError as exc:  # also BadParameter, NoSuchOption, MissingParameter
        _print_usage_error(exc)
        status = ExitCode.USAGE
    except click.ClickException as exc:
        click.echo(f"apssh: {_one_line(exc.format_message())}", err=True)
        status = ExitCode.USAGE
    except ApsshError as exc:
        click.echo(f"apssh: {mask_secrets(str(exc))}", err=True)
        hint = getattr(exc, "hint", None)
        if hint:
            click.echo(f"hint: {hint}", err=True)
        status = ExitCode.USAGE
    except BrokenPipeError:
        _quiet_broken_pipe()
        # as a shell reports a writer killed by SIGPIPE (`yes | head`): 1 would say "nothing ran"
        status = ExitCode.BROKEN_PIPE
    except Exception as exc:  # an internal error: one line unless --debug
        if debug:
            traceback.print_exc()
        click.echo(
            f"apssh: internal error: {type(exc).__name__}: {mask_secrets(str(exc))} "
            "(run with --debug for details)",
            err=True,
        )
        status = ExitCode.USAGE
    sys.exit(_as_int(status))


def _print_usage_error(exc: click.UsageError) -> None:
    """One line `apssh: message`, then where to look: the help of the command at fault.

    A group given no subcommand (`apssh`, `apssh lab`) prints its help instead.
    """
    if _NO_ARGS_IS_HELP is not None and isinstance(exc, _NO_ARGS_IS_HELP):
        click.echo(exc.format_message(), err=True)  # the help text itself
        return
    click.echo(f"apssh: {_one_line(exc.format_message())}", err=True)
    if exc.ctx is not None:
        command_path = exc.ctx.command_path
    else:
        command_path = getattr(exc, "apssh_command_path", "apssh")
    click.echo(f"try '{command_path} --help'", err=True)


# click >= 8.2 raises this for a group called without a subcommand (8.1 printed the help)
_NO_ARGS_IS_HELP: type[click.UsageError] | None = getattr(
    click.exceptions, "NoArgsIsHelpError", None
)


def _one_line(message: str) -> str:
    # click's messages may span lines and end with a full stop; ours are one line, no stop
    return " ".join(message.split()).rstrip(".") or "error"


def _as_int(status: Any) -> int:
    return int(status) if isinstance(status, int) else 0


def _quiet_broken_pipe() -> None:
    # `apssh ... | head`: stdout went away; do not print a second error on flush at exit
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    main()
