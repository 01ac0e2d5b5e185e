"""Recipes: the same three steps on 20 hosts, apssh's recipe runner against Ansible and pyinfra.

The work (each step a barrier over the 20 hosts, as Ansible's linear strategy does):
`uname -r`; `mkdir -p DIR && date > DIR/stamp`; `cat DIR/stamp`. Measured:

- wall time of the whole run;
- logins per host: the "Accepted publickey" lines the 20 sshd servers logged during
  the first run, divided by 20 (the target for a recipe: 1);
- time per action on an open connection: one host, K actions (`true`) in a row
  against 1, ``(t(K) - t(1)) / (K - 1)``.

Tools: `apssh recipe run` (docs in /work/shared/RECIPES.md; reported "not available"
when this apssh has no `recipe` command), the same work written with the library
(benchmarks/peers/apssh_steps.py: SshJobs in a Scheduler), three `apssh` commands in a
row, `ansible-playbook` (raw tasks: the nodes have no Python; ssh with ansible's own
default ControlMaster=auto and ControlPersist=60s, the masters closed between runs),
and pyinfra (`server.shell`) where it installs.

Every host is its own container (a shared address would let Ansible share one
ControlMaster between hosts). Loopback, no delay proxy. Writes
benchmarks/results/raw/recipe.json. Run: `python benchmarks/bench_recipe.py [HOSTS]`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import harness
from harness import Fleet, HostSpec, Tool, paired_runs, which

STEPS = [
    ("kernel", "uname -r"),
    ("stamp", "mkdir -p /tmp/apssh-bench-recipe && date > /tmp/apssh-bench-recipe/stamp"),
    ("read", "cat /tmp/apssh-bench-recipe/stamp"),
]
ACTIONS = 40


def recipe_available(apssh: str) -> bool:
    done = subprocess.run([apssh, "recipe", "run", "--help"], capture_output=True, check=False)
    return done.returncode == 0


def recipe_toml(steps: list[tuple[str, str]], group: str, actions: int = 0) -> str:
    out = ['[recipe]\nname = "bench"\nformat = 1\n']
    if actions:
        out.append(f'\n[[step]]\nid = "actions"\nhosts = "{group}"\n')
        out += ['[[step.do]]\nrun = "true"\n'] * actions
        return "".join(out)
    previous = None
    for step_id, command in steps:
        out.append(
            f'\n[[step]]\nid = "{step_id}"\nhosts = "{group}"\nrun = {json.dumps(command)}\n'
        )
        if previous:
            out.append(f'requires = ["{previous}"]\n')
        previous = step_id
    return "".join(out)


def playbook(steps: list[tuple[str, str]], actions: int = 0) -> str:
    tasks = [("true", "true")] * actions if actions else steps
    out = ["- hosts: all\n  gather_facts: false\n  tasks:\n"]
    for name, command in tasks:
        out.append(f"    - name: {name}\n      raw: {json.dumps(command)}\n")
    return "".join(out)


def pyinfra_files(
    fleet: Fleet, work: Path, hosts: list[HostSpec], steps: list[tuple[str, str]], actions: int
) -> tuple[Path, Path]:
    entries = [
        (
            h.name,
            {
                "ssh_hostname": h.address,
                "ssh_port": h.port,
                "ssh_user": harness.USER,
                "ssh_key": str(fleet.key),
                "ssh_known_hosts_file": str(fleet.known_hosts),
                "ssh_strict_host_key_checking": "yes",
            },
        )
        for h in hosts
    ]
    inventory = work / "pyinfra_inventory.py"
    inventory.write_text(f"fleet = {entries!r}\n")
    tasks = [("true", "true")] * actions if actions else steps
    deploy = work / "pyinfra_deploy.py"
    deploy.write_text(
        "from pyinfra.operations import server\n"
        + "".join(
            f"server.shell(name={name!r}, commands=[{command!r}])\n" for name, command in tasks
        )
    )
    return inventory, deploy


class Logins:
    """Counts the logins the fleet's servers accepted (sshd logs 'Accepted publickey')."""

    def __init__(self, fleet: Fleet, hosts: list[HostSpec]) -> None:
        self.containers = [fleet.container_of(h).container.get_wrapped_container() for h in hosts]
        self.hosts = len(hosts)
        self.start = 0
        self.per_tool: dict[str, list[float]] = {}

    def total(self) -> int:
        return sum(c.logs().count(b"Accepted publickey") for c in self.containers)

    def hooks(self, tool: Tool) -> None:
        previous_prepare = tool.prepare

        def prepare() -> None:
            if previous_prepare is not None:
                previous_prepare()
            self.start = self.total()

        def check() -> str | None:
            runs = self.per_tool.setdefault(tool.name, [])
            runs.append((self.total() - self.start) / self.hosts)
            return None

        tool.prepare, tool.check = prepare, check


