"""Results as data: run commands on many hosts and get each host's outcome back, unprinted.

What Fabric's ``Group.run`` and parallel-ssh's ``run_command`` give their users:
one call, a set of hosts, and for each host its status, exit status, stdout and
stderr. :func:`co_run_command` is the coroutine; :func:`run_command` its
synchronous twin for scripts and notebooks without an event loop of their own.
Both run on the fleet engine (:class:`~apssh_cli.engine.fleet.FleetRun`), so the
window, shared gateways, timeouts and connection release are the same as
``apssh run``'s; nothing is printed.

What is kept of each host's output is bounded (``max_bytes`` per host and
stream, :class:`~apssh_cli.output.CaptureFormatter`'s rule: past the bound,
lines are counted, not kept, and the text ends with a line that says so), so
memory is at most hosts x 2 x ``max_bytes``. A caller who wants more, or every
line as it comes, gives its own ``formatter`` to :class:`FleetRun` instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping

from apssh_cli.engine.fleet import Commands, FleetOptions, FleetRun
from apssh_cli.engine.prestart import DEFAULT_WINDOW_CAP
from apssh_cli.inventory.targets import Target
from apssh_cli.output import DEFAULT_CAPTURE_BYTES, CaptureFormatter
from apssh_cli.results import HostResult

__all__ = ["FleetResults", "co_run_command", "run_command"]


class FleetResults(Mapping[str, HostResult]):
    """Each host's :class:`~apssh_cli.results.HostResult`, by host name, in the targets' order.

    ``results["node1"].stdout``, ``.stderr``, ``.rc``, ``.status``; :attr:`ok` and
    :attr:`failed` split the hosts; :attr:`all_ok` says whether every host succeeded.

    >>> from apssh_cli.results import Status
    >>> results = FleetResults([HostResult("n1", Status.OK, rc=0, stdout="hi\\n")])
    >>> results["n1"].stdout, results.all_ok, list(results)
    ('hi\\n', True, ['n1'])
    """

    def __init__(self, results: Iterable[HostResult]) -> None:
        self._by_host = {result.host: result for result in results}

    def __getitem__(self, host: str) -> HostResult:
        return self._by_host[host]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_host)

    def __len__(self) -> int:
        return len(self._by_host)

    @property
    def ok(self) -> list[HostResult]:
        """The hosts whose every command succeeded."""
        return [result for result in self._by_host.values() if result.is_ok]

    @property
    def failed(self) -> list[HostResult]:
        """Every other host: failed, timed out, unreachable, refused, interrupted, skipped."""
        return [result for result in self._by_host.values() if not result.is_ok]

    @property
    def all_ok(self) -> bool:
        return all(result.is_ok for result in self._by_host.values())

    def __repr__(self) -> str:
        statuses = ", ".join(f"{host}: {r.status}" for host, r in self._by_host.items())
        return f"FleetResults({statuses})"


async def co_run_command(
    targets: Iterable[Target | str],
    commands: Commands,
    *,
    window: int = DEFAULT_WINDOW_CAP,
    timeout: float | None = None,
    connect_retries: int = 0,
    max_bytes: int | None = DEFAULT_CAPTURE_BYTES,
) -> FleetResults:
    """Run ``commands`` on every target; return each host's outcome and output (not printed).

    Args:
        targets: ``Target`` objects (``resolve_targets`` on an inventory), or
            ``-t`` spec strings (``"node1"``, ``"root@gw->node2:2222"``).
        commands: a shell command, a list of commands (strings, ``Run``,
            ``RunScript``, ``RunString``, ``Push``, ``Pull``), a mapping host ->
            commands, or a callable target -> commands.
        window: at most this many hosts at a time.
        timeout: seconds per host (its remote process is terminated past it).
        connect_retries: extra connection attempts for an unreachable host.
        max_bytes: what is kept of each host's stdout, and of its stderr (None:
            everything; mind the memory).

    Cancelling the awaiting task terminates the remote processes, closes every
    connection, and re-raises.
    """
    capture = CaptureFormatter(max_bytes=max_bytes)
    options = FleetOptions(
        window=window, timeout=timeout, connect_retries=connect_retries, verbose=False
    )
    results = await FleetRun(targets, commands, formatter=capture, options=options).run()
    for result in results:
        result.stdout = capture.stdout(result.host)
        result.stderr = capture.stderr(result.host)
        capture.forget(result.host)
    return FleetResults(results)


def run_command(
    targets: Iterable[Target | str],
    commands: Commands,
    *,
    window: int = DEFAULT_WINDOW_CAP,
    timeout: float | None = None,
    connect_retries: int = 0,
    max_bytes: int | None = DEFAULT_CAPTURE_BYTES,
) -> FleetResults:
    """:func:`co_run_command` for code without a running event loop (scripts, notebooks cells).

    >>> # results = run_command(["node1", "node2"], "uname -r")
    >>> # {host: r.stdout.strip() for host, r in results.items() if r.is_ok}

    Raises:
        RuntimeError: called from a running event loop (await :func:`co_run_command`).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("run_command() called inside an event loop: await co_run_command()")
    return asyncio.run(
        co_run_command(
            targets,
            commands,
            window=window,
            timeout=timeout,
            connect_retries=connect_retries,
            max_bytes=max_bytes,
        )
    )
