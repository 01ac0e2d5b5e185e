"""Warm connections (``--persist``) against the container topology.

Each test gets its own XDG_RUNTIME_DIR, hence its own holder, stopped at the end.
Each test runs twice: ``apssh`` in a process of its own (``direct``), and every
call served by the warm command server (``served``: ``python -m apssh_cli``, the
launcher, with a command server and a holder started first), which must show the
same output, exit statuses and remote effects.
Logins are counted in the sshd logs ("Accepted publickey"), as tests/integration
do elsewhere: N invocations through a holder make one login per host.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apssh_cli.cli.launch import server_path
from apssh_cli.lab import Endpoint, Topology
from apssh_cli.ssh.control import listening, socket_path
from apssh_cli.ssh.holder import ask

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]


def logins(endpoint: Endpoint) -> int:
    logs = endpoint.container.get_wrapped_container().logs().decode(errors="replace")
    return logs.count("Accepted publickey")


class Holder:
    """The environment of one test's apssh runs, and its holder."""

    def __init__(self, runtime: Path, home: Path | None = None, served: bool = False) -> None:
        self.served = served
        self.env = dict(os.environ)
        self.env["XDG_RUNTIME_DIR"] = str(runtime)
        self.env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
        )
        if home is not None:
            self.env["HOME"] = str(home)
        self.env.pop("SSH_AUTH_SOCK", None)
        self.env.pop("APSSH_PERSIST", None)
        self.env.pop("APSSH_SERVER", None)
        self.server = server_path(self.env)
        self.started: list[subprocess.Popen[bytes]] = []

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "apssh_cli" if self.served else "apssh_cli.cli.main", *args]

    def start_served(self) -> None:
        """A holder that outlives its connections (its LINGER), and a command server."""
        path = socket_path(self.env)
        for argv, log in (
            (["apssh_cli.ssh.holder_server", str(path), "60", "600"], path.with_suffix(".log")),
            (["apssh_cli.cli.command_server", str(self.server)], self.server.with_suffix(".log")),
        ):
            with open(log, "ab") as sink:
                process = subprocess.Popen(
                    [sys.executable, "-m", *argv], env=self.env, cwd="/", start_new_session=True,
                    stdout=sink, stderr=sink,
                )  # fmt: skip
            self.started.append(process)
        assert wait_for(lambda: self.pid() is not None and listening(self.server), 30)

    def served_calls(self) -> int:
        log = self.server.with_suffix(".log")
        return log.read_text().count(": a call served") if log.exists() else 0

    def apssh(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            cwd=ROOT,
        )

    def ask(self, message: dict[str, Any]) -> dict[str, Any] | None:
        return ask(message, self.env)

    def pid(self) -> int | None:
        answer = self.ask({"op": "list"})
        return int(answer["pid"]) if answer else None

    def held(self) -> list[dict[str, Any]]:
        answer = self.ask({"op": "list"})
        return list(answer["held"]) if answer else []

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: self.pid() is None, 10)

    def reap(self) -> None:
        """The processes start_served started: the server ends with its holder."""
        for process in self.started:
            try:
                process.wait(15)
            finally:
                process.kill()
                process.wait()


def same(run: subprocess.CompletedProcess[str]) -> tuple[int, str, str]:
    """What a run shows, its summary's duration aside."""
    return run.returncode, run.stdout, re.sub(r" in \d+(\.\d+)?s", " in Ts", run.stderr)


