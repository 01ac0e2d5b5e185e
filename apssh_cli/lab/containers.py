"""Containers and networks of a topology: start them, find them, remove them by label.

A published server gets a fixed port chosen here (a free port of 127.0.0.1),
published explicitly: Docker keeps it across a restart of the container, where a
random published port would change and leave the inventory and known_hosts stale.
A lab's containers also restart with the engine (policy ``unless-stopped``).
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from apssh_cli.lab.client import docker_client, docker_module, first_line, quiet_testcontainers
from apssh_cli.lab.files import (
    generate_host_key,
    generate_keypair,
    inventory_text,
    known_hosts_text,
)
from apssh_cli.lab.image import ensure_image
from apssh_cli.lab.model import (
    DEFAULT_NODES,
    LABEL_KIND,
    LABEL_LAB,
    LABEL_ROLE,
    LOCALHOST,
    SSHD_READY,
    Endpoint,
    HostKey,
    KeyPair,
    LabError,
    Topology,
    check_name,
)

PORT_ATTEMPTS = 5  # a port picked free may be taken before Docker binds it: pick again
LAB_RESTART_POLICY = {"Name": "unless-stopped"}


def lab_labels(name: str, kind: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Labels that mark a topology's containers and network (plus ``extra`` ones)."""
    return {LABEL_LAB: name, LABEL_KIND: kind, **(extra or {})}


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def start_sshd(
    *,
    image: str,
    container_name: str,
    node_name: str,
    labels: dict[str, str],
    authorized_key: str,
    host_key: HostKey | None = None,
    network: Any | None = None,
    publish: bool = True,
    port: int | None = None,
    restart_policy: Mapping[str, str] | None = None,
) -> Endpoint:
    """Start one sshd container and wait until sshd listens.

    Args:
        image: the sshd image (see ensure_image).
        container_name: unique on the engine.
        node_name: the host name inside, and the alias on ``network``.
        labels: container labels (lab_labels plus a role).
        authorized_key: public key accepted for root and tester.
        host_key: the server's host key; a fresh one when None.
        network: a testcontainers Network to join, under the alias node_name.
        publish: publish port 22 on 127.0.0.1, on ``port`` or a free port chosen here;
            either way the port is fixed, and stays across a restart of the container.
        port: the host port to publish on, to reuse one a stopped server had.
        restart_policy: docker's restart policy (``{"Name": "unless-stopped"}``); none when None.

    Returns:
        The endpoint: 127.0.0.1 and the published port, or node_name and 22.

    Raises:
        LabError: the container did not start.
    """
    host_key = host_key or generate_host_key()
    attempts = PORT_ATTEMPTS if publish and port is None else 1
    for attempt in range(1, attempts + 1):
        host_port = (port or free_port()) if publish else None
        container = _container(image, container_name, node_name, authorized_key, host_key, network)
        kwargs: dict[str, Any] = {"labels": labels, "hostname": node_name}
        if restart_policy:
            kwargs["restart_policy"] = dict(restart_policy)
        container.with_kwargs(**kwargs)  # replaces earlier kwargs: all of them at once
        if host_port is not None:
            # docker-py's binding syntax: (ip, port) publishes on that address and port
            container.ports = {"22/tcp": (LOCALHOST, host_port)}
        try:
            container.start()
            break
        except Exception as exc:
            # only what this call created: a name conflict means the name is someone else's
            _remove_created(container)
            message = first_line(exc)
            if attempt < attempts and _is_port_taken(message):
                continue
            raise LabError(f"container {container_name} did not start: {message}") from exc
    if host_port is None:
        return Endpoint(node_name, node_name, 22, container, host_key.public_line)
    # docker-py's attrs date from creation: refresh them, so that they show the binding
    container.get_wrapped_container().reload()
    return Endpoint(node_name, LOCALHOST, host_port, container, host_key.public_line)


def _container(
    image: str,
    container_name: str,
    node_name: str,
    authorized_key: str,
    host_key: HostKey,
    network: Any | None,
) -> Any:
    quiet_testcontainers()
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    container = (
        DockerContainer(image)
        .with_name(container_name)
        .with_env("APSSH_HOST_KEY", host_key.private_pem)
        .with_env("APSSH_AUTHORIZED_KEYS", authorized_key)
        .waiting_for(LogMessageWaitStrategy(SSHD_READY))
    )
    if network is not None:
        container = container.with_network(network).with_network_aliases(node_name)
    return container


def _is_port_taken(message: str) -> bool:
    return "port is already allocated" in message or "address already in use" in message


