"""The benchmark report's floors (benchmarks/report.py), on hand-made raw results.

What matters: a floor pairs a tool's measured CPU with scp's wall round by round,
says "out of reach" only when even the lowest floor is above the target, never
counts a floor as a peer, and gives no figure when nothing was measured.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import report


def _row(case: str, tool: str, walls: list[float], **extra: list[float]) -> dict[str, Any]:
    return {
        "case": case,
        "tool": tool,
        "walls": walls,
        "cpus": walls,
        "error": None,
        "extra": extra,
    }


def _transfer(apssh_server: float, scp_server: float) -> dict[str, Any]:
    case = "push loopback"
    return {
        "mib": 64,
        "hosts": 4,
        "cores": 2,
        "server_cpu": {"source": "test", "problem": None},
        "rows": [
            _row(
                case,
                "apssh push",
                [3.0, 3.0, 3.0],
                server_cpus=[apssh_server] * 3,
                relay_cpus=[0.2] * 3,
            ),
            _row(case, "scp", [2.0, 2.0, 2.0], server_cpus=[scp_server] * 3, relay_cpus=[0.2] * 3),
        ],
    }


def test_transfer_floor_pairs_servers_and_relays_with_scp() -> None:
    data = _transfer(apssh_server=1.8, scp_server=2.2)
    floor = report.transfer_floor(data, report.rows_of(data, "push loopback"), "apssh push", 0.5)
    # apssh: (1.8 + 0.2) / 2 cores = 1.0 s over scp's 2.0 s; scp: (2.2 + 0.2) / 2 / 2.0
    assert floor["value"] == pytest.approx(0.5)
    assert "scp 0.60x" in floor["text"] and "not ruled out" in floor["text"]


def test_transfer_floor_above_the_target_is_out_of_reach() -> None:
    data = _transfer(apssh_server=2.6, scp_server=3.0)
    floor = report.transfer_floor(data, report.rows_of(data, "push loopback"), "apssh push", 0.5)
    assert floor["value"] == pytest.approx(0.7)
    assert "out of reach" in floor["text"]


def test_no_server_cpu_gives_no_floor() -> None:
    data = _transfer(1.0, 1.0)
    for row in data["rows"]:
        row["extra"] = {}
    data["server_cpu"]["problem"] = "no readable cgroup"
    floor = report.transfer_floor(data, report.rows_of(data, "push loopback"), "apssh push", 0.5)
    assert floor["value"] is None
    assert "no readable cgroup" in floor["text"]


def test_a_run_without_its_meter_does_not_pair() -> None:
    row = _row("c", "t", [1.0, 1.0], server_cpus=[0.5])  # one run unmeasured
    assert report.metered(row, "server_cpus") == []
    assert report.unavoidable_cpus(_row("c", "t", [1.0], server_cpus=[0.5])) == [0.5]


def test_one_host_floor_and_the_script_is_no_peer() -> None:
    case = "1 hosts"
    fanout = {
        "sizes": [1],
        "rows": [
            _row(case, "apssh", [1.0, 1.0]),
            _row(case, "ssh", [0.5, 0.5]),
            _row(case, report.ASYNCSSH_SCRIPT, [0.9, 0.9]),
        ],
    }
    floor = report.one_host_floor(report.rows_of(fanout, case))
    assert floor["value"] == pytest.approx(1.8)
    goals = report.targets({"fanout": fanout})
    ahead = next(g for g in goals if g["scenario"].startswith("`true` on 1 hosts"))
    assert "ssh" in ahead["measured"] and report.ASYNCSSH_SCRIPT not in ahead["measured"]


def test_import_floor_against_the_ansible_budget() -> None:
    startup = {"rows": [_row("start-up", report.IMPORT_ASYNCSSH, [0.3, 0.3, 0.3])]}
    steps = {"ansible-playbook": _row("3 steps", "ansible-playbook", [4.0])}
    floor = report.import_floor(steps, startup)
    assert floor["value"] == pytest.approx(0.75)
    assert report.import_floor(steps, None)["value"] is None


def test_the_one_host_push_is_reported_when_measured() -> None:
    data = _transfer(1.0, 1.0)
    data["title"] = "64 MiB to/from 4 hosts"
    without = report.markdown({"transfer": data}, [], png=False)
    assert "push 50 ms RTT, 1 host:" not in without
    data["rows"] += [
        _row("push 50 ms RTT, 1 host", "apssh push", [2.3] * 3),
        _row("push 50 ms RTT, 1 host", "scp", [2.9] * 3),
    ]
    with_it = report.markdown({"transfer": data}, [], png=False)
    table = with_it.partition("push 50 ms RTT, 1 host:")[2]
    assert "| scp | 2.90 s | 0.79x |" in table


def test_client_cpu_per_mib_counts_every_host_copy() -> None:
    data = _transfer(1.0, 1.0)  # apssh's CPU 3.0 s for 4 x 64 MiB: 11.72 ms per MiB
    data["title"] = "64 MiB to/from 4 hosts"
    data["rows"] += [_row("push 50 ms RTT, 1 host", "apssh push", [0.64] * 3)]
    text = report.markdown({"transfer": data}, [], png=False)
    loopback = text.partition("push loopback:")[2].partition("\n\n\n")[0]
    assert "| apssh push | 3.00 s |  | 3.00 s | 11.72 ms |" in loopback
    one_host = text.partition("push 50 ms RTT, 1 host:")[2]
    assert "| 640 ms | 10.00 ms |" in one_host  # 64 MiB to one host


def test_the_transfer_targets_are_issue_23s() -> None:
    data = _transfer(1.0, 1.0)  # apssh 3.0 s against scp 2.0 s: 1.5x
    rows = [t for t in report.targets({"transfer": data}) if t["scenario"].startswith("push")]
    loopback = next(t for t in rows if t["scenario"].endswith("loopback"))
    assert loopback["target"] == "apssh/scp <= 1.0"
    assert loopback["met"] is False
    assert "CPU/MiB" in loopback["measured"]
    assert report.TRANSFER_TARGETS == (("loopback", 1.0), ("50 ms RTT", 0.8))


def test_a_paired_ratio_is_within_one_case() -> None:
    """Two cases with a tool of the same name: the ratio must not take the other case's row
    (bench_persist once reported the 20-host script's time over ssh's one-host time)."""
    import harness

    one_host = [
        harness.Row("one", "apssh --persist", walls=[16.0, 13.0, 16.0]),
        harness.Row("one", "ssh", walls=[14.0, 14.0, 15.0]),
    ]
    fleet = [harness.Row("fleet", "apssh --persist", walls=[10.0, 10.0, 9.0])]
    ratio = harness.paired_ratio(one_host, "apssh --persist", "ssh")
    assert ratio == pytest.approx(16.0 / 15.0)
    with pytest.raises(ValueError, match="named twice"):
        harness.paired_ratio([*one_host, *fleet], "apssh --persist", "ssh")
