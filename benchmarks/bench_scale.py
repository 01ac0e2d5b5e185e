"""Scale: memory of streamed output, and open descriptors over a large fleet.

Two measurements of the `apssh` process itself (not a timed test; figures for
docs/benchmarks.md, section "Scale: memory and descriptors"):

1. Peak RSS of `apssh` streaming `seq 2000000` (about 15 MB of output) from one
   host, next to streaming `seq 10`: a streamed run keeps no line in memory, so
   the two should be within 1.2x.
2. 1,000 targets, aliases of a few containers (half published on 127.0.0.1, half
   behind one bastion), at `-w 100` under `ulimit -n 256`: every host must end
   ok, and the peak number of descriptors the apssh process holds (sampled from
   /proc every few milliseconds) should stay under window + gateways + a small
   constant, since each host's connection is closed as soon as it is done.

Peak RSS comes from the kernel (wait4's ru_maxrss of the apssh process).

Run: `python benchmarks/bench_scale.py [TARGETS]` (default 1000) where the sshd
image and a Docker engine are there (`bash docker/build-image`).
"""

from __future__ import annotations

import os
import resource
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TC_HOST", "127.0.0.1")

from apssh_cli import lab

WINDOW = 100
NOFILE = 256
# what the apssh process holds besides its hosts: stdio, the event loop's
# selector and self-pipe, the interpreter's own files; generous
SMALL_CONSTANT = 24


@dataclass
class Measure:
    returncode: int
    max_rss_kib: int
    peak_fds: int
    seconds: float
    stdout_lines: int
    stderr_tail: str


def _count_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def measure(argv: list[str], *, nofile: int | None = None, keep_stdout: bool = False) -> Measure:
    """Run apssh; its peak RSS (kernel) and peak descriptors (sampled)."""

    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "apssh_cli.cli.main", *argv],
            stdout=out if keep_stdout else subprocess.DEVNULL,
            stderr=err,
            preexec_fn=limit,
        )
        peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _count_fds(process.pid))
                time.sleep(0.002)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        done.set()
        sampler.join()
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        lines = sum(1 for _ in out) if keep_stdout else 0
        tail = err.read()[-600:]
    return Measure(process.returncode, usage.ru_maxrss, peak, seconds, lines, tail)


def alias_inventory(topology: lab.Topology, count: int, path: Path) -> None:
    """The topology's inventory plus a group ``many`` of aliases of its nodes."""
    text = topology.inventory.read_text()
    for index in range(count):
        name = f"h{index:05d}"
        if index % 2 and topology.internal:
            endpoint = topology.internal[index // 2 % len(topology.internal)]
            text += f'\n[many.hosts.{name}]\nhostname = "{endpoint.name}"\n'
            text += f'gateway = "{topology.bastion.name}"\n'
        else:
            endpoint = topology.direct[index // 2 % len(topology.direct)]
            text += f'\n[many.hosts.{name}]\nhostname = "{endpoint.host}"\n'
            text += f"port = {endpoint.port}\n"
    path.write_text(text)


def main() -> None:
    targets = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    name = f"scale{os.getpid()}-{secrets.token_hex(2)}"
    with tempfile.TemporaryDirectory(prefix="apssh-scale-") as tmp:
        state = Path(tmp)
        print("starting 4 direct nodes, a bastion and 4 nodes behind it ...", flush=True)
        topology = lab.start_topology(name, state, nodes=4, direct=4, kind="test")
        try:
            inventory = str(topology.inventory)
            one = topology.direct[0].name
            print("memory: peak RSS of apssh streaming from one host (stdout to /dev/null)")
            small = measure(["-i", inventory, "-g", one, "seq 10"])
            big = measure(["-i", inventory, "-g", one, "seq 2000000"])
            for label, result in (("seq 10", small), ("seq 2000000", big)):
                print(
                    f"  {label:<12} peak RSS {result.max_rss_kib / 1024:6.1f} MiB"
                    f"   {result.seconds:5.1f} s   exit {result.returncode}"
                )
            ratio = big.max_rss_kib / small.max_rss_kib
            verdict = "ok" if ratio <= 1.2 else "MISSED"
            print(f"  ratio {ratio:.2f}x (target <= 1.2x): {verdict}")

            many = state / "many.toml"
            alias_inventory(topology, targets, many)
            print(
                f"descriptors: {targets} targets (half behind 1 bastion), -w {WINDOW}, "
                f"ulimit -n {NOFILE}"
            )
            result = measure(
                # handshakes queue up on a loaded machine: a 10 s connect timeout
                # would measure the load, not the engine
                [
                    "-i",
                    str(many),
                    "-g",
                    "many",
                    "-w",
                    str(WINDOW),
                    "--connect-timeout",
                    "60",
                    "--raw",
                    "echo ok",
                ],
                nofile=NOFILE,
                keep_stdout=True,
            )
            bound = WINDOW + 1 + SMALL_CONSTANT
            print(
                f"  exit {result.returncode}, {result.stdout_lines}/{targets} hosts answered, "
                f"{result.seconds:.1f} s, peak RSS {result.max_rss_kib / 1024:.1f} MiB"
            )
            verdict = "ok" if result.peak_fds <= bound else "MISSED"
            print(
                f"  peak open descriptors {result.peak_fds} "
                f"(target <= window {WINDOW} + gateways 1 + {SMALL_CONSTANT} = {bound}): {verdict}"
            )
            if result.returncode != 0:
                print("  stderr: " + result.stderr_tail.replace("\n", "\n    "))
        finally:
            lab.remove_topology(name)


if __name__ == "__main__":
    main()
