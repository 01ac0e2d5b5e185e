"""Client CPU of a fan-out: `true` on 100 hosts, loopback, apssh against a minimal asyncssh script.

On loopback the servers set the wall time; what a client costs is its CPU (user +
system of the process, interpreter start and imports included), measured here for
apssh (window = the number of hosts) and for benchmarks/peers/asyncssh_min.py, the
least code that connects to every host at once and runs the command. Names h001..h100
are spread over a few published containers. Writes benchmarks/results/raw/cpu.json.
Run: `python benchmarks/bench_cpu.py [HOSTS]`.
"""

from __future__ import annotations

import sys

import harness
from harness import Fleet, Tool, paired_runs, which

COMMAND = "true"


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else (30 if harness.quick() else 100)
    rounds = 3 if harness.quick() else 7
    with Fleet(direct=8) as fleet:
        work = fleet.dir / "cpu"
        work.mkdir()
        hosts = fleet.direct_hosts(count, delayed=False)
        inventory = fleet.inventory(work / "inventory.toml", {"fleet": hosts})
        spec = harness.hosts_json(fleet, work / "hosts.json", hosts)
        apssh = which("apssh") or "apssh"
        tools = [
            Tool(
                "apssh",
                [[apssh, "-i", str(inventory), "-g", "fleet", "-w", str(count), "-q", COMMAND]],
            ),
            Tool(
                "asyncssh script",
                [
                    [
                        sys.executable,
                        harness.peer_script("asyncssh_min.py"),
                        str(spec),
                        "run",
                        COMMAND,
                    ]
                ],
            ),
        ]
        print(f"`{COMMAND}` on {count} hosts, loopback: client CPU", flush=True)
        rows = paired_runs(f"{count} hosts", tools, rounds)
    harness.save(
        "cpu",
        {
            "title": f"client CPU, `{COMMAND}` on {count} hosts, loopback",
            "hosts": count,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
