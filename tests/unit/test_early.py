"""Early connections: TCP connects started ahead, taken by the node that connects there.

Real sockets on 127.0.0.1 (and an in-process asyncssh server for the handshake on
an early socket); no Docker.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from apssh_cli.commands import Run
from apssh_cli.engine.job import SshJob
from apssh_cli.engine.prestart import default_window, start_early_connections
from apssh_cli.errors import UnreachableError
from apssh_cli.inventory.model import Host
from apssh_cli.inventory.targets import Target
from apssh_cli.ssh.context import SshContext
from apssh_cli.ssh.early import EarlyConnections, config_may_redirect

from .test_node_server import make, ssh_server, stdout

GUARD = 60  # against a hang, not a timing assertion


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, GUARD))


class Listener:
    """A TCP server on 127.0.0.1 that records what each accepted connection sent before EOF."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:  # closed by the fixture: nobody came
            return
        with conn:
            data = b""
            while chunk := conn.recv(1024):
                data += chunk
            self.received.append(data)
        self.closed.set()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def refused_port() -> Iterator[int]:
    with socket.socket() as sock:  # bound, never listening: refuses for the whole test
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def test_take_gives_the_connected_socket_once(listener: Listener) -> None:
    early = EarlyConnections({("127.0.0.1", listener.port): 5.0}, ssh_config=None)

    async def scenario() -> None:
        sock = await early.take("127.0.0.1", listener.port)
        assert sock is not None
        assert await early.take("127.0.0.1", listener.port) is None  # once
        assert await early.take("127.0.0.1", listener.port + 1) is None  # never started
        sock.sendall(b"hello")
        sock.close()

    run(scenario())
    assert listener.closed.wait(GUARD)
    assert listener.received == [b"hello"]
    assert early.endpoints == []


def test_a_failed_early_connect_is_the_takers_error(refused_port: int) -> None:
    early = EarlyConnections({("127.0.0.1", refused_port): 5.0}, ssh_config=None)
    with pytest.raises(ConnectionRefusedError):
        run(early.take("127.0.0.1", refused_port))


def test_close_closes_what_nobody_took(listener: Listener) -> None:
    early = EarlyConnections({("127.0.0.1", listener.port): 5.0}, ssh_config=None)
    early.close()
    assert listener.closed.wait(GUARD)  # the server saw the connection end, empty
    assert listener.received == [b""]
    assert run(early.take("127.0.0.1", listener.port)) is None


@pytest.mark.parametrize(
    ("text", "redirects"),
    [
        ("Host *\n  ServerAliveInterval 10\n  User alice\n  IdentityFile ~/.ssh/x\n", False),
        ("# HostName is commented out\nHost a\n  User bob\n", False),
        ("Host web\n  HostName 10.0.0.5\n", True),
        ("Host web\n\tport 2222\n", True),
        ("Host *\n  ProxyJump bastion\n", True),
        ("Host *\n  ProxyCommand nc %h %p\n", True),
        ("Include ~/.ssh/config.d/*\n", True),
        ("Match host web\n  User carol\n", True),
    ],
)
def test_config_may_redirect(tmp_path: Path, text: str, redirects: bool) -> None:
    config = tmp_path / "config"
    config.write_text(text)
    assert config_may_redirect(config) is redirects


@pytest.mark.parametrize(
    ("text", "host", "redirects"),
    [
        ("Host web\n  HostName 10.0.0.5\nHost *\n  User bob\n", "db", False),
        ("Host web\n  HostName 10.0.0.5\n", "web", True),
        ("Host WEB\n  HostName 10.0.0.5\n", "web", True),  # case-insensitive, as ssh
        ("Host web*,db?\n  Port 2222\n", "db1", True),
        ("Host web* db?\n  Port 2222\n", "db12", False),
        ("Host * !db\n  ProxyJump bastion\n", "db", False),  # negated
        ("Host * !db\n  ProxyJump bastion\n", "web", True),
        ("Port 2222\nHost db\n  User x\n", "web", True),  # before any Host: everyone
        ("Host=db\n  HostName=10.0.0.9\n", "db", True),
        ("Host db\n  User x\nMatch host other\n  User y\n", "web", True),  # unknowable
        ("Host 10.0.0.1\n  HostName 10.0.0.2\n", "10.0.0.1", True),
        ("Host 10.0.0.1\n  HostName 10.0.0.2\n", "10.0.0.10", False),  # '.' is literal
    ],
)
def test_config_may_redirect_one_host(
    tmp_path: Path, text: str, host: str, redirects: bool
) -> None:
    config = tmp_path / "config"
    config.write_text(text)
    assert config_may_redirect(config, host) is redirects


