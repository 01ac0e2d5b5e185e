"""Recipes against the container topology: real sshd, a bastion, nodes behind it.

The topology's inventory has ``direct`` (direct1..3, published on 127.0.0.1),
``bastions`` (bastion) and ``nodes`` (node1, node2, reachable only through the
bastion). Logins are counted from each container's sshd log ("Accepted publickey").
"""

from __future__ import annotations

import json
import shlex
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apssh_cli.cli.main import main
from apssh_cli.inventory.model import Inventory
from apssh_cli.lab import Endpoint, Topology
from apssh_cli.recipe.loader import parse_recipe
from apssh_cli.recipe.planner import Selection, make_plan
from apssh_cli.recipe.runner import RecipeRun

pytestmark = pytest.mark.integration

RECIPES = Path(__file__).parents[2] / "recipes"
HEAD = '[recipe]\nname = "t"\nformat = 1\n'


def logins(endpoint: Endpoint) -> int:
    logs = endpoint.container.get_wrapped_container().logs().decode(errors="replace")
    return logs.count("Accepted publickey")


def all_logins(topology: Topology) -> dict[str, int]:
    return {endpoint.name: logins(endpoint) for endpoint in topology.endpoints}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in after if after[name] != before[name]}


def run_recipe(
    topology: Topology,
    tmp_path: Path,
    body: str,
    *,
    selection: Selection | None = None,
    inventory: Inventory | None = None,
    **options: Any,
) -> tuple[RecipeRun, list[dict[str, Any]]]:
    recipe = parse_recipe(HEAD + body, tmp_path / "r.toml")
    inventory = inventory or Inventory.load([topology.inventory])
    plan = make_plan(recipe, inventory, selection or Selection(), run_dir=tmp_path / "run")
    events: list[dict[str, Any]] = []
    run = RecipeRun(plan, listener=events.append, quiet=True, **options)
    run.run()
    return run, events


def status(run: RecipeRun) -> dict[str, str]:
    return {state.key: state.status for state in run.tasks}


def remote_count(topology: Topology, endpoint: Endpoint, pattern: str) -> int:
    _, out = topology.exec(endpoint, f"ps -e -o args | grep -c '[{pattern[0]}]{pattern[1:]}'")
    return int(out.strip() or 0)


def test_one_connection_per_host_and_gateway_for_a_whole_matrix_recipe(
    topology: Topology, tmp_path: Path
) -> None:
    body = """
[matrix]
a = [1, 2]
b = ["x", "y"]
[[step]]
id = "init"
hosts = "nodes,direct,bastion"
run = "echo init {host}"
[[step]]
id = "work"
hosts = "nodes,direct"
requires = ["init"]
sync = "host"
[[step.do]]
run = "echo {a}{b} > /tmp/recipe-work-{host}"
[[step.do]]
pull = "/tmp/recipe-work-{host}"
[[step]]
id = "more"
hosts = "nodes,bastion"
requires = ["work"]
run = "cat /tmp/recipe-work-{host} 2>/dev/null || hostname"
"""
    before = all_logins(topology)
    run, _ = run_recipe(topology, tmp_path, body)
    assert run.exit_status == 0, run.summary()
    assert len(run.tasks) == 6 + 4 * (5 + 3)
    # every host and the bastion (a host and the gateway of node1, node2): one login each
    assert delta(before, all_logins(topology)) == {
        name: 1 for name in ("bastion", "node1", "node2", "direct1", "direct2", "direct3")
    }
    pulled = tmp_path / "run" / "a=2,b=y" / "node2" / "recipe-work-node2"
    assert pulled.read_text() == "2y\n"


