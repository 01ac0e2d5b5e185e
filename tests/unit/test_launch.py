"""The warm command server (``apssh_cli.cli.command_server``) and the ``apssh`` launcher.

Real processes, no SSH: a command server is started for a private XDG_RUNTIME_DIR,
with a stand-in for the holder (a process that holds the holder's lock, which is
all the server watches), and ``python -m apssh_cli`` calls go through it. A call
that needs no host (``--version``, ``inventory list``, a usage error) or one that
waits on a listener that never speaks SSH shows what is carried to the child: argv,
environment, working directory, descriptors, exit status and signals.
"""

from __future__ import annotations

import fcntl
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from apssh_cli.cli.command_server import _take_limits
from apssh_cli.cli.launch import code_tag, persist_asked, server_path
from apssh_cli.ssh.control import listening, socket_path

ROOT = Path(__file__).parents[2]
INVENTORY = """\
[nodes.hosts]
alpha = { ansible_host = "127.0.0.1" }
"""


def wait_for(condition: Callable[[], bool], limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


class Warm:
    """A command server for one test, and the environment of its callers."""

    def __init__(self, tmp_path: Path) -> None:
        runtime = tmp_path / "runtime"
        runtime.mkdir(mode=0o700)
        self.env = dict(os.environ)
        self.env["XDG_RUNTIME_DIR"] = str(runtime)
        self.env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(ROOT), self.env.get("PYTHONPATH")])
        )
        self.env.pop("APSSH_PERSIST", None)
        self.env.pop("APSSH_SERVER", None)
        self.path = server_path(self.env)
        self.log = self.path.with_suffix(".log")
        # the holder's lock, held by this test: the server lives while it is held
        self.lock = os.open(
            socket_path(self.env).with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600
        )
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        with open(self.log, "ab") as log:
            self.server = subprocess.Popen(
                [sys.executable, "-m", "apssh_cli.cli.command_server", str(self.path)],
                env=self.env, stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip
        assert wait_for(lambda: listening(self.path), 20), self.log.read_text()

    def served(self) -> int:
        return self.log.read_text().count(": a call served")

    def apssh(
        self, *args: str, served: bool = True, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = dict(self.env, APSSH_SERVER="1" if served else "0")
        return subprocess.run(
            [sys.executable, "-m", "apssh_cli", *args],
            env=env, capture_output=True, text=True, timeout=60, cwd=cwd,
        )  # fmt: skip

    def close(self) -> None:
        fcntl.flock(self.lock, fcntl.LOCK_UN)  # the holder "exits"
        os.close(self.lock)
        try:
            self.server.wait(10)
        finally:
            self.server.kill()
            self.server.wait()


@pytest.fixture
def warm(tmp_path: Path) -> Iterator[Warm]:
    made = Warm(tmp_path)
    try:
        yield made
    finally:
        made.close()


def test_a_call_is_served_with_the_callers_cwd_env_and_exit_status(
    warm: Warm, tmp_path: Path
) -> None:
    (tmp_path / "lab.toml").write_text(INVENTORY)
    cases = [
        ("--version",),
        ("inventory", "list", "-i", "lab.toml"),  # relative: the caller's cwd
        ("-i", "missing.toml", "-g", "nodes", "true"),  # a bad input: exit 1
        ("--no-such-option",),  # a usage error: exit 2
    ]
    assert (
        warm.apssh("inventory", "list", "-i", "lab.toml", served=False, cwd=tmp_path).returncode
        == 0
    )
    for args in cases:
        before = warm.served()
        here = warm.apssh(*args, served=False, cwd=tmp_path)
        there = warm.apssh(*args, cwd=tmp_path)
        assert warm.served() == before + 1, f"not served: {args}"
        assert (there.returncode, there.stdout, there.stderr) == (
            here.returncode,
            here.stdout,
            here.stderr,
        ), args
    assert {warm.apssh("-i", "missing.toml", "true", cwd=tmp_path).returncode} == {1}
    # the server's log says that calls were served, never what they were (a secret)
    assert "missing.toml" not in warm.log.read_text()


def test_the_callers_environment_reaches_the_run(warm: Warm, tmp_path: Path) -> None:
    # the config file named by APSSH_CONFIG in the caller's environment only
    config = tmp_path / "config.toml"
    config.write_text('window = "many"\n')
    env = dict(warm.env, APSSH_CONFIG=str(config))
    run = subprocess.run(
        [sys.executable, "-m", "apssh_cli", "-t", "127.0.0.1", "true"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 1
    assert str(config) in run.stderr and "window" in run.stderr
    assert warm.served() == 1


def test_stdin_and_stdout_are_the_callers_descriptors(warm: Warm, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    with open(out, "w") as sink:
        done = subprocess.run(
            [sys.executable, "-m", "apssh_cli", "--version"],
            env=warm.env, stdout=sink, stderr=subprocess.PIPE, timeout=60,
        )  # fmt: skip
    assert done.returncode == 0
    assert out.read_text().startswith("apssh")
    assert warm.served() == 1


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that accepts and never says a word (no SSH banner)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def _waiting_call(warm: Warm, port: int) -> subprocess.Popen[str]:
    args = ["-t", f"127.0.0.1:{port}", "--connect-timeout", "120", "--known-hosts", "off", "true"]
    return subprocess.Popen(
        [sys.executable, "-m", "apssh_cli", *args],
        env=warm.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _child_pid(warm: Warm) -> int:
    assert wait_for(lambda: warm.served() == 1, 20)
    line = next(line for line in warm.log.read_text().splitlines() if ": a call served" in line)
    return int(line.split("pid ")[1].split(":")[0])


def test_ctrl_c_reaches_the_served_run(warm: Warm, silent_listener: int) -> None:
    client = _waiting_call(warm, silent_listener)
    try:
        child = _child_pid(warm)
        time.sleep(1)  # connecting, waiting for the banner
        client.send_signal(signal.SIGINT)
        _out, err = client.communicate(timeout=30)
        assert client.returncode == 130, err
        assert wait_for(lambda: not Path(f"/proc/{child}").exists(), 10)
    finally:
        client.kill()
        client.communicate()


def _limited() -> None:  # in the caller, before it starts: `nice -n 3`, `ulimit -n 777`
    os.nice(3)
    resource.setrlimit(resource.RLIMIT_NOFILE, (777, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def test_the_callers_limits_and_priority_reach_the_served_run(
    warm: Warm, silent_listener: int
) -> None:
    args = ["-t", f"127.0.0.1:{silent_listener}", "--connect-timeout", "120", "true"]
    client = subprocess.Popen(
        [sys.executable, "-m", "apssh_cli", *args, "--known-hosts", "off"],
        env=warm.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_limited,
    )  # fmt: skip
    try:
        child = _child_pid(warm)
        server_nice = os.getpriority(os.PRIO_PROCESS, warm.server.pid)

        def nice() -> int:  # field 19 of /proc/PID/stat
            return int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[16])

        # the child takes them on before it says "started", the server logs the fork
        wait_for(lambda: nice() == server_nice + 3, 10)
        child_nice = nice()
        limits = Path(f"/proc/{child}/limits").read_text()
    finally:
        client.kill()
        client.communicate()
    assert child_nice == server_nice + 3
    open_files = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    assert open_files.split()[3] == "777", open_files
    core = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
    assert core.split()[4:6] == ["0", "0"], core


def test_limits_a_child_cannot_take_refuse_the_call() -> None:
    # a refusal makes the caller run the call itself (become_child answers "refused")
    with pytest.raises(ValueError):
        _take_limits({"RLIMIT_NOFILE": [2, 1]}, os.getpriority(os.PRIO_PROCESS, 0))


def _state(pid: int) -> str:  # R, S, T (stopped)... from /proc/PID/stat
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _catches(pid: int, signum: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) >> (signum - 1) & 1)


def test_ctrl_z_stops_the_served_run_and_fg_continues_it(warm: Warm, silent_listener: int) -> None:
    client = _waiting_call(warm, silent_listener)
    try:
        child = _child_pid(warm)
        # the caller handles SIGTSTP once the run is the child's (SigCgt, bit 20)
        assert wait_for(lambda: _catches(client.pid, signal.SIGTSTP), 20)
        client.send_signal(signal.SIGTSTP)  # what the terminal sends on Ctrl-Z
        assert wait_for(lambda: _state(child) == "T" and _state(client.pid) == "T", 10), (
            _state(child),
            _state(client.pid),
        )
        client.send_signal(signal.SIGCONT)  # what the shell's `fg` sends
        assert wait_for(lambda: _state(child) != "T" and _state(client.pid) != "T", 10)
        client.send_signal(signal.SIGINT)  # and the run still answers, as a running one
        _out, err = client.communicate(timeout=30)
        assert client.returncode == 130, err
    finally:
        client.kill()
        client.communicate()


def test_a_killed_caller_ends_its_served_run(warm: Warm, silent_listener: int) -> None:
    client = _waiting_call(warm, silent_listener)
    try:
        child = _child_pid(warm)
        time.sleep(1)
        client.kill()  # no forwarding: the child notices its caller is gone
        client.communicate(timeout=10)
        assert wait_for(lambda: not Path(f"/proc/{child}").exists(), 20), (
            "the run outlived its caller"
        )
    finally:
        client.kill()
        client.communicate()


def test_the_server_ends_with_the_holder_and_removes_its_socket(warm: Warm) -> None:
    fcntl.flock(warm.lock, fcntl.LOCK_UN)
    warm.server.wait(10)
    assert not warm.path.exists()
    # a call now runs in its own process, as without a server
    assert warm.apssh("--version").returncode == 0
    fcntl.flock(warm.lock, fcntl.LOCK_EX)  # for the fixture's close


def test_without_a_server_nothing_is_served(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime), PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "apssh_cli", "--version"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.startswith("apssh")
    # and a call that does not ask for --persist starts no server
    assert not list(runtime.glob("apssh/command-*.sock"))


def test_an_edited_module_is_another_server() -> None:
    environ = {"HOME": "/home/x"}
    before = code_tag(environ)
    module = ROOT / "apssh_cli" / "durations.py"
    info = module.stat()
    try:
        os.utime(module, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
        assert code_tag(environ) != before
    finally:
        os.utime(module, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert code_tag(environ) == before
    assert code_tag({"HOME": "/home/y"}) != before


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        (["-g", "nodes", "--persist", "10m", "true"], {}, 600.0),
        (["--persist=30s", "true"], {}, 30.0),
        (["true"], {"APSSH_PERSIST": "1m"}, 60.0),
        (["--persist", "0", "true"], {"APSSH_PERSIST": "1m"}, 0.0),
        (["true"], {}, 0.0),
        (["--", "echo", "--persist", "10m"], {}, 0.0),
        (["--persist", "ten", "true"], {}, 0.0),  # said by the command line, later
    ],
)
def test_persist_asked(argv: list[str], environ: dict[str, str], expected: float) -> None:
    assert persist_asked(argv, environ) == expected


def test_one_process_starts_the_holder_and_the_server(tmp_path: Path) -> None:
    from apssh_cli.ssh.control import ask

    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime), PYTHONPATH=str(ROOT))
    subprocess.run(
        [sys.executable, "-c", "from apssh_cli.cli.launch import ensure_started as e; e(60)"],
        env=env, check=True, timeout=60,
    )  # fmt: skip
    server = server_path(env)
    holder = socket_path(env)

    assert wait_for(lambda: listening(server) and listening(holder), 30)
    answer = ask({"op": "list"}, env)
    assert answer is not None and answer["held"] == []
    assert "listening" in holder.with_suffix(".log").read_text()
    os.kill(int(answer["pid"]), signal.SIGTERM)
    # the holder gone, its server follows (and removes its socket)
    assert wait_for(lambda: not server.exists(), 20)


def test_a_call_a_stopped_server_takes_too_late_runs_once(warm: Warm, tmp_path: Path) -> None:
    (tmp_path / "lab.toml").write_text(INVENTORY)
    alone = warm.apssh("inventory", "list", "-i", "lab.toml", served=False, cwd=tmp_path)
    os.kill(warm.server.pid, signal.SIGSTOP)  # the kernel still queues the caller's request
    try:
        client = subprocess.Popen(
            [sys.executable, "-m", "apssh_cli", "inventory", "list", "-i", "lab.toml"],
            env=warm.env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        # it gives up on the server (5 s), runs the call itself, exits
        assert client.wait(60) == 0
    finally:
        os.kill(warm.server.pid, signal.SIGCONT)
    # the server then takes the stale request: its child must not run it again (it
    # would write to the same pipe, which stays open while a copy of it lives)
    out, err = client.communicate(timeout=30)
    assert (out, err) == (alone.stdout, alone.stderr)
    assert wait_for(lambda: warm.served() == 1, 10)  # forked, and gone without running