def test_only_the_addresses_the_config_could_redirect_are_left_out(
    tmp_path: Path, listener: Listener, refused_port: int
) -> None:
    config = tmp_path / "config"
    config.write_text("Host localhost\n  HostName 127.0.0.1\n  Port 2222\n")
    early = EarlyConnections(
        {("127.0.0.1", listener.port): 5.0, ("localhost", refused_port): 5.0}, ssh_config=config
    )
    try:
        assert early.endpoints == [("127.0.0.1", listener.port)]
    finally:
        early.close()


def test_a_missing_config_redirects_nothing_and_a_redirecting_one_starts_nothing(
    tmp_path: Path, listener: Listener
) -> None:
    assert not config_may_redirect(tmp_path / "absent")
    assert not config_may_redirect(None)
    config = tmp_path / "config"
    config.write_text("Host *\n  HostName elsewhere.example\n")
    early = EarlyConnections({("127.0.0.1", listener.port): 5.0}, ssh_config=config)
    assert early.endpoints == []
    assert not listener.closed.wait(0.2)  # nobody connected


def test_start_early_connections_takes_the_first_hop_of_the_first_window(
    refused_port: int,
) -> None:
    def host(name: str, port: int, gateway: str | None = None) -> Host:
        return Host(name, hostname="127.0.0.1", port=port, gateway=gateway)

    bastion = host("bastion", refused_port)
    targets = [
        Target("a", (host("a", refused_port + 1),)),
        Target("b", (bastion, host("b", refused_port + 2, "bastion"))),
        Target("c", (bastion, host("c", refused_port + 3, "bastion"))),
        Target("d", (host("d", refused_port + 4),)),  # beyond the window
    ]
    early = start_early_connections(targets, window=3, ssh_config=None)
    try:
        assert sorted(early.endpoints) == [
            ("127.0.0.1", refused_port),
            ("127.0.0.1", refused_port + 1),
        ]
    finally:
        early.close()
    assert default_window(nofile=40) == 10