def test_dag_order_sync_host_against_the_barrier(topology: Topology, tmp_path: Path) -> None:
    body = """
[[step]]
id = "a"
hosts = "direct"
run = "case {host} in direct3) sleep 3;; esac; echo a"
[[step]]
id = "per_host"
hosts = "direct"
requires = ["a"]
sync = "host"
run = "echo b"
[[step]]
id = "barrier"
hosts = "direct"
requires = ["a"]
run = "echo c"
"""
    run, events = run_recipe(topology, tmp_path, body)
    assert run.exit_status == 0
    start = {(e["step"], e["host"]): e["ts"] for e in events if e["event"] == "task_start"}
    end = {(e["step"], e["host"]): e["ts"] for e in events if e["event"] == "task_end"}
    slowest = end[("a", "direct3")]
    # sync = host: direct1 went on before direct3 finished a
    assert start[("per_host", "direct1")] < slowest
    assert start[("per_host", "direct3")] >= slowest
    # the barrier: nobody started before every host finished a
    assert min(start[("barrier", h)] for h in ("direct1", "direct2", "direct3")) >= slowest


def test_failures_max_fail_always_and_abort_kill_remote_processes(
    topology: Topology, tmp_path: Path
) -> None:
    body = """
[[step]]
id = "flaky"
hosts = "direct"
max_fail = 1
run = "test {host} != direct2"
[[step]]
id = "next"
hosts = "direct"
requires = ["flaky"]
run = "echo next"
[[step]]
id = "long"
hosts = "node1"
run = "sleep 120 # recipe-long-sleep"
[[step]]
id = "fatal"
hosts = "node2"
requires = ["next"]
run = "exit 7"
[[step]]
id = "logs"
hosts = "direct1"
requires = ["fatal"]
always = true
run = "echo logs"
"""
    started = time.monotonic()
    run, events = run_recipe(topology, tmp_path, body)
    assert time.monotonic() - started < 60
    assert run.exit_status == 5
    assert status(run) == {
        "flaky/direct1": "ok",
        "flaky/direct2": "failed",
        "flaky/direct3": "ok",
        "next/direct1": "ok",
        "next/direct2": "skipped",
        "next/direct3": "ok",
        "long/node1": "cancelled",
        "fatal/node2": "failed",
        "logs/direct1": "ok",
    }
    flaky = next(e for e in events if e["event"] == "step_end" and e["step"] == "flaky")
    assert flaky["status"] == "ok" and flaky["failed"] == ["direct2"]
    node1 = topology.internal[0]
    assert remote_count(topology, node1, "recipe-long-sleep") == 0


def test_non_critical_keep_going_and_exit_statuses(topology: Topology, tmp_path: Path) -> None:
    body = """
[[step]]
id = "bad"
hosts = "direct1"
run = "exit 1"
[[step]]
id = "after"
hosts = "direct1"
requires = ["bad"]
run = "true"
[[step]]
id = "slow"
hosts = "direct2"
timeout = "1s"
critical = false
run = "sleep 30 # recipe-timeout-sleep"
"""
    run, _ = run_recipe(topology, tmp_path, body, keep_going=True)
    assert status(run) == {"bad/direct1": "failed", "after/direct1": "skipped",
                           "slow/direct2": "timeout"}  # fmt: skip
    assert run.exit_status == 3  # timeout beats failed
    assert remote_count(topology, topology.direct[1], "recipe-timeout-sleep") == 0


@pytest.fixture
def refused_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_unreachable_host_exits_4_and_retries(
    topology: Topology, tmp_path: Path, refused_port: int
) -> None:
    extra = tmp_path / "ghost.toml"
    extra.write_text(f'[ghosts.hosts.ghost]\nhostname = "127.0.0.1"\nport = {refused_port}\n')
    inventory = Inventory.load([topology.inventory, extra])
    body = (
        '[[step]]\nid = "a"\nhosts = "ghost,direct1"\ncritical = false\nretries = 1\n'
        'run = "echo hi"\n'
    )
    run, events = run_recipe(topology, tmp_path, body, inventory=inventory)
    assert status(run) == {"a/ghost": "unreachable", "a/direct1": "ok"}
    assert run.exit_status == 4
    error = next(e for e in events if e["event"] == "task_end" and e["host"] == "ghost")["error"]
    assert error


