"""`apssh run`, `push`, `pull` from the command line, without SSH: local-connection hosts.

Hosts with ``connection = "local"`` run their commands with /bin/sh on this
machine, which exercises the whole path (options, targets, jobs, window,
rendering, exit status) in a fraction of a second.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from apssh_cli.engine.fleet import OrderedWindow
from apssh_cli.engine.prestart import default_window

from .climain import apssh_argv as apssh
from .processes import dies

LOCAL_INVENTORY = """\
[locals]
hosts = { "loc[1:3]" = { connection = "local", colour = "blue" } }
"""


@pytest.fixture
def inventory(tmp_path: Path) -> str:
    path = tmp_path / "local.toml"
    path.write_text(LOCAL_INVENTORY)
    return str(path)


def test_default_subcommand_returns_the_exit_status(
    inventory: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = apssh(["-i", inventory, "-g", "locals", "echo", "hi"], capsys)
    assert status == 0
    assert sorted(out.splitlines()) == ["loc1: hi", "loc2: hi", "loc3: hi"]
    assert err.splitlines()[-1].startswith("apssh: 3 hosts in ")
    assert err.splitlines()[-1].endswith(": 3 ok")


def test_explicit_run_and_words_joined_for_the_shell(
    inventory: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = apssh(
        ["run", "-i", inventory, "-g", "loc1", "-r", "echo", "a|tr", "a", "b"], capsys
    )
    assert (status, out) == (0, "b\n")


@pytest.mark.parametrize(
    ("command", "expected"),
    [("exit 0", 0), ("exit 7", 2), ("sleep 30", 3)],
)
def test_exit_statuses(
    inventory: str, capsys: pytest.CaptureFixture[str], command: str, expected: int
) -> None:
    # only the command meant to time out gets a short limit: a stalled machine must
    # not turn `exit 0` into a timeout
    timeout = "0.5" if command.startswith("sleep") else "60"
    status, _, err = apssh(["-i", inventory, "--timeout", timeout, command], capsys)
    assert status == expected, err


def test_mixed_statuses_most_severe_wins(
    inventory: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # an extra inventory: a host on a closed loopback port is unreachable at once
    extra = tmp_path / "extra.toml"
    extra.write_text('[dead.hosts]\ndead = { hostname = "127.0.0.1", port = 1 }\n')
    argv = ["-i", inventory, "-i", str(extra), "-g", "loc1,dead", "--json", "exit 4"]
    status, out, err = apssh(argv, capsys)
    assert status == 4, err
    records = {r["host"]: r for r in map(json.loads, out.splitlines()[:-1])}
    assert (records["loc1"]["status"], records["loc1"]["rc"]) == ("failed", 4)
    assert records["dead"]["status"] == "unreachable" and records["dead"]["error"]
    assert "unreachable      dead" in err


def test_json_schema(inventory: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = apssh(["-i", inventory, "--json", "echo out; echo err >&2"], capsys)
    records = [json.loads(line) for line in out.splitlines()]
    assert status == 0
    assert sorted(r["host"] for r in records[:-1]) == ["loc1", "loc2", "loc3"]
    for record in records[:-1]:
        assert set(record) == {"host", "status", "rc", "duration", "stdout", "stderr", "error"}
        assert (record["status"], record["rc"], record["stdout"], record["stderr"]) == (
            "ok",
            0,
            "out\n",
            "err\n",
        )
    summary = records[-1]["summary"]
    assert (summary["hosts"], summary["ok"], summary["exit_status"]) == (3, 3, 0)


def test_gather(inventory: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = apssh(["-i", inventory, "-b", "echo same"], capsys)
    assert status == 0
    assert out == "---------------\nloc[1-3] (3)\n---------------\n  same\n"


def test_script_with_arguments_and_include(
    inventory: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "hello.sh"
    script.write_text('#!/bin/sh\n. "$(dirname "$0")/lib.sh"\necho "$GREETING $1 $2"\n')
    script.chmod(0o755)
    lib = tmp_path / "lib.sh"
    lib.write_text("GREETING=hello\n")
    argv = ["-i", inventory, "-g", "loc2", "-r", "--include", str(lib), "-s", str(script)]
    status, out, err = apssh([*argv, "a b", "--force"], capsys)
    assert (status, out) == (0, "hello a b --force\n"), err


def test_recipes_run_as_they_are(inventory: str, capsys: pytest.CaptureFixture[str]) -> None:
    recipes = Path(__file__).parents[2] / "recipes"
    status, out, err = apssh(
        ["-i", inventory, "-g", "loc1", "-r", "-s", str(recipes / "facts.sh"), "--brief"], capsys
    )
    assert status == 0, err
    assert out.startswith("os: ") and "kernel: " in out
    status, _, err = apssh(["-i", inventory, "-s", str(recipes / "facts.sh"), "--bad"], capsys)
    assert status == 2 and "usage: facts.sh" in err


def test_out_dir_and_failed_to(
    inventory: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    retry = tmp_path / "retry.txt"
    argv = ["-i", inventory, "-o", str(tmp_path / "out"), "--mark", "--failed-to", str(retry)]
    status, out, _ = apssh([*argv, "echo hi; exit 1"], capsys)
    assert (status, out) == (2, "")
    assert (tmp_path / "out" / "loc2.out").read_text() == "hi\n"
    assert (tmp_path / "out" / "failed.txt").read_text() == "loc1\nloc2\nloc3\n"
    assert retry.read_text() == "loc1\nloc2\nloc3\n"
    # the retry file names the same hosts again
    status, out, _ = apssh(["-i", inventory, "-t", f"@{retry}", "-n", "true"], capsys)
    assert (status, out) == (0, "loc1  (local)\nloc2  (local)\nloc3  (local)\n")


def test_dry_run_shows_routes(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["-n", "-t", "u@gw:2200->n[1-2]", "-t", "other", "-G", "jump", "-l", "bob", "uptime"]
    status, out, err = apssh(argv, capsys)
    assert status == 0
    assert out == (
        "n1  u@gw:2200 -> bob@n1\nn2  u@gw:2200 -> bob@n2\nother  bob@jump -> bob@other\n"
    )
    assert "dry run: uptime on 3 host(s)" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-t", "h", "-r", "--json", "x"], "--raw and --json do not go together"),
        (["-t", "h", "--mark", "x"], "--mark needs -o/--out-dir"),
        (["-t", "h", "--include", "f", "x"], "--include goes with -s/--script"),
        # options before a subcommand's name go to it: this is `apssh push -t h a b`
        (["-t", "h", "push", "a", "b"], "a: no such local file"),
        (["run", "-t", "h", "push", "a", "b"], "'push' is an apssh subcommand"),
        (["-t", "h", "--format", "{nope}", "x"], "unknown field {nope}"),
        (["-t", "h:99999", "x"], "bad target 'h:99999'"),
        (["-t", "h", "-s", "/no/such/script"], "/no/such/script: script not found"),
        (["uptime"], "no hosts: give -t TARGET"),
        (["-g", "nodes", "uptime"], "-g needs an inventory"),
        (["-t", "h", "-w", "0", "x"], "Invalid value for '-w'"),
    ],
)
def test_usage_errors_exit_one_with_one_message(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("APSSH_INVENTORY", raising=False)
    status, out, err = apssh(argv, capsys)
    assert status == 1
    assert message in err
    assert "Traceback" not in err and out == ""


def test_empty_target_file_runs_nothing_even_with_an_inventory(
    inventory: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # an empty --failed-to file (nothing failed) must not fall back to every host
    retry = tmp_path / "retry.txt"
    retry.write_text("")
    status, out, err = apssh(["-i", inventory, "-t", f"@{retry}", "uptime"], capsys)
    assert status == 1 and out == ""
    assert err == f"apssh: no hosts: -t '@{retry}' names none (an empty file?)\n"


def test_subcommand_name_after_double_dash_is_a_remote_command(
    inventory: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = apssh(["-i", inventory, "-g", "loc1", "-n", "--", "push"], capsys)
    assert status == 0 and "dry run: push on 1 host(s)" in err


def test_push_pull_templates_and_checks(
    inventory: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = apssh(["push", "-i", inventory, "/no/such/file", "/tmp/"], capsys)
    assert status == 1 and "/no/such/file: no such local file" in err
    status, _, err = apssh(["pull", "-i", inventory, "/etc/{nope}", str(tmp_path)], capsys)
    assert status == 1 and "host loc1 has no variable 'nope'" in err
    source = tmp_path / "blue.txt"
    source.write_text("x")
    argv = ["push", "-i", inventory, "-n", str(tmp_path / "{colour}.txt"), "/tmp/{host}"]
    status, _, err = apssh(argv, capsys)
    assert status == 0, err
    status, _, err = apssh(["push", "-i", inventory, str(tmp_path), "/tmp/"], capsys)
    assert status == 1 and "use -r" in err


def test_transfers_on_a_local_host_fail_per_host(
    inventory: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # SFTP needs an SSH host: a local one fails, the run goes on and reports it
    argv = ["pull", "-i", inventory, "-g", "loc1", "--json", "/etc/hostname", str(tmp_path)]
    status, out, _ = apssh(argv, capsys)
    record = json.loads(out.splitlines()[0])
    assert status == 2 and record["status"] == "failed" and "SshNode" in record["error"]
    assert not (tmp_path / "loc1").exists()  # a failed pull leaves no empty LOCALDIR/<host>/


def test_default_window() -> None:
    assert default_window(20000) == 50
    assert default_window(64) == 16
    assert default_window(2) == 1


def start_apssh(*args: str) -> subprocess.Popen[str]:
    """The apssh command as a process, its stdout and stderr piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "apssh_cli.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_first_ctrl_c_prints_the_summary_and_exits_130(inventory: str) -> None:
    process = start_apssh("-i", inventory, "-w", "2", "echo ready; sleep 30")
    assert process.stdout is not None
    first = process.stdout.readline()  # a host is running its command
    assert first.endswith(": ready\n")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    summary = err[err.index("apssh: 3 hosts") :]
    assert "(interrupted)" in summary
    assert "  interrupted" in summary and "  not started" in summary  # window of 2


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_like_ctrl_c(
    signum: signal.Signals, inventory: str, tmp_path: Path
) -> None:
    failed_to = tmp_path / "retry.txt"
    pids = tmp_path / "pids"
    process = start_apssh(
        "-i", inventory, "-w", "2", "--failed-to", str(failed_to),
        f"sleep 300 & echo $! >> {pids}; echo ready; wait",
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stdout.readline().endswith(": ready\n")
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, err
    summary = err[err.index("apssh: 3 hosts") :]
    assert "(interrupted)" in summary and "  not started" in summary
    assert "[interrupted] interrupted" not in err
    assert sorted(failed_to.read_text().split()) == ["loc1", "loc2", "loc3"]
    # the commands were terminated, their background children with them
    for pid in pids.read_text().split():
        assert dies(int(pid))


@pytest.mark.parametrize(
    "argv",
    [["run", "--help"], ["push", "--help"], ["pull", "--help"], ["-n", "-t", "a->b", "uptime"]],
)
def test_help_and_dry_run_do_not_import_ssh(argv: list[str]) -> None:
    code = (
        "import sys\n"
        "from apssh_cli.cli.main import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "assert 'asyncssh' not in sys.modules, 'asyncssh imported'\n"
        "assert 'asynciojobs' not in sys.modules, 'asynciojobs imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_broken_pipe_stops_the_run_quietly(inventory: str) -> None:
    # `apssh ... | head -1`: the reader goes away, apssh stops the hosts without a word
    process = start_apssh("-i", inventory, "while :; do echo y; sleep 0.05; done")
    assert process.stdout is not None
    assert process.stdout.readline().endswith(": y\n")
    process.stdout.close()  # a next write fails: the endless commands must be stopped
    _, err = process.communicate(timeout=60)
    assert process.returncode == 141  # 128 + SIGPIPE, as a shell reports `yes | head`
    assert err == ""


def test_hosts_start_in_target_order_within_the_window(
    inventory: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = apssh(["-i", inventory, "-w", "1", "--json", "true"], capsys)
    hosts = [json.loads(line).get("host") for line in out.splitlines()]
    assert (status, hosts) == (0, ["loc1", "loc2", "loc3", None])


def test_ordered_window_lets_hosts_in_by_index() -> None:
    async def scenario() -> list[str]:
        window = OrderedWindow(2, 4)
        events: list[str] = []
        release = asyncio.Event()

        async def host(index: int) -> None:
            await window.enter(index)
            events.append(f"in{index}")
            if index < 2:
                await release.wait()
            window.leave()

        # started in reverse: the window still lets them in by index
        tasks = [asyncio.ensure_future(host(index)) for index in (3, 2, 1, 0)]
        for _ in range(5):
            await asyncio.sleep(0)
        assert sorted(events) == ["in0", "in1"]  # two places, the first two indices
        release.set()
        await asyncio.gather(*tasks)
        return events

    events = asyncio.run(scenario())
    assert events[2:] == ["in2", "in3"]
