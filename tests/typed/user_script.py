"""A library user's script, type-checked with `mypy --strict` against the installed package.

`nox -s package` checks it against a wheel, `nox -s typecheck` against the editable
install: both only pass when the package ships `py.typed` and its public API is typed.
Never run: it would connect.
"""

from __future__ import annotations

import apssh_cli
from apssh_cli import Push, Run, RunString, Scheduler, SshJob, SshNode


def experiment(hostname: str, gateway_name: str) -> bool:
    gateway = SshNode(hostname=gateway_name, username="root")
    node = SshNode(hostname=hostname, username="root", gateway=gateway)
    scheduler = Scheduler()
    prepare = SshJob(node=node, commands=[Run("uname -a")], scheduler=scheduler)
    SshJob(
        node=node,
        commands=[Push(localpaths=["data.bin"], remotepath="."), RunString("echo $1", "hi")],
        required=prepare,
        scheduler=scheduler,
    )
    ok: bool = scheduler.run()
    version: str = apssh_cli.__version__
    return ok and bool(version)


def uptimes(hosts: list[str]) -> dict[str, str]:
    """Results as data: each host's stdout, without printing."""
    results: apssh_cli.FleetResults = apssh_cli.run_command(hosts, "uptime", window=10, timeout=5)
    failed: list[apssh_cli.HostResult] = results.failed
    return {host: r.stdout.strip() for host, r in results.items() if r.is_ok and not failed}


async def kernels(hosts: list[str]) -> list[int | None]:
    results = await apssh_cli.co_run_command(hosts, [Run("uname -r")], max_bytes=4096)
    return [r.rc for r in results.values()]
