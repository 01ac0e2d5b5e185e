"""Fault injection for the fault tests: pause, kill and stop containers; look for leftovers.

Helpers, not fixtures of their own but for ``sshd_with_tmpfs`` (import it into the test
module): the tests start their own servers with ``sshd_factory`` (the session topology
is shared, so it is never paused or killed here).

- ``pause(endpoint)`` / ``unpause`` / ``kill`` / ``stop``: the container behind an endpoint;
- ``leftovers(endpoint, marker)``: the processes whose command line holds ``marker``
  (``ps`` in the container), and ``wait_until`` to poll for them to go;
- ``apssh(...)`` / ``start_apssh(...)``: the real command, with an empty HOME (no
  ``~/.ssh``) and the session key, returning its exit status, output and duration;
- ``SilentServer``: a TCP server on 127.0.0.1 that accepts and never says a word;
- ``start_sshd_with_tmpfs``: an sshd whose ``/small`` is a tiny tmpfs (a full disk).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apssh_cli import lab
from apssh_cli.lab import Endpoint, KeyPair

# a bound that only catches a hang (the machine may be loaded): never a speed assertion
HANG = 90.0


def _container(endpoint: Endpoint) -> Any:
    container = endpoint.container
    return (
        container.get_wrapped_container()
        if hasattr(container, "get_wrapped_container")
        else container
    )


def pause(endpoint: Endpoint) -> None:
    """Freeze every process of the container (its kernel still takes packets)."""
    _container(endpoint).pause()


def unpause(endpoint: Endpoint) -> None:
    _container(endpoint).unpause()


def kill(endpoint: Endpoint) -> None:
    """SIGKILL the container: sshd and every session die at once."""
    _container(endpoint).kill()


def stop(endpoint: Endpoint) -> None:
    _container(endpoint).stop(timeout=1)


def leftovers(endpoint: Endpoint, marker: str) -> list[str]:
    """Processes in the container whose command line contains ``marker``."""
    rc, output = lab.exec_in(endpoint, "ps -eo pid,args")
    assert rc == 0, output
    return [line for line in output.splitlines() if marker in line and "ps -eo" not in line]


def wait_until(condition: Callable[[], bool], timeout: float = HANG, period: float = 0.3) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(period)
    return condition()


@dataclass
class Done:
    """How an apssh run ended."""

    returncode: int
    stdout: str
    stderr: str
    elapsed: float


def _command(args: tuple[str, ...]) -> list[str]:
    return [sys.executable, "-m", "apssh_cli.cli.main", *args]


def _env(home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "SSH_AUTH_SOCK"}
    env["HOME"] = str(home)
    return env


def target_args(endpoint: Endpoint, keypair: KeyPair, user: str = "root") -> list[str]:
    """``-t user@127.0.0.1:port -k key --known-hosts off``: a host outside any inventory."""
    return [
        "-t",
        f"{user}@{endpoint.host}:{endpoint.port}",
        "-k",
        str(keypair.private_path),
        "--known-hosts",
        "off",
    ]


def apssh(*args: str, home: Path, timeout: float = HANG * 2) -> Done:
    """Run apssh to its end."""
    started = time.monotonic()
    done = subprocess.run(
        _command(args), capture_output=True, text=True, timeout=timeout, env=_env(home)
    )
    return Done(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


@contextlib.contextmanager
def start_apssh(*args: str, home: Path) -> Iterator[subprocess.Popen[str]]:
    """Start apssh in the background; it is killed on the way out if still running."""
    process = subprocess.Popen(
        _command(args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(home),
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=HANG)


def finish(process: subprocess.Popen[str], started: float) -> Done:
    """Wait (bounded) for a background apssh and collect how it ended."""
    stdout, stderr = process.communicate(timeout=HANG)
    return Done(process.returncode, stdout, stderr, time.monotonic() - started)


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts connections and never sends a byte."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = int(self._listener.getsockname()[1])
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = self._listener.accept()
                self._held.append(connection)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for connection in self._held:
            connection.close()
        self._thread.join(timeout=5)


def start_sshd_with_tmpfs(
    image: str, keypair: KeyPair, container_name: str, labels: dict[str, str], size: str = "1m"
) -> Endpoint:
    """An sshd (published on 127.0.0.1) whose ``/small`` is a tmpfs of ``size``."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    host_key = lab.generate_host_key()
    container = (
        DockerContainer(image)
        .with_name(container_name)
        .with_env("APSSH_HOST_KEY", host_key.private_pem)
        .with_env("APSSH_AUTHORIZED_KEYS", keypair.public_key)
        .with_kwargs(labels=labels, hostname="small")
        .waiting_for(LogMessageWaitStrategy(lab.SSHD_READY))
    )
    container.ports = {"22/tcp": (lab.LOCALHOST,)}
    container.tmpfs = {"/small": f"size={size}"}
    container.start()
    wrapped = container.get_wrapped_container()
    wrapped.reload()
    bindings = wrapped.attrs["NetworkSettings"]["Ports"]["22/tcp"]
    port = int(next(b["HostPort"] for b in bindings if b["HostIp"] == lab.LOCALHOST))
    return Endpoint("small", lab.LOCALHOST, port, container, host_key.public_line)
