"""`apssh recipe run | plan | graph | check`: experiments written as TOML recipes.

The library does the work (:mod:`apssh_cli.recipe`); this module parses options,
prints, and returns the exit status. ``plan``, ``check`` and ``graph`` never
connect and never import asyncssh.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from apssh_cli.cli.options import ENV_INVENTORY, load_inventory
from apssh_cli.errors import ConfigError

if TYPE_CHECKING:
    from apssh_cli.recipe.planner import Plan
    from apssh_cli.ssh.early import EarlyConnections

F = TypeVar("F", bound=Callable[..., Any])

RECIPE_EXIT_HELP = """\b
Exit status of `recipe run`:
  0    every task ended ok
  1    bad recipe, inventory or options: nothing ran
  2    some task failed (tolerated: max_fail, non-critical step, --keep-going)
  3    some task timed out
  4    some host was unreachable
  5    aborted (a critical step failed, or the recipe's timeout)
  130  interrupted (Ctrl-C); 128+N for signal N (129: SIGHUP, 143: SIGTERM)
The most severe wins: 130 > 5 > 4 > 3 > 2 > 0."""


def _inventory_option(required: bool) -> Callable[[F], F]:
    # "required" for the help text: a recipe of local steps runs without one
    return click.option(
        "-i",
        "--inventory",
        metavar="FILE",
        multiple=True,
        envvar=ENV_INVENTORY,
        show_envvar=True,
        type=click.Path(dir_okay=False),
        help="TOML inventory (repeat to merge)." + ("" if required else " Optional here."),
    )


def _selection_options(function: F) -> F:
    for decorator in reversed(
        [
            click.option(
                "--var",
                "variables",
                metavar="KEY=VALUE",
                multiple=True,
                help="Set a variable (wins over [vars]; on a matrix key, the values to "
                "sweep); VALUE is read as TOML (10, true, [1, 2]), else as a string.",
            ),
            click.option(
                "-g", "--group", metavar="PATTERN", help="Narrow every step to these hosts."
            ),
            click.option(
                "-x",
                "--exclude",
                metavar="PATTERN",
                help="Leave these hosts out of every step (a term that names nothing: exit 1).",
            ),
            click.option("--from", "start", metavar="STEP", help="Run STEP and its descendants."),
            click.option(
                "--only", metavar="STEP[,STEP]", help="Run these steps alone (captures: --resume)."
            ),
        ]
    ):
        function = decorator(function)
    return function


STRICT_OPTION = click.option(
    "--strict",
    is_flag=True,
    help="Warnings are errors (exit 1): a step whose hosts pattern selects no host, "
    "a --var the recipe never uses, {ok.STEP} of a step left out.",
)


def _ssh_options(function: F) -> F:
    """``-O``, ``-F`` and ``--port``, as run, push and pull take them."""
    from apssh_cli.cli.run_options import SSH_OPTIONS

    for option in reversed(SSH_OPTIONS):
        function = option(function)
    return function


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def recipe() -> None:
    """Run experiments written as TOML recipes: a DAG of steps over inventory hosts.

    \b
    Examples:
      apssh recipe check recipes/sweep.toml -i .lab/inventory.toml
      apssh recipe plan  recipes/sweep.toml -i .lab/inventory.toml
      apssh recipe run   recipes/sweep.toml -i .lab/inventory.toml --var samples=5
      apssh recipe run   recipes/sweep.toml -i .lab/inventory.toml --resume
      apssh recipe graph recipes/sweep.toml --format mermaid

    See docs/recipes.md for the format.
    """


def _warn(warnings: list[str], strict: bool) -> None:
    """Each warning on stderr; with ``--strict`` they are errors and the last one is raised."""
    if strict and warnings:
        for text in warnings[:-1]:
            click.echo(f"apssh: error: {text}", err=True)
        raise ConfigError(f"{warnings[-1]} (--strict)")
    for text in warnings:
        click.echo(f"apssh: warning: {text}", err=True)


def _warnings(loaded: Any, planned: Plan | None, params: dict[str, Any]) -> list[str]:
    """What ``check`` and ``plan`` warn about, as ``run`` does (recipe.preflight)."""
    from apssh_cli.recipe import preflight

    warnings = preflight.unused_variables(
        loaded, preflight.parse_variables(params.get("variables") or ())
    )
    if planned is not None:
        warnings += preflight.empty_steps(planned) + preflight.left_out_host_lists(planned)
    return warnings


def _plan(
    recipe_file: str,
    inventory: tuple[str, ...],
    params: dict[str, Any],
    *,
    need_inventory: bool,
    run_dir: Path | None = None,
    claim: bool = False,
    port: int | None = None,
) -> Any:
    from apssh_cli.recipe.loader import load_recipe
    from apssh_cli.recipe.planner import Selection, make_plan
    from apssh_cli.recipe.preflight import check_variables, parse_variables

    loaded = load_recipe(recipe_file)
    variables = parse_variables(params.get("variables") or ())
    check_variables(loaded, variables)  # before planning: a bad sweep is said as such
    paths = [path for path in inventory if path]
    # a recipe of local steps needs no inventory
    need_inventory = need_inventory and any(not step.is_local for step in loaded.steps)
    inv = load_inventory(paths) if (paths or need_inventory) else None
    if inv is not None and port is not None:
        inv = _with_port(inv, port)
    only = tuple(s.strip() for s in (params.get("only") or "").split(",") if s.strip())
    selection = Selection(
        variables=variables,
        pattern=params.get("group"),
        exclude=params.get("exclude"),
        start=params.get("start"),
        only=only,
    )
    if inv is None and any(not step.is_local for step in loaded.steps):
        for flag, key in (("-g", "group"), ("-x", "exclude")):
            if params.get(key) is not None:  # never a pattern left unchecked
                raise ConfigError(f"{flag} needs an inventory (-i FILE)", source=recipe_file)
        return loaded, None
    return loaded, make_plan(loaded, inv, selection, run_dir=run_dir, claim=claim)


@recipe.command()
@click.argument("recipe_file", metavar="RECIPE", type=click.Path(dir_okay=False))
@_inventory_option(required=False)
@_selection_options
@STRICT_OPTION
def check(recipe_file: str, inventory: tuple[str, ...], strict: bool, **params: Any) -> int:
    """Check RECIPE (and its use with an inventory): never connects.

    Without -i, names that may be host variables and host patterns are not checked.
    A step whose pattern selects no host and a --var the recipe never uses are
    warnings, errors with --strict.

    \b
    Examples:
      apssh recipe check recipes/sweep.toml
      apssh recipe check recipes/sweep.toml -i .lab/inventory.toml --var samples=5
    """
    loaded, plan = _plan(recipe_file, inventory, params, need_inventory=False)
    _warn(_warnings(loaded, plan, params), strict)
    what = f"{len(loaded.steps)} steps"
    if plan is not None:
        what += f", {len(plan.tasks)} tasks on {len(plan.hosts)} hosts"
    else:
        what += " (give -i to check patterns and host variables too)"
    click.echo(f"{recipe_file}: ok: recipe {loaded.name}, {what}")
    from apssh_cli.recipe.checks import raw_uses

    for use in raw_uses(loaded):  # the opt-ins to running host values as code, said aloud
        click.echo(f"note: {use}")
    return 0


@recipe.command()
@click.argument("recipe_file", metavar="RECIPE", type=click.Path(dir_okay=False))
@_inventory_option(required=True)
@_selection_options
@click.option("--json", "as_json", is_flag=True, help="The plan as JSON.")
def plan(recipe_file: str, inventory: tuple[str, ...], as_json: bool, **params: Any) -> int:
    """Show what `run` would do: steps, hosts, tasks, rendered commands. Never connects.

    \b
    Examples:
      apssh recipe plan recipes/sweep.toml -i .lab/inventory.toml
      apssh recipe plan recipes/sweep.toml -i .lab/inventory.toml --only measure --json
    """
    loaded, planned = _plan(recipe_file, inventory, params, need_inventory=True)
    _warn(_warnings(loaded, planned, params), strict=False)
    if as_json:  # one line, as every --json output
        click.echo(json.dumps(planned.to_json()))
    else:
        click.echo(planned.text(), nl=False)
    return 0


@recipe.command()
@click.argument("recipe_file", metavar="RECIPE", type=click.Path(dir_okay=False))
@_inventory_option(required=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot", "svg", "png"]),
    default="mermaid",
    show_default=True,
    help="mermaid renders in Markdown; svg and png need Graphviz's dot.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file.")
def graph(recipe_file: str, inventory: tuple[str, ...], fmt: str, output: str | None) -> int:
    """Draw the step graph of RECIPE (with -i: the hosts of each step).

    \b
    Examples:
      apssh recipe graph recipes/sweep.toml
      apssh recipe graph recipes/sweep.toml -i .lab/inventory.toml --format svg -o sweep.svg
    """
    from apssh_cli.recipe import graph as graphs

    loaded, planned = _plan(recipe_file, inventory, {}, need_inventory=False)
    if fmt == "mermaid":
        data: bytes = graphs.mermaid(loaded, planned).encode()
    else:
        data = graphs.dot(loaded, planned).encode()
        if fmt in ("svg", "png"):
            data = graphs.render_image(data.decode(), fmt)
    if output:
        Path(output).write_bytes(data)
    elif fmt == "png":
        raise ConfigError("--format png writes binary data: give -o FILE")
    else:
        click.echo(data.decode(), nl=False)
    return 0


@recipe.command(epilog=RECIPE_EXIT_HELP)
# not required for click: `run --resume sweep.toml` takes the recipe for a run directory, said
# below in words rather than as a missing argument
@click.argument("recipe_file", metavar="RECIPE", required=False, type=click.Path(dir_okay=False))
@_inventory_option(required=True)
@_selection_options
@click.option(
    "--resume",
    metavar="[RUN_DIR|last]",
    is_flag=False,
    flag_value="last",
    default=None,
    help="Skip the tasks that ended ok in that run (default: the last) with the same "
    "action; run the rest, in the same run directory.",
)
@click.option(
    "--keep-going", is_flag=True, help="A failed critical step skips only its descendants."
)
@click.option("--fail-fast", is_flag=True, help="A failed combination stops the sweep.")
@click.option("-w", "--window", type=click.IntRange(min=1), help="At most N tasks at once.")
@click.option("--run-dir", type=click.Path(file_okay=False), help="Default: runs/<name>/<run_id>.")
@click.option("--events", metavar="FILE|-", help="Write JSON events (JSON Lines) there.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="Only the summary: no streamed lines.")
@STRICT_OPTION
@_ssh_options
@click.option(
    "--raw-output",
    is_flag=True,
    help="Print remote output unescaped (risky: a host can then drive your terminal; docs/cli.md).",
)
def run(
    recipe_file: str | None,
    inventory: tuple[str, ...],
    resume: str | None,
    keep_going: bool,
    fail_fast: bool,
    window: int | None,
    run_dir: str | None,
    events: str | None,
    as_json: bool,
    quiet: bool,
    strict: bool,
    ssh_options: tuple[str, ...],
    ssh_config: str | None,
    port: int | None,
    raw_output: bool,
    **params: Any,
) -> int:
    """Run RECIPE on the inventory's hosts: one SSH connection per host for the whole run.

    \b
    Examples:
      apssh recipe run recipes/sweep.toml -i .lab/inventory.toml
      apssh recipe run recipes/sweep.toml -i .lab/inventory.toml --var samples=5 -q
      apssh recipe run recipes/sweep.toml -i .lab/inventory.toml --resume
    """
    from apssh_cli.cli.defaults import load_defaults
    from apssh_cli.cli.run_options import (
        check_ssh_values,
        early_connects_wanted,
        library_warnings,
        set_persist,
    )
    from apssh_cli.inventory.targets import check_hostnames
    from apssh_cli.recipe.journal import create_run_dir, last_run
    from apssh_cli.recipe.loader import load_recipe
    from apssh_cli.recipe.planner import default_runs_dir
    from apssh_cli.recipe.preflight import preflight
    from apssh_cli.ssh.early import DEFAULT_SSH_CONFIG
    from apssh_cli.ssh.sshoptions import SshOptions, ssh_settings

    if recipe_file is None:
        if resume is not None and Path(resume).is_file():
            raise ConfigError(
                f"--resume {resume}: a file (the recipe?) where a run directory goes; the "
                f"recipe comes first: apssh recipe run {resume} --resume [RUN_DIR]"
            )
        raise click.MissingParameter(param_hint="'RECIPE'", param_type="argument")
    defaults = load_defaults()  # the config file's and APSSH_* window and inventory
    if window is None:
        window = defaults.get("window")
    if not inventory and defaults.get("inventory"):
        inventory = (defaults.get("inventory"),)
    directory = Path(run_dir) if run_dir else None
    if resume is not None:
        if resume == "last":
            directory = last_run(default_runs_dir(load_recipe(recipe_file)))
        else:
            directory = Path(resume)
            if directory.is_file():
                raise ConfigError(
                    f"--resume {resume}: a file (a recipe?), not a run directory: give "
                    "runs/NAME/RUN_ID, or --resume alone for the last run"
                )
        if not directory.is_dir():
            raise ConfigError(f"--resume: no run directory {directory}")
    options = SshOptions(ssh_options)
    check_ssh_values(options)  # before any connect, even an early one, and any run directory
    persist = set_persist(params.pop("persist", None), defaults.get("persist"))
    plan_args: dict[str, Any] = {"need_inventory": True, "run_dir": directory, "port": port}
    _, planned = _plan(recipe_file, inventory, params, **plan_args)
    # the options against the plan, before any directory is made or anything connects
    _warn(preflight(planned, resume=resume is not None), strict)
    for target in planned.targets:
        check_hostnames(target)
    # a new run directory is created now, exclusively: two runs never share one
    if planned.fresh and create_run_dir(planned.run_dir):
        planned.claimed = True
    elif planned.fresh:  # another run took this id meanwhile: the next free one
        _, planned = _plan(recipe_file, inventory, params, claim=True, **plan_args)
    config = ssh_config if ssh_config is not None else DEFAULT_SSH_CONFIG
    events_out: Any = None
    if events == "-":
        events_out = sys.stdout
    elif events:
        try:
            events_out = open(events, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise ConfigError(f"--events: cannot write {events}: {exc.strerror}") from None
    early = (
        _start_connecting(planned, window, config)
        if resume is None and early_connects_wanted(options, bool(persist))
        else None
    )
    try:
        from apssh_cli.cli.render import escape_library_log
        from apssh_cli.recipe.runner import RecipeRun

        # stdout carries the events or the JSON summary when asked: people's lines go to stderr
        human = sys.stderr if (events == "-" or as_json) else sys.stdout
        # the nodes are made inside: they take -F and -O
        with ssh_settings(config, options), library_warnings(shown=True):
            runner = RecipeRun(
                planned,
                keep_going=keep_going,
                fail_fast=fail_fast,
                window=window,
                resume=resume is not None,
                events=events_out,
                stdout=human,
                quiet=quiet,
                early_connections=early,
            )
            runner.formatter.escape = not raw_output
            escape_library_log()  # its warnings may quote remote file names
            status = runner.run(handle_signals=True)
    finally:
        if early is not None:
            early.close()
        if events_out is not None and events_out is not sys.stdout:
            events_out.close()
    for line in runner.summary_lines():  # on stderr, as `apssh run` prints its summary
        click.echo(line, err=True)
    if as_json:  # one line (JSON Lines), after the events of `--events -`
        click.echo(json.dumps(runner.summary()))
    return status


def _start_connecting(planned: Plan, window: int | None, ssh_config: Any) -> EarlyConnections:
    """TCP connects to the recipe's first hosts, before asyncio and asyncssh are imported."""
    from apssh_cli.engine.prestart import start_early_connections

    return start_early_connections(planned.targets, planned.window(window), ssh_config=ssh_config)


def _with_port(inventory: Any, port: int) -> Any:
    """``--port``: the port of every inventory host but the gateways (which keep theirs)."""
    from dataclasses import replace

    from apssh_cli.inventory.model import Inventory

    gateways = {host.gateway for host in inventory.hosts.values() if host.gateway is not None}
    hosts = {
        name: host if name in gateways or host.connection == "local" else replace(host, port=port)
        for name, host in inventory.hosts.items()
    }
    return Inventory(
        hosts=hosts,
        groups=inventory.groups,
        implicit=inventory.implicit_hosts,
        conflicts=inventory.conflicts,
    )
