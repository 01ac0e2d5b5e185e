"""What every benchmark scenario shares: a fleet of sshd containers, delay proxies, paired runs.

A scenario script (bench_*.py) starts a :class:`Fleet` (sshd containers from the
project's image via apssh_cli.lab, plus one delay proxy process in front of every
published server), writes an inventory and an OpenSSH client config for the hosts
it needs, and measures its :class:`Tool` s side by side with :func:`paired_runs`:
in each round every tool runs once, in an order that rotates from round to round,
so that a load spike on this shared machine hits all of them alike. Ratios are
computed per round (apssh / peer), then their median is reported.

Hosts are names in an inventory; several names may stand for the same container
(another port of the same proxy, or another inventory name for the same address):
1,000 hosts need not be 1,000 containers. The server's CPU per connection is the
same either way.

Results go to benchmarks/results/raw/<scenario>.json (report.py assembles them).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TC_HOST", "127.0.0.1")

from apssh_cli import lab

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
RAW = RESULTS / "raw"
ONE_WAY_DELAY = 0.025  # 50 ms round trip
CONNECT_TIMEOUT = 120  # seconds
USER = "root"  # the image's root has /bin/sh and no rc files: no work at login


def quick() -> bool:
    """BENCH_QUICK=1: fewer rounds and smaller sizes, to develop the scripts."""
    return os.environ.get("BENCH_QUICK", "") not in ("", "0")


# ---------------------------------------------------------------- the machine


def machine() -> dict[str, Any]:
    """What the figures were measured on (quoted next to them)."""
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram_gib = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        meminfo = Path("/proc/meminfo").read_text().splitlines()[0]
        ram_gib = round(int(meminfo.split()[1]) / 1024 / 1024, 1)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": ram_gib,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


# ---------------------------------------------------------------- delay proxy


class ProxyProcess:
    """benchmarks/delayproxy.py as a child process: routes, then 'stats' on demand."""

    def __init__(self, delay: float, targets: Sequence[tuple[str, int]]) -> None:
        argv = [sys.executable, str(HERE / "delayproxy.py"), "--delay", f"{delay}"]
        argv += [f"{host}:{port}" for host, port in targets]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        assert self.proc.stdout is not None
        self.ports: list[int] = []
        for line in self.proc.stdout:
            if line.startswith("route "):
                self.ports.append(int(line.split()[1]))
            elif line.strip() == "ready":
                break
        if len(self.ports) != len(targets):
            self.close()
            raise RuntimeError("the delay proxy did not start")

    def accepted(self) -> dict[int, int]:
        """Connections accepted so far, per listening port."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        stats = json.loads(self.proc.stdout.readline())
        return {int(port): count for port, count in stats["accepted"].items()}

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------- the fleet


@dataclass(frozen=True)
class HostSpec:
    """One host as clients see it: an inventory name, an address, a port, maybe a gateway."""

    name: str
    address: str
    port: int
    gateway: bool = False  # reached through the bastion (address is a network alias)