def wait_for(condition: Any, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return bool(condition())


@pytest.fixture(params=["direct", "served"])
def holder(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Holder]:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    made = Holder(runtime, served=request.param == "served")
    try:
        if made.served:
            made.start_served()
        yield made
    finally:
        made.stop()  # the command server ends with its holder
        made.reap()


def test_runs_through_the_holder_log_in_once_with_the_same_results(
    topology: Topology, holder: Holder
) -> None:
    node = topology.direct[0]
    inventory = str(topology.inventory)
    command = "echo out; echo err >&2; exit 3"
    before = logins(node)
    plain = holder.apssh("-i", inventory, "-t", node.name, command)
    assert logins(node) == before + 1
    runs = [
        holder.apssh("-i", inventory, "-t", node.name, "--persist", "60", command) for _ in range(4)
    ]
    for run in runs:
        assert same(run) == same(plain)
    assert "out" in plain.stdout and "err" in plain.stderr and plain.returncode != 0
    # four runs, one login: the holder's
    assert logins(node) == before + 2
    if holder.served:  # every call, even the one without --persist
        assert holder.served_calls() == 5
    held = holder.held()
    assert [entry["label"] for entry in held] == [node.name]


def test_a_killed_holder_costs_only_the_speed_up(topology: Topology, holder: Holder) -> None:
    node = topology.direct[1]
    args = ("-i", str(topology.inventory), "-t", node.name, "--persist", "60", "hostname")
    first = holder.apssh(*args)
    assert first.returncode == 0, first.stderr
    pid = holder.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: holder.pid() is None, 10)
    before = logins(node)
    again = holder.apssh(*args)
    assert (again.returncode, again.stdout) == (0, first.stdout), again.stderr
    assert logins(node) == before + 1
    # and a new holder keeps it
    assert holder.pid() not in (None, pid)
    assert holder.apssh(*args).stdout == first.stdout
    assert logins(node) == before + 1


def test_a_dead_upstream_is_replaced_transparently(topology: Topology, holder: Holder) -> None:
    node = topology.direct[2]
    args = ("-i", str(topology.inventory), "-t", node.name, "--persist", "60", "echo alive")
    assert holder.apssh(*args).returncode == 0
    before = logins(node)
    # the node's per-connection sshd processes die: the held connection is lost
    rc, out = topology.exec(
        node, "pkill -f 'sshd: .*\\[priv\\]' ; pkill -f 'sshd: [a-z]*@notty'; true"
    )
    assert rc == 0, out
    run = holder.apssh(*args)
    assert (run.returncode, run.stdout.split()[-1:]) == (0, ["alive"]), run.stderr
    assert logins(node) == before + 1
    assert holder.apssh(*args).returncode == 0
    assert logins(node) == before + 1


def test_a_timeout_kills_the_remote_command_through_the_holder(
    topology: Topology, holder: Holder
) -> None:
    node = topology.direct[0]
    inventory = str(topology.inventory)
    marker = f"sleep 31{os.getpid() % 100:02d}"
    plain = holder.apssh("-i", inventory, "-t", node.name, "--timeout", "2", "true")
    held = holder.apssh(
        "-i", inventory, "-t", node.name, "--persist", "60", "--timeout", "2", marker
    )
    direct = holder.apssh("-i", inventory, "-t", node.name, "--timeout", "2", marker)
    assert plain.returncode == 0
    assert held.returncode == direct.returncode != 0
    assert (
        held.stderr.replace(node.name, "H").splitlines()[-1]
        == direct.stderr.replace(node.name, "H").splitlines()[-1]
    )

    def gone() -> bool:
        _, out = topology.exec(node, "ps -eo args")
        return marker not in out

    assert wait_for(gone, 10), "the remote command outlived its timeout"
    assert holder.held(), "the held connection went with the command"


def test_a_changed_host_key_is_refused_as_without_persist(
    topology: Topology, holder: Holder, tmp_path: Path
) -> None:
    node = topology.direct[1]
    known = tmp_path / "known_hosts"
    good = topology.known_hosts.read_text()
    known.write_text(good)
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(
        topology.inventory.read_text().replace(str(topology.known_hosts.resolve()), str(known))
    )
    assert str(known) in inventory.read_text()
    args = ("-i", str(inventory), "-t", node.name, "--known-hosts", "strict")
    assert holder.apssh(*args, "--persist", "60", "true").returncode == 0
    # another key recorded for this host: the held connection's key no longer passes
    other = subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")],
        check=True,
    )
    del other
    public = (tmp_path / "other.pub").read_text().split()
    lines = []
    for line in good.splitlines():
        fields = line.split()
        if fields and fields[0] == node.known_hosts_name:
            line = f"{fields[0]} {public[0]} {public[1]}"
        lines.append(line)
    known.write_text("\n".join(lines) + "\n")
    direct = holder.apssh(*args, "true")
    held = holder.apssh(*args, "--persist", "60", "true")
    assert direct.returncode != 0 and "host key" in direct.stderr
    assert same(held) == same(direct)


