"""Options shared by `run`, `push` and `pull`: targets, execution, output; and the common flow.

Each command declares its options with `run_options`, turns its own arguments
into the commands of each host, and hands them to `run_plan`, which resolves
the targets, prints them for ``--dry-run``, or runs them and returns the exit
status. Import-light: asyncssh and asynciojobs are imported only by execution.py
when something really runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import click

from apssh_cli.cli import upstream_hints
from apssh_cli.cli.exitcodes import ExitCode
from apssh_cli.cli.options import MAX_RETRIES, Count, Seconds, inventory_options, load_inventory
from apssh_cli.cli.render import COLOR_CHOICES, OutputOptions, check_format, colour_wanted
from apssh_cli.errors import ConfigError
from apssh_cli.inventory.targets import (
    Overrides,
    Target,
    read_specs,
    resolve_gateway,
    resolve_targets,
)
from apssh_cli.ssh.control import holds_nothing_yet
from apssh_cli.ssh.early import DEFAULT_SSH_CONFIG

F = TypeVar("F", bound=Callable[..., Any])

KNOWN_HOSTS_POLICIES = ("strict", "accept-new", "off")
NO_HOSTS_MESSAGE = "no hosts: give -t TARGET, or an inventory (-i FILE) and -g PATTERN"


def run_options(function: F) -> F:
    """Add the target, execution and output options of run/push/pull to a click command."""
    return _with_options(function, raw_flags=("-r", "--raw"))


def transfer_options(function: F) -> F:
    """Like `run_options`, for push/pull: ``-r`` is left to ``--recursive``."""
    return _with_options(function, raw_flags=("--raw",))


def _with_options(function: F, raw_flags: tuple[str, ...]) -> F:
    raw = click.option(
        *raw_flags, "raw", is_flag=True, help="Print lines without the host prefix (escaped)."
    )
    options: list[Callable[[F], F]] = [
        *_OUTPUT_OPTIONS,
        raw,
        *_EXECUTION_OPTIONS,
        *_TARGET_OPTIONS,
    ]
    for option in options:
        function = option(function)
    return inventory_options(function)


def seconds_option(*decls: str, help: str) -> Callable[[F], F]:
    """A positive duration: seconds, or with a unit (``--timeout 30s``, ``--connect-timeout 2``)."""
    return click.option(*decls, type=Seconds(), metavar="DURATION", help=help)


def files_option(*decls: str, help: str) -> Callable[[F], F]:
    """A local file, repeatable (``-k``, ``--include``)."""
    return click.option(
        *decls, multiple=True, metavar="FILE", type=click.Path(dir_okay=False), help=help
    )


def _check_ssh_options(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    from apssh_cli.ssh.sshoptions import parse_option

    for value in values:
        try:
            parse_option(value)
        except ConfigError as exc:
            raise click.BadParameter(exc.message, param_hint="-O") from None
    return values


def _check_out_dir(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> Any:
    # ssh and clush users type `-o StrictHostKeyChecking=no`: never a directory of that name
    from apssh_cli.ssh.sshoptions import looks_like_ssh_option

    if value is not None and looks_like_ssh_option(str(value)):
        raise click.BadParameter(
            f"{str(value)!r} is an ssh option: apssh takes ssh options as -O {value} "
            f"(-o is the output directory, as in pssh; for a directory of that name: "
            f"-o ./{value})",
            param_hint="-o",
        )
    return value


SSH_OPTIONS = [
    click.option(
        "-O",
        "--ssh-option",
        "ssh_options",
        multiple=True,
        metavar="NAME=VALUE",
        callback=_check_ssh_options,
        help="An ssh_config option, as ssh -o (repeatable; the first value wins; "
        "the options apssh honours: docs/cli.md).",
    ),
    click.option(
        "-F",
        "--ssh-config",
        type=click.Path(dir_okay=False, exists=True),
        metavar="FILE",
        help="The ssh_config file to read instead of ~/.ssh/config.",
    ),
    click.option(
        "--port",
        type=click.IntRange(1, 65535),
        metavar="PORT",
        help="The port of every host (a host:port in -t wins; gateways keep theirs).",
    ),
    click.option(
        "--persist",
        type=Seconds(allow_zero=True),
        metavar="DURATION",
        help="Keep the connections warm in a background holder for DURATION after their "
        "last use, and reuse held ones (0: off, the default; docs/persist.md).",
    ),
]

_TARGET_OPTIONS = [
    *SSH_OPTIONS,
    click.option(
        "-n", "--dry-run", is_flag=True, help="Print the hosts and their routes; run nothing."
    ),
    seconds_option(
        "--connect-timeout", help="Limit on TCP + handshake + authentication, per hop (default 10)."
    ),
    click.option(
        "--known-hosts",
        type=click.Choice(KNOWN_HOSTS_POLICIES),
        help="Host key policy of every hop (default: the inventory's, else "
        "StrictHostKeyChecking, else accept-new).",
    ),
    files_option(
        "-k", "--key", "keys", help="Private key to try first, on every hop (repeatable)."
    ),
    click.option(
        "-G",
        "--gateway",
        metavar="GATEWAY",
        help="Go through GATEWAY ([user@]host[:port], a chain a->b, or an inventory "
        "host) for every host that has no gateway.",
    ),
    click.option(
        "-l",
        "--login",
        metavar="USER",
        help="Remote user (a user@ in -t wins). Default: the inventory's, else ~/.ssh/config's "
        "User, else your local user name (not root, as upstream apssh's SshNode).",
    ),
    click.option(
        "-t",
        "--target",
        "targets",
        multiple=True,
        metavar="TARGET",
        help="Host outside (or inside) the inventory: host, user@host, host:port, "
        "gw->host, node[1-3], or @FILE; comma-separated, repeatable.",
    ),
]

_EXECUTION_OPTIONS = [
    click.option(
        "-v",
        "--verbose",
        count=True,
        help="Show connections and commands as they go, and what was resolved (route, user, "
        "keys, known_hosts, ssh_config); -vv: authentication; -vvv: asyncssh's debug log.",
    ),
    click.option(
        "--retries",
        type=Count(minimum=0, maximum=MAX_RETRIES),
        default=0,
        show_default=True,
        help="Extra connection attempts, with backoff (connection failures only).",
    ),
    seconds_option(
        "--timeout", help="Limit per command (or transfer); the remote process is terminated."
    ),
    click.option(
        "--keepalive",
        type=Seconds(allow_zero=True),
        metavar="DURATION",
        help="SSH keepalive period; a host silent for 3 periods is unreachable "
        "(default 15; 0: none).",
    ),
    click.option(
        "-w",
        "--window",
        type=Count(minimum=1),
        metavar="N",
        help="At most N hosts at once (default: min(50, open-files limit / 4)).",
    ),
]

_OUTPUT_OPTIONS = [
    click.option("-q", "--quiet", is_flag=True, help="No summary and no progress line on stderr."),
    click.option(
        "--progress/--no-progress",
        default=None,
        help="Live progress line on stderr (default: when stderr is a terminal).",
    ),
    click.option(
        "--failed-to",
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="FILE",
        help="Write the hosts that did not succeed, for a retry with -t @FILE.",
    ),
    click.option("--mark", is_flag=True, help="With -o: also write succeeded.txt and failed.txt."),
    click.option(
        "-o",
        "--out-dir",
        type=click.Path(file_okay=False, path_type=Path),
        metavar="DIR",
        callback=_check_out_dir,
        help="Write each host's output to DIR/<host>.out and DIR/<host>.err, not stdout.",
    ),
    click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="One JSON object per host as it completes, then a summary object (docs/cli.md).",
    ),
    click.option(
        "-b",
        "--gather",
        is_flag=True,
        help="Print identical outputs once, under a folded host list (at the end).",
    ),
    click.option(
        "--format",
        "fmt",
        metavar="TEMPLATE",
        help="Line format: {host} {fqdn} {user} {line} {time} and strftime codes.",
    ),
    click.option(
        "--color",
        "--colour",
        "color",
        type=click.Choice(COLOR_CHOICES),
        default=None,
        help="Colour host names and statuses: auto (on a terminal, unless NO_COLOR is "
        "set; the default), always, never. Default from APSSH_COLOR or `color` in the "
        "config file.",
    ),
    click.option(
        "--raw-output",
        is_flag=True,
        help="Print remote output unescaped (risky: a host can then drive your "
        "terminal and forge other hosts' lines; docs/cli.md).",
    ),
]


@dataclass(frozen=True)
class FleetPlan:
    """What `run`, `push` or `pull` hands the fleet engine once the options are checked:
    hosts, output, execution (a recipe's plan is `apssh_cli.recipe.planner.Plan`)."""

    targets: list[Target]
    output: OutputOptions
    window: int | None
    timeout: float | None
    connect_retries: int
    verbose: int  # -v: 1, -vv: 2, -vvv: 3 (0: quiet)
    dry_run: bool
    keepalive: float | None = None
    settings: tuple[str, ...] = ()  # -v: where window, timeout, user... came from
    ssh_config: str | None = None  # -F
    ssh_options: tuple[str, ...] = ()  # -O
    persist: tuple[float | None, float | None] = (None, None)  # --persist; env/config default


def make_fleet_plan(params: Mapping[str, Any]) -> FleetPlan:
    """Check the shared options and resolve the targets.

    Raises:
        click.UsageError: options that do not go together.
        ConfigError: bad targets, inventory or selection; no host at all.
    """
    from apssh_cli.cli.defaults import apply, load_defaults

    params = dict(params)
    settings = apply(params, load_defaults(), click.get_current_context(silent=True))
    host_defaults = params["host_defaults"]
    output = _output_options(params)
    inventory_paths = [path for path in params["inventory"] or () if path]
    inventory = load_inventory(inventory_paths) if inventory_paths else None
    for warning in upstream_hints.target_file_warnings(params["targets"]):
        click.echo(f"apssh: warning: {warning}", err=True)
    specs = read_specs(params["targets"])
    pattern: str | None = params["group"]
    if pattern is None and not params["targets"] and inventory is not None:
        pattern = "all"  # not when -t names nothing (an empty --failed-to file)
    if pattern is None and not specs:
        if params["targets"]:
            given = ",".join(params["targets"])
            raise ConfigError(f"no hosts: -t {given!r} names none (an empty file?)")
        raise ConfigError(NO_HOSTS_MESSAGE)
    from apssh_cli.inventory.hostrange import expand

    gateway = resolve_gateway(params["gateway"], inventory) if params["gateway"] else ()
    overrides = Overrides(
        user=params["login"],
        gateway=gateway,
        keys=tuple(params["keys"]),
        known_hosts=params["known_hosts"],
        connect_timeout=params["connect_timeout"],
        default_user=host_defaults.get("user"),
        default_known_hosts=host_defaults.get("known_hosts"),
        default_connect_timeout=host_defaults.get("connect_timeout"),
    )
    try:
        targets = resolve_targets(
            inventory=inventory,
            pattern=pattern,
            exclude=params["exclude"],
            specs=specs,
            overrides=overrides,
            expand=expand,
        )
    except ConfigError as exc:
        hint = upstream_hints.gateway_hint(params["group"], inventory) if params["group"] else None
        if hint is not None:
            setattr(exc, "hint", hint)  # noqa: B010 - printed by cli.main on its own line
        raise
    if not targets:
        raise ConfigError("no hosts left to run on (check -g, -x and -t)")
    if params.get("port") is not None:
        targets = [with_port(target, params["port"]) for target in targets]
    return FleetPlan(
        targets=targets,
        output=output,
        window=params["window"],
        timeout=params["timeout"],
        connect_retries=params["retries"],
        verbose=int(params["verbose"] or 0),
        dry_run=params["dry_run"],
        keepalive=params.get("keepalive"),
        settings=tuple(settings),
        ssh_config=params.get("ssh_config"),
        ssh_options=tuple(params.get("ssh_options") or ()),
        persist=(params.get("persist"), host_defaults.get("persist")),
    )


def with_port(target: Target, port: int) -> Target:
    """``--port``: the host's port, unless written in ``-t`` (``host:port``) or local."""
    host = target.host
    if target.is_local or (host.port is not None and not target.from_inventory):
        return target
    return replace(target, route=(*target.gateways, replace(host, port=port)))


def _output_options(params: Mapping[str, Any]) -> OutputOptions:
    chosen = [
        flag
        for flag, given in (
            ("--raw", params["raw"]),
            ("--format", params["fmt"] is not None),
            ("--gather", params["gather"]),
            ("--json", params["as_json"]),
        )
        if given
    ]
    if len(chosen) > 1:
        raise click.UsageError(f"{' and '.join(chosen)} do not go together")
    if params["mark"] and params["out_dir"] is None:
        raise click.UsageError("--mark needs -o/--out-dir")
    if params["fmt"] is not None:
        check_format(params["fmt"])
    progress = params["progress"]
    if progress is None:
        progress = _is_terminal(sys.stderr)
    return OutputOptions(
        raw=params["raw"],
        raw_output=params["raw_output"],
        fmt=params["fmt"],
        gather=params["gather"],
        json=params["as_json"],
        out_dir=params["out_dir"],
        mark=params["mark"],
        failed_to=params["failed_to"],
        progress=bool(progress) and not params["quiet"],
        summary=not params["quiet"],
        color_stdout=colour_wanted(params.get("color") or "auto", sys.stdout),
        color_stderr=colour_wanted(params.get("color") or "auto", sys.stderr),
    )


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty()) and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