def start_topology(
    name: str,
    state_dir: Path,
    *,
    nodes: int = DEFAULT_NODES,
    direct: int = 0,
    kind: str = "lab",
    keypair: KeyPair | None = None,
    inventory: Path | None = None,
    image: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> Topology:
    """Start a bastion, ``nodes`` nodes behind it and ``direct`` published nodes.

    Writes the client key pair (unless given), known_hosts and the inventory
    under state_dir. On any failure, whatever was started is removed.

    Args:
        name: the topology's name, unique on the engine (containers are apssh-<name>-*).
        state_dir: where the generated files go.
        nodes: internal nodes node1..nodeN, reachable only through the bastion.
        direct: published nodes direct1..directN (the tests use them).
        kind: "lab" (outlives this process, restarts with the engine) or "test".
        keypair: the client key pair; generated in state_dir when None.
        inventory: where to write the inventory; state_dir/inventory.toml when None.
        image: the sshd image; ensure_image() when None.
        labels: more labels for every container and the network (the test harness
            names its owner process there).

    Raises:
        LabError: no engine, no image, a name already in use, or a container failed.
    """
    check_name(name)
    client = docker_client()
    # one start per name at a time on this machine: between the check and the
    # containers, another start of the same name would meet ours, and each one's
    # clean-up by label would remove the other's
    with _name_lock(name):
        refuse_if_up(name, client)
        remove_topology(name, client)  # a network left over by an interrupted run
        image = image or ensure_image(client)
        state_dir.mkdir(parents=True, exist_ok=True)
        keypair = keypair or generate_keypair(state_dir / "id_ed25519")
        common = lab_labels(name, kind, labels)
        prefix = f"apssh-{name}"
        restart_policy = LAB_RESTART_POLICY if kind == "lab" else None
        try:
            network = _create_network(prefix, common)
            specs: list[tuple[str, str, bool]] = [("bastion", "bastion", True)]
            specs += [(f"node{i}", "node", False) for i in range(1, nodes + 1)]
            specs += [(f"direct{i}", "direct", True) for i in range(1, direct + 1)]

            def start(spec: tuple[str, str, bool]) -> Endpoint:
                node_name, role, publish = spec
                return start_sshd(
                    image=image,
                    container_name=f"{prefix}-{node_name}",
                    node_name=node_name,
                    labels={**common, LABEL_ROLE: role},
                    authorized_key=keypair.public_key,
                    network=network,
                    publish=publish,
                    restart_policy=restart_policy,
                )

            # containers start in parallel: the engine, not this process, is the bottleneck
            with ThreadPoolExecutor(max_workers=min(8, len(specs))) as pool:
                endpoints = list(pool.map(start, specs))
        except docker_module().errors.DockerException as exc:
            remove_topology(name, client)
            raise LabError(f"could not start topology {name!r}: {first_line(exc)}") from exc
        except BaseException:
            remove_topology(name, client)
            raise
        bastion, internal, published = (
            endpoints[0],
            endpoints[1 : nodes + 1],
            endpoints[nodes + 1 :],
        )
        known_hosts = state_dir / "known_hosts"
        known_hosts.write_text(known_hosts_text(endpoints))
        inventory = inventory or state_dir / "inventory.toml"
        inventory.write_text(
            inventory_text(
                bastion=bastion,
                internal=internal,
                direct=published,
                identity_file=keypair.private_path.resolve(),
                known_hosts=known_hosts.resolve(),
                comment=f"topology {name!r}, generated by apssh_cli.lab; removed with it",
            )
        )
        return Topology(
            name=name,
            state_dir=state_dir,
            keypair=keypair,
            bastion=bastion,
            internal=internal,
            direct=published,
            network=network.name,
            known_hosts=known_hosts,
            inventory=inventory,
        )


def refuse_if_up(name: str, client: Any) -> None:
    """Raise when topology ``name`` has containers on the engine.

    Raises:
        LabError: a lab of that name is up.
    """
    if find_containers(name, client):
        raise LabError(
            f"a lab named {name!r} is already up",
            hint=f"`apssh lab status --name {name}`, or `apssh lab down --name {name}`",
        )


def _create_network(prefix: str, labels: dict[str, str]) -> Any:
    quiet_testcontainers()
    from testcontainers.core.network import Network

    network = Network(docker_network_kw={"labels": labels})
    network.name = f"{prefix}-net"
    return network.create()


@contextlib.contextmanager
def _name_lock(name: str) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    digest = hashlib.sha1(name.encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"apssh-cli-lab-{digest}.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield


def find_containers(name: str, client: Any | None = None) -> list[Any]:
    """The docker-py containers of topology ``name`` (running or not)."""
    client = client or docker_client()
    # another process may remove one between the listing and its inspection
    containers: list[Any] = client.containers.list(
        all=True, filters={"label": f"{LABEL_LAB}={name}"}, ignore_removed=True
    )
    return containers


def find_networks(name: str, client: Any | None = None) -> list[Any]:
    """The docker-py networks of topology ``name``."""
    client = client or docker_client()
    networks: list[Any] = client.networks.list(filters={"label": f"{LABEL_LAB}={name}"})
    return networks


def list_labs(kind: str, client: Any | None = None) -> dict[str, dict[str, str]]:
    """The topologies of a kind ("lab" or "test") on the engine.

    Returns:
        name -> the labels of one of its containers or networks.
    """
    client = client or docker_client()
    selector = {"label": f"{LABEL_KIND}={kind}"}
    labs: dict[str, dict[str, str]] = {}
    # sparse: the listing alone, no inspection of objects that may vanish meanwhile
    for obj in [
        *client.containers.list(all=True, filters=selector, sparse=True),
        *client.networks.list(filters=selector),
    ]:
        labels = obj.attrs.get("Labels") or {}
        if labels.get(LABEL_LAB):
            labs[labels[LABEL_LAB]] = dict(labels)
    return labs


def remove_topology(name: str, client: Any | None = None) -> tuple[int, int]:
    """Remove every container and network labelled with topology ``name``.

    Returns:
        (containers removed, networks removed).
    """
    client = client or docker_client()
    containers = find_containers(name, client)
    _each(containers, lambda c: c.remove(force=True, v=True))
    networks = find_networks(name, client)
    _each(networks, lambda n: n.remove())
    return len(containers), len(networks)


def _each(objects: Iterable[Any], action: Callable[[Any], None]) -> None:
    not_found = docker_module().errors.NotFound
    for obj in objects:
        # already gone: another sweep got there first
        with contextlib.suppress(not_found):
            action(obj)


def _remove_created(container: Any) -> None:
    from testcontainers.core.exceptions import ContainerStartException

    with contextlib.suppress(ContainerStartException, docker_module().errors.DockerException):
        # ContainerStartException: nothing was created
        container.get_wrapped_container().remove(force=True, v=True)