def test_captures_per_host_joined_and_single(topology: Topology, tmp_path: Path) -> None:
    body = """
[[step]]
id = "names"
hosts = "direct"
run = "echo name-{host}"
capture = "name"
[[step]]
id = "one"
hosts = "node1"
run = "echo the-one"
capture = "single"
[[step]]
id = "use"
hosts = "direct"
requires = ["names", "one"]
run = "echo mine={cap.name} one={cap.single} d2={cap.name@direct2}"
[[step]]
id = "all"
requires = ["names"]
local = "echo {cap.name[*]:q} ok={ok.names}"
"""
    run, events = run_recipe(topology, tmp_path, body)
    assert run.exit_status == 0
    lines = {(e["step"], e["host"]): e["line"] for e in events if e["event"] == "output"}
    assert lines[("use", "direct3")] == "mine=name-direct3 one=the-one d2=name-direct2"
    assert lines[("all", "local")] == (
        "name-direct1 name-direct2 name-direct3 ok=direct1 direct2 direct3"
    )
    saved = json.loads((tmp_path / "run" / "captures.json").read_text())
    assert saved["single"] == {"": {"node1": "the-one"}}


def test_background_step_is_stopped_and_leaves_no_process(
    topology: Topology, tmp_path: Path
) -> None:
    body = """
[[step]]
id = "server"
hosts = "node2"
background = true
stop_after = ["client"]
run = "echo serving; sleep 300 # recipe-background"
[[step]]
id = "client"
hosts = "node1"
requires = ["server"]
run = "echo client"
[[step]]
id = "later"
hosts = "node1"
requires = ["client"]
run = "sleep 3"
"""
    run, events = run_recipe(topology, tmp_path, body)
    assert run.exit_status == 0
    assert status(run)["server/node2"] == "ok"
    server_end = next(e for e in events if e["event"] == "task_end" and e["step"] == "server")
    later_end = next(e for e in events if e["event"] == "task_end" and e["step"] == "later")
    assert server_end["note"] == "stopped"
    assert server_end["ts"] < later_end["ts"]  # stopped after client, not at the end
    assert remote_count(topology, topology.internal[1], "recipe-background") == 0