def test_push_and_pull_through_the_holder(
    topology: Topology, holder: Holder, tmp_path: Path
) -> None:
    node = topology.direct[2]
    inventory = str(topology.inventory)
    local = tmp_path / "data.bin"
    local.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    before = logins(node)
    pushed = holder.apssh(
        "push",
        "-i",
        inventory,
        "-t",
        node.name,
        "--persist",
        "60",
        str(local),
        "/tmp/persist-data.bin",
    )
    assert pushed.returncode == 0, pushed.stderr
    pulled = holder.apssh(
        "pull",
        "-i",
        inventory,
        "-t",
        node.name,
        "--persist",
        "60",
        "/tmp/persist-data.bin",
        str(tmp_path / "back"),
    )
    assert pulled.returncode == 0, pulled.stderr
    assert (tmp_path / "back" / node.name / "persist-data.bin").read_bytes() == local.read_bytes()
    assert logins(node) == before + 1


def test_gateways_are_held_too(topology: Topology, holder: Holder) -> None:
    inventory = str(topology.inventory)
    endpoints = [topology.bastion, *topology.internal]
    before = {e.name: logins(e) for e in endpoints}
    for _ in range(3):
        run = holder.apssh("-i", inventory, "-g", "nodes", "--persist", "60", "hostname")
        assert run.returncode == 0, run.stderr
        assert sorted(line.split()[-1] for line in run.stdout.splitlines()) == sorted(
            e.name for e in topology.internal
        )
    assert {e.name: logins(e) - before[e.name] for e in endpoints} == {e.name: 1 for e in endpoints}
    listed = holder.apssh("connections")
    assert listed.returncode == 0
    for endpoint in topology.internal:
        assert (
            re.search(rf"^{endpoint.name} .* > ", listed.stdout, re.M)
            or endpoint.name in listed.stdout
        )
    closed = holder.apssh("connections", "close", topology.internal[0].name)
    assert "closed 1 connection" in closed.stderr
    assert sorted(e["label"] for e in holder.held()) == sorted(
        [topology.bastion.name, *(e.name for e in topology.internal[1:])]
    )
    everything = holder.apssh("connections", "close")
    assert everything.returncode == 0
    assert holder.held() == []


def test_idle_connections_are_released(topology: Topology, holder: Holder) -> None:
    node = topology.direct[0]
    run = holder.apssh("-i", str(topology.inventory), "-t", node.name, "--persist", "2", "true")
    assert run.returncode == 0, run.stderr
    pid = holder.pid()
    assert pid is not None
    assert holder.held()
    if holder.served:  # a holder started to linger (600 s): released, still there
        assert wait_for(lambda: holder.held() == [], 15)
        return
    # released after 2 s idle, and the holder, holding nothing, exits
    assert wait_for(lambda: holder.pid() is None, 15)


