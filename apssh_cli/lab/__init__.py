"""The lab: local topologies of OpenSSH servers in Docker, behind `apssh lab` and the tests.

A topology is a bastion published on 127.0.0.1, nodes on a private network
reachable only through it (by network alias), and, for the tests, a few nodes
published directly. Keys (a client key pair and one host key per server) are
generated here, so the known_hosts file and the TOML inventory are written
without scanning anything. Every container and network carries the label
``org.apssh-cli.lab=<name>``: removal goes by label, so it works even when the
state files are gone.

Owns, by module:

- ``model``: names, labels, LabError, KeyPair, HostKey, Endpoint, Topology (pure values);
- ``client``: the docker-py client (one per engine address);
- ``image``: the sshd image, named after its files, built from the package data in
  ``sshd_image/`` (Dockerfile, sshd_config, entrypoint, build-image);
- ``files``: key pairs, host keys, known_hosts and inventory text;
- ``containers``: a topology's containers (fixed published ports) and networks: start,
  find, remove;
- ``state``: `apssh lab up|status|down`: lab.json, staleness checks, removal of files.

The test harness (owner tokens, orphan sweeps) lives in tests/integration/harness.py.

May import: docker and testcontainers (the ``lab`` extra; the only place that
does, and only when a topology is started or inspected: importing this package is
cheap), cryptography (for keys), ``apssh_cli.errors``. Never asyncssh (that is
``ssh/``), the engine or the CLI.
"""

from __future__ import annotations

from apssh_cli.lab.client import docker_client
from apssh_cli.lab.containers import (
    find_containers,
    find_networks,
    free_port,
    lab_labels,
    list_labs,
    remove_topology,
    start_sshd,
    start_topology,
)
from apssh_cli.lab.files import (
    generate_host_key,
    generate_keypair,
    inventory_text,
    known_hosts_text,
)
from apssh_cli.lab.image import IMAGE_REPOSITORY, ensure_image, image_context, image_name
from apssh_cli.lab.model import (
    DEFAULT_NODES,
    DEFAULT_USER,
    LAB_NAME,
    LABEL_IMAGE,
    LABEL_KIND,
    LABEL_LAB,
    LABEL_OWNER,
    LABEL_ROLE,
    LOCALHOST,
    SSHD_READY,
    Endpoint,
    HostKey,
    KeyPair,
    LabError,
    Topology,
    exec_in,
)
from apssh_cli.lab.state import (
    STATE_FILE,
    ContainerStatus,
    LabReport,
    Stale,
    check_startable,
    default_lab_name,
    default_state_dir,
    lab_down,
    lab_report,
    lab_status,
    lab_up,
    read_state,
)

__all__ = [
    "DEFAULT_NODES",
    "DEFAULT_USER",
    "IMAGE_REPOSITORY",
    "LABEL_IMAGE",
    "LABEL_KIND",
    "LABEL_LAB",
    "LABEL_OWNER",
    "LABEL_ROLE",
    "LAB_NAME",
    "LOCALHOST",
    "SSHD_READY",
    "STATE_FILE",
    "ContainerStatus",
    "Endpoint",
    "HostKey",
    "KeyPair",
    "LabError",
    "LabReport",
    "Stale",
    "Topology",
    "check_startable",
    "default_lab_name",
    "default_state_dir",
    "docker_client",
    "ensure_image",
    "exec_in",
    "find_containers",
    "find_networks",
    "free_port",
    "generate_host_key",
    "generate_keypair",
    "image_context",
    "image_name",
    "inventory_text",
    "known_hosts_text",
    "lab_down",
    "lab_labels",
    "lab_report",
    "lab_status",
    "lab_up",
    "list_labs",
    "read_state",
    "remove_topology",
    "start_sshd",
    "start_topology",
]
