"""Run a plan: one SshNode per host and per gateway, one Scheduler of SshJobs.

Every task is an SshJob in the recipe's :class:`~apssh_cli.engine.job.Scheduler`;
a *join* job per step instance settles the step (its ``required=`` are the
step's tasks) and a *combo end* job per matrix combination orders the sweep. A
task requires the joins of its required steps (``sync = "all"``), or the same
host's task there (``sync = "host"``). A task decides when it starts whether it
runs: the recipe may be aborting, a required step may have failed, the host may
have failed before, an earlier run may have done it already (``--resume``).

Nodes are built once for the whole recipe and closed at the end, whatever
happens: one connection per host and per gateway, matrix included. asyncssh and
asynciojobs are imported when the scheduler is built, not before.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from apssh_cli.errors import ApsshError
from apssh_cli.inventory.hostrange import fold
from apssh_cli.inventory.secrets import SecretMask
from apssh_cli.inventory.targets import NodeSettings, build_nodes
from apssh_cli.recipe.actions import build_commands
from apssh_cli.recipe.journal import (
    CAPTURES,
    DIR_MODE,
    JOURNAL,
    SUMMARY,
    EventLog,
    RunDirLock,
    captures_as_json,
    create_run_dir,
    read_previous,
    unreadable_message,
    write_json,
)
from apssh_cli.recipe.model import CAPTURE_LIMIT, RecipeError
from apssh_cli.recipe.planner import LOCAL_HOST, Instance, Plan, Task
from apssh_cli.recipe.report import summary_lines
from apssh_cli.recipe.sink import CURRENT_TASK, RecipeFormatter
from apssh_cli.recipe.state import (
    AUTH_REFUSED,
    BAD,
    CANCELLED,
    EXIT_ABORTED,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_UNREACHABLE,
    FAILED,
    FINAL,
    HOSTKEY_REFUSED,
    OK,
    PENDING,
    RUNNING,
    SKIPPED,
    TIMEOUT,
    UNREACHABLE,
    TaskState,
)
from apssh_cli.recipe.template import Field, Parts, TemplateError, render, text_of

if TYPE_CHECKING:
    from apssh_cli.ssh.early import EarlyConnections

__all__ = ["RecipeFormatter", "RecipeRun", "TaskState"]

# tasks at once on one connection: with the SFTP session and a helper channel (script
# install, kill on timeout) a connection uses at most 8 channels (sshd allows 10); a
# push's extra SFTP sessions come out of the same 6 (_spare_channels)
TASKS_PER_CONNECTION = 6
# a background task counts as started once connected and still running after this
START_GRACE = 0.5
CLOSE_TIMEOUT = 10.0
STOP_TIMEOUT = 15.0


@dataclass(eq=False)
class _InstanceState:
    instance: Instance
    settled: bool = False
    failed: bool = False
    started: bool = False
    status: str = PENDING


def _combo(instance: Instance) -> str:
    return instance.combo.slug if instance.combo is not None else ""


class RecipeRun:
    """One run of a plan: its nodes, its Scheduler, its run directory and its outcome.

    Args:
        plan: from :func:`~apssh_cli.recipe.planner.make_plan`.
        keep_going: a critical step that fails skips only its descendants.
        fail_fast: a failed combination stops the sweep.
        window: at most this many tasks at once (default: the recipe's, else 50).
        resume: skip the tasks that ended ok in ``plan.run_dir`` with the same action.
        events: where JSON events go (besides the journal), or None.
        listener: called with each event (a dict).
        stdout, stderr: where streamed lines go (default: sys.stdout/stderr).
        quiet: no streamed lines.
        early_connections: TCP connects started ahead
            (:func:`~apssh_cli.engine.early.start_early_connections`): the hosts'
            nodes use them; the run closes what they did not take.

    Attributes:
        tasks: a TaskState per task of the plan, in plan order.
        exit_status: set once the run ended (0, 2, 3, 4, 5, 130, 128+signal).
    """

    def __init__(
        self,
        plan: Plan,
        *,
        keep_going: bool = False,
        fail_fast: bool = False,
        window: int | None = None,
        resume: bool = False,
        events: IO[str] | None = None,
        listener: Callable[[dict[str, Any]], None] | None = None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        quiet: bool = False,
        early_connections: EarlyConnections | None = None,
    ) -> None:
        self.plan = plan
        # inventory secrets a template put in a command stay out of events and summaries
        self.secrets = SecretMask.of_inventory(plan.inventory)
        self.early_connections = early_connections
        self.keep_going = keep_going
        self.fail_fast = fail_fast
        self.window = plan.window(window)
        self.resume = resume
        self._events = events
        self._listener = listener
        self.formatter = RecipeFormatter(self, stdout=stdout, stderr=stderr, quiet=quiet)
        self.tasks = [TaskState(task) for task in plan.tasks]
        self._by_task = {id(state.task): state for state in self.tasks}
        self._instances = {id(inst): _InstanceState(inst) for inst in plan.instances}
        self.captures: dict[tuple[str, str], dict[str, str]] = {}
        self.previous: dict[str, tuple[str, str]] = {}
        self.exit_status: int | None = None
        self.abort_reason: str | None = None
        self._abort_exit = EXIT_ABORTED
        self._sweep_stopped: int | None = None
        self._running: dict[int, tuple[TaskState, asyncio.Task[Any]]] = {}
        self._background: dict[int, list[tuple[TaskState, asyncio.Task[Any]]]] = {}
        self._watchers: set[asyncio.Task[Any]] = set()
        self._scheduler: Any = None
        self._nodes: dict[str, Any] = {}
        self._created: list[Any] = []
        self._local: Any = None
        self._slots: dict[Any, asyncio.Semaphore] = {}
        self.log = EventLog()
        self.started = 0.0
        self.finished: float | None = None

    # ------------------------------------------------------------------ building

    @property
    def scheduler(self) -> Any:
        """The recipe's Scheduler of SshJobs (built on first use; nothing connects)."""
        if self._scheduler is None:
            self._scheduler = self._build()
        return self._scheduler

    def _build(self) -> Any:
        from apssh_cli.commands import Run
        from apssh_cli.engine.job import Scheduler, SshJob
        from apssh_cli.ssh.node import LocalNode, SshNode

        run = self
        plan = self.plan
        self._nodes, self._created = build_nodes(
            plan.targets,
            ssh_node=SshNode,
            local_node=LocalNode,
            settings=NodeSettings(formatter=self.formatter),
        )
        self._share_gateways()
        self._local = LocalNode(formatter=self.formatter, label=LOCAL_HOST)

        class TaskJob(SshJob):
            """One task: decides at start whether it runs, then runs its commands."""

            recipe_state: TaskState

            async def co_run(self) -> int:
                await run._run_task(self)
                return 0

            def is_critical(self) -> bool:
                return False  # failures are outcomes here, never scheduler aborts

        class MarkJob(SshJob):
            """A join (a step settles) or the end of a combination: bookkeeping only."""

            on_done: Callable[[], Any]

            async def co_run(self) -> int:
                result = self.on_done()
                if asyncio.iscoroutine(result):
                    await result
                return 0

            def is_critical(self) -> bool:
                return False

        placeholder = [Run("true")]  # the real commands are rendered when the task starts
        jobs: list[Any] = []
        joins: dict[int, Any] = {}
        task_jobs: dict[int, Any] = {}
        combo_ends: dict[int, Any] = {}
        for inst in plan.instances:
            prev_end = None
            if inst.combo is not None and inst.combo.index > 0:
                prev_end = combo_ends.get(inst.combo.index - 1)
            my_jobs = []
            if inst.runs:
                for task in inst.tasks:
                    required = []
                    for req in inst.requires:
                        same = task_jobs.get(id(req), {}).get(task.host)
                        if inst.step.sync == "host" and same is not None:
                            required.append(same)
                        else:
                            required.append(joins[id(req)])
                    if prev_end is not None:
                        required.append(prev_end)
                    node = self._local if task.step.is_local else self._nodes[task.host]
                    job = TaskJob(
                        node,
                        commands=placeholder,
                        critical=True,  # stop at the first failing action of the task
                        step=task.step.id,
                        label=task.key,
                        required=required,
                    )
                    job.recipe_state = self._by_task[id(task)]
                    my_jobs.append(job)
                    task_jobs.setdefault(id(inst), {})[task.host] = job
            join = MarkJob(
                self._local,
                commands=placeholder,
                label=f"settle {inst.key}",
                required=[*my_jobs, *(joins[id(req)] for req in inst.requires)]
                + ([prev_end] if prev_end is not None else []),
            )
            join.on_done = functools.partial(run._settle, inst)
            joins[id(inst)] = join
            jobs.extend(my_jobs)
            jobs.append(join)
            if inst.combo is not None and inst.step.id in plan.repeating:
                index = inst.combo.index
                end = combo_ends.get(index)
                if end is None:
                    end = MarkJob(
                        self._local,
                        commands=placeholder,
                        label=f"end of {inst.combo.slug}",
                        required=[prev_end] if prev_end is not None else [],
                    )
                    end.on_done = functools.partial(run._combo_done, index)
                    combo_ends[index] = end
                    jobs.append(end)
                end.requires(join)
        return Scheduler(*jobs)

    def _share_gateways(self) -> None:
        """A host that is also a gateway (a step on the bastion) uses the gateway's node.

        build_nodes gives a step's host its own node, labelled with its name; when the
        same hop is a gateway of other hosts, that would be a second connection.
        """
        gateways: dict[tuple[Any, ...], Any] = {}
        for node in self._created:
            gateway = getattr(node, "gateway", None)
            if gateway is not None:
                gateways[_hop(gateway)] = gateway
        for name, node in list(self._nodes.items()):
            shared = gateways.get(_hop(node))
            if shared is not None and shared is not node:
                self._nodes[name] = shared
                self._created.remove(node)

    # ------------------------------------------------------------------ running

    def run(self, *, handle_signals: bool = False) -> int:
        """Run outside an event loop; return the exit status."""
        return asyncio.run(self.co_run(handle_signals=handle_signals))

    async def co_run(self, *, handle_signals: bool = False) -> int:
        """Run the recipe; return the exit status (also in ``exit_status``).

        Args:
            handle_signals: Ctrl-C and SIGTERM abort the recipe (a second Ctrl-C
                stops at once); for command-line use.
        """
        from apssh_cli.ssh.context import default_context

        with default_context().using(self.early_connections):
            return await self._co_run(handle_signals)

    async def _co_run(self, handle_signals: bool) -> int:
        """Claim the run directory (a new one exclusively), lock it, run."""
        plan = self.plan
        if plan.fresh and not plan.claimed:
            if not create_run_dir(plan.run_dir):
                raise RecipeError(
                    f"run directory {plan.run_dir} exists already (another run took this "
                    "id): plan again, or make_plan(..., claim=True)"
                )
            plan.claimed = True
        lock = RunDirLock(plan.run_dir)  # creates it when needed
        try:
            return await self._co_run_locked(handle_signals)
        finally:
            lock.release()

    async def _co_run_locked(self, handle_signals: bool) -> int:
        plan = self.plan
        if plan.recipe.matrix:
            for combo in plan.combos:
                (plan.run_dir / combo.slug).mkdir(exist_ok=True, mode=DIR_MODE)
        unreadable: list[int] = []
        if self.resume:
            self.previous, captures, unreadable = read_previous(plan.run_dir)
            self._load_captures(captures)
        self.log = EventLog(
            plan.run_dir / JOURNAL, self._events, self._listener, mask=self.secrets.data
        )
        if unreadable:  # said once, before the run's own events
            self.formatter.echo(
                f"-- {unreadable_message(plan.run_dir / JOURNAL, unreadable)}", True
            )
        scheduler = self.scheduler
        self.started = time.monotonic()
        self.log.emit(
            "recipe_start",
            recipe=plan.recipe.name,
            run_id=plan.run_id,
            run_dir=str(plan.run_dir),
            steps=[step.id for step in plan.recipe.order()],
            tasks=len(self.tasks),
            combos=[combo.slug for combo in plan.combos],
            resume=self.resume,
        )
        loop = asyncio.get_running_loop()
        main = asyncio.ensure_future(scheduler.co_run())
        hard = False

        def on_signal(signum: int) -> None:
            nonlocal hard
            if self.abort_reason is not None and signum == signal.SIGINT and not hard:
                hard = True  # a second Ctrl-C: stop at once (connections still closed)
                self._abort_exit = EXIT_INTERRUPTED
                main.cancel()
                for _, task in list(self._running.values()):
                    task.cancel()
                self._stop_all_background()
                return
            name = "interrupted" if signum == signal.SIGINT else signal.Signals(signum).name
            code = EXIT_INTERRUPTED if signum == signal.SIGINT else 128 + signum
            self.abort(name, exit_status=code)

        installed: list[int] = []
        if handle_signals:
            for signum in (int(signal.SIGINT), int(signal.SIGTERM)):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(signum, on_signal, signum)
                    installed.append(signum)
        timer = None
        if plan.recipe.timeout is not None:
            timer = loop.call_later(
                plan.recipe.timeout,
                lambda: self.abort(f"recipe timeout ({plan.recipe.timeout:g}s)"),
            )
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await main
        finally:
            if timer is not None:
                timer.cancel()
            self._stop_all_background()
            if self._watchers:
                await asyncio.wait(list(self._watchers), timeout=STOP_TIMEOUT)
            for number in installed:
                loop.remove_signal_handler(number)
            await self.close()
        for state in self.tasks:  # never started: the scheduler was stopped
            if state.status in (PENDING, RUNNING):
                self._finish(state, CANCELLED, error=self.abort_reason or "stopped")
        self.exit_status = self._exit_status()
        self.finished = time.monotonic()
        summary = self.summary()
        write_json(plan.run_dir / SUMMARY, summary)
        write_json(plan.run_dir / CAPTURES, captures_as_json(self.captures))
        self.log.emit(
            "recipe_end",
            status=summary["status"],
            exit=self.exit_status,
            counts=summary["counts"],
            run_dir=str(plan.run_dir),
        )
        self.log.close()
        return self.exit_status

    async def close(self) -> None:
        """Close every connection (hosts, then gateways), bounded in time."""
        if not self._created:
            return
        from apssh_cli.ssh.node import close_nodes

        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(close_nodes(self._created), CLOSE_TIMEOUT)

    def abort(self, reason: str, *, exit_status: int = EXIT_ABORTED) -> None:
        """Start nothing new (but ``always`` steps), terminate running tasks, stop backgrounds."""
        if self.abort_reason is not None:
            return
        self.abort_reason = reason
        self._abort_exit = exit_status
        self.log.emit("abort", reason=reason)
        shown = self.secrets.text(reason)
        self.formatter.echo(f"-- recipe {self.plan.recipe.name}: aborting: {shown}", True)
        for state, task in list(self._running.values()):
            if not state.task.step.always:
                task.cancel()
        self._stop_all_background()

    # ------------------------------------------------------------------ one task

    async def _run_task(self, job: Any) -> None:
        state: TaskState = job.recipe_state
        task = state.task
        inst = task.instance
        self._step_started(inst)
        refusal = self._gate(task)
        if refusal is not None:
            self._finish(state, refusal[0], error=refusal[1])
            return
        try:
            commands, state.digest = self._commands(task)
        except ApsshError as exc:
            self._finish(state, FAILED, error=str(exc))
            return
        previous = self.previous.get(task.key)
        if previous == (OK, state.digest) and not self._upstream_ran(task):
            state.resumed = True
            self._finish(state, OK, error=None)
            return
        state.ran = True
        state.status = RUNNING
        connected = asyncio.Event()
        inner = asyncio.create_task(self._attempts(job, state, commands, connected))
        self._running[id(state)] = (state, inner)
        if task.step.background:
            await self._start_background(state, inner, connected)
            return
        try:
            await inner
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                self._finish(state, CANCELLED, error=self.abort_reason or "interrupted")
                raise
            self._finish(state, CANCELLED, error=self.abort_reason or "cancelled")
        finally:
            self._running.pop(id(state), None)

    async def _start_background(
        self, state: TaskState, inner: asyncio.Task[Any], connected: asyncio.Event
    ) -> None:
        waiter = asyncio.ensure_future(connected.wait())
        try:
            await asyncio.wait({inner, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if not inner.done():
                await asyncio.wait({inner}, timeout=START_GRACE)
        finally:
            waiter.cancel()
        if inner.done():  # it ended at once (or could not connect): a plain task
            self._running.pop(id(state), None)
            if inner.cancelled():
                self._finish(state, CANCELLED, error=self.abort_reason or "cancelled")
            return
        self._background.setdefault(id(state.task.instance), []).append((state, inner))

        async def watch() -> None:
            try:
                await inner
            except asyncio.CancelledError:
                if state.stopping:
                    self._finish(state, OK, error=None, note="stopped")
                else:
                    self._finish(state, CANCELLED, error=self.abort_reason or "cancelled")
            finally:
                self._running.pop(id(state), None)

        watcher = asyncio.create_task(watch())
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _attempts(
        self, job: Any, state: TaskState, commands: list[Any], connected: asyncio.Event
    ) -> None:
        """Run the task's commands (with retries on unreachable), record how it went."""
        from apssh_cli.engine.job import SshJob, connect_status
        from apssh_cli.errors import ApsshError as _Error, ConnectError
        from apssh_cli.results import HostResult, Status

        CURRENT_TASK.set(state)
        step = state.task.step
        async with self._slots_for(job, state), self._spare_channels(job, commands):
            # started: out of the windows' queues
            state.started = time.monotonic()
            self.log.emit("task_start", **self._task_fields(state))
            for attempt in range(step.retries + 1):
                job.commands = commands
                timed_out = False
                try:
                    async with asyncio.timeout(step.timeout):
                        try:
                            await job.node.connect()
                        except ConnectError as exc:  # SshJob.co_run would try again
                            job.outcome = HostResult(
                                host=job.node.label, status=connect_status(exc), error=exc.message
                            )
                            raise
                        connected.set()
                        await SshJob.co_run(job)
                except TimeoutError as exc:
                    timed_out = not isinstance(exc, _Error)
                except _Error:
                    pass  # recorded in job.outcome
                outcome = job.outcome
                if timed_out:
                    outcome.status = Status.TIMEOUT
                    outcome.error = f"step timeout ({step.timeout:g}s)"
                if outcome.status is Status.UNREACHABLE and attempt < step.retries:
                    await asyncio.sleep(min(0.5 * 2**attempt, 4.0))
                    continue
                break
        status = {
            Status.OK: OK,
            Status.FAILED: FAILED,
            Status.TIMEOUT: TIMEOUT,
            Status.INTERRUPTED: CANCELLED,
            Status.SKIPPED: CANCELLED,
            Status.AUTH_REFUSED: AUTH_REFUSED,
            Status.HOSTKEY_REFUSED: HOSTKEY_REFUSED,
        }.get(outcome.status, UNREACHABLE)
        state.exit_status = outcome.rc
        self._finish(state, status, error=outcome.error if status != OK else None)

    @contextlib.asynccontextmanager
    async def _slots_for(self, job: Any, state: TaskState) -> Any:
        """The recipe's window, the step's, and the connection's channel budget."""
        step = state.task.step
        if step.background:  # it holds its channel until stopped: outside the windows
            yield
            return
        keys: list[tuple[Any, int]] = [("recipe", self.window)]
        if step.window is not None:
            keys.append((("step", state.task.instance.key), step.window))
        if not step.is_local:
            keys.append((("node", id(job.node)), TASKS_PER_CONNECTION))
        async with contextlib.AsyncExitStack() as stack:
            for key, size in keys:
                slot = self._slots.get(key)
                if slot is None:
                    slot = self._slots[key] = asyncio.Semaphore(size)
                await stack.enter_async_context(slot)
            yield

    @contextlib.asynccontextmanager
    async def _spare_channels(self, job: Any, commands: list[Any]) -> Any:
        """A push spreads a large file over extra SFTP sessions: it takes them from the
        free slots of its connection's channel budget, never waiting and never from a
        task in line, and gives them back when it ends."""
        from apssh_cli.commands import Push
        from apssh_cli.ssh.sftp import SESSIONS, SPREAD_THRESHOLD

        pushes = [command for command in commands if isinstance(command, Push)]
        budget = self._slots.get(("node", id(job.node)))
        taken = 0
        spreads = any(push.largest_file() >= SPREAD_THRESHOLD for push in pushes)
        if spreads and budget is not None:
            while taken < SESSIONS - 1 and not budget.locked():  # locked: none free, or a queue
                await budget.acquire()  # free: returns at once
                taken += 1
        for push in pushes:
            push.sessions = 1 + taken
        try:
            yield
        finally:
            for _ in range(taken):
                assert budget is not None
                budget.release()

    def _gate(self, task: Task) -> tuple[str, str] | None:
        """Why the task must not run now: (status, reason), or None."""
        step = task.step
        inst = task.instance
        if self.abort_reason is not None and not step.always:
            return CANCELLED, f"recipe aborted: {self.abort_reason}"
        if (
            self._sweep_stopped is not None
            and inst.combo is not None
            and inst.combo.index > self._sweep_stopped
            and not step.always
        ):
            return SKIPPED, "--fail-fast: an earlier combination failed"
        if step.always:
            return None
        for req in inst.requires:
            if not req.runs:
                continue
            req_state = self._instances[id(req)]
            if req_state.failed:
                return SKIPPED, f"required step {req.key} failed"
            if task.host in req.hosts and not req.step.is_local:
                status = self.host_status(req, task.host)
                if status not in (OK, RUNNING):
                    return SKIPPED, f"{req.key} ended {status} on {task.host}"
        return None

    def _upstream_ran(self, task: Task) -> bool:
        """Whether a task this one depends on ran again in this run (its input changed)."""
        for req in task.instance.requires:
            same_host = not task.step.is_local and not req.step.is_local and task.host in req.hosts
            for state in self._states(req):
                if state.ran and (not same_host or state.host == task.host):
                    return True
        return False

    def host_status(self, inst: Instance, host: str) -> str:
        """How ``host`` ended in a step instance (ok when it did not run in this run)."""
        if not inst.runs:
            return OK
        for task in inst.tasks:
            if task.host == host:
                return self._by_task[id(task)].status
        return SKIPPED

    # ------------------------------------------------------------------ rendering

    def _resolver(self, task: Task) -> Callable[[Field], Any]:
        inst = task.instance

        def resolve(fld: Field) -> Any:
            source = self._source_instance(inst, fld)
            if fld.kind in ("ok", "failed"):
                wanted = (OK, RUNNING) if fld.kind == "ok" else BAD
                return [t.host for t in source.tasks if self._by_task[id(t)].status in wanted]
            combo = _combo(source)
            values = self.captures.get((fld.name, combo), {})
            if fld.joined:
                hosts = [
                    t.host
                    for t in source.tasks
                    if t.host in values and self._by_task[id(t)].status == OK
                ]
            else:
                host = fld.host
                if host is None:
                    host = task.host if task.host in source.hosts else source.hosts[0]
                if host not in values:
                    raise ApsshError(f"{fld.source}: no value captured on {host}")
                hosts = [host]
            for host in hosts:
                # no command line can carry a NUL (sshd drops the connection on one)
                if "\0" in values[host]:
                    raise ApsshError(
                        f"{fld.source}: the value captured on {host} holds a NUL byte, "
                        "which no command can carry"
                    )
            found = [values[host] for host in hosts]
            return found if fld.joined else found[0]

        return resolve

    def _source_instance(self, inst: Instance, fld: Field) -> Instance:
        """The ancestor instance a deferred reference reads."""
        if fld.kind == "cap":
            step_id = next(s.id for s in self.plan.recipe.steps if s.capture == fld.name)
        else:
            step_id = fld.name
        todo = list(inst.requires)
        seen: set[int] = set()
        while todo:
            current = todo.pop(0)
            if current.step.id == step_id:
                return current
            if id(current) not in seen:
                seen.add(id(current))
                todo.extend(current.requires)
        raise ApsshError(f"{fld.source}: step {step_id!r} is not an ancestor")  # checked before

    def _final(self, task: Task, parts: Parts, shell: bool) -> str:
        try:
            return text_of(render(parts, self._resolver(task), shell=shell))
        except TemplateError as exc:  # a user value moved a capture where no quote holds
            raise ApsshError(str(exc)) from None

    def _commands(self, task: Task) -> tuple[list[Any], str]:
        """The task's commands, deferred references rendered; and their digest."""
        return build_commands(task, functools.partial(self._final, task), self.plan.run_dir)

    # ------------------------------------------------------------------ bookkeeping

    def label_of(self, state: TaskState) -> str:
        """``step`` or ``step[combo]``: how streamed lines name a task's step."""
        inst = state.task.instance
        if inst.combo is not None and self.plan.recipe.matrix:
            return f"{inst.step.id}[{inst.combo.slug}]"
        return inst.step.id

    def _task_fields(self, state: TaskState) -> dict[str, Any]:
        task = state.task
        return {
            "task": task.key,
            "step": task.step.id,
            "combo": _combo(task.instance),
            "host": task.host,
        }

    def _finish(
        self, state: TaskState, status: str, *, error: str | None = None, note: str | None = None
    ) -> None:
        if state.status in FINAL:
            return
        state.status = status
        state.error = error
        if state.started is not None:
            state.duration = time.monotonic() - state.started
        task = state.task
        if status == OK and task.step.capture is not None and not state.resumed:
            self._capture(state)
        fields = self._task_fields(state)
        self.log.emit(
            "task_end",
            **fields,
            status=status,
            exit_status=state.exit_status,
            duration=round(state.duration, 6),
            error=error,
            digest=state.digest or None,
            resumed=state.resumed,
            note=note,
        )

    def _capture(self, state: TaskState) -> None:
        task = state.task
        name = task.step.capture
        assert name is not None
        value = "\n".join(state.stdout)
        if state.truncated:
            self.formatter.echo(
                f"-- {task.key}: capture {name} truncated at {CAPTURE_LIMIT} bytes", True
            )
        self.captures.setdefault((name, _combo(task.instance)), {})[task.host] = value
        self.log.emit(
            "capture",
            step=task.step.id,
            combo=_combo(task.instance),
            host=task.host,
            name=name,
            value=value,
            truncated=state.truncated,
        )
        write_json(self.plan.run_dir / CAPTURES, captures_as_json(self.captures))

    def _load_captures(self, captures: dict[str, Any]) -> None:
        for name, combos in captures.items():
            if isinstance(combos, dict):
                for combo, values in combos.items():
                    if isinstance(values, dict):
                        self.captures[(name, combo)] = {str(h): str(v) for h, v in values.items()}

    def _step_started(self, inst: Instance) -> None:
        inst_state = self._instances[id(inst)]
        if not inst_state.started:
            inst_state.started = True
            self.log.emit("step_start", step=inst.step.id, combo=_combo(inst), hosts=inst.hosts)

    def _states(self, inst: Instance) -> list[TaskState]:
        return [self._by_task[id(task)] for task in inst.tasks] if inst.runs else []

    def _settle(self, inst: Instance) -> None:
        """A step instance's tasks are all done (or started, in the background)."""
        inst_state = self._instances[id(inst)]
        states = self._states(inst)
        bad = [s for s in states if s.status in BAD]
        tolerated = inst.step.tolerated(len(states))
        inst_state.failed = len(bad) > tolerated
        inst_state.settled = True
        if not inst.runs:
            inst_state.status = "not selected" if not inst.selected else "disabled"
            self._stop_background_after(inst)
            return
        if inst_state.failed:
            inst_state.status = FAILED
        elif states and all(s.status in (SKIPPED, CANCELLED) for s in states):
            inst_state.status = CANCELLED if any(s.status == CANCELLED for s in states) else SKIPPED
        else:
            inst_state.status = OK
        self._step_started(inst)
        by_status: dict[str, list[str]] = {}
        for s in states:
            by_status.setdefault(s.status, []).append(s.host)
        self.log.emit(
            "step_end",
            step=inst.step.id,
            combo=_combo(inst),
            status=inst_state.status,
            ok=by_status.get(OK, []) + by_status.get(RUNNING, []),
            failed=[s.host for s in bad],
            skipped=by_status.get(SKIPPED, []),
            cancelled=by_status.get(CANCELLED, []),
        )
        if inst_state.failed:
            if inst.step.critical and not self.keep_going:
                self.abort(f"critical step {inst.key} failed on {fold(s.host for s in bad)}")
            elif self.fail_fast and inst.combo is not None and self._sweep_stopped is None:
                self._sweep_stopped = inst.combo.index
        self._stop_background_after(inst)

    async def _combo_done(self, index: int) -> None:
        """End of a combination: stop its background tasks that wait for nothing else."""
        for inst in self.plan.instances:
            if (
                inst.combo is not None
                and inst.combo.index == index
                and inst.step.background
                and not inst.step.stop_after
            ):
                await self._stop_background(inst)

    def _stop_background_after(self, settled: Instance) -> None:
        for inst in self.plan.instances:
            step = inst.step
            if not step.background or settled.step.id not in step.stop_after:
                continue
            waiting = [
                other
                for other in self.plan.instances
                if other.step.id in step.stop_after
                and (inst.combo is None or other.combo is None or other.combo == inst.combo)
            ]
            if all(self._instances[id(other)].settled for other in waiting):
                task = asyncio.ensure_future(self._stop_background(inst))
                self._watchers.add(task)
                task.add_done_callback(self._watchers.discard)

    async def _stop_background(self, inst: Instance) -> None:
        running = self._background.pop(id(inst), [])
        for state, task in running:
            state.stopping = True
            task.cancel()
        if running:
            await asyncio.wait([task for _, task in running], timeout=STOP_TIMEOUT)

    def _stop_all_background(self) -> None:
        for key in list(self._background):
            for state, task in self._background.pop(key):
                state.stopping = True
                task.cancel()

    # ------------------------------------------------------------------ outcome

    def _exit_status(self) -> int:
        statuses = {state.status for state in self.tasks}
        if self.abort_reason is not None:
            return self._abort_exit
        for status, code in (
            (UNREACHABLE, EXIT_UNREACHABLE),
            (AUTH_REFUSED, EXIT_UNREACHABLE),
            (HOSTKEY_REFUSED, EXIT_UNREACHABLE),
            (TIMEOUT, EXIT_TIMEOUT),
            (FAILED, EXIT_FAILED),
        ):
            if status in statuses:
                return code
        return EXIT_OK

    def summary(self) -> dict[str, Any]:
        """The run as data (summary.json, ``--json``)."""
        counts: dict[str, int] = {}
        for state in self.tasks:
            counts[state.status] = counts.get(state.status, 0) + 1
        steps = []
        for inst in self.plan.instances:
            inst_state = self._instances[id(inst)]
            hosts: dict[str, list[str]] = {}
            for state in self._states(inst):
                hosts.setdefault(state.status, []).append(state.host)
            steps.append(
                {
                    "step": inst.step.id,
                    "combo": _combo(inst),
                    "status": inst_state.status,
                    "hosts": hosts,
                    "resumed": [s.host for s in self._states(inst) if s.resumed],
                }
            )
        status = (
            "ok"
            if self.exit_status == EXIT_OK
            else ("aborted" if self.abort_reason is not None else "failed")
        )
        combos: dict[str, str] = {}
        if self.plan.recipe.matrix:
            for inst in self.plan.instances:
                if inst.combo is not None and inst.step.id in self.plan.repeating:
                    failed = self._instances[id(inst)].failed
                    previous = combos.get(inst.combo.slug, OK)
                    combos[inst.combo.slug] = FAILED if failed or previous == FAILED else OK
        summary = {
            "v": 1,
            "recipe": self.plan.recipe.name,
            "run_id": self.plan.run_id,
            "run_dir": str(self.plan.run_dir),
            "status": status,
            "exit": self.exit_status,
            "abort_reason": self.abort_reason,
            "duration": round((self.finished or time.monotonic()) - self.started, 3)
            if self.started
            else 0.0,
            "counts": counts,
            "combos": combos,
            "steps": steps,
            "tasks": [
                {
                    **self._task_fields(state),
                    "status": state.status,
                    "exit_status": state.exit_status,
                    "duration": round(state.duration, 6),
                    "error": state.error,
                    "resumed": state.resumed,
                }
                for state in self.tasks
            ],
        }
        return dict(self.secrets.data(summary))

    def summary_lines(self) -> Iterator[str]:
        """The summary for a person: per step instance, the hosts in each state (folded)."""
        return summary_lines(self.summary())


def _hop(node: Any) -> tuple[Any, ...]:
    """What makes two nodes the same connection: label, address, port, user, gateway."""
    return (
        getattr(node, "label", None),
        getattr(node, "hostname", None),
        getattr(node, "port", None),
        getattr(node, "username", None),
        id(getattr(node, "gateway", None)),
    )