class Fleet:
    """sshd containers (``direct`` published ones, ``internal`` ones behind a bastion)
    and one delay proxy (``ONE_WAY_DELAY`` each way) in front of each published server.
    """

    def __init__(self, direct: int, internal: int = 0, delay: float = ONE_WAY_DELAY) -> None:
        self.direct_count = direct
        self.internal_count = internal
        self.delay = delay
        self.name = f"bench{os.getpid()}-{secrets.token_hex(2)}"
        self._tmp = tempfile.TemporaryDirectory(prefix="apssh-bench-")
        self.dir = Path(self._tmp.name)
        self.topology: lab.Topology | None = None
        self.proxy: ProxyProcess | None = None

    def __enter__(self) -> Fleet:
        print(
            f"starting {self.direct_count} published sshd, a bastion and "
            f"{self.internal_count} behind it ...",
            flush=True,
        )
        try:
            self.topology = lab.start_topology(
                self.name,
                self.dir,
                nodes=self.internal_count,
                direct=self.direct_count,
                kind="test",
            )
            published = [self.topology.bastion, *self.topology.direct]
            self.proxy = ProxyProcess(self.delay, [(ep.host, ep.port) for ep in published])
            self.known_hosts = self.dir / "known_hosts_all"
            self._write_known_hosts()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proxy is not None:
            self.proxy.close()
        with contextlib.suppress(Exception):
            lab.remove_topology(self.name)
        self._tmp.cleanup()

    @property
    def top(self) -> lab.Topology:
        assert self.topology is not None
        return self.topology

    @property
    def key(self) -> Path:
        return self.top.keypair.private_path.resolve()

    def _write_known_hosts(self) -> None:
        # every way a client may name a server: published port, proxy port, network alias
        assert self.proxy is not None
        top = self.top
        lines = [f"{ep.known_hosts_name} {ep.host_key}" for ep in top.endpoints]
        for port, ep in zip(self.proxy.ports, [top.bastion, *top.direct], strict=True):
            lines.append(f"[127.0.0.1]:{port} {ep.host_key}")
        self.known_hosts.write_text("\n".join(lines) + "\n")

    def bastion(self, delayed: bool) -> HostSpec:
        assert self.proxy is not None
        port = self.proxy.ports[0] if delayed else self.top.bastion.port
        return HostSpec("bastion", "127.0.0.1", port)

    def bastion_connections(self) -> int:
        """Connections the bastion's delay proxy accepted so far."""
        assert self.proxy is not None
        return self.proxy.accepted()[self.proxy.ports[0]]

    def direct_hosts(self, count: int, delayed: bool, prefix: str = "h") -> list[HostSpec]:
        """``count`` host names spread over the published containers (round robin)."""
        assert self.proxy is not None
        ports = self.proxy.ports[1:] if delayed else [ep.port for ep in self.top.direct]
        width = max(2, len(str(count)))
        return [
            HostSpec(f"{prefix}{i + 1:0{width}d}", "127.0.0.1", ports[i % len(ports)])
            for i in range(count)
        ]

    def internal_hosts(self, count: int, prefix: str = "n") -> list[HostSpec]:
        """``count`` host names behind the bastion, spread over its internal containers."""
        aliases = [ep.name for ep in self.top.internal]
        width = max(2, len(str(count)))
        return [
            HostSpec(f"{prefix}{i + 1:0{width}d}", aliases[i % len(aliases)], 22, gateway=True)
            for i in range(count)
        ]

    def container_of(self, host: HostSpec) -> lab.Endpoint:
        """The container that serves ``host`` (to exec in it)."""
        top = self.top
        if host.gateway:
            return next(ep for ep in top.internal if ep.name == host.address)
        assert self.proxy is not None
        if host.port in self.proxy.ports:
            return [top.bastion, *top.direct][self.proxy.ports.index(host.port)]
        return next(ep for ep in [top.bastion, *top.direct] if ep.port == host.port)

    def container_ids(self, hosts: Sequence[HostSpec]) -> list[str]:
        """Docker's full ids of the containers that serve ``hosts`` (each once)."""
        ids: dict[str, None] = {}
        for host in hosts:
            container = self.container_of(host).container
            wrapped = (
                container.get_wrapped_container()
                if hasattr(container, "get_wrapped_container")
                else container
            )
            ids[str(wrapped.id)] = None
        return list(ids)

    # ------------------------------------------------------------ client files

    def inventory(
        self, path: Path, groups: dict[str, list[HostSpec]], bastion: HostSpec | None = None
    ) -> Path:
        """A TOML inventory: the groups given, a bastion for hosts that need one."""
        out = [
            "[all.vars]\n",
            f'user = "{USER}"\n',
            f'identity_file = "{self.key}"\n',
            f'known_hosts = {{ policy = "strict", file = "{self.known_hosts}" }}\n',
            # OpenSSH and the scripts wait for a handshake as long as it takes: on a
            # loaded machine, 100 at once can take more than apssh's default 10 s
            f"connect_timeout = {CONNECT_TIMEOUT}\n",
        ]
        if bastion is not None:
            out.append(
                f'\n[bastions.hosts.bastion]\nhostname = "{bastion.address}"\n'
                f"port = {bastion.port}\n"
            )
        for group, hosts in groups.items():
            out.append(f"\n[{group}.hosts]\n")
            for host in hosts:
                gateway = ', gateway = "bastion"' if host.gateway else ""
                where = f'hostname = "{host.address}", port = {host.port}'
                out.append(f"{host.name} = {{ {where}{gateway} }}\n")
        path.write_text("".join(out))
        return path

    def ssh_config(
        self, path: Path, hosts: Sequence[HostSpec], bastion: HostSpec | None = None
    ) -> Path:
        """An OpenSSH client config naming every host (ProxyJump for those behind the bastion)."""
        common = (
            f"  User {USER}\n  IdentityFile {self.key}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {self.known_hosts}\n  StrictHostKeyChecking yes\n"
            "  BatchMode yes\n  LogLevel ERROR\n"
        )
        blocks = []
        if bastion is not None:
            blocks.append(
                f"Host bastion\n  HostName {bastion.address}\n  Port {bastion.port}\n{common}"
            )
        for host in hosts:
            jump = "  ProxyJump bastion\n" if host.gateway else ""
            blocks.append(
                f"Host {host.name}\n  HostName {host.address}\n  Port {host.port}\n{jump}{common}"
            )
        path.write_text("\n".join(blocks))
        return path


# ---------------------------------------------------------------- timing


@dataclass
class Tool:
    """One way of doing the scenario's work: one process, or several run at once."""

    name: str
    argvs: list[list[str]]
    env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[], None] | None = None  # before each run, untimed (clean-up)
    check: Callable[[], str | None] | None = None  # after each run: an error, or None
    stdin: str | None = None
    cwd: Path | None = None
    # counters read before and after each run (CPU seconds used so far by the servers'
    # containers, say: floors.ContainerCpu.read; None when unreadable): the difference
    # of each goes to Row.extra[name], one value per run
    meters: dict[str, Callable[[], float | None]] = field(default_factory=dict)


@dataclass
class Sample:
    wall: float
    cpu: float  # user + system of every process the tool started (its children included)
    meters: dict[str, float] = field(default_factory=dict)  # Tool.meters' differences


