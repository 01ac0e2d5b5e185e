"""Fan-out: `uptime` on N nodes, apssh next to its peers, in one run.

Starts a topology from the project's sshd image (apssh_cli.lab): N published
nodes, a bastion and N nodes behind it, all on 127.0.0.1 or on the project's
own Docker network. Then, for every tool installed, runs `uptime` on all nodes,
REPEAT times, and prints the median and best wall-clock time, and whether every
host answered (a tool that did not is reported, not timed).

Scenarios:
- direct: N nodes published on 127.0.0.1;
- bastion: N nodes reachable only through the bastion. apssh multiplexes every
  tunnel over one bastion connection; OpenSSH-based tools (ProxyJump) open one
  bastion connection per node.

Peers, each used the way its documentation shows, all with the same key,
known_hosts file and fan-out >= N: ClusterShell's clush, pdsh, parallel-ssh
(Debian's `parallel-ssh`), Ansible ad-hoc (`ansible -m raw`: the nodes have no Python).

Run: `nox -s bench`, or `python benchmarks/bench_fanout.py [N ...]` (default: 8
then 24 nodes) where the image, the peers and an engine are there. Remember: one
loopback sshd costs ~47 ms of CPU per connection here, so on 2 cores the floor is
~N*47/2 ms per run.
"""

from __future__ import annotations

import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TC_HOST", "127.0.0.1")

from apssh_cli import lab

REPEAT = 5
COMMAND = "uptime"


@dataclass
class Tool:
    name: str
    argv: list[str]
    env: dict[str, str]


def ssh_config(topology: lab.Topology, path: Path) -> None:
    """An OpenSSH client config naming every node, for the OpenSSH-based peers."""
    common = (
        f"  User root\n  IdentityFile {topology.keypair.private_path.resolve()}\n"
        f"  IdentitiesOnly yes\n  UserKnownHostsFile {topology.known_hosts.resolve()}\n"
        "  StrictHostKeyChecking yes\n  BatchMode yes\n  LogLevel ERROR\n"
    )
    lines = [f"Host bastion\n  HostName 127.0.0.1\n  Port {topology.bastion.port}\n{common}"]
    for endpoint in topology.direct:
        lines.append(
            f"Host {endpoint.name}\n  HostName 127.0.0.1\n  Port {endpoint.port}\n{common}"
        )
    for endpoint in topology.internal:
        lines.append(
            f"Host {endpoint.name}\n  HostName {endpoint.name}\n  ProxyJump bastion\n{common}"
        )
    path.write_text("\n".join(lines))


def tools(hosts: list[str], group: str, inventory: Path, config: Path) -> list[Tool]:
    found: list[Tool] = []
    n = str(len(hosts))
    apssh = shutil.which("apssh")
    if apssh:
        found.append(
            Tool("apssh", [apssh, "-i", str(inventory), "-g", group, "-w", n, COMMAND], {})
        )
    clush = shutil.which("clush")
    if clush:
        argv = [clush, "-w", ",".join(hosts), "-f", n, "-o", f"-F {config}", COMMAND]
        found.append(Tool("clush", argv, {}))
    pdsh = shutil.which("pdsh")
    if pdsh:
        env = {"PDSH_RCMD_TYPE": "ssh", "PDSH_SSH_ARGS": f"-F {config} -l%u %h"}
        found.append(Tool("pdsh", [pdsh, "-f", n, "-w", ",".join(hosts), COMMAND], env))
    pssh = shutil.which("parallel-ssh")
    if pssh:
        argv = [pssh, "-p", n, "-i", "-x", f"-F {config}", "-H", " ".join(hosts), COMMAND]
        found.append(Tool("parallel-ssh", argv, {}))
    ansible = shutil.which("ansible")
    if ansible:
        argv = [
            ansible,
            "all",
            "-i",
            ",".join(hosts) + ",",
            "-f",
            n,
            "-m",
            "raw",  # our nodes have no Python, which every other module needs there
            "-a",
            COMMAND,
        ]
        env = {
            "ANSIBLE_SSH_ARGS": f"-F {config}",
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_LOCALHOST_WARNING": "False",
        }
        found.append(Tool("ansible (raw)", argv, env))
    return found


def run_tool(tool: Tool, hosts: list[str]) -> tuple[list[float], str]:
    samples: list[float] = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        done = subprocess.run(
            tool.argv,
            capture_output=True,
            text=True,
            env={**os.environ, **tool.env},
            timeout=120,
            check=False,
        )
        samples.append(time.perf_counter() - start)
        answered = sum(1 for host in hosts if host in done.stdout)
        if done.returncode != 0 or answered < len(hosts):
            error = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return samples, f"FAILED rc={done.returncode}, {answered}/{len(hosts)} hosts: {error}"
    return samples, "ok"


def main() -> None:
    sizes = [int(arg) for arg in sys.argv[1:]] or [8, 24]
    for count in sizes:
        bench_size(count)


def bench_size(count: int) -> None:
    name = f"bench{os.getpid()}-{secrets.token_hex(2)}"
    with tempfile.TemporaryDirectory(prefix="apssh-bench-") as tmp:
        state = Path(tmp)
        print(f"starting {count} direct nodes, a bastion and {count} nodes behind it ...")
        topology = lab.start_topology(name, state, nodes=count, direct=count, kind="test")
        try:
            config = state / "ssh_config"
            ssh_config(topology, config)
            scenarios = [
                ("direct", "direct", [e.name for e in topology.direct]),
                ("bastion", "nodes", [e.name for e in topology.internal]),
            ]
            print(f"fan-out of `{COMMAND}`: median and best of {REPEAT} runs, wall clock")
            for scenario, group, hosts in scenarios:
                print(f"  {scenario}: {len(hosts)} hosts")
                for tool in tools(hosts, group, topology.inventory, config):
                    samples, verdict = run_tool(tool, hosts)
                    median, best = statistics.median(samples), min(samples)
                    print(
                        f"    {tool.name:<18} median {median * 1000:7.0f} ms   "
                        f"best {best * 1000:7.0f} ms   {verdict}"
                    )
        finally:
            lab.remove_topology(name)


if __name__ == "__main__":
    main()
