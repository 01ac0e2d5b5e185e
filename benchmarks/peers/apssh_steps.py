"""The recipe scenario's work written with the apssh_cli library (SshJob + Scheduler).

    python apssh_steps.py HOSTS.json steps          # the 3 steps, each a barrier, 1 connection/host
    python apssh_steps.py HOSTS.json actions K      # K times `true` in one SshJob per host

HOSTS.json: as for asyncssh_min.py. What `apssh recipe run` builds, by hand: the
floor of the recipe runner on the library's own engine. Exit 1 if any job failed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from apssh_cli import CaptureFormatter, Run, Scheduler, SshJob, SshNode, close_nodes

STEPS = [
    "uname -r",
    "mkdir -p /tmp/apssh-bench-recipe && date > /tmp/apssh-bench-recipe/stamp",
    "cat /tmp/apssh-bench-recipe/stamp",
]


async def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    nodes = [
        SshNode(
            host["address"],
            port=host["port"],
            username=spec["user"],
            keys=[spec["key"]],
            known_hosts="strict",
            known_hosts_file=spec["known_hosts"],
            ssh_config=None,
            label=host["name"],
            connect_timeout=120,
            formatter=CaptureFormatter(),
        )
        for host in spec["hosts"]
    ]
    scheduler = Scheduler()
    if sys.argv[2] == "steps":
        previous: list[SshJob] = []
        for step, command in enumerate(STEPS):
            jobs = [
                SshJob(
                    node,
                    commands=[Run(command)],
                    required=previous,
                    scheduler=scheduler,
                    step=f"step{step}",
                )
                for node in nodes
            ]
            previous = jobs
    else:
        count = int(sys.argv[3])
        for node in nodes:
            SshJob(node, commands=[Run("true") for _ in range(count)], scheduler=scheduler)
    try:
        ok = await scheduler.co_run()
    finally:
        await close_nodes(nodes)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
