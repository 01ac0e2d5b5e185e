"""Container fixtures: real OpenSSH servers in Docker, a bastion, and private nodes behind it.

Session-scoped (one topology per pytest process):

- ``ssh_keypair``: a throwaway ed25519 client key (``.private_path``, ``.public_path``);
- ``topology``: 3 nodes published on 127.0.0.1 (``.direct``), a bastion (``.bastion``),
  2 nodes reachable only through it by network alias (``.internal``), plus
  ``.known_hosts``, ``.inventory`` (TOML) and ``.exec(endpoint, cmd) -> (rc, output)``;

and function-scoped ``sshd_factory``: extra published servers on demand (a given host
key, a given port), for host-key changes and unreachable hosts.

Everything is named and labelled after this session (``apssh-t<pid>-<random>-*``), so
that sessions running at the same time on one engine never meet. Cleanup: fixture
finalizers, then a label sweep at session end and at exit (in this process only, not
in a fork of it); a session killed outright is swept by the next one, once its owner
process (``harness.owner_token``: machine, PID namespace, pid and start time) is known to
be gone, so a live session elsewhere (another PID namespace, another machine on the
same engine) is never swept. Without an engine, fixtures fail with a message naming
``bash docker/engine``: they never skip.

Function-scoped ``lab_name``: a name for a real lab (``apssh lab up --name``) that
carries this process's owner token, so that the next session can sweep it too.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# before anything imports testcontainers: its Ryuk reaper cannot be pulled here
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TC_HOST", "127.0.0.1")

import pytest

from apssh_cli import lab
from apssh_cli.lab import Endpoint, HostKey, KeyPair, LabError, Topology
from tests.integration import harness

SESSION_LAB = f"t{os.getpid()}-{secrets.token_hex(3)}"
SESSION_PID = os.getpid()  # a fork inherits the exit hooks, not the topology
INTERNAL_NODES = 2
DIRECT_NODES = 3

_started = False  # whether this session made anything to sweep


def _fail(exc: LabError) -> None:
    message = exc.message + (f"\n{exc.hint}" if exc.hint else "")
    pytest.fail(message, pytrace=False)


def _sweep_session() -> None:
    global _started
    if not _started or os.getpid() != SESSION_PID:
        return
    _started = False
    # if the engine went away, the next session's orphan sweep removes the rest
    with contextlib.suppress(LabError):
        lab.remove_topology(SESSION_LAB)


atexit.register(_sweep_session)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # also when interrupted (Ctrl-C) before the fixtures' finalizers ran
    _sweep_session()


@pytest.fixture(scope="session")
def docker_engine() -> Any:
    """A docker-py client to an engine that answers; sweeps orphans of dead sessions."""
    try:
        client = lab.docker_client()
        harness.sweep_orphans(client)
        harness.sweep_orphan_test_labs(client)
    except LabError as exc:
        _fail(exc)
    return client


@pytest.fixture
def lab_name(docker_engine: Any) -> Iterator[str]:
    """A unique name for a lab a test starts with `apssh lab up`; removed after the test."""
    name = f"tl-{harness.owner_token()}-{secrets.token_hex(3)}"
    try:
        yield name
    finally:
        # whatever the test did, this lab does not outlive it
        lab.remove_topology(name, docker_engine)


@pytest.fixture(scope="session")
def sshd_image(docker_engine: Any) -> str:
    """The sshd image of the package's files (apssh_cli/lab/sshd_image/), built now when missing."""
    try:
        return lab.ensure_image(docker_engine)
    except LabError as exc:
        _fail(exc)
        raise


