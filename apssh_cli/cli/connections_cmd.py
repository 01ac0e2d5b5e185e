"""`apssh connections [list]` and `apssh connections close [PATTERN]`: the warm
connections that ``--persist`` keeps in this user's holder process (docs/persist.md).

Neither imports asyncio or asyncssh: they speak the holder's small protocol on its
control socket (:func:`apssh_cli.ssh.holder.ask`).
"""

from __future__ import annotations

from typing import Any

import click

from apssh_cli.errors import ConfigError


def _ask(message: dict[str, Any]) -> dict[str, Any] | None:
    from apssh_cli.ssh.holder import ask

    try:
        return ask(message)
    except PermissionError as exc:
        raise ConfigError(f"persist: {exc}") from None


def _age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def connections(ctx: click.Context) -> int:
    """List (the default) or close the connections held by `--persist`.

    \b
    Examples:
      apssh connections list
      apssh connections close 'node*'
    """
    if ctx.invoked_subcommand is None:
        return int(ctx.invoke(list_command) or 0)
    return 0


@connections.command("list")
def list_command() -> int:
    """List the held connections: host, route, age, idle time, clients attached.

    \b
    Examples:
      apssh connections list
      apssh connections
    """
    return _list()


def _list() -> int:
    answer = _ask({"op": "list"})
    if answer is None:
        click.echo("apssh: no connection held (no holder runs)", err=True)
        return 0
    held = answer.get("held") or []
    if not held:
        click.echo("apssh: no connection held", err=True)
        return 0
    rows = [("HOST", "ROUTE", "AGE", "IDLE", "CLIENTS")]
    for entry in sorted(held, key=lambda e: (str(e.get("label")), str(e.get("route")))):
        rows.append(
            (
                f"{entry.get('label')} ({entry.get('host')})",
                str(entry.get("route")),
                _age(float(entry.get("age", 0))),
                _age(float(entry.get("idle", 0))),
                str(entry.get("clients", 0)),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


@connections.command("close")
@click.argument("pattern", required=False)
def close(pattern: str | None) -> int:
    """Close the held connections whose host matches PATTERN (a glob; all when omitted).

    Connections behind a closed gateway are closed too.

    \b
    Examples:
      apssh connections close 'node*'
      apssh connections close
    """
    answer = _ask({"op": "close", "pattern": pattern})
    if answer is None:
        click.echo("apssh: no connection held (no holder runs)", err=True)
        return 0
    click.echo(f"apssh: closed {answer.get('closed', 0)} connection(s)", err=True)
    return 0