def run_plan(
    plan: FleetPlan,
    commands: Mapping[str, Sequence[Any]],
    *,
    description: str,
) -> int:
    """Print the plan for ``--dry-run``, or run it; return the exit status.

    Args:
        plan: from `make_fleet_plan`.
        commands: the library commands of each host, by target name.
        description: what runs, for ``--dry-run``.
    """
    from apssh_cli.ssh.sshoptions import SshOptions, ssh_settings

    options = SshOptions(plan.ssh_options)
    ssh_config = plan.ssh_config if plan.ssh_config is not None else DEFAULT_SSH_CONFIG
    check_ssh_values(options)  # before any connect, even an early one
    if plan.dry_run:
        for target in plan.targets:
            click.echo(target.describe())
        click.echo(f"apssh: dry run: {description} on {len(plan.targets)} host(s)", err=True)
        return ExitCode.OK
    from apssh_cli.engine.prestart import default_window, start_early_connections

    if plan.verbose:
        for line in plan.settings:
            click.echo(f"apssh: {line}", err=True)
    window = plan.window or default_window()
    persist = set_persist(*plan.persist)
    # the first hosts' TCP connects go out now: importing asyncio and asyncssh (below)
    # takes longer than their round trips; not where -O could send a host elsewhere,
    # nor with --persist once the holder may hold the connections already (a holder
    # that holds nothing yet opens them on ours)
    early = start_early_connections(
        plan.targets if early_connects_wanted(options, persist) else [],
        window,
        ssh_config=ssh_config,
    )
    try:
        from apssh_cli.cli.execution import ExecutionOptions, execute
        from apssh_cli.cli.render import Renderer, escape_library_log
        from apssh_cli.ssh.keys import check_key_files

        # a key that cannot be used is one message before anything runs, not a failure per host
        check_key_files(
            file for target in plan.targets for hop in target.route for file in hop.identity_files
        )

        escape_library_log()  # its warnings may quote remote file names
        renderer = Renderer(plan.targets, plan.output, stdout=sys.stdout, stderr=sys.stderr)
        try:
            with ssh_settings(ssh_config, options), library_warnings(shown=not plan.verbose):
                return execute(
                    plan.targets,
                    lambda target: commands[target.name],
                    renderer,
                    ExecutionOptions(
                        window=window,
                        connect_retries=plan.connect_retries,
                        verbose=bool(plan.verbose),
                        verbosity=plan.verbose,
                        keepalive=plan.keepalive,
                        early_connections=early,
                    ),
                )
        finally:
            renderer.close()
    finally:
        early.close()