def test_a_killed_client_leaves_no_remote_process(topology: Topology, holder: Holder) -> None:
    node = topology.direct[1]
    marker = f"sleep 32{os.getpid() % 100:02d}"
    args = ["-i", str(topology.inventory), "-t", node.name, "--persist", "60", marker]
    client = subprocess.Popen(
        holder.argv(*args),
        env=holder.env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def running() -> bool:
            return marker in topology.exec(node, "ps -eo args")[1]

        assert wait_for(running, 30), "the command never started"
        client.kill()  # no cleanup of its own: the holder must end the command
        client.wait(10)
        assert wait_for(lambda: not running(), 15), "the remote command outlived its client"
        assert holder.held(), "the held connection went with the client"
    finally:
        client.kill()
        client.wait(10)


def test_recipe_runs_share_the_held_connections(
    topology: Topology, holder: Holder, tmp_path: Path
) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        '[recipe]\nname = "t"\nformat = 1\n'
        '[[step]]\nid = "a"\nhosts = "nodes"\nrun = "echo a {host}"\n'
        '[[step]]\nid = "b"\nhosts = "nodes"\nrequires = ["a"]\nrun = "echo b {host}"\n'
    )
    endpoints = [topology.bastion, *topology.internal]
    before = {e.name: logins(e) for e in endpoints}
    for round_ in range(2):
        done = holder.apssh(
            "recipe", "run", str(recipe), "-i", str(topology.inventory), "-q",
            "--run-dir", str(tmp_path / f"run{round_}"), "--persist", "60",
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    assert {e.name: logins(e) - before[e.name] for e in endpoints} == {e.name: 1 for e in endpoints}


def test_a_first_run_hands_its_early_connection_to_the_new_holder(
    topology: Topology, tmp_path: Path
) -> None:
    """No holder yet: the run opens its TCP connection to the bastion while it imports
    (as a run without --persist does) and the holder it starts logs in on it."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    fresh = Holder(runtime)
    endpoints = [topology.bastion, *topology.internal]
    before = {e.name: logins(e) for e in endpoints}
    try:
        done = fresh.apssh("-i", str(topology.inventory), "-g", "nodes", "--persist", "60", "true")
        assert done.returncode == 0, done.stdout + done.stderr
        log = socket_path(fresh.env).with_suffix(".log").read_text()
        assert f"host={topology.bastion.name} connected to" in log
        assert "(on its early TCP connection)" in log, log
        assert {e.name: logins(e) - before[e.name] for e in endpoints} == {
            e.name: 1 for e in endpoints
        }
        again = fresh.apssh("-i", str(topology.inventory), "-g", "nodes", "--persist", "60", "true")
        assert again.returncode == 0, again.stdout + again.stderr
        assert {e.name: logins(e) - before[e.name] for e in endpoints} == {
            e.name: 1 for e in endpoints
        }
    finally:
        fresh.stop()


def interrupted_run(
    topology: Topology, holder: Holder, node: Endpoint, marker: str, persist: bool
) -> subprocess.CompletedProcess[str]:
    """Run ``marker`` on node, Ctrl-C it once it runs; check that it ends there."""
    args = ["-i", str(topology.inventory), "-t", node.name, *(["--persist", "60"] * persist)]
    argv = holder.argv(*args, marker)
    client = subprocess.Popen(
        argv, env=holder.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:

        def running() -> bool:
            return marker in topology.exec(node, "ps -eo args")[1]

        assert wait_for(running, 30), "the command never started"
        client.send_signal(signal.SIGINT)
        out, err = client.communicate(timeout=30)
        assert wait_for(lambda: not running(), 15), "the remote command outlived Ctrl-C"
        return subprocess.CompletedProcess(argv, client.returncode, out, err)
    finally:
        client.kill()
        client.communicate()


def test_ctrl_c_ends_the_remote_command_as_without_persist(
    topology: Topology, holder: Holder
) -> None:
    node = topology.direct[2]
    marker = f"sleep 33{os.getpid() % 100:02d}"
    direct = interrupted_run(topology, holder, node, marker, persist=False)
    held = interrupted_run(topology, holder, node, marker, persist=True)
    assert direct.returncode == 130, direct.stderr
    assert same(held) == same(direct)


def test_an_unreachable_gateway_is_said_as_without_persist(
    topology: Topology, holder: Holder
) -> None:
    node = topology.direct[0]
    args = ("-i", str(topology.inventory), "-t", f"127.0.0.1:1->{node.name}", "true")
    direct = holder.apssh(*args)
    held = holder.apssh(*args, "--persist", "60")
    assert direct.returncode != 0 and "gateway" in direct.stderr, direct.stderr
    assert same(held) == same(direct)
    assert holder.held() == []


class CuttingProxy:
    """A TCP relay to one server that can go silent as a rebooted host does: the
    server's side is gone, our side says nothing until it is written to, then resets."""

    def __init__(self, host: str, port: int) -> None:
        self._backend = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._every: list[socket.socket] = []  # closed by close(), not left to the GC
        self._cut: set[int] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._backend)
            self._every += [client, server]
            self._pairs.append((client, server))
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if from_client and source.fileno() in self._cut:
                    # the first write after the cut meets a reset, as from a rebooted host
                    source.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    source.close()
                    return
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        """The server side of every current connection goes away; the client side stays
        silent (no FIN, no RST) until the client writes."""
        for client, server in self._pairs:
            self._cut.add(client.fileno())
            with contextlib.suppress(OSError):
                server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                server.close()
        self._pairs.clear()

    def close(self) -> None:
        self._listener.close()
        for sock in self._every:
            sock.close()