@dataclass
class Row:
    """One tool in one case: its samples (round i of every tool paired), or why it failed."""

    case: str
    tool: str
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float | None:
        return statistics.median(self.walls) if self.walls and not self.error else None


def run_once(tool: Tool, timeout: float) -> tuple[Sample, str | None]:
    """Run a tool once: wall clock from the first start to the last exit, CPU of the children."""
    if tool.prepare is not None:
        tool.prepare()
    env = {**os.environ, **tool.env}
    # after prepare: its docker exec runs in the containers, and is not the tool's work
    meters_before = {name: read() for name, read in tool.meters.items()}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if tool.stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            cwd=tool.cwd,
        )
        for argv in tool.argvs
    ]
    outputs = []
    error = None
    for proc in procs:
        try:
            out, err = proc.communicate(tool.stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            error = f"timed out after {timeout:.0f}s"
        outputs.append((proc.returncode, out, err))
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    meters = {}
    for name, read in tool.meters.items():
        first, last = meters_before[name], read()
        if first is not None and last is not None:
            meters[name] = last - first
    for rc, out, err in outputs:
        if rc != 0 and error is None:
            last = (err.strip() or out.strip() or "no output").splitlines()[-1]
            error = f"exit {rc}: {last[:300]}"
    if error is None and tool.check is not None:
        error = tool.check()
    return Sample(wall, cpu, meters), error


def paired_runs(case: str, tools: Sequence[Tool], rounds: int, timeout: float = 300.0) -> list[Row]:
    """Every tool once per round, the order rotating; a tool that fails once is dropped."""
    rows = {tool.name: Row(case, tool.name) for tool in tools}
    for round_ in range(rounds):
        shift = round_ % len(tools)
        for tool in [*tools[shift:], *tools[:shift]]:
            row = rows[tool.name]
            if row.error:
                continue
            sample, error = run_once(tool, timeout)
            if error:
                row.error = error
                print(f"    {case}: {tool.name} FAILED: {error}", flush=True)
                continue
            row.walls.append(sample.wall)
            row.cpus.append(sample.cpu)
            for name, value in sample.meters.items():
                row.extra.setdefault(name, []).append(value)
    for row in rows.values():
        if row.walls and not row.error:
            metered = "".join(
                f"   {name.removesuffix('s').replace('_', ' ')} "
                f"{statistics.median(row.extra[name]):6.3f} s"
                for tool in tools
                if tool.name == row.tool
                for name in tool.meters
                if row.extra.get(name)
            )
            print(
                f"    {case:<28} {row.tool:<26} median {statistics.median(row.walls):7.3f} s"
                f"   cpu {statistics.median(row.cpus):6.3f} s{metered}   ({len(row.walls)} runs)",
                flush=True,
            )
    return list(rows.values())


def paired_ratio(rows: Sequence[Row], tool: str, peer: str, what: str = "walls") -> float | None:
    """Median over rounds of tool / peer (< 1: ``tool`` is faster), within one case.

    Raises:
        ValueError: rows of several cases (a tool named twice): which row is meant
            cannot be told, and taking the last one gave a wrong ratio once.
    """
    names = [row.tool for row in rows]
    if len(set(names)) != len(names):
        raise ValueError(f"paired_ratio: a tool named twice in {names}: pass one case's rows")
    by_name = {row.tool: row for row in rows}
    a, b = by_name.get(tool), by_name.get(peer)
    if a is None or b is None or a.error or b.error:
        return None
    pairs = list(zip(getattr(a, what), getattr(b, what), strict=False))
    if not pairs:
        return None
    return statistics.median(x / y for x, y in pairs if y > 0)


def which(name: str) -> str | None:
    """A tool on PATH or next to this interpreter (a virtualenv's scripts)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    return shutil.which(name)


def save(scenario: str, payload: dict[str, Any]) -> Path:
    """Write benchmarks/results/raw/<scenario>.json (rows as dicts)."""
    RAW.mkdir(parents=True, exist_ok=True)
    payload = {"scenario": scenario, "machine": machine(), **payload}
    if "rows" in payload:
        payload["rows"] = [asdict(row) if isinstance(row, Row) else row for row in payload["rows"]]
    path = RAW / f"{scenario}.json"
    path.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"  -> {path.relative_to(HERE.parent)}", flush=True)
    return path


@contextlib.contextmanager
def workdir(fleet: Fleet, name: str) -> Iterator[Path]:
    path = fleet.dir / name
    path.mkdir(parents=True, exist_ok=True)
    yield path


def hosts_json(fleet: Fleet, path: Path, hosts: Sequence[HostSpec]) -> Path:
    """The host list for the scripts in benchmarks/peers/."""
    spec = {
        "user": USER,
        "key": str(fleet.key),
        "known_hosts": str(fleet.known_hosts),
        "hosts": [{"name": h.name, "address": h.address, "port": h.port} for h in hosts],
    }
    path.write_text(json.dumps(spec))
    return path


def peer_script(name: str) -> str:
    return str(HERE / "peers" / name)
