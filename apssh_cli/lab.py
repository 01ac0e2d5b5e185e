"""Local topologies of OpenSSH servers in Docker, shared by the test harness and `apssh lab`.

A topology is a bastion published on 127.0.0.1, nodes on a private network
reachable only through it (by network alias), and, for the tests, a few nodes
published directly. Keys (a client key pair and one host key per server) are
generated here, so the known_hosts file and the TOML inventory are written
without scanning anything.

Every container and network carries the label ``org.apssh-cli.lab=<name>``:
removal goes by label, so it works even when the state files are gone. A test
topology also names its owner process (see owner_token): a later session sweeps it
only once that very process is gone, never one of another machine or PID namespace.
The
Docker client, testcontainers and asyncssh are imported only when a topology
is started or inspected (the ``lab`` extra); importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import re
import socket
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apssh_cli.errors import ApsshError

LABEL_LAB = "org.apssh-cli.lab"  # the topology's name
LABEL_ROLE = "org.apssh-cli.role"  # bastion | node | direct | extra
LABEL_KIND = "org.apssh-cli.kind"  # lab (outlives its command) | test (swept when its owner dies)
LABEL_OWNER = "org.apssh-cli.owner"  # owner_token() of the process that made a test topology
LABEL_IMAGE = "org.apssh-cli.image"  # set on the image by docker/build-image

IMAGE_REPOSITORY = "apssh-cli-sshd"
SSHD_READY = "Server listening on"  # sshd -e logs this once it accepts connections
LOCALHOST = "127.0.0.1"
DEFAULT_USER = "root"
DEFAULT_NODES = 3
KNOWN_HOSTS_POLICY = "accept-new"
LAB_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")  # what Docker accepts in container names
ENGINE_HINT = (
    "run `bash docker/engine` (Debian, as root: installs and starts dockerd), "
    "or start Docker Desktop / your distribution's dockerd"
)


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


# ---------------------------------------------------------------- engine and image


_clients: dict[str, Any] = {}  # one client per DOCKER_HOST for the whole process


def docker_client() -> Any:
    """Return a docker-py client to an engine that answers (shared by this process).

    Raises:
        LabError: the lab extra is not installed, or no engine answers.
    """
    try:
        docker = _docker_module()
    except ImportError as exc:
        raise LabError(
            "the Docker client library is not installed",
            hint="pip install 'apssh-cli[lab]'",
        ) from exc
    where = os.environ.get("DOCKER_HOST", "")
    failure = ""
    # a client that failed half-way leaks its socket: drop it here, without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            client = _clients.get(where) or docker.from_env()
            client.ping()
        except docker.errors.DockerException as exc:
            failure = _first_line(exc)
            _clients.pop(where, None)
            client = None
        if failure:
            gc.collect()
    if client is None:
        raise LabError(f"no Docker engine answers ({failure})", hint=ENGINE_HINT)
    _clients[where] = client
    return client


def docker_dir() -> Path | None:
    """Locate docker/ (with build-image): $APSSH_DOCKER_DIR, else next to the package."""
    candidates = []
    if os.environ.get("APSSH_DOCKER_DIR"):
        candidates.append(Path(os.environ["APSSH_DOCKER_DIR"]))
    # a checkout or an editable install: the package sits next to docker/
    candidates.append(Path(__file__).resolve().parent.parent / "docker")
    for candidate in candidates:
        if (candidate / "build-image").is_file():
            return candidate
    return None


def ensure_image(client: Any | None = None) -> str:
    """Return the name of the sshd image, building it first when needed.

    $APSSH_LAB_IMAGE wins; otherwise docker/build-image builds (or reuses) the
    image of the current docker/ contents. Without docker/ (a package installed
    from an index), the newest image that build-image made earlier is used.

    Raises:
        LabError: no image and no docker/ to build one, or the build failed.
    """
    if os.environ.get("APSSH_LAB_IMAGE"):
        return os.environ["APSSH_LAB_IMAGE"]
    here = docker_dir()
    if here is not None:
        proc = subprocess.run(
            ["bash", str(here / "build-image")],
            capture_output=True,
            text=True,
            check=False,
        )
        lines = proc.stdout.split()
        if proc.returncode != 0 or not lines:
            raise LabError(
                f"docker/build-image failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}",
                hint=f"run `bash {here / 'build-image'}` to see why",
            )
        return lines[-1]
    client = client or docker_client()
    images = client.images.list(filters={"label": f"{LABEL_IMAGE}=sshd"})
    if not images:
        raise LabError(
            "the sshd image is not built and docker/ is not next to the package",
            hint="run `bash docker/build-image` in an apssh-cli checkout, "
            "or set APSSH_DOCKER_DIR to its docker/ directory",
        )
    newest = max(images, key=lambda image: image.attrs.get("Created", ""))
    tags = [tag for tag in newest.tags if tag.startswith(IMAGE_REPOSITORY)]
    return str(tags[0] if tags else newest.id)


# ---------------------------------------------------------------- keys and files


def generate_keypair(private_path: Path) -> KeyPair:
    """Write a fresh ed25519 client key pair (no passphrase) at private_path and .pub."""
    import asyncssh

    key = asyncssh.generate_private_key("ssh-ed25519", comment="apssh-lab")
    private_path.parent.mkdir(parents=True, exist_ok=True)
    private_path.write_bytes(key.export_private_key("openssh"))
    private_path.chmod(0o600)
    public_path = private_path.with_name(private_path.name + ".pub")
    public_path.write_bytes(key.export_public_key("openssh"))
    return KeyPair(private_path, public_path)


def generate_host_key() -> HostKey:
    """Return a fresh ed25519 host key."""
    import asyncssh

    key = asyncssh.generate_private_key("ssh-ed25519")
    public = key.export_public_key("openssh").decode().split()
    return HostKey(key.export_private_key("openssh").decode(), " ".join(public[:2]))


def known_hosts_text(endpoints: Iterable[Endpoint]) -> str:
    """known_hosts lines for endpoints, as a client names them."""
    return "".join(f"{ep.known_hosts_name} {ep.host_key}\n" for ep in endpoints)


def inventory_text(
    *,
    bastion: Endpoint,
    internal: list[Endpoint],
    direct: list[Endpoint],
    identity_file: Path,
    known_hosts: Path,
    user: str = DEFAULT_USER,
    comment: str = "",
) -> str:
    """The TOML inventory of a topology: groups bastions, nodes (behind it) and direct."""
    out = [f"# {line}\n" for line in comment.splitlines()]
    out += [
        "[all.vars]\n",
        f"user = {_toml_str(user)}\n",
        f"identity_file = {_toml_str(str(identity_file))}\n",
        f"known_hosts = {{ policy = {_toml_str(KNOWN_HOSTS_POLICY)}, "
        f"file = {_toml_str(str(known_hosts))} }}\n",
        "\n",
        f"[bastions.hosts.{bastion.name}]\n",
        f"hostname = {_toml_str(bastion.host)}\n",
        f"port = {bastion.port}\n",
    ]
    if internal:
        out += ["\n[nodes.vars]\n", f"gateway = {_toml_str(bastion.name)}\n"]
        out += [f"[nodes.hosts.{ep.name}]\n" for ep in internal]
    for ep in direct:
        out += [f"\n[direct.hosts.{ep.name}]\n", f"hostname = {_toml_str(ep.host)}\n"]
        out += [f"port = {ep.port}\n"]
    return "".join(out)


def _toml_str(value: str) -> str:
    # a TOML basic string: JSON's escapes are valid TOML escapes
    return json.dumps(value)


# ---------------------------------------------------------------- containers


def lab_labels(name: str, kind: str) -> dict[str, str]:
    """Labels that mark a topology's containers and network."""
    labels = {LABEL_LAB: name, LABEL_KIND: kind}
    if kind == "test":
        labels[LABEL_OWNER] = owner_token()
    return labels


