"""SshNodes on the test topology, as the library tests build them."""

from __future__ import annotations

from apssh_cli.lab import Endpoint, KeyPair, Topology
from apssh_cli.output import CaptureFormatter, Formatter
from apssh_cli.ssh.node import SshNode


def make_node(
    topology: Topology,
    keypair: KeyPair,
    endpoint: Endpoint,
    formatter: Formatter | None = None,
    gateway: SshNode | None = None,
) -> SshNode:
    """A node of the topology: root, the session's key, strict host keys, no ssh_config."""
    return SshNode(
        endpoint.host,
        port=endpoint.port,
        username="root",
        keys=[keypair.private_path],
        known_hosts="strict",
        known_hosts_file=topology.known_hosts,
        ssh_config=None,
        gateway=gateway,
        label=endpoint.name,
        formatter=formatter if formatter is not None else CaptureFormatter(),
    )
