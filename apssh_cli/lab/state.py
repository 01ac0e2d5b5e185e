"""`apssh lab` state: what `up` made (lab.json), what `status` checks, what `down` removes.

`status` compares what the files say with what runs: a container missing or not
running, a published port that differs from the inventory's or known_hosts', a
file gone. Each finding says how to fix it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apssh_cli.lab.client import docker_client
from apssh_cli.lab.containers import (
    find_containers,
    find_networks,
    refuse_if_up,
    remove_topology,
    start_topology,
)
from apssh_cli.lab.model import (
    DEFAULT_NODES,
    LABEL_ROLE,
    LOCALHOST,
    LabError,
    Topology,
    check_name,
)

STATE_FILE = "lab.json"  # what `apssh lab up` made, so that `down` removes exactly that
RECREATE = "recreate the lab: `apssh lab down`, then `apssh lab up`"


def default_state_dir() -> Path:
    """Where `apssh lab` keeps its files: $APSSH_LAB_DIR, else ./.lab."""
    return Path(os.environ.get("APSSH_LAB_DIR") or ".lab")


def default_lab_name(state_dir: Path) -> str:
    """The lab's name: the one recorded in state_dir, else one derived from its path.

    Deriving it from the directory keeps labs of different directories apart on a
    shared engine, and lets `down` find the containers if the files were lost.
    """
    state = read_state(state_dir)
    if state.get("name"):
        return str(state["name"])
    digest = hashlib.sha1(str(state_dir.resolve()).encode()).hexdigest()[:6]
    return f"lab-{digest}"


def read_state(state_dir: Path) -> dict[str, Any]:
    """The recorded state of the lab in state_dir ({} when there is none or it is unreadable)."""
    try:
        state = json.loads((state_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def lab_up(
    state_dir: Path, *, name: str, nodes: int = DEFAULT_NODES, inventory: Path | None = None
) -> Topology:
    """Start a lab (bastion + nodes) that outlives this process, and record it in state_dir.

    Raises:
        LabError: as check_startable, or the lab did not start.
    """
    if nodes < 1:
        raise LabError(f"a lab needs at least one node (got {nodes})")
    check_startable(state_dir, name)
    topology = start_topology(name, state_dir, nodes=nodes, kind="lab", inventory=inventory)
    files = [
        topology.keypair.private_path,
        topology.keypair.public_path,
        topology.known_hosts,
        topology.inventory,
    ]
    state = {
        "name": name,
        "network": topology.network,
        "inventory": str(topology.inventory.resolve()),
        "known_hosts": str(topology.known_hosts.resolve()),
        "files": [str(path.resolve()) for path in files],
        "containers": [ep.container.get_wrapped_container().name for ep in topology.endpoints],
    }
    (state_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
    return topology


def check_startable(state_dir: Path, name: str) -> None:
    """Raise the error lab_up would raise before it starts anything (nothing when it can start).

    Raises:
        LabError: no engine, an invalid name, a lab of that name already up, or
            state_dir holding the files of another lab that is up (they would be
            overwritten, and that lab would lose its inventory and key).
    """
    check_name(name)
    client = docker_client()
    refuse_if_up(name, client)
    recorded = str(read_state(state_dir).get("name") or "")
    if recorded and recorded != name and find_containers(recorded, client):
        raise LabError(
            f"{state_dir} holds the files of lab {recorded!r}, which is up",
            hint=f"take it down first (`apssh lab down --dir {state_dir}`), or use another --dir",
        )


@dataclass(frozen=True)
class ContainerStatus:
    """One container of a lab, as `apssh lab status` shows it."""

    name: str
    role: str
    status: str
    address: str  # "127.0.0.1:PORT" when published, else the network alias
    port: int | None = None  # the published port, when there is one


@dataclass(frozen=True)
class Stale:
    """Something that keeps the lab from working as its files say, and how to fix it."""

    what: str
    fix: str


@dataclass(frozen=True)
class LabReport:
    """What `apssh lab status` shows: the containers, then what is stale."""

    name: str
    containers: list[ContainerStatus]
    stale: list[Stale] = field(default_factory=list)
    inventory: Path | None = None

    @property
    def is_up(self) -> bool:
        """Whether any container of the lab exists."""
        return bool(self.containers)

    @property
    def is_ok(self) -> bool:
        """Whether the lab is up and nothing is stale."""
        return self.is_up and not self.stale


def lab_status(name: str) -> list[ContainerStatus]:
    """The containers of lab ``name``, bastion first."""
    return _statuses(find_containers(name))


def _statuses(containers: list[Any]) -> list[ContainerStatus]:
    rows = []
    for container in containers:
        labels = container.attrs.get("Config", {}).get("Labels") or {}
        port = _published_port(container)
        address = (
            f"{LOCALHOST}:{port}"
            if port is not None
            else container.attrs.get("Config", {}).get("Hostname", "?")
        )
        rows.append(
            ContainerStatus(
                container.name, labels.get(LABEL_ROLE, "?"), container.status, address, port
            )
        )
    order = {"bastion": 0, "node": 1}
    return sorted(rows, key=lambda row: (order.get(row.role, 2), len(row.name), row.name))


def _published_port(container: Any) -> int | None:
    # the live binding when running; the configured one otherwise (a stopped
    # container has none live, and a fixed port comes back on start)
    live = (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).get("22/tcp")
    configured = (container.attrs.get("HostConfig", {}).get("PortBindings") or {}).get("22/tcp")
    for bindings in (live, configured):
        for binding in bindings or []:
            if binding.get("HostIp") == LOCALHOST and str(binding.get("HostPort", "")).isdigit():
                return int(binding["HostPort"])
    return None


def lab_report(state_dir: Path, name: str) -> LabReport:
    """Check lab ``name`` against the files `apssh lab up` wrote in state_dir.

    Stale: a recorded container missing or not running, the network missing, a
    file missing, the bastion published on another port than the inventory's or
    known_hosts' (a lab made before ports were fixed, restarted by Docker).
    """
    client = docker_client()
    containers = find_containers(name, client)
    rows = _statuses(containers)
    state = read_state(state_dir)
    if not rows or state.get("name") not in (None, name):
        # not up, or state_dir belongs to another lab: nothing to compare with
        return LabReport(name, rows)
    stale: list[Stale] = []
    present = {row.name for row in rows}
    for missing in [c for c in state.get("containers", []) if c not in present]:
        stale.append(Stale(f"container {missing} is missing", RECREATE))
    for row in rows:
        if row.status != "running":
            stale.append(Stale(f"{row.name} is {row.status}", f"`docker start {row.name}`"))
    if state.get("network") and not find_networks(name, client):
        stale.append(Stale(f"network {state['network']} is missing", RECREATE))
    for path in state.get("files", []):
        if not Path(path).exists():
            stale.append(Stale(f"{path} is missing", RECREATE))
    inventory = Path(state["inventory"]) if state.get("inventory") else None
    bastion = next((row for row in rows if row.role == "bastion"), None)
    if bastion is not None and bastion.port is not None:
        stale += _port_mismatches(bastion, inventory, state.get("known_hosts"))
    return LabReport(name, rows, stale, inventory)


def _port_mismatches(
    bastion: ContainerStatus, inventory: Path | None, known_hosts: str | None
) -> list[Stale]:
    stale = []
    if inventory is not None and inventory.exists():
        try:
            data = tomllib.loads(inventory.read_text())
            said = data["bastions"]["hosts"]["bastion"]["port"]
        except (OSError, ValueError, KeyError, TypeError):
            said = None
        if said != bastion.port:
            stale.append(
                Stale(
                    f"the bastion is published on {bastion.address}, "
                    f"but {inventory} says port {said}",
                    RECREATE,
                )
            )
    if known_hosts and Path(known_hosts).exists():
        names = {line.split()[0] for line in Path(known_hosts).read_text().splitlines() if line}
        if f"[{LOCALHOST}]:{bastion.port}" not in names:
            stale.append(Stale(f"{known_hosts} has no host key for {bastion.address}", RECREATE))
    return stale


def lab_down(state_dir: Path, name: str) -> tuple[int, int, int]:
    """Remove lab ``name``'s containers and network, and the files `lab_up` wrote.

    Returns:
        (containers, networks, files) removed.
    """
    containers, networks = remove_topology(name)
    state = read_state(state_dir)
    files = 0
    if state.get("name") == name:
        for path in [*state.get("files", []), str(state_dir / STATE_FILE)]:
            try:
                Path(path).unlink()
                files += 1
            except FileNotFoundError:
                pass
        with contextlib.suppress(OSError):
            state_dir.rmdir()  # only when nothing else was put there
    return containers, networks, files
