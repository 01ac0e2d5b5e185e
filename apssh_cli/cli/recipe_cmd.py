"""`apssh recipe run | plan | graph | check`: experiments written as TOML recipes.

The library does the work (:mod:`apssh_cli.recipe`); this module parses options,
prints, and returns the exit status. ``plan``, ``check`` and ``graph`` never
connect and never import asyncssh.
"""

from __future__ import annotations

import json
import sys
import tomllib
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
  130  interrupted (Ctrl-C); 128+N for signal N (143: SIGTERM)
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
            click.option("--from", "start", metavar="STEP", help="Run STEP and its descendants."),
            click.option(
                "--only", metavar="STEP[,STEP]", help="Run these steps alone (captures: --resume)."
            ),
        ]
    ):
        function = decorator(function)
    return function


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def recipe() -> None:
    """Run experiments written as TOML recipes: a DAG of steps over inventory hosts.

    \b
    apssh recipe check recipes/sweep.toml -i .lab/inventory.toml
    apssh recipe plan  recipes/sweep.toml -i .lab/inventory.toml
    apssh recipe run   recipes/sweep.toml -i .lab/inventory.toml --var samples=5
    apssh recipe run   recipes/sweep.toml -i .lab/inventory.toml --resume
    apssh recipe graph recipes/sweep.toml --format mermaid

    See docs/recipes.md for the format.
    """


def parse_variables(values: tuple[str, ...]) -> dict[str, Any]:
    """``--var key=value`` pairs; the value is TOML when it parses, else a string.

    Raises:
        ConfigError: a pair without ``=``, or a bad name.
    """
    from apssh_cli.recipe.model import VAR_PATTERN

    variables: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not VAR_PATTERN.fullmatch(key):
            raise ConfigError(f"--var {item!r}: write KEY=VALUE (KEY: letters, digits, _)")
        try:
            variables[key] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            variables[key] = value
    return variables


def _plan(
    recipe_file: str,
    inventory: tuple[str, ...],
    params: dict[str, Any],
    *,
    need_inventory: bool,
    run_dir: Path | None = None,
) -> Any:
    from apssh_cli.recipe.loader import load_recipe
    from apssh_cli.recipe.planner import Selection, make_plan

    loaded = load_recipe(recipe_file)
    paths = [path for path in inventory if path]
    # a recipe of local steps needs no inventory
    need_inventory = need_inventory and any(not step.is_local for step in loaded.steps)
    inv = load_inventory(paths) if (paths or need_inventory) else None
    only = tuple(s.strip() for s in (params.get("only") or "").split(",") if s.strip())
    selection = Selection(
        variables=parse_variables(params.get("variables") or ()),
        pattern=params.get("group"),
        start=params.get("start"),
        only=only,
    )
    if inv is None and any(not step.is_local for step in loaded.steps):
        return loaded, None
    return loaded, make_plan(loaded, inv, selection, run_dir=run_dir)


@recipe.command()
@click.argument("recipe_file", metavar="RECIPE", type=click.Path(dir_okay=False))
@_inventory_option(required=False)
@_selection_options
def check(recipe_file: str, inventory: tuple[str, ...], **params: Any) -> int:
    """Check RECIPE (and its use with an inventory): never connects.

    Without -i, names that may be host variables and host patterns are not checked.
    """
    loaded, plan = _plan(recipe_file, inventory, params, need_inventory=False)
    what = f"{len(loaded.steps)} steps"
    if plan is not None:
        what += f", {len(plan.tasks)} tasks on {len(plan.hosts)} hosts"
    else:
        what += " (give -i to check patterns and host variables too)"
    click.echo(f"{recipe_file}: ok: recipe {loaded.name}, {what}")
    return 0


@recipe.command()
@click.argument("recipe_file", metavar="RECIPE", type=click.Path(dir_okay=False))
@_inventory_option(required=True)
@_selection_options
@click.option("--json", "as_json", is_flag=True, help="The plan as JSON.")
def plan(recipe_file: str, inventory: tuple[str, ...], as_json: bool, **params: Any) -> int:
    """Show what `run` would do: steps, hosts, tasks, rendered commands. Never connects."""
    _, planned = _plan(recipe_file, inventory, params, need_inventory=True)
    if as_json:
        click.echo(json.dumps(planned.to_json(), indent=2))
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
    """Draw the step graph of RECIPE (with -i: the hosts of each step)."""
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
@click.argument("recipe_file", metavar="RECIPE", type=click.Path(dir_okay=False))
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
@click.option(
    "--raw-output",
    is_flag=True,
    help="Print remote output unescaped (risky: a host can then drive your terminal; docs/cli.md).",
)
def run(
    recipe_file: str,
    inventory: tuple[str, ...],
    resume: str | None,
    keep_going: bool,
    fail_fast: bool,
    window: int | None,
    run_dir: str | None,
    events: str | None,
    as_json: bool,
    quiet: bool,
    raw_output: bool,
    **params: Any,
) -> int:
    """Run RECIPE on the inventory's hosts: one SSH connection per host for the whole run."""
    from apssh_cli.recipe.journal import last_run
    from apssh_cli.recipe.loader import load_recipe
    from apssh_cli.recipe.planner import default_runs_dir

    directory = Path(run_dir) if run_dir else None
    if resume is not None:
        if resume == "last":
            directory = last_run(default_runs_dir(load_recipe(recipe_file)))
        else:
            directory = Path(resume)
        if not directory.is_dir():
            raise ConfigError(f"--resume: no run directory {directory}")
    _, planned = _plan(recipe_file, inventory, params, need_inventory=True, run_dir=directory)
    events_out: Any = None
    if events == "-":
        events_out = sys.stdout
    elif events:
        try:
            events_out = open(events, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise ConfigError(f"--events: cannot write {events}: {exc.strerror}") from None
    early = _start_connecting(planned, window) if resume is None else None
    try:
        from apssh_cli.cli.render import escape_library_log
        from apssh_cli.recipe.runner import RecipeRun

        # stdout carries the events or the JSON summary when asked: people's lines go to stderr
        human = sys.stderr if (events == "-" or as_json) else sys.stdout
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
    for line in runner.summary_lines():
        click.echo(line, file=human)
    if as_json:
        click.echo(json.dumps(runner.summary(), indent=2))
    return status


def _start_connecting(planned: Plan, window: int | None) -> EarlyConnections:
    """TCP connects to the recipe's first hosts, before asyncio and asyncssh are imported."""
    from apssh_cli.engine.early import start_early_connections

    return start_early_connections(planned.targets, planned.window(window))