def test_a_connection_that_died_unnoticed_is_replaced_at_its_next_use(
    topology: Topology, holder: Holder, tmp_path: Path
) -> None:
    node = topology.direct[0]
    proxy = CuttingProxy(node.host, node.port)
    try:
        known = tmp_path / "known_hosts"
        key = node.host_key.split()
        known.write_text(f"[127.0.0.1]:{proxy.port} {key[0]} {key[1]}\n")
        inventory = tmp_path / "inventory.toml"
        inventory.write_text(
            f'[all.vars]\nuser = "{topology.user}"\n'
            f'identity_file = "{topology.keypair.private_path}"\n'
            f'known_hosts = {{ policy = "strict", file = "{known}" }}\n'
            f'[g.hosts.rebooted]\nhostname = "127.0.0.1"\nport = {proxy.port}\n'
        )
        args = ("-i", str(inventory), "-t", "rebooted", "--persist", "60", "echo up")
        first = holder.apssh(*args)
        assert first.returncode == 0, first.stderr
        before = logins(node)
        proxy.cut()
        time.sleep(0.5)
        assert [entry["label"] for entry in holder.held()] == ["rebooted"]  # not noticed
        again = holder.apssh(*args)
        assert same(again) == same(first)
        assert logins(node) == before + 1  # a new login replaced the dead connection
    finally:
        proxy.close()


def test_a_stuck_holder_costs_seconds_not_a_connect_timeout(
    topology: Topology, holder: Holder
) -> None:
    node = topology.direct[1]
    args = ("-i", str(topology.inventory), "-t", node.name, "--persist", "60")
    args += ("--connect-timeout", "30", "hostname")
    first = holder.apssh(*args)
    assert first.returncode == 0, first.stderr
    pid = holder.pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # alive, listening (the kernel accepts), silent
    try:
        start = time.monotonic()
        stuck = holder.apssh(*args)
        took = time.monotonic() - start
    finally:
        os.kill(pid, signal.SIGCONT)
    assert same(stuck) == same(first)
    assert took < 20, f"{took:.1f}s: the client waited on the stuck holder"


X11_SCRIPT = """
import asyncio, sys
from apssh_cli.errors import ConfigError
from apssh_cli.ssh.node import SshNode

def node():
    host, port, key, known = sys.argv[1:5]
    return SshNode(host, port=int(port), username="root", keys=[key], known_hosts="strict",
                   known_hosts_file=known, ssh_config=None, persist=60)

async def main():
    first = node()
    await first.run_shell("true", display="true")  # starts the holder, holds the connection
    await first.close()
    second = node()
    try:
        await second.run_shell("echo hi", display="echo hi", x11=True)
    except ConfigError as exc:
        print(exc)
        return 7
    finally:
        await second.close()
    return 0

sys.exit(asyncio.run(main()))
"""


def test_x11_on_a_held_connection_is_refused_in_words(
    topology: Topology, holder: Holder, tmp_path: Path
) -> None:
    node = topology.direct[0]
    script = tmp_path / "x11.py"
    script.write_text(X11_SCRIPT)
    env = {**holder.env, "DISPLAY": ":0"}
    args = [
        node.host,
        str(node.port),
        str(topology.keypair.private_path),
        str(topology.known_hosts),
    ]
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 7, (done.stdout, done.stderr)
    assert "X11 forwarding does not go through the --persist holder" in done.stdout
    assert holder.held(), "the second node should have used the held connection"
