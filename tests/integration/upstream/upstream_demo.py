#!/usr/bin/env python3
"""An experiment written for upstream apssh 0.27 + asynciojobs, in the style of the R2lab demos.

It is kept here exactly as such a script reads, import lines included: the
integration test (test_upstream_style.py) runs it after changing only its
import lines (apssh -> apssh_cli) and its connection constants.

It prints one JSON line at the end, for the test to check.
"""

import json
from pathlib import Path

from asynciojobs import Scheduler, Sequence

from apssh import SshNode, SshJob, LocalNode, Run, RunScript, RunString, Pull
from apssh import load_private_keys, close_ssh_in_scheduler, topology_dot
from apssh import Variables, Deferred, Capture
from apssh.formatters import TimeHostFormatter

########## connection constants
gateway_host = "faraday.inria.fr"
gateway_port = 22
gateway_user = "inria_admin"
node_names = ["fit01", "fit02"]
key_file = "/home/me/.ssh/id_rsa"
known_hosts_file = "/home/me/.ssh/known_hosts"
##########

here = Path(__file__).parent
script = str(here / "demo.sh")

measure_body = """#!/bin/bash
# a script given as a string; its arguments are joined like Run's
echo "args: $# first=$1 second=$2"
"""


def main():
    keys = load_private_keys([key_file])
    formatter = TimeHostFormatter()

    gateway = SshNode(hostname=gateway_host, port=gateway_port, username=gateway_user,
                      keys=keys, known_hosts=known_hosts_file, formatter=formatter)
    node1, node2 = [
        SshNode(hostname=name, username="root", gateway=gateway, keys=keys,
                known_hosts=known_hosts_file, formatter=formatter, timeout=20)
        for name in node_names]

    env = Variables()
    scheduler = Scheduler()

    # a list of strings is ONE command: its parts are joined
    warmup = SshJob(
        node=gateway,
        commands=["echo", "warmup on", "$(hostname)"],
        scheduler=scheduler)

    preps = [
        SshJob(
            node=node,
            commands=[
                RunScript(script, "prepare", name),
                Run("hostname", capture=Capture(f"host{index}", env)),
                None,
            ],
            required=warmup,
            scheduler=scheduler)
        for index, (name, node) in enumerate(zip(node_names, (node1, node2)), 1)]

    measure = SshJob(
        node=node1,
        commands=[
            RunScript(script, "measure", 3, "on", "$(hostname)"),
            Pull(remotepaths="rawdata", localpath="rawdata-node1"),
            RunString(measure_body, "'two words'", "more"),
        ],
        required=preps,
        scheduler=scheduler)

    Sequence(
        SshJob(node=node2,
               command=Run(Deferred("echo peer is {{host1}}", env),
                           capture=Capture("peer", env))),
        SshJob(node=node2,
               commands=[Run("exit 3", allowed_exits=[3]),
                         Run("false", label="")],
               critical=False, keep_connection=True),
        required=preps,
        scheduler=scheduler)

    epilogue = SshJob(
        node=LocalNode(),
        command=Run("test -s rawdata-node1 && wc -l < rawdata-node1"),
        required=measure,
        scheduler=scheduler)

    ok = scheduler.orchestrate()
    if not ok:
        scheduler.debrief()
    report = {
        "ok": ok,
        "env": dict(env),
        "rawdata": Path("rawdata-node1").read_text() if Path("rawdata-node1").exists() else None,
        "distances": [node.distance() for node in (gateway, node1, node2)],
        "results": [job.result() for job in (warmup, measure, epilogue)],
        "topology": topology_dot(scheduler),
        "dot": scheduler.dot_format(),
    }
    close_ssh_in_scheduler(scheduler)
    report["connected_after_close"] = [node.is_connected() for node in (gateway, node1, node2)]
    print(json.dumps(report))


if __name__ == '__main__':
    main()