def apssh(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


SELECT = """\
[recipe]
name = "sel"
format = 1
[[step]]
id = "a"
hosts = "direct"
run = "echo a > /tmp/recipe-sel-a"
[[step]]
id = "b"
hosts = "direct"
requires = ["a"]
run = "echo b"
[[step]]
id = "c"
hosts = "direct1"
requires = ["b"]
run = "echo c"
"""


def test_cli_from_only_resume_and_plan_open_no_connection(
    topology: Topology, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "sel.toml"
    recipe.write_text(SELECT)
    inventory = str(topology.inventory)
    before = all_logins(topology)
    code, out, _ = apssh(capsys, "recipe", "plan", str(recipe), "-i", inventory)
    assert code == 0 and "direct[1-3]: echo b" in out
    code, _, _ = apssh(capsys, "recipe", "check", str(recipe), "-i", inventory)
    assert code == 0
    assert delta(before, all_logins(topology)) == {}

    code, out, _ = apssh(capsys, "recipe", "run", str(recipe), "-i", inventory, "--json", "-q",
                         "--from", "b", "-g", "direct1,direct2")  # fmt: skip
    summary = json.loads(out)
    assert code == 0
    assert sorted(t["task"] for t in summary["tasks"]) == ["b/direct1", "b/direct2", "c/direct1"]
    code, out, _ = apssh(capsys, "recipe", "run", str(recipe), "-i", inventory, "--json",
                         "--only", "a")  # fmt: skip
    assert code == 0 and [t["task"] for t in json.loads(out)["tasks"]] == [
        "a/direct1", "a/direct2", "a/direct3",
    ]  # fmt: skip

    # a full run, then a resume with nothing left: no connection at all
    code, _, _ = apssh(capsys, "recipe", "run", str(recipe), "-i", inventory, "-q")
    assert code == 0
    before = all_logins(topology)
    code, _, err = apssh(capsys, "recipe", "run", str(recipe), "-i", inventory, "--resume")
    assert code == 0
    assert "a: ok direct[1-3] (direct[1-3] resumed)" in err  # the summary: on stderr
    assert delta(before, all_logins(topology)) == {}


def test_options_refused_before_running_open_no_connection(
    topology: Topology, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "cap.toml"
    recipe.write_text(
        HEAD
        + '[[step]]\nid = "who"\nhosts = "nodes"\nrun = "hostname"\ncapture = "name"\n'
        + '[[step]]\nid = "use"\nhosts = "nodes"\nrequires = ["who"]\nrun = "echo {cap.name}"\n'
    )
    inventory = str(topology.inventory)
    before = all_logins(topology)
    refusals = [
        (["--only", "use"], "is left out by --only use"),
        (["-g", "bastion", "--strict"], "selects no host"),
        (["-g", "nodes,!nodes", "--strict"], "selects no host"),
        (["--var", "name=[1,"], "not valid TOML"),
        (["--resume", str(recipe)], "not a run directory"),
    ]
    for options, fragment in refusals:
        code, out, err = apssh(capsys, "recipe", "run", str(recipe), "-i", inventory, *options)
        assert (code, out) == (1, ""), err
        # one line per problem (-g bastion: one per step)
        assert all(fragment in line for line in err.splitlines()), err
    assert delta(before, all_logins(topology)) == {}  # no SSH login: neither node nor bastion
    assert not (tmp_path / "runs").exists()
    # the same recipe with good options logs in: the count above can see logins
    code, _, err = apssh(capsys, "recipe", "run", str(recipe), "-i", inventory, "-q")
    assert code == 0, err
    assert delta(before, all_logins(topology)) == {"bastion": 1, "node1": 1, "node2": 1}


def test_the_example_recipes_run(
    topology: Topology, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipes = tmp_path / "recipes"
    shutil.copytree(RECIPES, recipes, ignore=shutil.ignore_patterns("runs"))
    inventory = str(topology.inventory)
    code, out, err = apssh(capsys, "recipe", "run", str(recipes / "sweep.toml"), "-i", inventory)
    assert code == 0, err
    (csv,) = (recipes / "runs" / "sweep").glob("*/results.csv")
    rows = csv.read_text().splitlines()
    assert rows[0] == "combo_size_mb,combo_samples,host,sample,micros"
    assert len(rows) == 1 + 2 * (2 + 3 + 2 + 3)  # 2 nodes, 4 combinations

    code, out, err = apssh(capsys, "recipe", "run", str(recipes / "relay.toml"), "-i", inventory)
    assert code == 0, err
    assert "report local: replies: node1 got: hello from node2" in out
    assert remote_count(topology, topology.internal[0], "relay_server") == 0

    node2 = topology.internal[1]
    topology.exec(node2, "rm -f /tmp/apssh-resume.fixed")
    resume = str(recipes / "resume.toml")
    code, out, err = apssh(capsys, "recipe", "run", resume, "-i", inventory)
    assert code == 2
    assert "work: ok node1; failed node2" in err
    topology.exec(node2, "touch /tmp/apssh-resume.fixed")
    code, out, err = apssh(capsys, "recipe", "run", resume, "-i", inventory, "--resume")
    assert code == 0, err
    assert "work: ok node[1-2] (node1 resumed)" in err
    assert "prepare: ok node[1-2] (node[1-2] resumed)" in err


def test_step_window_runs_hosts_one_at_a_time(topology: Topology, tmp_path: Path) -> None:
    body = '[[step]]\nid = "a"\nhosts = "direct"\nwindow = 1\nrun = "sleep 0.3"\n'
    run, events = run_recipe(topology, tmp_path, body)
    assert run.exit_status == 0
    spans = sorted(
        (start["ts"], end["ts"])
        for start in events
        if start["event"] == "task_start"
        for end in events
        if end["event"] == "task_end" and end["host"] == start["host"]
    )
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1))


def signalled_recipe(
    topology: Topology, recipe: Path, events: Path, signum: int, *options: str
) -> tuple[int, str, str]:
    """Run ``apssh recipe run`` in a process, send it ``signum`` once its first task's
    remote command runs, and return (exit status, stdout, stderr)."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "apssh_cli.cli.main", "recipe", "run", str(recipe),
               "-i", str(topology.inventory), "--events", str(events), *options]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if events.exists() and '"task_start"' in events.read_text():
                break
            time.sleep(0.1)
        time.sleep(0.5)  # the remote sleep is running
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    return process.returncode, out, err


def test_ctrl_c_aborts_runs_always_steps_and_exits_130(topology: Topology, tmp_path: Path) -> None:
    import signal

    recipe = tmp_path / "int.toml"
    recipe.write_text(
        HEAD
        + '[[step]]\nid = "long"\nhosts = "direct3"\nrun = "sleep 120 # recipe-ctrl-c"\n'
        + '[[step]]\nid = "after"\nhosts = "direct3"\nrequires = ["long"]\nrun = "true"\n'
        + '[[step]]\nid = "cleanup"\nhosts = "direct3"\nrequires = ["after"]\nalways = true\n'
        + 'run = "echo cleanup ran"\n'
    )
    events = tmp_path / "events.jsonl"
    returncode, out, err = signalled_recipe(topology, recipe, events, signal.SIGINT)
    assert returncode == 130, err
    assert "cleanup direct3: cleanup ran" in out
    assert "long: cancelled direct3" in err
    assert remote_count(topology, topology.direct[2], "recipe-ctrl-c") == 0
    last = json.loads(events.read_text().splitlines()[-1])
    assert last["event"] == "recipe_end" and last["exit"] == 130


def test_sighup_stops_the_recipe_as_ctrl_c_does_and_exits_129(
    topology: Topology, tmp_path: Path
) -> None:
    # the fleet stops on SIGINT, SIGTERM and SIGHUP: a recipe run on the same engine too
    import signal

    recipe = tmp_path / "hup.toml"
    recipe.write_text(
        HEAD
        + '[[step]]\nid = "long"\nhosts = "direct1"\nrun = "sleep 120 # recipe-sighup"\n'
        + '[[step]]\nid = "cleanup"\nhosts = "direct1"\nrequires = ["long"]\nalways = true\n'
        + 'run = "echo cleanup ran"\n'
    )
    events = tmp_path / "events.jsonl"
    run_dir = tmp_path / "run"
    returncode, out, err = signalled_recipe(
        topology, recipe, events, signal.SIGHUP, "--run-dir", str(run_dir)
    )
    assert returncode == 128 + signal.SIGHUP, err
    assert "Traceback" not in err
    assert "cleanup direct1: cleanup ran" in out
    assert "long: cancelled direct1" in err  # the summary: on stderr
    assert remote_count(topology, topology.direct[0], "recipe-sighup") == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["exit"] == 129 and summary["status"] == "aborted"
    assert summary["abort_reason"] == "SIGHUP"
    last = json.loads(events.read_text().splitlines()[-1])
    assert last["event"] == "recipe_end" and last["exit"] == 129


def test_a_second_ctrl_c_stops_the_always_steps_too(topology: Topology, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    recipe = tmp_path / "twice.toml"
    recipe.write_text(
        HEAD
        + '[[step]]\nid = "long"\nhosts = "direct2"\nrun = "sleep 120 # recipe-first"\n'
        + '[[step]]\nid = "cleanup"\nhosts = "direct2"\nrequires = ["long"]\nalways = true\n'
        + 'run = "sleep 120 # recipe-second"\n'
    )
    events = tmp_path / "events.jsonl"
    command = [sys.executable, "-m", "apssh_cli.cli.main", "recipe", "run", str(recipe),
               "-i", str(topology.inventory), "--events", str(events)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if events.exists() and events.read_text().count('"task_start"') >= count:
                time.sleep(0.5)  # the remote sleep is running
                return
            time.sleep(0.1)
        raise AssertionError("the task did not start")

    try:
        wait_for(1)
        process.send_signal(signal.SIGINT)
        wait_for(2)  # the always step started
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        stopped_in = time.monotonic() - started
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert stopped_in < 30
    assert remote_count(topology, topology.direct[1], "recipe-first") == 0
    assert remote_count(topology, topology.direct[1], "recipe-second") == 0


def pwned_files(topology: Topology) -> dict[str, str]:
    """Any file named pwned on a host of the topology (the hosts share no file system)."""
    found = {}
    for endpoint in topology.endpoints:
        _, out = topology.exec(endpoint, "find / -xdev -name 'pwned*' 2>/dev/null")
        if out.strip():
            found[endpoint.name] = out.strip()
    return found


@pytest.mark.parametrize("value", ["v;touch pwned", "$(touch pwned)", "`touch pwned` 'q\" *"])
def test_a_hostile_capture_runs_nowhere_and_arrives_intact(
    topology: Topology, tmp_path: Path, value: str
) -> None:
    """Issue 19: a captured value spliced into run, local, a string body, script args
    and a pull path runs no command, on the controller or on another host."""
    (tmp_path / "show.sh").write_text("#!/bin/sh\nprintf 'arg=[%s]\\n' \"$@\"\n")
    quoted = json.dumps(shlex.quote(value))[1:-1]
    body = f"""
[[step]]
id = "evil"
hosts = "direct1"
capture = "x"
run = "printf data > /tmp/{quoted}; printf '%s\\\\n' {quoted}"
[[step]]
id = "use"
hosts = "direct2"
requires = ["evil"]
[[step.do]]
run = "printf 'run=[%s]\\\\n' {{cap.x@direct1}} {{cap.x[*]}}"
[[step.do]]
string = "printf 'body=[%s]\\\\n' {{cap.x@direct1}}"
[[step.do]]
script = "show.sh"
args = ["{{cap.x@direct1}}"]
[[step]]
id = "fetch"
hosts = "direct1"
requires = ["evil"]
pull = "/tmp/{{cap.x}}"
[[step]]
id = "here"
requires = ["evil"]
local = "printf 'local=[%s]\\\\n' {{cap.x}}"
"""
    assert not pwned_files(topology)
    run, events = run_recipe(topology, tmp_path, body)
    assert run.exit_status == 0, run.summary()
    lines = sorted(e["line"] for e in events if e["event"] == "output" and e["step"] != "evil")
    expected = ["run", "run", "body", "arg", "local"]
    assert lines == sorted(f"{name}=[{value}]" for name in expected)
    assert (tmp_path / "run" / "direct1" / value).read_text() == "data"  # the path, as it is
    assert not pwned_files(topology)
    assert not list(tmp_path.rglob("pwned*"))  # nothing on the controller


def test_a_nul_byte_in_a_capture_fails_the_task_and_keeps_the_connection(
    topology: Topology, tmp_path: Path
) -> None:
    """Issue 20: sshd drops a connection whose exec request holds a NUL: the task that
    would splice one fails, naming the capture, and no second login happens."""
    body = """
[[step]]
id = "evil"
hosts = "direct1"
capture = "x"
run = "printf 'v\\\\000w'"
[[step]]
id = "use"
hosts = "direct2"
requires = ["evil"]
critical = false
run = "echo {cap.x@direct1}"
[[step]]
id = "after"
hosts = "direct2"
requires = ["evil"]
run = "echo still here"
"""
    before = all_logins(topology)
    run, events = run_recipe(topology, tmp_path, body)
    assert status(run) == {"evil/direct1": "ok", "use/direct2": "failed", "after/direct2": "ok"}
    assert run.exit_status == 2
    error = next(e for e in events if e["event"] == "task_end" and e["step"] == "use")["error"]
    assert "{cap.x@direct1}" in error and "NUL" in error
    assert delta(before, all_logins(topology)) == {"direct1": 1, "direct2": 1}
