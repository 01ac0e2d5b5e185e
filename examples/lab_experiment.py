#!/usr/bin/env python3
"""A measurement in the style of the R2lab nepi-ng demos, run on `apssh lab up`.

    apssh lab up --nodes 3
    python examples/lab_experiment.py            # every node of the lab
    python examples/lab_experiment.py -n node1 -n node2 --samples 10
    apssh lab down

What it does, as a graph of jobs (written to results/experiment.dot):

* check the gateway (the lab's bastion), and capture its host name;
* on each node, once the gateway answered: prepare (``init``);
* once ALL nodes are ready: on each node, time a few synced disk writes
  (``measure``), which leaves a file ``rawdata`` in the node's login directory,
  then pull that file into results/<node>.raw;
* once every node is done: print a summary locally, and a line on the gateway
  built from the captured name (a Deferred command).

The node side is the shell script lab_experiment.sh, one subcommand per step,
as angle-measure.sh is for angle-measure.py. Written for apssh-cli; a script
written for upstream apssh needs only its import lines changed (apssh ->
apssh_cli) and its connection constants, which here come from the lab's
inventory.
"""

from __future__ import annotations

import sys
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

# the Scheduler is asynciojobs' own, as in the upstream demos
from asynciojobs import Scheduler

from apssh_cli import (
    Capture,
    Deferred,
    Formatter,
    Inventory,
    LocalNode,
    Pull,
    Run,
    RunScript,
    SshJob,
    SshNode,
    SubdirFormatter,
    TimeHostFormatter,
    Variables,
    close_ssh_in_scheduler,
    load_private_keys,
    topology_as_dotfile,
)

SCRIPT = Path(__file__).with_name("lab_experiment.sh")


def lab_constants(inventory_path: str) -> dict[str, Any]:
    """The connection constants an upstream script writes by hand, read from the lab's inventory."""
    inventory = Inventory.load([inventory_path])
    nodes = sorted(host.name for host in inventory.select("nodes"))
    gateway = inventory.host(inventory.host(nodes[0]).gateway or nodes[0])
    return {
        "gateway_host": gateway.hostname,
        "gateway_port": gateway.port or 22,
        "gateway_user": gateway.user or "root",
        "key": gateway.identity_files[0],
        "known_hosts": gateway.known_hosts_file,
        "nodes": nodes,
    }


def one_run(
    constants: dict[str, Any],
    nodenames: list[str],
    samples: int,
    size: int,
    output: Path,
    formatter: Formatter,
    verbose: bool = False,
) -> bool:
    """Build one experiment's scheduler, run it, close its connections; True if all went well."""
    keys = load_private_keys([constants["key"]])
    output.mkdir(parents=True, exist_ok=True)

    # the gateway, then the nodes behind it: one SSH connection each,
    # the nodes' connections tunnelled through the gateway's
    gateway = SshNode(
        hostname=constants["gateway_host"],
        port=constants["gateway_port"],
        username=constants["gateway_user"],
        keys=keys,
        known_hosts=constants["known_hosts"],  # a known_hosts file, as upstream takes it
        formatter=formatter,
        debug=verbose,
    )
    nodes = {
        name: SshNode(
            hostname=name,
            username="root",
            gateway=gateway,
            keys=keys,
            known_hosts=constants["known_hosts"],
            formatter=formatter,
        )
        for name in nodenames
    }

    # values that exist only once the experiment runs
    env = Variables(nodes=" ".join(nodenames))

    check = SshJob(
        node=gateway,
        commands=[
            Run("hostname", capture=Capture("gateway_name", env)),
            # parts are joined for the remote shell: $(uptime -p) is expanded there
            Run("echo", "gateway up since", "$(uptime -s)"),
        ],
        label="check gateway",
    )
    inits = [
        SshJob(
            node=node,
            command=RunScript(SCRIPT, "init"),
            required=check,
            label=f"init {name}",
        )
        for name, node in nodes.items()
    ]
    measures = []
    for name, node in nodes.items():
        measure = SshJob(
            node=node,
            commands=[
                RunScript(SCRIPT, "measure", samples, size),
                # rawdata was written in the login directory by the script
                Pull(remotepaths="rawdata", localpath=output / f"{name}.raw"),
            ],
            label=f"measure {name}",
        )
        # start measuring only once every node is ready
        measure.requires(*inits)
        measures.append(measure)
    summary = SshJob(
        node=LocalNode(formatter=formatter),
        command=RunScript(SCRIPT, "summary", *(output / f"{name}.raw" for name in nodenames)),
        required=measures,
        label="summary",
    )
    report = SshJob(
        node=gateway,
        command=Run(Deferred("echo measured {{nodes}} through {{gateway_name}}", env)),
        required=measures,
        label="report",
    )

    scheduler = Scheduler(check, *inits, *measures, summary, report, verbose=verbose)
    scheduler.export_as_dotfile(str(output / "experiment.dot"))
    topology_as_dotfile(scheduler, output / "topology.dot")

    scheduler.timeout = 120
    ok = bool(scheduler.orchestrate())
    if not ok:
        scheduler.debrief()
    close_ssh_in_scheduler(scheduler)
    return ok


def main() -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-i",
        "--inventory",
        default=".lab/inventory.toml",
        help="the lab's inventory (written by `apssh lab up`)",
    )
    parser.add_argument(
        "-n",
        "--node",
        dest="nodes",
        action="append",
        default=[],
        help="a node to measure, additive (default: every node of the lab)",
    )
    parser.add_argument("-s", "--samples", type=int, default=5, help="writes per node")
    parser.add_argument("-k", "--size", type=int, default=256, help="KiB per write")
    parser.add_argument("-o", "--output", default="results", help="where results go")
    parser.add_argument(
        "-d",
        "--storage-dir",
        default=None,
        help="write each node's output to files in this directory",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()  # fmt: skip

    if not Path(args.inventory).exists():
        print(f"{args.inventory}: no lab here; start one with: apssh lab up --nodes 3")
        return 1
    constants = lab_constants(args.inventory)
    nodenames = args.nodes or constants["nodes"]
    # 21:09:41 node1:... on the terminal, or one file per node
    formatter = (
        TimeHostFormatter(verbose=args.verbose)
        if args.storage_dir is None
        else SubdirFormatter(args.storage_dir, verbose=args.verbose)
    )
    ok = one_run(
        constants,
        nodenames,
        args.samples,
        args.size,
        Path(args.output),
        formatter,
        verbose=args.verbose,
    )
    formatter.close()
    print("========== experiment OK" if ok else "!!!!!!!!!! experiment KO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
