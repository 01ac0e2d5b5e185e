"""Warm connections (``--persist``) at 50 ms RTT: what a shell script of apssh calls costs.

Two cases, paired, each tool's whole script timed (one ``sh -c`` loop):

- ``20 x one host``: 20 consecutive ``apssh -t host true --persist 10m`` against
  20 consecutive ``ssh host true`` (goal: at most 0.5x), and 20 apssh without persist;
- ``10 x 20 hosts via bastion``: a script of 10 ``apssh -g nodes true`` on 20 hosts
  behind the bastion, with and without ``--persist`` (goal: at most 0.3x).

The hosts and the bastion are behind the delay proxy (25 ms each way). Every round
starts cold: the holder of the previous round is stopped first (untimed), so the
first call of each script pays its logins, as a script run after a while would.
Each tool gets its own XDG_RUNTIME_DIR, hence its own holder.

Run: `python benchmarks/bench_persist.py`. Writes benchmarks/results/raw/persist.json.
"""

from __future__ import annotations

import os
import shlex
import signal
import time
from collections.abc import Callable
from pathlib import Path

import harness
from harness import Fleet, Tool, paired_ratio, paired_runs, which

from apssh_cli.ssh.holder import ask

CALLS_ONE = 20
CALLS_FLEET = 10
FLEET = 20
PERSIST = "10m"


def loop(count: int, argv: list[str]) -> list[str]:
    command = " ".join(shlex.quote(arg) for arg in argv)
    script = f"i=0; while [ $i -lt {count} ]; do {command} >/dev/null || exit 1; i=$((i+1)); done"
    return ["sh", "-c", script]


def background(runtime: Path) -> dict[int, float]:
    """The processes a tool left running in ``runtime`` (its holder, its command
    server): pid -> CPU seconds used so far, their reaped children (served runs)
    included."""
    found = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if str(runtime).encode() not in (entry / "cmdline").read_bytes():
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime: fields 14-17 of proc(5), 12-15 after the name
        found[int(entry.name)] = sum(int(value) for value in fields[11:15]) / tick
    return found


def background_cpu(runtime: Path) -> Callable[[], float]:
    """A meter: CPU of the background processes (stopped before each round, so the
    difference over a round is what they spent serving it)."""
    return lambda: sum(background(runtime).values())


def stopper(runtime: Path) -> Callable[[], None]:
    """Stop the holder of ``runtime`` and with it its command server (untimed, before
    a round): every round starts cold."""
    env = {"XDG_RUNTIME_DIR": str(runtime), "HOME": os.environ.get("HOME", "")}

    def stop() -> None:
        answer = ask({"op": "list"}, env)
        if answer is not None:
            os.kill(int(answer["pid"]), signal.SIGTERM)
        deadline = time.monotonic() + 15
        while background(runtime) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in background(runtime):  # still there: not cold
            os.kill(pid, signal.SIGKILL)

    return stop


def main() -> None:
    rounds = 2 if harness.quick() else 3
    apssh = which("apssh") or "apssh"
    with Fleet(direct=1, internal=4) as fleet:
        work = fleet.dir / "persist"
        work.mkdir()
        bastion = fleet.bastion(delayed=True)
        one = fleet.direct_hosts(1, delayed=True)
        behind = fleet.internal_hosts(FLEET)
        inventory = fleet.inventory(
            work / "inventory.toml", {"one": one, "nodes": behind}, bastion=bastion
        )
        config = fleet.ssh_config(work / "ssh_config", one)
        runtimes = {}
        for name in ("one", "fleet"):
            runtimes[name] = work / f"runtime-{name}"
            runtimes[name].mkdir(mode=0o700)
        base = [apssh, "-i", str(inventory), "-q"]
        host = one[0].name
        tools_one = [
            Tool(
                "apssh --persist",
                [loop(CALLS_ONE, [*base, "-t", host, "--persist", PERSIST, "true"])],
                env={"XDG_RUNTIME_DIR": str(runtimes["one"])},
                prepare=stopper(runtimes["one"]),
                meters={"background_cpu": background_cpu(runtimes["one"])},
            ),
            Tool("ssh", [loop(CALLS_ONE, ["ssh", "-F", str(config), host, "true"])]),
            Tool("apssh", [loop(CALLS_ONE, [*base, "-t", host, "true"])]),
        ]
        print(f"{CALLS_ONE} consecutive calls on one host at 50 ms RTT", flush=True)
        one_host = paired_runs(f"{CALLS_ONE} x one host", tools_one, rounds, timeout=900)
        tools_fleet = [
            Tool(
                "apssh --persist",
                [loop(CALLS_FLEET, [*base, "-g", "nodes", "--persist", PERSIST, "true"])],
                env={"XDG_RUNTIME_DIR": str(runtimes["fleet"])},
                prepare=stopper(runtimes["fleet"]),
                meters={"background_cpu": background_cpu(runtimes["fleet"])},
            ),
            Tool("apssh", [loop(CALLS_FLEET, [*base, "-g", "nodes", "true"])]),
        ]
        print(f"{CALLS_FLEET} calls on {FLEET} hosts via the bastion at 50 ms RTT", flush=True)
        fleet = paired_runs(
            f"{CALLS_FLEET} x {FLEET} hosts via bastion", tools_fleet, rounds, timeout=900
        )
        for stop in (stopper(runtimes["one"]), stopper(runtimes["fleet"])):
            stop()
    # each scenario's own rows: both have an "apssh --persist" row
    ratios = {
        "one_host_persist_vs_ssh": paired_ratio(one_host, "apssh --persist", "ssh"),
        "one_host_persist_vs_plain": paired_ratio(one_host, "apssh --persist", "apssh"),
        "fleet_persist_vs_plain": paired_ratio(fleet, "apssh --persist", "apssh"),
    }
    rows = [*one_host, *fleet]
    print(f"    ratios: {ratios}", flush=True)
    harness.save(
        "persist",
        {
            "title": "warm connections (--persist) at 50 ms RTT",
            "calls_one": CALLS_ONE,
            "calls_fleet": CALLS_FLEET,
            "fleet": FLEET,
            "ratios": ratios,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
