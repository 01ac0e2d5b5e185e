"""Running recipes made of local steps (no SSH): DAG, failures, captures, resume, exit statuses.

The semantics do not depend on where a task runs; the SSH side (one connection per
host, gateways, remote kills) is in tests/integration/test_recipe_run.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from apssh_cli.recipe.loader import parse_recipe
from apssh_cli.recipe.planner import Selection, make_plan
from apssh_cli.recipe.runner import RecipeRun

HEAD = '[recipe]\nname = "t"\nformat = 1\n'


def run_recipe(
    tmp_path: Path, body: str, *, resume: bool = False, head: str = HEAD, **options: Any
) -> tuple[RecipeRun, list[dict[str, Any]]]:
    recipe = parse_recipe(head + body, tmp_path / "r.toml")
    selection = options.pop("selection", Selection())
    plan = make_plan(recipe, None, selection, run_dir=tmp_path / "run")
    events: list[dict[str, Any]] = []
    run = RecipeRun(plan, resume=resume, listener=events.append, quiet=True, **options)
    handle_signals = options.pop("handle_signals", False)
    run.run(handle_signals=handle_signals)
    return run, events


def status(run: RecipeRun) -> dict[str, str]:
    return {state.key: state.status for state in run.tasks}


def test_dag_order_and_output_events(tmp_path: Path) -> None:
    body = """
[[step]]
id = "a"
local = "sleep 0.2; echo A"
[[step]]
id = "b"
local = "echo B"
[[step]]
id = "c"
requires = ["a", "b"]
local = "echo C"
"""
    run, events = run_recipe(tmp_path, body)
    assert run.exit_status == 0
    starts = {e["step"]: e["ts"] for e in events if e["event"] == "task_start"}
    ends = {e["step"]: e["ts"] for e in events if e["event"] == "task_end"}
    assert starts["c"] >= ends["a"] and starts["c"] >= ends["b"]
    assert starts["b"] < ends["a"]  # a and b ran side by side
    lines = [(e["step"], e["line"]) for e in events if e["event"] == "output"]
    assert sorted(lines) == [("a", "A"), ("b", "B"), ("c", "C")]
    assert events[0]["event"] == "recipe_start" and events[-1]["event"] == "recipe_end"
    assert all(e["v"] == 1 for e in events)
    journal = (tmp_path / "run" / "journal.jsonl").read_text().splitlines()
    assert len(journal) == len(events)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["exit"] == 0 and summary["counts"] == {"ok": 3}


def test_critical_failure_aborts_runs_always_steps_and_exits_5(tmp_path: Path) -> None:
    body = """
[[step]]
id = "slow"
local = "sleep 30"
[[step]]
id = "bad"
local = "exit 3"
[[step]]
id = "after"
requires = ["bad"]
local = "echo never"
[[step]]
id = "cleanup"
requires = ["after", "slow"]
always = true
local = "echo cleaned"
"""
    started = time.monotonic()
    run, events = run_recipe(tmp_path, body)
    assert time.monotonic() - started < 20  # the sleeping task was terminated
    assert run.exit_status == 5
    assert status(run) == {
        "slow/local": "cancelled",
        "bad/local": "failed",
        "after/local": "cancelled",
        "cleanup/local": "ok",
    }
    assert run.abort_reason is not None and "bad" in run.abort_reason
    assert (
        next(e for e in events if e["event"] == "task_end" and e["step"] == "bad")["exit_status"]
        == 3
    )


def test_non_critical_failure_skips_dependents_and_exits_2(tmp_path: Path) -> None:
    body = """
[[step]]
id = "bad"
critical = false
local = "exit 1"
[[step]]
id = "after"
requires = ["bad"]
local = "echo never"
[[step]]
id = "other"
local = "echo fine"
[[step]]
id = "logs"
requires = ["bad"]
always = true
local = "echo logs"
"""
    run, _ = run_recipe(tmp_path, body)
    assert run.exit_status == 2
    assert status(run) == {
        "bad/local": "failed",
        "after/local": "skipped",
        "other/local": "ok",
        "logs/local": "ok",
    }


def test_keep_going_treats_critical_steps_as_non_critical(tmp_path: Path) -> None:
    body = """
[[step]]
id = "bad"
local = "exit 1"
[[step]]
id = "after"
requires = ["bad"]
local = "true"
[[step]]
id = "other"
local = "sleep 0.3"
"""
    run, _ = run_recipe(tmp_path, body, keep_going=True)
    assert run.exit_status == 2
    assert status(run) == {"bad/local": "failed", "after/local": "skipped", "other/local": "ok"}


def test_ok_exits_and_timeouts(tmp_path: Path) -> None:
    body = """
