"""parallel-ssh (the PyPI package, ssh2-python based), used as its documentation shows.

    python pssh_lib.py HOSTS.json run COMMAND
    python pssh_lib.py HOSTS.json push LOCAL REMOTE        # ParallelSSHClient.copy_file
    python pssh_lib.py HOSTS.json pull REMOTE LOCALDIR     # copy_remote_file -> LOCALDIR/<name>/

HOSTS.json: as for asyncssh_min.py. A pool as large as the host list. parallel-ssh's
client does not check host keys (it has no known_hosts option). Exit 1 if any host failed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from gevent import joinall
from pssh.clients import ParallelSSHClient
from pssh.config import HostConfig


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    action, args = sys.argv[2], sys.argv[3:]
    hosts = spec["hosts"]
    client = ParallelSSHClient(
        [host["address"] for host in hosts],
        host_config=[
            HostConfig(port=host["port"], user=spec["user"], private_key=spec["key"])
            for host in hosts
        ],
        pool_size=len(hosts),
        allow_agent=False,
        num_retries=0,
    )
    if action == "run":
        output = client.run_command(" ".join(args), stop_on_errors=False)
        client.join(output)
        failed = [o for o in output if o.exception is not None or o.exit_code != 0]
        for o in failed:
            print(f"error: {o.host}: {o.exception!r} exit={o.exit_code}", file=sys.stderr)
        return 1 if failed else 0
    if action == "push":
        greenlets = client.copy_file(args[0], args[1])
    else:
        local = os.path.join(args[1], "%(name)s", os.path.basename(args[0]))
        greenlets = client.copy_remote_file(
            args[0], local, copy_args=[{"name": host["name"]} for host in hosts]
        )
    joinall(greenlets, raise_error=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