@pytest.fixture(scope="session")
def ssh_keypair(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    """A throwaway ed25519 client key pair, without passphrase."""
    return lab.generate_keypair(tmp_path_factory.mktemp("client-key") / "id_ed25519")


@pytest.fixture(scope="session")
def topology(
    docker_engine: Any,
    sshd_image: str,
    ssh_keypair: KeyPair,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Topology]:
    """The running test topology: direct nodes, a bastion, internal nodes behind it."""
    global _started
    _started = True
    try:
        topo = lab.start_topology(
            SESSION_LAB,
            tmp_path_factory.mktemp("topology"),
            nodes=INTERNAL_NODES,
            direct=DIRECT_NODES,
            kind="test",
            keypair=ssh_keypair,
            image=sshd_image,
            labels=harness.owner_labels(),
        )
    except LabError as exc:
        _fail(exc)
        raise
    try:
        yield topo
    finally:
        lab.remove_topology(SESSION_LAB, docker_engine)


class SshdFactory:
    """Starts extra published sshd containers for one test, and removes them after it."""

    def __init__(self, image: str, keypair: KeyPair, test_id: str) -> None:
        self._image = image
        self._keypair = keypair
        self._test_id = test_id
        self._endpoints: list[Endpoint] = []

    def __call__(
        self, *, host_key: HostKey | None = None, port: int | None = None, name: str = "extra"
    ) -> Endpoint:
        """Start a server published on 127.0.0.1 (``port``, or a random one).

        Args:
            host_key: its host key (``new_host_key()``); a fresh one when None.
            port: a host port to reuse, e.g. one a stopped server had.
            name: its host name inside the container.

        Returns:
            The endpoint; ``endpoint.host_key`` is the public key line for known_hosts.
        """
        global _started
        _started = True
        serial = f"{self._test_id}-{len(self._endpoints)}"
        try:
            endpoint = lab.start_sshd(
                image=self._image,
                container_name=f"apssh-{SESSION_LAB}-x{serial}",
                node_name=name,
                labels={
                    **lab.lab_labels(SESSION_LAB, "test", harness.owner_labels()),
                    lab.LABEL_ROLE: "extra",
                },
                authorized_key=self._keypair.public_key,
                host_key=host_key,
                port=port,
            )
        except LabError as exc:
            _fail(exc)
            raise
        self._endpoints.append(endpoint)
        return endpoint

    @staticmethod
    def new_host_key(kind: str = "ed25519") -> HostKey:
        """A fresh host key, ed25519 or rsa: the server's only one (``.public_line``
        goes into known_hosts)."""
        return lab.generate_host_key(kind)

    @staticmethod
    def known_hosts_line(endpoint: Endpoint) -> str:
        """The known_hosts line a client needs for endpoint."""
        return lab.known_hosts_text([endpoint])

    def stop(self, endpoint: Endpoint) -> None:
        """Remove the endpoint's container: its port then refuses connections."""
        endpoint.container.stop()

    def close(self) -> None:
        for endpoint in self._endpoints:
            # some were removed already by stop()
            with contextlib.suppress(Exception):
                endpoint.container.stop()
        self._endpoints.clear()


@pytest.fixture
def sshd_factory(
    docker_engine: Any, sshd_image: str, ssh_keypair: KeyPair, request: pytest.FixtureRequest
) -> Iterator[SshdFactory]:
    """Start extra sshd servers on demand; they are removed at the end of the test."""
    factory = SshdFactory(sshd_image, ssh_keypair, secrets.token_hex(2))
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def known_hosts_file(tmp_path: Path) -> Path:
    """An empty known_hosts file a test can fill (for the sshd_factory servers)."""
    path = tmp_path / "known_hosts"
    path.write_text("")
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty HOME for an `apssh` process: no ~/.ssh/config, no known_hosts, no agent."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def ssh_agent(tmp_path: Path, ssh_keypair: KeyPair) -> Any:
    """A real ssh-agent holding the session's key; yields its socket path."""
    if shutil.which("ssh-agent") is None:
        pytest.fail("ssh-agent is needed (Debian: openssh-client)", pytrace=False)
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            subprocess.run(["sleep", "0.05"], check=True)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(
            ["ssh-add", str(ssh_keypair.private_path)], env=env, check=True, capture_output=True
        )
        yield str(sock)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(10)