[[step]]
id = "three"
ok_exits = [0, 3]
local = "exit 3"
[[step]]
id = "slow"
critical = false
timeout = "500ms"
local = "sleep 30"
"""
    started = time.monotonic()
    run, _ = run_recipe(tmp_path, body)
    assert time.monotonic() - started < 20
    assert status(run) == {"three/local": "ok", "slow/local": "timeout"}
    assert run.exit_status == 3
    slow = next(state for state in run.tasks if state.key == "slow/local")
    assert slow.error == "step timeout (0.5s)"  # the engine's time limit, named for a recipe


def test_recipe_timeout_aborts_with_5(tmp_path: Path) -> None:
    head = HEAD + 'timeout = "1s"\n'
    run, _ = run_recipe(tmp_path, '[[step]]\nid = "a"\nlocal = "sleep 30"\n', head=head)
    assert run.exit_status == 5
    assert status(run) == {"a/local": "cancelled"}
    assert run.abort_reason is not None and "timeout" in run.abort_reason


def test_matrix_fail_fast_and_sequential_combos(tmp_path: Path) -> None:
    body = """
[matrix]
n = [1, 2, 3]
[[step]]
id = "a"
critical = false
local = "echo {n} >> order; test {n} != 2"
"""
    run, _ = run_recipe(tmp_path, body)
    assert run.exit_status == 2
    assert (tmp_path / "run" / "order").read_text().split() == ["1", "2", "3"]
    assert status(run) == {"a@n=1/local": "ok", "a@n=2/local": "failed", "a@n=3/local": "ok"}
    assert run.summary()["combos"] == {"n=1": "ok", "n=2": "failed", "n=3": "ok"}
    run, _ = run_recipe(tmp_path, body, fail_fast=True)
    assert status(run)["a@n=3/local"] == "skipped"


def test_captures_single_and_in_events(tmp_path: Path) -> None:
    body = """
[[step]]
id = "a"
local = "echo 'v 1'"
capture = "v"
[[step]]
id = "b"
requires = ["a"]
local = "echo got {cap.v:q} [{ok.a}]"
"""
    run, events = run_recipe(tmp_path, body)
    assert run.exit_status == 0
    lines = [e["line"] for e in events if e["event"] == "output" and e["step"] == "b"]
    assert lines == ["got v 1 [local]"]
    captured = [e for e in events if e["event"] == "capture"]
    assert captured[0]["name"] == "v" and captured[0]["value"] == "v 1"
    saved = json.loads((tmp_path / "run" / "captures.json").read_text())
    assert saved == {"v": {"": {"local": "v 1"}}}


def test_resume_skips_what_succeeded_with_the_same_action(tmp_path: Path) -> None:
    body = """
