"""The floor for an asyncssh-based tool: the least code that does the work, no apssh.

    python asyncssh_min.py HOSTS.json run COMMAND
    python asyncssh_min.py HOSTS.json push LOCAL REMOTE
    python asyncssh_min.py HOSTS.json pull REMOTE LOCALDIR     # LOCALDIR/<name>

HOSTS.json: {"user", "key", "known_hosts", "hosts": [{"name", "address", "port"}]}.
Every host at once, one connection each; SFTP blocks as large as the server allows
(asyncssh reads OpenSSH's limits extension: 255 KiB; a 256 KiB write is more than
OpenSSH's sftp-server accepts, and it closes the session) and 32 requests in flight.
Exit 1 if any host failed. ASYNCSSH_CIPHERS=aes128-gcm@openssh.com,... sets the ciphers
asyncssh offers (its default puts chacha20-poly1305 first), for experiments.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import asyncssh

BLOCK_SIZE = -1  # the server's limit (limits@openssh.com): 261120 bytes for OpenSSH
MAX_REQUESTS = 32
OPTIONS = (
    {"encryption_algs": os.environ["ASYNCSSH_CIPHERS"].split(",")}
    if os.environ.get("ASYNCSSH_CIPHERS")
    else {}
)


async def one(spec: dict, host: dict, action: str, args: list[str]) -> None:
    async with asyncssh.connect(
        host["address"],
        host["port"],
        username=spec["user"],
        client_keys=[spec["key"]],
        known_hosts=spec["known_hosts"],
        agent_path=None,
        config=None,
        **OPTIONS,
    ) as conn:
        if action == "run":
            result = await conn.run(" ".join(args), check=True)
            sys.stdout.write(str(result.stdout))
            return
        async with conn.start_sftp_client() as sftp:
            if action == "push":
                await sftp.put(args[0], args[1], block_size=BLOCK_SIZE, max_requests=MAX_REQUESTS)
            else:
                target = Path(args[1]) / host["name"]
                target.mkdir(parents=True, exist_ok=True)
                await sftp.get(
                    args[0], str(target), block_size=BLOCK_SIZE, max_requests=MAX_REQUESTS
                )


async def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    action, args = sys.argv[2], sys.argv[3:]
    results = await asyncio.gather(
        *(one(spec, host, action, args) for host in spec["hosts"]), return_exceptions=True
    )
    failed = [r for r in results if isinstance(r, BaseException)]
    for error in failed:
        print(f"error: {error!r}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
