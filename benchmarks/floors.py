"""Floors measured in the same run: what no client can go under on this machine.

Pure helpers (no Docker, no apssh), shared by the bench scripts and report.py:

- the CPU a container used, read from its cgroup (the servers' side of a transfer:
  sshd and sftp-server run in the containers, on the same cores as the client);
- the CPU of the processes that relay every byte between client and server on
  this machine and are neither: Docker's userland proxy (``docker-proxy``, one per
  published port) and, at 50 ms RTT, the bench's own delay proxy;
- the wall-time floor that CPU implies: a client using no CPU at all still waits
  for that work, spread at best over every core of the machine.

A counter that cannot be read gives ``None`` and a reason, never a guessed figure.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC = Path("/proc")


def cgroup_cpu_files(container_id: str, root: Path = CGROUP_ROOT) -> list[Path]:
    """Where a Docker container's CPU counter may be, most likely first.

    cgroup v1 (cgroupfs or systemd driver): ``cpuacct.usage``, nanoseconds;
    cgroup v2: ``cpu.stat``'s ``usage_usec``, microseconds.
    """
    return [
        root / "cpuacct" / "docker" / container_id / "cpuacct.usage",
        root / "cpu,cpuacct" / "docker" / container_id / "cpuacct.usage",
        root / "cpuacct" / "system.slice" / f"docker-{container_id}.scope" / "cpuacct.usage",
        root / "system.slice" / f"docker-{container_id}.scope" / "cpu.stat",
        root / "docker" / container_id / "cpu.stat",
    ]


def parse_cpu_seconds(path: Path, text: str) -> float:
    """CPU seconds in a cgroup counter file's text (ValueError if it holds none)."""
    if path.name == "cpuacct.usage":
        return int(text.strip()) / 1e9
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) / 1e6
    raise ValueError(f"no usage_usec in {path}")


def find_cpu_file(container_id: str, root: Path = CGROUP_ROOT) -> Path | None:
    """The first readable counter of the container, or None."""
    for path in cgroup_cpu_files(container_id, root):
        try:
            parse_cpu_seconds(path, path.read_text())
        except (OSError, ValueError):
            continue
        return path
    return None


@dataclass(frozen=True)
class ContainerCpu:
    """The summed CPU counters of a few containers: ``read()`` before and after a run.

    ``files`` is empty, and ``problem`` says why, when any container's counter cannot
    be read: a sum over part of the fleet would be a figure too low.
    """

    files: tuple[Path, ...]
    problem: str | None = None

    @classmethod
    def of(cls, container_ids: Iterable[str], root: Path = CGROUP_ROOT) -> ContainerCpu:
        ids = list(container_ids)
        if not ids:
            return cls((), "no container to measure")
        files = []
        for cid in ids:
            path = find_cpu_file(cid, root)
            if path is None:
                tried = ", ".join(str(p) for p in cgroup_cpu_files(cid, root))
                return cls(
                    (), f"no readable cgroup CPU counter for container {cid[:12]} (tried {tried})"
                )
            files.append(path)
        return cls(tuple(files))

    @property
    def source(self) -> str:
        """What the counters are, for the raw results."""
        if not self.files:
            return "none"
        kind = (
            "cgroup v1 cpuacct.usage"
            if self.files[0].name == "cpuacct.usage"
            else ("cgroup v2 cpu.stat usage_usec")
        )
        return f"{kind}, summed over {len(self.files)} containers"

    def read(self) -> float | None:
        """CPU seconds used so far by all the containers, or None if one cannot be read."""
        if not self.files:
            return None
        total = 0.0
        for path in self.files:
            try:
                total += parse_cpu_seconds(path, path.read_text())
            except (OSError, ValueError):
                return None  # the container went away: no partial sums
        return total


def parse_proc_stat_cpu(text: str, ticks: int) -> float:
    """User + system CPU seconds (every thread) in the text of /proc/PID/stat."""
    # the command name (field 2) may hold spaces and parentheses: count from the last ")"
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / ticks


def docker_proxy_pids(host_ports: Iterable[int], proc: Path = PROC) -> list[int]:
    """The ``docker-proxy`` processes that relay these published ports (none when
    Docker's userland proxy is off: the kernel forwards, and no process is charged)."""
    wanted = {str(port) for port in host_ports}
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        args = [arg.decode(errors="replace") for arg in argv]
        if not args or Path(args[0]).name != "docker-proxy" or "-host-port" not in args:
            continue
        at = args.index("-host-port")
        if at + 1 < len(args) and args[at + 1] in wanted:
            found.append(int(entry.name))
    return sorted(found)


@dataclass(frozen=True)
class ProcessCpu:
    """The summed CPU of a few long-lived processes: ``read()`` before and after a run."""

    pids: tuple[int, ...]
    proc: Path = PROC

    @property
    def source(self) -> str:
        return f"/proc/PID/stat utime + stime of {len(self.pids)} processes"

    def read(self) -> float | None:
        """CPU seconds used so far, or None if one of the processes cannot be read."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in self.pids:
            try:
                total += parse_proc_stat_cpu((self.proc / str(pid) / "stat").read_text(), ticks)
            except (OSError, ValueError, IndexError):
                return None
        return total


def cores() -> int:
    """The cores this process (and the containers, on the same machine) may use."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cpu_floor(server_cpu: float, ncores: int) -> float:
    """Wall time of a client using no CPU: the servers' work spread over every core."""
    if ncores < 1:
        raise ValueError("ncores must be at least 1")
    return server_cpu / ncores


def paired_floor_ratio(
    server_cpus: Sequence[float], walls: Sequence[float], ncores: int
) -> float | None:
    """Median over paired rounds of floor(round i) / wall(round i) of another tool."""
    pairs = [
        cpu_floor(cpu, ncores) / wall
        for cpu, wall in zip(server_cpus, walls, strict=False)
        if wall > 0
    ]
    return statistics.median(pairs) if pairs else None