[[step]]
id = "a"
local = "echo a >> count"
[[step]]
id = "b"
requires = ["a"]
critical = false
local = "echo b >> count; test -e fixed"
[[step]]
id = "c"
local = "echo c >> count"
[[step]]
id = "d"
requires = ["b"]
local = "echo d >> count"
"""
    run, _ = run_recipe(tmp_path, body)
    assert run.exit_status == 2
    (tmp_path / "run" / "fixed").write_text("")
    run, _ = run_recipe(tmp_path, body, resume=True)
    assert run.exit_status == 0
    assert {s.key for s in run.tasks if s.resumed} == {"a/local", "c/local"}
    # a, b, c ran, then only b and d: the count file says so
    count = (tmp_path / "run" / "count").read_text().split()
    assert sorted(count[:3]) == ["a", "b", "c"] and count[3:] == ["b", "d"]
    run, _ = run_recipe(tmp_path, body.replace("echo c", "echo C"), resume=True)
    assert {s.key for s in run.tasks if not s.resumed} == {"c/local"}


def test_sigterm_aborts_with_143(tmp_path: Path) -> None:
    body = '[[step]]\nid = "a"\nlocal = "sleep 30"\n'
    recipe = parse_recipe(HEAD + body, tmp_path / "r.toml")
    plan = make_plan(recipe, None, run_dir=tmp_path / "run")
    run = RecipeRun(plan, quiet=True)

    async def main() -> int:
        asyncio.get_running_loop().call_later(0.5, os.kill, os.getpid(), signal.SIGTERM)
        return await run.co_run(handle_signals=True)

    assert asyncio.run(main()) == 143
    assert status(run) == {"a/local": "cancelled"}


def test_scheduler_is_reachable_and_holds_ssh_jobs(tmp_path: Path) -> None:
    from apssh_cli.engine.job import Scheduler, SshJob

    body = '[matrix]\nn = [1, 2]\n[[step]]\nid = "a"\nlocal = "echo {n}"\n'
    recipe = parse_recipe(HEAD + body, tmp_path / "r.toml")
    run = RecipeRun(make_plan(recipe, None, run_dir=tmp_path / "run"))
    scheduler = run.scheduler
    assert isinstance(scheduler, Scheduler)
    jobs = list(scheduler.jobs)
    assert all(isinstance(job, SshJob) for job in jobs)
    assert sorted(job.label for job in jobs if job.label.startswith("a@")) == [
        "a@n=1/local",
        "a@n=2/local",
    ]


def test_plan_and_check_do_not_import_asyncssh(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text(HEAD + '[[step]]\nid = "a"\nlocal = "true"\n')
    code = (
        "import sys; from apssh_cli.cli.main import main\n"
        f"try: main(['recipe', 'plan', {str(path)!r}, '-i', {str(path)!r}])\n"
        "except SystemExit: pass\n"
        "print('asyncssh' in sys.modules, 'asynciojobs' in sys.modules)"
    )
    inventory = tmp_path / "inv.toml"
    inventory.write_text("[nodes.hosts.n1]\n")
    code = code.replace(repr(str(path)) + "])", repr(str(inventory)) + "])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-2:] == ["False", "False"]


def test_cancelling_the_awaiting_task_re_raises_and_says_cancelled(tmp_path: Path) -> None:
    # as FleetRun: the cleanup is done, then the cancellation goes on (never exit 0, "ok")
    body = '[[step]]\nid = "a"\nlocal = "sleep 30"\n[[step]]\nid = "b"\nrequires = ["a"]\n'
    body += 'local = "true"\n'
    recipe = parse_recipe(HEAD + body, tmp_path / "r.toml")
    plan = make_plan(recipe, None, run_dir=tmp_path / "run")
    events: list[dict[str, Any]] = []
    run = RecipeRun(plan, quiet=True, listener=events.append)

    async def main() -> str:
        task = asyncio.ensure_future(run.co_run())
        for _ in range(200):  # the task runs: its sleep started
            if any(e["event"] == "task_start" for e in events):
                break
            await asyncio.sleep(0.05)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return "cancelled"
        return "returned"

    started = time.monotonic()
    assert asyncio.run(main()) == "cancelled"
    assert time.monotonic() - started < 20
    assert status(run) == {"a/local": "cancelled", "b/local": "cancelled"}
    assert run.exit_status == 130
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "cancelled" and summary["exit"] == 130
    last = json.loads((tmp_path / "run" / "journal.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "recipe_end" and last["status"] == "cancelled"


def test_a_stopped_background_step_ends_before_the_run_and_is_ok(tmp_path: Path) -> None:
    # the run waits for a stopped background task's cleanup: no process is left behind
    marker = f"sleep 77.{os.getpid()}"
    body = f'[[step]]\nid = "serve"\nbackground = true\nstop_after = ["talk"]\nlocal = "{marker}"\n'
    body += '[[step]]\nid = "talk"\nrequires = ["serve"]\nlocal = "sleep 0.5"\n'
    run, events = run_recipe(tmp_path, body)
    assert run.exit_status == 0
    assert status(run) == {"serve/local": "ok", "talk/local": "ok"}
    end = next(e for e in events if e["event"] == "task_end" and e["step"] == "serve")
    assert end["note"] == "stopped"
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
    assert left.stdout == ""


def test_recipes_and_run_read_one_exit_status_table() -> None:
    # one table (apssh_cli.results): a task's state gives the exit status a host's would
    from apssh_cli.cli.render import exit_status
    from apssh_cli.recipe.state import recipe_exit
    from apssh_cli.results import STATUS_EXIT, HostResult, Status

    counted = [s for s in STATUS_EXIT if s not in (Status.SKIPPED, Status.INTERRUPTED)]
    for status in counted:
        assert recipe_exit([status.value]) == exit_status([HostResult("h", status)])
    worst = [Status.FAILED, Status.TIMEOUT, Status.UNREACHABLE]
    assert recipe_exit([s.value for s in worst]) == exit_status([HostResult("h", s) for s in worst])
    # skipped and cancelled tasks are consequences: their cause counts, not they
    assert recipe_exit(["ok", "skipped", "cancelled"]) == 0