def tools_for(
    fleet: Fleet, hosts: list[HostSpec], tag: str, actions: int = 0
) -> tuple[list[Tool], list[str]]:
    work = fleet.dir / tag
    work.mkdir()
    apssh = which("apssh") or "apssh"
    inventory = fleet.inventory(work / "inventory.toml", {"fleet": hosts})
    config = fleet.ssh_config(work / "ssh_config", hosts)
    spec = harness.hosts_json(fleet, work / "hosts.json", hosts)
    missing: list[str] = []
    tools: list[Tool] = []
    if recipe_available(apssh):
        recipe = work / "recipe.toml"
        recipe.write_text(recipe_toml(STEPS, "fleet", actions))
        tools.append(
            Tool(
                "apssh recipe run",
                [
                    [
                        apssh,
                        "recipe",
                        "run",
                        str(recipe),
                        "-i",
                        str(inventory),
                        "-q",
                        "--run-dir",
                        str(work / "run"),
                    ]
                ],
            )
        )
    else:
        missing.append("apssh recipe run: not available (this apssh has no `recipe` command)")
    lib = [sys.executable, harness.peer_script("apssh_steps.py"), str(spec)]
    tools.append(
        Tool(
            "apssh library (SshJobs)",
            [[*lib, "actions", str(actions)] if actions else [*lib, "steps"]],
        )
    )
    if not actions:
        base = f"{apssh} -i {inventory} -g fleet -w {len(hosts)} -q"
        chain = " && ".join(f"{base} '{command}'" for _, command in STEPS)
        tools.append(Tool("apssh, 3 commands", [["sh", "-c", chain]]))
    if ansible := which("ansible-playbook"):
        book = work / "playbook.yml"
        book.write_text(playbook(STEPS, actions))
        control = work / "cp"
        control.mkdir()

        def close_masters() -> None:
            for socket in control.glob("*"):
                subprocess.run(
                    ["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "x"],
                    capture_output=True,
                    check=False,
                )

        env = {
            # ansible's own default ssh arguments, plus our config
            "ANSIBLE_SSH_ARGS": f"-F {config} -C -o ControlMaster=auto -o ControlPersist=60s",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control),
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_LOCALHOST_WARNING": "False",
            "ANSIBLE_FORKS": str(len(hosts)),
        }
        names = ",".join(h.name for h in hosts) + ","
        tools.append(
            Tool(
                "ansible-playbook", [[ansible, "-i", names, str(book)]], env, prepare=close_masters
            )
        )
    else:
        missing.append("ansible-playbook: not installed")
    if pyinfra := which("pyinfra"):
        inv, deploy = pyinfra_files(fleet, work, hosts, STEPS, actions)
        tools.append(
            Tool(
                "pyinfra",
                [[pyinfra, "-y", "--parallel", str(len(hosts)), str(inv), str(deploy)]],
                cwd=work,
            )
        )
    else:
        missing.append("pyinfra: not installed")
    return tools, missing


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else (6 if harness.quick() else 20)
    rounds = 2 if harness.quick() else 5
    extra: dict[str, Any] = {}
    with Fleet(direct=count) as fleet:
        hosts = fleet.direct_hosts(count, delayed=False, prefix="r")
        tools, missing = tools_for(fleet, hosts, "steps")
        for line in missing:
            print(f"    {line}", flush=True)
        logins = Logins(fleet, hosts)
        for tool in tools:
            logins.hooks(tool)
        print(f"3 steps on {count} hosts, loopback", flush=True)
        rows = paired_runs(f"3 steps on {count} hosts", tools, rounds)
        for row in rows:
            row.extra["logins_per_host"] = logins.per_tool.get(row.tool, [])
        print(f"    logins per host: {logins.per_tool}", flush=True)
        one = fleet.direct_hosts(1, delayed=False, prefix="a")
        for actions in (1, ACTIONS):
            tools, _ = tools_for(fleet, one, f"actions{actions}", actions)
            rows += paired_runs(f"{actions} actions on 1 host", tools, rounds)
        extra["missing"] = missing
    harness.save(
        "recipe",
        {
            "title": f"3 steps on {count} hosts; actions on an open connection",
            "hosts": count,
            "actions": ACTIONS,
            "rows": rows,
            **extra,
        },
    )


if __name__ == "__main__":
    main()
