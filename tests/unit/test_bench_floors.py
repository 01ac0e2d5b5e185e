"""The benchmarks' floors (benchmarks/floors.py): cgroup CPU counters and the floor they imply.

The counters are faked as files under a temporary cgroup root laid out as Docker does
(v1 cgroupfs, v1 systemd, v2 systemd, v2 cgroupfs): what matters is that the reader
finds each layout, reads its unit right, and refuses to guess when one is missing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from floors import (
    ContainerCpu,
    ProcessCpu,
    cgroup_cpu_files,
    cpu_floor,
    docker_proxy_pids,
    find_cpu_file,
    paired_floor_ratio,
    parse_cpu_seconds,
    parse_proc_stat_cpu,
)

CID = "ab" * 32  # a full container id


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


CPU_STAT = "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n"


def test_v1_usage_is_nanoseconds() -> None:
    assert parse_cpu_seconds(Path("x/cpuacct.usage"), "1700000000\n") == pytest.approx(1.7)


def test_v2_usage_is_microseconds() -> None:
    assert parse_cpu_seconds(Path("x/cpu.stat"), CPU_STAT) == pytest.approx(2.5)


def test_v2_without_usage_is_an_error() -> None:
    with pytest.raises(ValueError):
        parse_cpu_seconds(Path("x/cpu.stat"), "nr_periods 0\n")


@pytest.mark.parametrize(
    ("relative", "text", "seconds"),
    [
        (f"cpuacct/docker/{CID}/cpuacct.usage", "3000000000", 3.0),
        (f"cpuacct/system.slice/docker-{CID}.scope/cpuacct.usage", "3000000000", 3.0),
        (f"system.slice/docker-{CID}.scope/cpu.stat", CPU_STAT, 2.5),
        (f"docker/{CID}/cpu.stat", CPU_STAT, 2.5),
    ],
)
def test_every_docker_layout_is_found(
    tmp_path: Path, relative: str, text: str, seconds: float
) -> None:
    path = _write(tmp_path / relative, text)
    assert path in cgroup_cpu_files(CID, tmp_path)
    assert find_cpu_file(CID, tmp_path) == path
    meter = ContainerCpu.of([CID], tmp_path)
    assert meter.problem is None
    assert meter.read() == pytest.approx(seconds)


def test_counters_are_summed_and_follow_the_files(tmp_path: Path) -> None:
    other = "cd" * 32
    first = _write(tmp_path / f"cpuacct/docker/{CID}/cpuacct.usage", "1000000000")
    _write(tmp_path / f"cpuacct/docker/{other}/cpuacct.usage", "500000000")
    meter = ContainerCpu.of([CID, other], tmp_path)
    assert meter.read() == pytest.approx(1.5)
    assert "cgroup v1" in meter.source and "2 containers" in meter.source
    first.write_text("4000000000")  # the container worked meanwhile
    assert meter.read() == pytest.approx(4.5)


def test_a_missing_counter_gives_no_figure(tmp_path: Path) -> None:
    _write(tmp_path / f"cpuacct/docker/{CID}/cpuacct.usage", "1000000000")
    meter = ContainerCpu.of([CID, "ef" * 32], tmp_path)
    assert meter.read() is None
    assert meter.problem is not None and "efefefefefef" in meter.problem
    assert meter.source == "none"


def test_a_counter_that_vanishes_gives_no_partial_sum(tmp_path: Path) -> None:
    path = _write(tmp_path / f"docker/{CID}/cpu.stat", CPU_STAT)
    meter = ContainerCpu.of([CID], tmp_path)
    path.unlink()
    assert meter.read() is None


def test_floor_spreads_the_servers_cpu_over_the_cores() -> None:
    assert cpu_floor(2.0, 2) == pytest.approx(1.0)
    assert cpu_floor(2.0, 1) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        cpu_floor(1.0, 0)


def test_paired_floor_ratio_is_the_median_of_rounds() -> None:
    # server CPU of the reference's rounds, walls of scp's rounds, 2 cores
    ratio = paired_floor_ratio([2.0, 1.0, 3.0], [2.0, 2.0, 2.0], 2)
    assert ratio == pytest.approx(0.5)
    assert paired_floor_ratio([], [1.0], 2) is None
    assert paired_floor_ratio([1.0], [0.0], 2) is None


def _stat(pid: int, comm: str, utime: int, stime: int) -> str:
    # proc(5): pid (comm) state ppid ... utime is field 14, stime field 15
    rest = ["S", "1", *["0"] * 9, str(utime), str(stime), *["0"] * 30]
    return f"{pid} ({comm}) " + " ".join(rest) + "\n"


def test_proc_stat_counts_user_and_system_ticks() -> None:
    assert parse_proc_stat_cpu(_stat(7, "docker-proxy", 150, 50), 100) == pytest.approx(2.0)
    # a command name with spaces and parentheses does not shift the fields
    assert parse_proc_stat_cpu(_stat(7, "a (b) c", 10, 10), 100) == pytest.approx(0.2)


def _fake_process(proc: Path, pid: int, argv: list[str], utime: int = 0) -> None:
    _write(proc / str(pid) / "stat", _stat(pid, Path(argv[0]).name[:15], utime, 0))
    (proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")


def _proxy_argv(port: int) -> list[str]:
    return [
        "/usr/sbin/docker-proxy",
        "-proto",
        "tcp",
        "-host-ip",
        "127.0.0.1",
        "-host-port",
        str(port),
        "-container-ip",
        "172.22.0.2",
        "-container-port",
        "22",
    ]


def test_docker_proxies_are_found_by_published_port(tmp_path: Path) -> None:
    _fake_process(tmp_path, 10, _proxy_argv(40001))
    _fake_process(tmp_path, 11, _proxy_argv(40002))
    _fake_process(tmp_path, 12, _proxy_argv(40003))  # another lab's port
    _fake_process(tmp_path, 13, ["/usr/bin/python3", "-host-port", "40001"])
    (tmp_path / "self").mkdir()
    assert docker_proxy_pids([40001, 40002], tmp_path) == [10, 11]
    assert docker_proxy_pids([], tmp_path) == []


def test_process_cpu_sums_and_refuses_a_vanished_process(tmp_path: Path) -> None:
    _fake_process(tmp_path, 10, _proxy_argv(40001), utime=100)
    _fake_process(tmp_path, 11, _proxy_argv(40002), utime=300)
    meter = ProcessCpu((10, 11), tmp_path)
    ticks = os.sysconf("SC_CLK_TCK")
    assert meter.read() == pytest.approx(400 / ticks)
    assert "2 processes" in meter.source
    assert ProcessCpu((10, 99), tmp_path).read() is None
