"""1,000 hosts through one bastion at 50 ms RTT, against the same hosts reached directly.

The bastion is published behind the delay proxy (25 ms each way); the hosts behind it
are names n0001..n1000 spread over a few containers on the bastion's private network
(several inventory names per container, each a host of its own for apssh). The direct
case reaches h0001..h1000, spread over a few published containers, each through the
delay proxy as well. Both run `true` with the same window.

Measured: wall time of each, and the connections the bastion's proxy accepted during
each run (the target: exactly 1, whatever the number of hosts). OpenSSH's ProxyJump
would open one bastion connection per host; no peer is timed here.

Run: `python benchmarks/bench_bastion.py [HOSTS]` (default 1000). Writes
benchmarks/results/raw/bastion.json.
"""

from __future__ import annotations

import sys

import harness
from harness import Fleet, Tool, paired_runs, which

COMMAND = "true"
WINDOW = 100


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else (200 if harness.quick() else 1000)
    rounds = 2 if harness.quick() else 3
    with Fleet(direct=8, internal=8) as fleet:
        work = fleet.dir / "bastion"
        work.mkdir()
        bastion = fleet.bastion(delayed=True)
        behind = fleet.internal_hosts(count)
        direct = fleet.direct_hosts(count, delayed=True)
        inventory = fleet.inventory(
            work / "inventory.toml", {"behind": behind, "direct": direct}, bastion=bastion
        )
        apssh = which("apssh") or "apssh"
        base = [apssh, "-i", str(inventory), "-w", str(WINDOW), "-q"]
        received: list[int] = []
        last = [fleet.bastion_connections()]

        def count_bastion() -> str | None:
            now = fleet.bastion_connections()
            received.append(now - last[0])
            last[0] = now
            return None

        def reset() -> None:
            last[0] = fleet.bastion_connections()

        tools = [
            Tool(
                "apssh via bastion",
                [[*base, "-g", "behind", COMMAND]],
                prepare=reset,
                check=count_bastion,
            ),
            Tool("apssh direct", [[*base, "-g", "direct", COMMAND]]),
        ]
        print(f"`{COMMAND}` on {count} hosts at 50 ms RTT, window {WINDOW}", flush=True)
        rows = paired_runs(f"{count} hosts", tools, rounds, timeout=900)
        rows[0].extra["bastion_connections"] = received
        print(f"    bastion connections per run: {received}", flush=True)
    harness.save(
        "bastion",
        {
            "title": f"{count} hosts through one bastion at 50 ms RTT",
            "hosts": count,
            "window": WINDOW,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
