"""Fan-out at 50 ms RTT: `true` on 1, 10 and 50 hosts, apssh next to its peers, in one run.

Every host is reached through the delay proxy (25 ms each way, benchmarks/delayproxy.py),
so the round trips of each tool's protocol show, as they do on a real network. Names
h01..hNN are spread over a few published sshd containers.

A floor runs next to them: "asyncssh script" (benchmarks/peers/asyncssh_min.py, the
least code that connects to every host at once and runs the command): no tool built on
asyncssh can start Python, import asyncssh and make the same round trips faster.

Peers, each used as its documentation shows, with the same key, known_hosts file and
strict host-key checking, and a fan-out of N: `ssh host true` (1 host), `xargs -P N ssh`,
ClusterShell's clush, pdsh, parallel-ssh (Debian's `parallel-ssh` command, and the PyPI
`parallel-ssh` library's ParallelSSHClient), Ansible ad hoc (`ansible -m raw`: the nodes
have no Python).

Run: `nox -s bench`, or `python benchmarks/bench_fanout.py [N ...]` in an environment
with the peers and a Docker engine. Writes benchmarks/results/raw/fanout.json.
"""

from __future__ import annotations

import sys

import harness
from harness import Fleet, Tool, paired_runs, which

COMMAND = "true"
ASYNCSSH_SCRIPT = "asyncssh script"  # benchmarks/peers/asyncssh_min.py


def tools(fleet: Fleet, hosts: list[harness.HostSpec], tag: str) -> list[Tool]:
    work = fleet.dir / tag
    work.mkdir(exist_ok=True)
    n = str(len(hosts))
    names = [h.name for h in hosts]
    inventory = fleet.inventory(work / "inventory.toml", {"fleet": hosts})
    config = fleet.ssh_config(work / "ssh_config", hosts)
    spec = harness.hosts_json(fleet, work / "hosts.json", hosts)
    found = [
        Tool(
            "apssh",
            [
                [
                    which("apssh") or "apssh",
                    "-i",
                    str(inventory),
                    "-g",
                    "fleet",
                    "-w",
                    n,
                    "-q",
                    COMMAND,
                ]
            ],
        )
    ]
    if len(hosts) == 1:
        found.append(Tool("ssh", [["ssh", "-F", str(config), names[0], COMMAND]]))
    # the floor of any asyncssh-based tool: python start, `import asyncssh`, the same
    # round trips, every host at once, nothing else
    found.append(
        Tool(
            ASYNCSSH_SCRIPT,
            [[sys.executable, harness.peer_script("asyncssh_min.py"), str(spec), "run", COMMAND]],
        )
    )
    found.append(
        Tool(
            "xargs -P ssh",
            [["xargs", "-P", n, "-I{}", "ssh", "-F", str(config), "{}", COMMAND]],
            stdin="\n".join(names) + "\n",
        )
    )
    if clush := which("clush"):
        found.append(
            Tool("clush", [[clush, "-w", ",".join(names), "-f", n, "-o", f"-F {config}", COMMAND]])
        )
    if pdsh := which("pdsh"):
        env = {"PDSH_RCMD_TYPE": "ssh", "PDSH_SSH_ARGS": f"-F {config} -l%u %h"}
        found.append(Tool("pdsh", [[pdsh, "-S", "-f", n, "-w", ",".join(names), COMMAND]], env))
    if pssh := which("parallel-ssh"):
        found.append(
            Tool(
                "parallel-ssh (Debian pssh)",
                [[pssh, "-p", n, "-x", f"-F {config}", "-H", " ".join(names), COMMAND]],
            )
        )
    try:
        import pssh.clients

        found.append(
            Tool(
                "parallel-ssh (PyPI)",
                [[sys.executable, harness.peer_script("pssh_lib.py"), str(spec), "run", COMMAND]],
            )
        )
    except ImportError:
        pass
    if ansible := which("ansible"):
        argv = [ansible, "all", "-i", ",".join(names) + ",", "-f", n, "-m", "raw", "-a", COMMAND]
        env = {
            "ANSIBLE_SSH_ARGS": f"-F {config}",
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_LOCALHOST_WARNING": "False",
        }
        found.append(Tool("ansible (raw)", [argv], env))
    return found


def main() -> None:
    sizes = [int(arg) for arg in sys.argv[1:]] or ([1, 10] if harness.quick() else [1, 10, 50])
    rounds = {1: 9, 10: 5}
    rows = []
    with Fleet(direct=8) as fleet:
        print(f"`{COMMAND}` at 50 ms RTT: paired rounds, wall clock", flush=True)
        for count in sizes:
            hosts = fleet.direct_hosts(count, delayed=True)
            n_rounds = 3 if harness.quick() else rounds.get(count, 5)
            rows += paired_runs(f"{count} hosts", tools(fleet, hosts, f"n{count}"), n_rounds)
    harness.save("fanout", {"title": f"`{COMMAND}` at 50 ms RTT", "sizes": sizes, "rows": rows})


if __name__ == "__main__":
    main()
