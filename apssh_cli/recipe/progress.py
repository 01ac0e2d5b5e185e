"""Where a recipe's DAG stands: each task's state, each step instance's, what may start.

A task decides when it starts whether it runs (:meth:`Progress.gate`): the recipe may
be aborting, a required step may have failed, the host may have failed there, an
earlier combination may have failed (``--fail-fast``). A step instance *settles* once
its tasks are done (:meth:`Progress.settle`): failed when more of them failed than
it tolerates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apssh_cli.recipe.planner import Instance, Plan, Task
from apssh_cli.recipe.references import combo_of
from apssh_cli.recipe.state import BAD, CANCELLED, FAILED, OK, PENDING, RUNNING, SKIPPED, TaskState

__all__ = ["InstanceState", "Progress"]


@dataclass(eq=False)
class InstanceState:
    """How a step instance stands."""

    instance: Instance
    settled: bool = False
    failed: bool = False
    started: bool = False
    status: str = PENDING


class Progress:
    """The states of a plan's tasks and step instances, as the run goes."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.tasks = [TaskState(task) for task in plan.tasks]
        self._by_task = {id(state.task): state for state in self.tasks}
        self._instances = {id(inst): InstanceState(inst) for inst in plan.instances}
        self.sweep_stopped: int | None = None  # --fail-fast: the combination that failed

    def state(self, task: Task) -> TaskState:
        return self._by_task[id(task)]

    def status_of(self, task: Task) -> str:
        """A task's state now."""
        return self._by_task[id(task)].status

    def instance_state(self, inst: Instance) -> InstanceState:
        return self._instances[id(inst)]

    def states(self, inst: Instance) -> list[TaskState]:
        """The states of an instance's tasks (none when it does not run)."""
        return [self._by_task[id(task)] for task in inst.tasks] if inst.runs else []

    def host_status(self, inst: Instance, host: str) -> str:
        """How ``host`` ended in a step instance (ok when it did not run in this run)."""
        if not inst.runs:
            return OK
        for task in inst.tasks:
            if task.host == host:
                return self._by_task[id(task)].status
        return SKIPPED

    def gate(self, task: Task, abort_reason: str | None) -> tuple[str, str] | None:
        """Why the task must not run now: (status, reason), or None."""
        step = task.step
        inst = task.instance
        if step.always:
            return None
        if abort_reason is not None:
            return CANCELLED, f"recipe aborted: {abort_reason}"
        stopped = self.sweep_stopped
        if stopped is not None and inst.combo is not None and inst.combo.index > stopped:
            return SKIPPED, "--fail-fast: an earlier combination failed"
        for req in inst.requires:
            if not req.runs:
                continue
            if self._instances[id(req)].failed:
                return SKIPPED, f"required step {req.key} failed"
            if task.host in req.hosts and not req.step.is_local:
                status = self.host_status(req, task.host)
                if status not in (OK, RUNNING):
                    return SKIPPED, f"{req.key} ended {status} on {task.host}"
        return None

    def upstream_ran(self, task: Task) -> bool:
        """Whether a task this one depends on ran again in this run (its input changed)."""
        for req in task.instance.requires:
            same_host = not task.step.is_local and not req.step.is_local and task.host in req.hosts
            for state in self.states(req):
                if state.ran and (not same_host or state.host == task.host):
                    return True
        return False

    def settle(self, inst: Instance) -> list[TaskState]:
        """The instance's tasks are all done (or started, in the background): its status.

        Returns the tasks that ended bad.
        """
        inst_state = self._instances[id(inst)]
        states = self.states(inst)
        bad = [s for s in states if s.status in BAD]
        inst_state.failed = len(bad) > inst.step.tolerated(len(states))
        inst_state.settled = True
        if not inst.runs:
            inst_state.status = "not selected" if not inst.selected else "disabled"
        elif inst_state.failed:
            inst_state.status = FAILED
        elif states and all(s.status in (SKIPPED, CANCELLED) for s in states):
            inst_state.status = CANCELLED if any(s.status == CANCELLED for s in states) else SKIPPED
        else:
            inst_state.status = OK
        return bad

    def step_end(self, inst: Instance) -> dict[str, Any]:
        """The fields of a settled instance's ``step_end`` event."""
        by_status: dict[str, list[str]] = {}
        for state in self.states(inst):
            by_status.setdefault(state.status, []).append(state.host)
        return {
            "step": inst.step.id,
            "combo": combo_of(inst),
            "status": self._instances[id(inst)].status,
            "ok": by_status.get(OK, []) + by_status.get(RUNNING, []),
            "failed": [s.host for s in self.states(inst) if s.status in BAD],
            "skipped": by_status.get(SKIPPED, []),
            "cancelled": by_status.get(CANCELLED, []),
        }

    def backgrounds_after(self, settled: Instance) -> list[Instance]:
        """The background instances to stop now that ``settled`` settled."""
        found = []
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
                found.append(inst)
        return found

    def backgrounds_of_combo(self, index: int) -> list[Instance]:
        """The background instances of a combination that wait for nothing else."""
        return [
            inst
            for inst in self.plan.instances
            if inst.combo is not None
            and inst.combo.index == index
            and inst.step.background
            and not inst.step.stop_after
        ]
