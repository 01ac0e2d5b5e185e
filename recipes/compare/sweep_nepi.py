#!/usr/bin/env python3
"""recipes/sweep.toml written as a nepi-ng style script (apssh_cli's SshJob and Scheduler).

usage: sweep_nepi.py INVENTORY   (e.g. .lab/inventory.toml from `apssh lab up`)
"""

import argparse
import asyncio
import itertools
import time
from pathlib import Path

from apssh_cli import (
    Inventory,
    LocalNode,
    Pull,
    Run,
    RunScript,
    Scheduler,
    SshJob,
    SshNode,
    close_nodes,
)

HERE = Path(__file__).resolve().parent.parent
WORKDIR = "/tmp/apssh-sweep"
SIZES = [1, 4]
SAMPLES = [2, 3]


def make_node(inventory, name, gateway=None):
    host = inventory.host(name)
    return SshNode(
        host.hostname,
        port=host.port,
        username=host.user,
        gateway=gateway,
        keys=list(host.identity_files),
        known_hosts_file=host.known_hosts_file,
        label=name,
    )


async def main(inventory_path):
    inventory = Inventory.load([inventory_path])
    bastion = make_node(inventory, "bastion")
    nodes = [make_node(inventory, host.name, bastion) for host in inventory.select("nodes")]
    run_dir = HERE / "runs" / "sweep-nepi" / time.strftime("%Y%m%d-%H%M%S")
    scheduler = Scheduler()
    previous = [
        SshJob(
            node,
            command=Run(f"mkdir -p {WORKDIR} && rm -f {WORKDIR}/samples.csv"),
            scheduler=scheduler,
        )
        for node in nodes
    ]
    for size, samples in itertools.product(SIZES, SAMPLES):
        combo_dir = run_dir / f"size_mb={size},samples={samples}"
        previous = [
            SshJob(
                node,
                scheduler=scheduler,
                required=previous,
                commands=[
                    RunScript(
                        HERE / "measure.sh",
                        "-n",
                        samples,
                        "-s",
                        size,
                        "-o",
                        f"{WORKDIR}/samples.csv",
                    ),
                    Pull(f"{WORKDIR}/samples.csv", f"{combo_dir}/{node.label}/"),
                ],
            )
            for node in nodes
        ]
    SshJob(
        LocalNode(),
        scheduler=scheduler,
        required=previous,
        command=Run(f"cd {run_dir} && python3 {HERE / 'sweep_aggregate.py'} . results.csv"),
    )
    try:
        ok = await scheduler.co_run()
    finally:
        await close_nodes([*nodes, bastion])
    print("ok" if ok else "failed", run_dir)
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("inventory")
    raise SystemExit(asyncio.run(main(parser.parse_args().inventory)))