def set_persist(given: float | None, default: float | None) -> bool:
    """Tell the nodes of this process the ``--persist`` duration (the command line's
    wins over each host's ``persist``, which wins over the environment's and config
    file's); whether hosts are held (then no early TCP connect: the holder connects)."""
    from apssh_cli.ssh import holder

    holder.set_persist(override=given, default=default)
    persist = bool(given) if given is not None else bool(default)
    if persist:
        from apssh_cli.cli import launch

        if launch.LAUNCHED["here"]:  # the script's next calls are served warm
            launch.ensure_started()
    return persist


def early_connects_wanted(options: Any, persist: bool) -> bool:
    """Whether a run opens its first TCP connections before it imports asyncssh: not
    when ``-O`` could send a host elsewhere, nor with persist when the holder could
    hold the connections already (one it has just started, or none at all, holds
    nothing: the connections it opens go on ours)."""
    if options.redirects():
        return False
    return not persist or holds_nothing_yet()


def check_ssh_values(options: Any) -> None:
    """The values of ``-O`` options, as asyncssh reads them (imports it: only with -O)."""
    if options:
        from apssh_cli.ssh.sshconfig import check_options

        check_options(options)


class _WarningLine(logging.Handler):
    """A library warning (``host=NAME text``) as one line: ``apssh: warning: NAME: text``."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        head, _, text = record.getMessage().partition(" ")
        if head.startswith("host="):
            text = f"{head.removeprefix('host=')}: {text}"
        else:
            text = f"{head} {text}".strip()
        click.echo(f"apssh: warning: {text}", err=True)


@contextlib.contextmanager
def library_warnings(*, shown: bool) -> Iterator[None]:
    """Show the library's warnings (a host key that differs under ``--known-hosts off``)
    on stderr; with ``-v`` (``shown`` False) the verbose log shows them already."""
    if not shown:
        yield
        return
    logger = logging.getLogger("apssh_cli")
    handler = _WarningLine()
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def host_fields(target: Target) -> dict[str, Any]:
    """The fields a transfer path may use: host variables, then {host} {hostname} {user} {port}."""
    host = target.host
    fields: dict[str, Any] = dict(host.vars)
    fields.update(
        host=_one_component(target.name),
        hostname=_one_component(host.hostname),
        user=_one_component(host.user or ""),
        port=host.port,
    )
    return fields


def _one_component(value: str) -> str:
    # a name used in a path stays one component: "a/../b" must not climb out of LOCALDIR
    value = value.replace("/", "_")
    return "_" * len(value) if value in (".", "..") else value


def expand_path(template: str, target: Target, *, what: str) -> str:
    """Fill ``{host}`` and host variables into a path.

    Raises:
        ConfigError: an unknown field, or a malformed template.
    """
    if "{" not in template and "}" not in template:
        return template
    try:
        return template.format_map(host_fields(target))
    except KeyError as exc:
        raise ConfigError(
            f"{what} {template!r}: host {target.name} has no variable {exc.args[0]!r}"
        ) from None
    except (ValueError, IndexError, AttributeError) as exc:
        raise ConfigError(f"{what} {template!r}: {exc}") from None