def test_a_node_handshakes_on_the_early_socket(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with ssh_server() as server:
            early = EarlyConnections({("127.0.0.1", server.port): 5.0}, ssh_config=None)
            async with SshContext(early_connections=early) as context:
                node = make(server, tmp_path / "kh", context=context)
                await SshJob(node, Run("echo early")).co_run()
                await node.close()
            assert early.endpoints == []  # taken
            assert server.connections == 1  # and no second connection
            assert stdout(node) == "early\n"

    run(scenario())


def test_a_node_elsewhere_leaves_the_early_socket_which_is_closed(
    tmp_path: Path, listener: Listener
) -> None:
    async def scenario() -> None:
        async with ssh_server() as server:
            early = EarlyConnections({("127.0.0.1", listener.port): 5.0}, ssh_config=None)
            async with SshContext(early_connections=early) as context:
                node = make(server, tmp_path / "kh", context=context)
                await SshJob(node, Run("echo direct")).co_run()
                await node.close()
            assert stdout(node) == "direct\n"

    run(scenario())
    assert listener.closed.wait(GUARD)
    assert listener.received == [b""]


def test_a_refused_early_connect_makes_the_node_unreachable(
    tmp_path: Path, refused_port: int
) -> None:
    async def scenario() -> None:
        early = EarlyConnections({("127.0.0.1", refused_port): 5.0}, ssh_config=None)
        async with SshContext(early_connections=early) as context:
            node = make_refused(refused_port, tmp_path, context)
            with pytest.raises(
                UnreachableError, match=f"cannot connect to 127.0.0.1:{refused_port}"
            ):
                await node.connect()

    run(scenario())


def make_refused(port: int, tmp_path: Path, context: SshContext):  # type: ignore[no-untyped-def]
    from apssh_cli.ssh.node import SshNode

    return SshNode(
        "127.0.0.1",
        port=port,
        username="tester",
        known_hosts_file=tmp_path / "kh",
        ssh_config=None,
        context=context,
    )


# what is in sys.modules when the command line starts its early connects, printed by
# the patched start_early_connections of a real `apssh` process
_PROBE = """\
import sys
import apssh_cli.engine.prestart as prestart
start = prestart.start_early_connections
def probe(*args, **kwargs):
    late = [m for m in ('asyncssh', 'asynciojobs', 'asyncio') if m in sys.modules]
    print('imported before the early connects:', *late, file=sys.stderr)
    return start(*args, **kwargs)
prestart.start_early_connections = probe
from apssh_cli.cli.main import main
sys.argv = ['apssh', *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("command", ["run", "push", "pull", "recipe"])
def test_the_early_connects_start_before_asyncssh_is_imported(
    tmp_path: Path, refused_port: int, command: str
) -> None:
    # the head start is the time `import asyncssh` takes (docs/architecture.md); asyncio is
    # imported by then (commands.py and LocalNode need it), asyncssh and asynciojobs are not
    import os
    import subprocess
    import sys

    (tmp_path / "f").write_text("x")
    (tmp_path / "inv.toml").write_text(
        f'[nodes.hosts]\nn1 = {{ hostname = "127.0.0.1", port = {refused_port} }}\n'
    )
    (tmp_path / "r.toml").write_text(
        '[recipe]\nname = "probe"\nformat = 1\n\n[[step]]\nid = "one"\nhosts = "nodes"\n'
        'run = "true"\n'
    )
    args = {
        "run": ["-i", "inv.toml", "-g", "nodes", "true"],
        "push": ["-i", "inv.toml", "-g", "nodes", "f", "/tmp/"],
        "pull": ["-i", "inv.toml", "-g", "nodes", "/etc/hostname", "pulled"],
        "recipe": ["recipe", "run", "r.toml", "-i", "inv.toml"],
    }[command]
    env = {**os.environ, "HOME": str(tmp_path)}  # no user config, ssh_config or known_hosts
    env = {k: v for k, v in env.items() if not k.startswith("APSSH_")}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=GUARD,
    )
    said = [line for line in done.stderr.splitlines() if line.startswith("imported before")]
    assert len(said) == 1, done.stderr  # the early connects did start, once
    assert "asyncssh" not in said[0] and "asynciojobs" not in said[0], said[0]
    assert done.returncode != 0  # and the host was then found unreachable, as it is


def test_early_connections_import_neither_asyncio_nor_asyncssh() -> None:
    # docs/library.md: a script can start connecting before it imports them
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from apssh_cli.ssh.early import EarlyConnections\n"
        "import apssh_cli.engine.prestart\n"
        "late = sorted(m for m in ('asyncssh', 'asyncio', 'asynciojobs') if m in sys.modules)\n"
        "assert not late, late\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_shortage_of_descriptors_here_is_not_the_hosts_fault(listener: Listener) -> None:
    # in a process of its own: the open-files limit is the whole process's
    import subprocess
    import sys

    code = (
        "import asyncio, resource, socket\n"
        "from apssh_cli.ssh.early import EarlyConnections\n"
        "_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))\n"
        "taken = []  # every descriptor in use: the early connect cannot make its socket\n"
        "try:\n"
        "    while True: taken.append(socket.socket())\n"
        "except OSError: pass\n"
        f"early = EarlyConnections({{('127.0.0.1', {listener.port}): 5.0}}, ssh_config=None)\n"
        "while early._pending and not list(early._pending.values())[0].done(): pass\n"
        "for sock in taken: sock.close()\n"
        f"print(asyncio.run(early.take('127.0.0.1', {listener.port})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=GUARD
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"  # the node will connect afresh


class SlowConnects:
    """socket.create_connection held until released: a connect still going on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import apssh_cli.ssh.early as early_module

        self.release = threading.Event()
        self.errors: list[BaseException] = []
        real = socket.create_connection

        def slow(*args, **kwargs):  # type: ignore[no-untyped-def]
            assert self.release.wait(GUARD)
            return real(*args, **kwargs)

        monkeypatch.setattr(early_module.socket, "create_connection", slow)
        monkeypatch.setattr(
            threading, "excepthook", lambda hook: self.errors.append(hook.exc_value)
        )


def test_a_take_cancelled_mid_connect_closes_the_socket_when_it_comes(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = SlowConnects(monkeypatch)
    early = EarlyConnections({("127.0.0.1", listener.port): 5.0}, ssh_config=None)

    async def scenario() -> None:
        task = asyncio.ensure_future(early.take("127.0.0.1", listener.port))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task  # the cancellation goes on: not swallowed into a fresh connect

    run(scenario())
    slow.release.set()
    assert listener.closed.wait(GUARD)  # the socket that came late was closed
    assert listener.received == [b""]
    assert slow.errors == []


def test_close_mid_connect_closes_the_socket_when_it_comes(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = SlowConnects(monkeypatch)
    early = EarlyConnections({("127.0.0.1", listener.port): 5.0}, ssh_config=None)
    early.close()
    slow.release.set()
    assert listener.closed.wait(GUARD)
    assert listener.received == [b""]
    assert slow.errors == []
