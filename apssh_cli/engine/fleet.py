"""The fleet engine: per-host work over many hosts, with a window, shared gateways, release.

:class:`FleetNodes` holds the nodes of a set of targets: one node per host, one
per distinct gateway hop (N hosts behind one bastion make one connection to it). A
host that is also another host's gateway (a step run on the bastion itself) is one
node and one connection, used both ways.
It releases a host's connection as soon as the caller says the host is done
(:meth:`FleetNodes.release`), and a gateway's when the last host behind it is
released (a reference count). A runner that needs a host again later (a recipe's
next step) simply does not release it yet.

:class:`FleetRun` runs each host's commands as one non-critical
:class:`~apssh_cli.engine.job.SshJob`, at most ``window`` hosts at a time, started
in the targets' order, and returns each host's :class:`~apssh_cli.results.HostResult`:

- a host's connection is closed as soon as its work is done (before the next
  host takes its place in the window), unless ``keep_connections``;
- :meth:`FleetRun.stop` (the first Ctrl-C, SIGTERM, SIGHUP) starts no new host,
  cancels the running ones (their remote processes are terminated, bounded),
  and lets :meth:`FleetRun.run` return every host's result (``interrupted``,
  ``skipped`` for those never started);
- cancelling the task that awaits :meth:`FleetRun.run` does the same cleanup,
  then the cancellation goes on.

:func:`run_fleet` is the one-call form. Nothing here prints: lines go to the
formatter (a sink of :mod:`apssh_cli.output`), host events to an observer.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from apssh_cli.commands import Command
from apssh_cli.engine.job import SshJob
from apssh_cli.engine.prestart import DEFAULT_WINDOW_CAP, default_window
from apssh_cli.inventory.targets import NodeSettings, Target, build_nodes, parse_route
from apssh_cli.output import Formatter
from apssh_cli.results import HostResult, Status
from apssh_cli.ssh.context import default_context
from apssh_cli.ssh.early import EarlyConnections
from apssh_cli.ssh.node import LocalNode, SshNode

__all__ = [
    "FleetNodes",
    "FleetObserver",
    "FleetOptions",
    "FleetRun",
    "OrderedWindow",
    "Stoppable",
    "default_window",
    "run_fleet",
    "stop_on_signals",
]

# closing one connection, and waiting for cancelled hosts' cleanup (each bounded itself)
CLOSE_TIMEOUT = 10.0
CANCEL_WAIT = 15.0

Node = SshNode | LocalNode
CommandSpec = Command | str
Commands = (
    CommandSpec
    | Sequence[CommandSpec]
    | Mapping[str, Sequence[CommandSpec]]
    | Callable[[Target], Sequence[CommandSpec]]
)


def as_target(spec: Target | str) -> Target:
    """A Target as is; a string is a ``-t`` spec (``[user@]host[:port]``, ``gw->host``)."""
    if isinstance(spec, Target):
        return spec
    route = tuple(parse_route(spec))
    return Target(name=route[-1].hostname, route=route)


async def _close_quietly(node: Node) -> None:
    # a connection that cannot be closed cleanly is dropped: never hang, never raise
    with contextlib.suppress(Exception, asyncio.TimeoutError):
        await asyncio.wait_for(node.close(), CLOSE_TIMEOUT)


class FleetNodes:
    """The nodes of some targets, released host by host (gateways by reference count).

    Args:
        targets: the hosts (Target objects, or ``-t`` spec strings).
        formatter: every node's sink (default: the nodes' default, ``host:line``).
        connect_retries: extra connection attempts when unreachable.
        verbose: nodes report connection and command events to the formatter.
        keepalive: seconds between SSH keepalives (0: none); None: each host's
            ``keepalive`` variable, else the node's default.
    """

    def __init__(
        self,
        targets: Iterable[Target | str],
        *,
        formatter: Formatter | None = None,
        connect_retries: int = 0,
        verbose: bool = False,
        keepalive: float | None = None,
    ) -> None:
        self.targets = [as_target(spec) for spec in targets]
        nodes, created = build_nodes(
            self.targets,
            ssh_node=SshNode,
            local_node=LocalNode,
            settings=NodeSettings(
                connect_retries=connect_retries,
                formatter=formatter,
                verbose=verbose,
                keepalive=keepalive,
            ),
        )
        self._nodes: dict[str, Node] = nodes
        self._created: list[Node] = created
        self._share_gateways()
        self._gateways: dict[str, list[SshNode]] = {}
        self._users: dict[int, int] = {}
        self._held = set(nodes)
        for name, node in nodes.items():
            chain = list(_gateways(node))
            self._gateways[name] = chain
            for gateway in chain:
                self._users[id(gateway)] = self._users.get(id(gateway), 0) + 1

    def _share_gateways(self) -> None:
        # build_nodes gives each host a node of its own, labelled with its name; when the
        # same hop is also a gateway of other hosts, that would be a second connection
        gateways: dict[tuple[object, ...], SshNode] = {}
        for node in self._created:
            for gateway in _gateways(node):
                gateways.setdefault(_hop(gateway), gateway)
        for name, node in list(self._nodes.items()):
            shared = gateways.get(_hop(node))
            if shared is not None and shared is not node:
                self._nodes[name] = shared
                self._created.remove(node)

    def __getitem__(self, name: str) -> Node:
        return self._nodes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def node(self, name: str) -> Node:
        """The node of the target ``name``."""
        return self._nodes[name]

    def gateways(self, name: str) -> list[SshNode]:
        """The gateway nodes of ``name``, innermost first (shared with other hosts)."""
        return list(self._gateways[name])

    def users(self, gateway: SshNode) -> int:
        """How many hosts not yet released go through ``gateway``."""
        return self._users.get(id(gateway), 0)

    async def release(self, name: str) -> None:
        """``name`` is done: close its connection, and each gateway nobody needs any more.

        Idempotent. The node can still connect again if used later.
        """
        if name not in self._held:
            return
        self._held.discard(name)
        node = self._nodes[name]
        if not self._in_use(node):
            await _close_quietly(node)
        for gateway in self._gateways[name]:  # innermost first: a tunnel before its carrier
            self._users[id(gateway)] -= 1
            if not self._in_use(gateway):
                await _close_quietly(gateway)

    def _in_use(self, node: Node) -> bool:
        # a gateway of a host not released yet, or the node of one (a host that is a gateway)
        if self._users.get(id(node), 0) > 0:
            return True
        return any(self._nodes[name] is node for name in self._held)

    async def close(self) -> None:
        """Close every connection still open (gateways last; ProxyJump chains included)."""
        from apssh_cli.ssh.node import close_nodes

        self._held.clear()
        for gateway in self._users:
            self._users[gateway] = 0
        with contextlib.suppress(Exception, asyncio.TimeoutError):
            await asyncio.wait_for(close_nodes(self._created), CLOSE_TIMEOUT)

    async def __aenter__(self) -> FleetNodes:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _hop(node: Node) -> tuple[object, ...]:
    """What makes two nodes one connection: label, address, port, user, and the way there."""
    if not isinstance(node, SshNode):
        return ("local", id(node))
    return (node.label, node.hostname, node.port, node.username, id(node.gateway))


def _gateways(node: Node) -> Iterator[SshNode]:
    gateway = node.gateway if isinstance(node, SshNode) else None
    while gateway is not None:
        yield gateway
        gateway = gateway.gateway


class FleetObserver(Protocol):
    """What a run tells as it goes (the CLI's renderer is one)."""

    def host_started(self, name: str) -> None:
        """A host's work starts (it took a place in the window)."""

    def host_done(self, result: HostResult) -> None:
        """A host is done, however it ended (also ``skipped``: never started)."""


@dataclass(frozen=True)
class FleetOptions:
    """How a fleet runs.

    Args:
        window: at most this many hosts at once (started in the targets' order).
        timeout: the default timeout of each command, seconds.
        connect_retries: extra connection attempts (connection failures only).
        verbose: nodes report connection and command events.
        keep_connections: do not close a host's connection when it is done
            (the caller releases them, or closes the FleetNodes).
        step: the step name carried by every output line (OutputEvent.step).
        keepalive: seconds between SSH keepalives (0: none; None: the hosts' own).
        early_connections: TCP connections started ahead
            (:func:`~apssh_cli.engine.prestart.start_early_connections`): the nodes of
            the run's event loop use them; the run closes what they did not take.
    """

    window: int = DEFAULT_WINDOW_CAP
    timeout: float | None = None
    connect_retries: int = 0
    verbose: bool = False
    keep_connections: bool = False
    step: str | None = None
    keepalive: float | None = None
    early_connections: EarlyConnections | None = None


class OrderedWindow:
    """At most ``size`` holders at a time, let in by index: 0, 1, 2...

    A host waits for its own turn, so that hosts start in the targets' order.
    Must be created inside the event loop.
    """

    def __init__(self, size: int, count: int) -> None:
        self._free = max(1, size)
        self._next = 0
        self._turns = [asyncio.Event() for _ in range(count)]
        self._grant()

    async def enter(self, index: int) -> None:
        await self._turns[index].wait()

    def leave(self) -> None:
        self._free += 1
        self._grant()

    def _grant(self) -> None:
        while self._free > 0 and self._next < len(self._turns):
            self._turns[self._next].set()
            self._free -= 1
            self._next += 1


def _commands_for(commands: Commands, target: Target) -> list[CommandSpec]:
    if callable(commands):
        return list(commands(target))
    if isinstance(commands, Mapping):
        return list(commands[target.name])
    if isinstance(commands, Command | str):
        return [commands]
    return list(commands)


class FleetRun:
    """One run of commands over a fleet; :meth:`run` once, :meth:`stop` at any time.

    Args:
        targets: the hosts, in the order they start.
        commands: the same commands for every host (a string, a Command, a list),
            or per host: a mapping by target name, or a function of the Target.
        formatter: the sink of every line (ignored when ``nodes`` is given).
        options: window, timeouts, retries, keep_connections.
        observer: told when each host starts and ends.
        nodes: nodes made by the caller (e.g. kept for several runs); the
            run then releases hosts as they finish (unless keep_connections)
            but does not close the rest at the end.
    """

    def __init__(
        self,
        targets: Iterable[Target | str],
        commands: Commands,
        *,
        formatter: Formatter | None = None,
        options: FleetOptions = FleetOptions(),
        observer: FleetObserver | None = None,
        nodes: FleetNodes | None = None,
    ) -> None:
        self.targets = [as_target(spec) for spec in targets]
        self.options = options
        self.observer = observer
        self._owns_nodes = nodes is None
        self.nodes = (
            nodes
            if nodes is not None
            else FleetNodes(
                self.targets,
                formatter=formatter,
                connect_retries=options.connect_retries,
                verbose=options.verbose,
                keepalive=options.keepalive,
            )
        )
        self.jobs = {
            target.name: SshJob(
                self.nodes[target.name],
                commands=_commands_for(commands, target),
                critical=False,
                timeout=options.timeout,
                label=target.name,
                step=options.step,
            )
            for target in self.targets
        }
        self.results: dict[str, HostResult] = {}
        self._tasks: list[asyncio.Task[HostResult]] = []
        self._stopped = False

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopped

    def stop(self, signum: signal.Signals | None = None) -> None:
        """Start no new host; cancel the running ones (their remote processes end).

        :meth:`run` then returns once they are cleaned up (bounded). Safe to call
        from a signal handler registered with the event loop, and more than once.
        ``signum``: the signal that stops the run, if one does (unused here).
        """
        self._stopped = True
        for task in self._tasks:
            task.cancel()

    async def run(self) -> list[HostResult]:
        """Run every host; return their results in the targets' order."""
        with default_context().using(self.options.early_connections):
            return await self._run()

    async def _run(self) -> list[HostResult]:
        if not self.targets:
            return []
        window = OrderedWindow(self.options.window, len(self.targets))
        self._tasks = [
            asyncio.ensure_future(self._host(index, target, window))
            for index, target in enumerate(self.targets)
        ]
        if self._stopped:
            self.stop()
        try:
            await asyncio.wait(self._tasks)
        except asyncio.CancelledError:
            # our caller is cancelled: clean up (bounded), then let the cancellation go on
            self.stop()
            await asyncio.wait(self._tasks, timeout=CANCEL_WAIT)
            await self._close_owned()
            raise
        await self._close_owned()
        # a host task fails only if the observer raised: say so, never leave it unretrieved
        errors = [task.exception() for task in self._tasks if not task.cancelled()]
        for error in errors:
            if error is not None:
                raise error
        return [self.results.get(t.name, HostResult(t.name, Status.SKIPPED)) for t in self.targets]

    async def _close_owned(self) -> None:
        if self._owns_nodes and not self.options.keep_connections:
            await self.nodes.close()

    async def _host(self, index: int, target: Target, window: OrderedWindow) -> HostResult:
        name = target.name
        job = self.jobs[name]
        try:
            await window.enter(index)
        except asyncio.CancelledError:
            return self._done(HostResult(name, Status.SKIPPED))
        try:
            if self._stopped:
                return self._done(HostResult(name, Status.SKIPPED))
            if self.observer is not None:
                self.observer.host_started(name)
            with contextlib.suppress(asyncio.CancelledError):  # stop(): the outcome says so
                await job.co_run()
            if not self.options.keep_connections:
                # before leaving the window: the next host must not hold one more connection
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(self.nodes.release(name))
            return self._done(job.outcome)
        finally:
            window.leave()

    def _done(self, result: HostResult) -> HostResult:
        self.results[result.host] = result
        if self.observer is not None:
            self.observer.host_done(result)
        return result


async def run_fleet(
    targets: Iterable[Target | str],
    commands: Commands,
    *,
    formatter: Formatter | None = None,
    window: int = DEFAULT_WINDOW_CAP,
    timeout: float | None = None,
    connect_retries: int = 0,
    verbose: bool = False,
    observer: FleetObserver | None = None,
) -> list[HostResult]:
    """Run ``commands`` on every target, ``window`` hosts at a time; return each host's result.

    Connections are closed as hosts finish; cancelling the awaiting task
    terminates the remote processes, closes everything, and re-raises.

    >>> # results = await run_fleet(["node1", "bastion->node2"], "uptime", window=10)
    """
    options = FleetOptions(
        window=window, timeout=timeout, connect_retries=connect_retries, verbose=verbose
    )
    fleet = FleetRun(targets, commands, formatter=formatter, options=options, observer=observer)
    return await fleet.run()


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stoppable(Protocol):
    """A run that signals stop: FleetRun, RecipeRun."""

    def stop(self, signum: signal.Signals | None = None) -> None:
        """Stop cleanly (called from the event loop, maybe more than once)."""


@contextlib.contextmanager
def stop_on_signals(
    run: Stoppable,
    signals: Sequence[signal.Signals] = STOP_SIGNALS,
    *,
    on_second: Callable[[signal.Signals], None] | None = None,
) -> Iterator[list[signal.Signals]]:
    """While inside, the first of ``signals`` stops ``run`` cleanly (``run.stop(signum)``).

    Yields the list of signals received (empty if none), so the caller can
    choose its exit status (128 + signal number). A second signal calls
    ``on_second`` (the CLI exits at once on a second Ctrl-C). Must be used
    inside the running event loop's thread.
    """
    loop = asyncio.get_running_loop()
    received: list[signal.Signals] = []

    def handler(signum: signal.Signals) -> None:
        received.append(signum)
        if len(received) > 1:
            if on_second is not None:
                on_second(signum)
            return
        run.stop(signum)

    installed: list[signal.Signals] = []
    for signum in signals:
        try:
            loop.add_signal_handler(signum, handler, signum)
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        installed.append(signum)
    try:
        yield received
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