# ---------------------------------------------------------------- owners


_OWNER_TOKEN = re.compile(r"(?P<scope>[0-9a-f]{10})-(?P<pid>[0-9]+)-(?P<start>[0-9]+)")


def owner_token(pid: int | None = None) -> str:
    """Name a process so that another one can tell, later, whether it is gone.

    The token is ``<scope>-<pid>-<start>``, usable in a label and in a container
    name. ``scope`` hashes the host name, the boot id and the PID namespace: a pid
    means something only there (a session in a container with the host's name, or
    on another machine sharing the engine, has another scope). ``start`` is the
    process's start time from /proc, so that a reused pid is not taken for the
    owner ("0" where /proc is missing).

    Args:
        pid: the process; this one when None.
    """
    pid = os.getpid() if pid is None else pid
    return f"{_owner_scope()}-{pid}-{_start_time(pid)}"


def is_owner_gone(token: str) -> bool:
    """Whether the process named by owner_token is known to be gone.

    False when unsure: a token of another scope (machine, boot or PID
    namespace), or one this module did not write (an older format).
    """
    match = _OWNER_TOKEN.fullmatch(token)
    if match is None or match["scope"] != _owner_scope():
        return False
    pid = int(match["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, as another user
    # alive: the owner itself, unless the pid now names a younger process
    return match["start"] != "0" and _start_time(pid) not in ("0", match["start"])


def _owner_scope() -> str:
    boot_id = _read_or_empty(lambda: Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    pid_namespace = _read_or_empty(lambda: os.readlink("/proc/self/ns/pid"))
    scope = "\0".join([socket.gethostname(), boot_id, pid_namespace])
    return hashlib.sha1(scope.encode()).hexdigest()[:10]


def _read_or_empty(read: Callable[[], str]) -> str:
    try:
        return read()
    except OSError:  # no /proc: not Linux
        return ""


def _start_time(pid: int) -> str:
    # field 22 of /proc/PID/stat; the command name (field 2) may hold spaces and ")"
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "0"
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 and fields[19].isdigit() else "0"


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
        publish: publish port 22 on 127.0.0.1 (a random port unless ``port``).
        port: the host port to publish on, to reuse one a stopped server had.

    Returns:
        The endpoint: 127.0.0.1 and the published port, or node_name and 22.
    """
    _quiet_testcontainers()
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    host_key = host_key or generate_host_key()
    container = (
        DockerContainer(image)
        .with_name(container_name)
        .with_env("APSSH_HOST_KEY", host_key.private_pem)
        .with_env("APSSH_AUTHORIZED_KEYS", authorized_key)
        .with_kwargs(labels=labels, hostname=node_name)
        .waiting_for(LogMessageWaitStrategy(SSHD_READY))
    )
    if network is not None:
        container = container.with_network(network).with_network_aliases(node_name)
    if publish:
        # docker-py binding syntax: (ip,) is a random port on ip, (ip, port) a fixed one;
        # testcontainers' with_bind_ports cannot restrict the interface
        binding = (LOCALHOST,) if port is None else (LOCALHOST, port)
        ports: dict[str, Any] = {"22/tcp": binding}
        container.ports = ports
    try:
        container.start()
    except Exception as exc:
        # only what this call created: a name conflict means the name is someone else's
        _remove_created(container)
        raise LabError(f"container {container_name} did not start: {_first_line(exc)}") from exc
    if not publish:
        return Endpoint(node_name, node_name, 22, container, host_key.public_line)
    wrapped = container.get_wrapped_container()
    wrapped.reload()
    bindings = wrapped.attrs["NetworkSettings"]["Ports"]["22/tcp"]
    host_port = int(next(b["HostPort"] for b in bindings if b["HostIp"] == LOCALHOST))
    return Endpoint(node_name, LOCALHOST, host_port, container, host_key.public_line)


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
) -> Topology:
    """Start a bastion, ``nodes`` nodes behind it and ``direct`` published nodes.

    Writes the client key pair (unless given), known_hosts and the inventory
    under state_dir. On any failure, whatever was started is removed.

    Args:
        name: the topology's name, unique on the engine (containers are apssh-<name>-*).
        state_dir: where the generated files go.
        nodes: internal nodes node1..nodeN, reachable only through the bastion.
        direct: published nodes direct1..directN (the tests use them).
        kind: "lab" (outlives this process) or "test" (swept once its owner died).
        keypair: the client key pair; generated in state_dir when None.
        inventory: where to write the inventory; state_dir/inventory.toml when None.
        image: the sshd image; ensure_image() when None.

    Raises:
        LabError: no engine, no image, a name already in use, or a container failed.
    """
    _check_name(name)
    client = docker_client()
    # one start per name at a time on this machine: between the check and the
    # containers, another start of the same name would meet ours, and each one's
    # clean-up by label would remove the other's
    with _name_lock(name):
        _refuse_if_up(name, client)
        remove_topology(name, client)  # a network left over by an interrupted run
        image = image or ensure_image(client)
        state_dir.mkdir(parents=True, exist_ok=True)
        keypair = keypair or generate_keypair(state_dir / "id_ed25519")
        labels = lab_labels(name, kind)
        prefix = f"apssh-{name}"
        try:
            network = _create_network(prefix, labels)
            specs: list[tuple[str, str, bool]] = [("bastion", "bastion", True)]
            specs += [(f"node{i}", "node", False) for i in range(1, nodes + 1)]
            specs += [(f"direct{i}", "direct", True) for i in range(1, direct + 1)]

            def start(spec: tuple[str, str, bool]) -> Endpoint:
                node_name, role, publish = spec
                return start_sshd(
                    image=image,
                    container_name=f"{prefix}-{node_name}",
                    node_name=node_name,
                    labels={**labels, LABEL_ROLE: role},
                    authorized_key=keypair.public_key,
                    network=network,
                    publish=publish,
                )

            # containers start in parallel: the engine, not this process, is the bottleneck
            with ThreadPoolExecutor(max_workers=min(8, len(specs))) as pool:
                endpoints = list(pool.map(start, specs))
        except _docker_module().errors.DockerException as exc:
            remove_topology(name, client)
            raise LabError(f"could not start topology {name!r}: {_first_line(exc)}") from exc
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


def _check_name(name: str) -> None:
    if not LAB_NAME.fullmatch(name):
        raise LabError(
            f"invalid lab name {name!r}",
            hint="use letters, digits, '_', '.' and '-', starting with a letter or digit",
        )


def _refuse_if_up(name: str, client: Any) -> None:
    if find_containers(name, client):
        raise LabError(
            f"a lab named {name!r} is already up",
            hint=f"`apssh lab status --name {name}`, or `apssh lab down --name {name}`",
        )


def _create_network(prefix: str, labels: dict[str, str]) -> Any:
    _quiet_testcontainers()
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


def list_labs(kind: str, client: Any | None = None) -> dict[str, str]:
    """The topologies of a kind ("lab" or "test") on the engine.

    Returns:
        name -> owner token ("" when the topology has none), from containers and networks.
    """
    client = client or docker_client()
    selector = {"label": f"{LABEL_KIND}={kind}"}
    labs: dict[str, str] = {}
    # sparse: the listing alone, no inspection of objects that may vanish meanwhile
    for obj in [
        *client.containers.list(all=True, filters=selector, sparse=True),
        *client.networks.list(filters=selector),
    ]:
        labels = obj.attrs.get("Labels") or {}
        if labels.get(LABEL_LAB):
            labs[labels[LABEL_LAB]] = labels.get(LABEL_OWNER, "")
    return labs


def remove_topology(name: str, client: Any | None = None) -> tuple[int, int]:
    """Remove every container and network labelled with topology ``name``.

    Returns:
        (containers removed, networks removed).
    """
    client = client or docker_client()
    containers = find_containers(name, client)
    _each(containers, lambda c: c.remove(force=True, v=True))
    networks = client.networks.list(filters={"label": f"{LABEL_LAB}={name}"})
    _each(networks, lambda n: n.remove())
    return len(containers), len(networks)


def sweep_orphans(client: Any | None = None) -> list[str]:
    """Remove the test topologies whose owner process is known to be gone (is_owner_gone).

    Returns:
        The names of the topologies removed.
    """
    client = client or docker_client()
    owners = list_labs("test", client)
    orphans = sorted(name for name, owner in owners.items() if is_owner_gone(owner))
    for name in orphans:
        remove_topology(name, client)
    return orphans


def _each(objects: Iterable[Any], action: Callable[[Any], None]) -> None:
    not_found = _docker_module().errors.NotFound
    for obj in objects:
        # already gone: another sweep got there first
        with contextlib.suppress(not_found):
            action(obj)


def _remove_created(container: Any) -> None:
    from testcontainers.core.exceptions import ContainerStartException

    with contextlib.suppress(ContainerStartException, _docker_module().errors.DockerException):
        # ContainerStartException: nothing was created
        container.get_wrapped_container().remove(force=True, v=True)


def _docker_module() -> Any:
    # by name: mypy would otherwise take the repository's docker/ directory for it
    import importlib

    docker = importlib.import_module("docker")
    importlib.import_module("docker.errors")
    return docker


def _quiet_testcontainers() -> None:
    # Ryuk (testcontainers' reaper) cannot be pulled here, and a lab must outlive
    # its process anyway: we remove everything ourselves, by label.
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    os.environ.setdefault("TC_HOST", LOCALHOST)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


# ---------------------------------------------------------------- `apssh lab` state

STATE_FILE = "lab.json"  # what `apssh lab up` made, so that `down` removes exactly that


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
    import hashlib

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
    _check_name(name)
    client = docker_client()
    _refuse_if_up(name, client)
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


def lab_status(name: str) -> list[ContainerStatus]:
    """The containers of lab ``name``, bastion first."""
    rows = []
    for container in find_containers(name):
        labels = container.attrs.get("Config", {}).get("Labels") or {}
        bindings = (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).get("22/tcp")
        if bindings:
            address = f"{bindings[0]['HostIp']}:{bindings[0]['HostPort']}"
        else:
            address = container.attrs.get("Config", {}).get("Hostname", "?")
        rows.append(
            ContainerStatus(container.name, labels.get(LABEL_ROLE, "?"), container.status, address)
        )
    order = {"bastion": 0, "node": 1}
    return sorted(rows, key=lambda row: (order.get(row.role, 2), len(row.name), row.name))


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
