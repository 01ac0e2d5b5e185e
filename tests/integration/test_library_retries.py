"""connect_retries against real OpenSSH servers: a retry that succeeds, and a bounded give-up."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from typing import Any

import pytest

from apssh_cli.commands import Run
from apssh_cli.engine.job import SshJob
from apssh_cli.errors import UnreachableError
from apssh_cli.lab import KeyPair
from apssh_cli.output import CaptureFormatter, Formatter
from apssh_cli.ssh.node import SshNode, close_nodes

pytestmark = pytest.mark.integration

GUARD = 120  # a guard against a hang, not a timing assertion


class Events(CaptureFormatter):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []

    def connected(self, host: str) -> None:
        self.events.append("connected")

    def connect_failed(self, host: str, error: Exception) -> None:
        self.events.append(type(error).__name__)


class OnRecord(logging.Handler):
    """Calls ``action`` for every record whose message contains ``needle``."""

    def __init__(self, needle: str, action: Any) -> None:
        super().__init__(logging.DEBUG)
        self.needle = needle
        self.action = action
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.messages.append(message)
        if self.needle in message:
            self.action()


def refusing_port() -> socket.socket:
    """A bound socket that does not listen: connections to its port are refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def make_node(port: int, keypair: KeyPair, known_hosts: Path, formatter: Formatter) -> SshNode:
    return SshNode(
        "127.0.0.1",
        port=port,
        username="root",
        keys=[keypair.private_path],
        known_hosts="accept-new",
        known_hosts_file=known_hosts,
        ssh_config=None,
        label="late",
        formatter=formatter,
        verbose=True,
        connect_retries=3,
    )


def attach(handler: logging.Handler) -> Any:
    logger = logging.getLogger("apssh_cli")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.DEBUG)

    def detach() -> None:
        logger.removeHandler(handler)
        logger.setLevel(previous)

    return detach


def test_a_retry_reaches_a_server_that_came_up_late(
    sshd_factory: Any, ssh_keypair: KeyPair, known_hosts_file: Path
) -> None:
    sock = refusing_port()
    port = sock.getsockname()[1]
    started: list[Any] = []

    def start_server() -> None:
        # on the first "retry" line, blocking the loop: the server listens before retry 1
        if not started:
            sock.close()
            started.append(sshd_factory(port=port, name="late"))

    handler = OnRecord("retry 1 ", start_server)
    detach = attach(handler)
    events = Events()
    node = make_node(port, ssh_keypair, known_hosts_file, events)

    async def scenario() -> int:
        try:
            return await SshJob(node, Run("hostname")).co_run()
        finally:
            await close_nodes([node])

    try:
        assert asyncio.run(asyncio.wait_for(scenario(), GUARD)) == 0
    finally:
        detach()
        sock.close()
    attempts = [m for m in handler.messages if m.startswith("host=late connecting to")]
    assert len(attempts) == 2
    assert events.events == ["connected"]
    assert events.lines("late") == ["late"]


def test_retries_stop_after_the_given_number(ssh_keypair: KeyPair, known_hosts_file: Path) -> None:
    sock = refusing_port()
    handler = OnRecord("\0", lambda: None)
    detach = attach(handler)
    events = Events()
    node = make_node(sock.getsockname()[1], ssh_keypair, known_hosts_file, events)
    node.connect_retries = 2
    try:
        with pytest.raises(UnreachableError, match=r"cannot connect to 127\.0\.0\.1"):
            asyncio.run(asyncio.wait_for(node.connect(), GUARD))
    finally:
        detach()
        sock.close()
    attempts = [m for m in handler.messages if m.startswith("host=late connecting to")]
    retries = [m for m in handler.messages if " retry " in m]
    assert len(attempts) == 3
    assert [m.split(", ")[-1] for m in retries] == ["retry 1 in 0.5s", "retry 2 in 1.0s"]
    assert events.events == ["UnreachableError"]
