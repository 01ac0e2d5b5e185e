"""What a topology is: its error, keys, endpoints, and the names and labels it goes by.

Pure values: no Docker call is made here (Topology.exec only calls a method of the
container object it was given).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apssh_cli.errors import ApsshError

LABEL_LAB = "org.apssh-cli.lab"  # the topology's name
LABEL_ROLE = "org.apssh-cli.role"  # bastion | node | direct | extra
LABEL_KIND = "org.apssh-cli.kind"  # lab (outlives its command) | test (made by the test harness)
LABEL_OWNER = "org.apssh-cli.owner"  # set by the test harness: the process that made it
LABEL_IMAGE = "org.apssh-cli.image"  # set on the image by build-image

SSHD_READY = "Server listening on"  # sshd -e logs this once it accepts connections
LOCALHOST = "127.0.0.1"
DEFAULT_USER = "root"
DEFAULT_NODES = 3
KNOWN_HOSTS_POLICY = "accept-new"
LAB_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")  # what Docker accepts in container names


class LabError(ApsshError):
    """A local topology could not be started, inspected or removed.

    Args:
        message: what went wrong.
        hint: what the user can do about it (printed by the CLI on its own line).
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message)


@dataclass(frozen=True)
class KeyPair:
    """A client key pair on disk (ed25519, no passphrase)."""

    private_path: Path
    public_path: Path

    @property
    def public_key(self) -> str:
        """The public key line, as it goes into authorized_keys."""
        return self.public_path.read_text().strip()


@dataclass(frozen=True)
class HostKey:
    """An sshd host key: the private half goes into the container, the public one to known_hosts."""

    private_pem: str
    public_line: str  # "ssh-ed25519 AAAA..."


@dataclass(frozen=True)
class Endpoint:
    """One sshd as a client reaches it.

    ``host`` and ``port`` are 127.0.0.1 and the published port, or, for a node
    behind the bastion, its network alias and 22. ``container`` is the
    testcontainers object (``.get_wrapped_container()`` gives docker-py's).
    """

    name: str
    host: str
    port: int
    container: Any = field(compare=False, repr=False)
    host_key: str = field(default="", compare=False, repr=False)

    @property
    def known_hosts_name(self) -> str:
        """The host as known_hosts names it: ``[host]:port`` unless the port is 22."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


@dataclass(frozen=True)
class Topology:
    """A running topology and the files that describe it to a client."""

    name: str
    state_dir: Path
    keypair: KeyPair
    bastion: Endpoint
    internal: list[Endpoint]
    direct: list[Endpoint]
    network: str
    known_hosts: Path
    inventory: Path
    user: str = DEFAULT_USER

    @property
    def endpoints(self) -> list[Endpoint]:
        """Every server of the topology, bastion first."""
        return [self.bastion, *self.internal, *self.direct]

    def exec(self, endpoint: Endpoint, cmd: str) -> tuple[int, str]:
        """Run ``sh -c cmd`` in the endpoint's container (docker exec); return (rc, output)."""
        return exec_in(endpoint, cmd)


def exec_in(endpoint: Endpoint, cmd: str) -> tuple[int, str]:
    """Run ``sh -c cmd`` in the endpoint's container; return (rc, stdout and stderr)."""
    container = endpoint.container
    wrapped = (
        container.get_wrapped_container()
        if hasattr(container, "get_wrapped_container")
        else container
    )
    rc, output = wrapped.exec_run(["sh", "-c", cmd])
    return int(rc), output.decode(errors="replace")


def check_name(name: str) -> None:
    """Refuse a lab name Docker would not take in a container name.

    Raises:
        LabError: the name holds other characters than letters, digits, ``_ . -``.
    """
    if not LAB_NAME.fullmatch(name):
        raise LabError(
            f"invalid lab name {name!r}",
            hint="use letters, digits, '_', '.' and '-', starting with a letter or digit",
        )
