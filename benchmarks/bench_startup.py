"""Start-up time of commands that do not connect: `apssh --help`, `--version`.

Each command is run REPEAT times as a fresh process; the median and the best
wall-clock times are printed, next to `python -c pass` (the interpreter's own
floor), `python -c 'import asyncio'` and `python -c 'import asyncssh'` (the import
floors of an asyncio tool and of an asyncssh-based one; all with this interpreter,
sys.executable) and, when installed, a peer tool's `--help`. Run: `nox -s bench`.
Writes benchmarks/results/raw/startup.json.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import harness

REPEAT = 15
IMPORT_ASYNCIO = "python -c 'import asyncio'"
IMPORT_ASYNCSSH = "python -c 'import asyncssh'"  # report.py's name for the import floor


def measure(argv: list[str]) -> tuple[list[float], str | None]:
    """REPEAT wall times, and an error if a run failed (its time measures nothing)."""
    samples = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        done = subprocess.run(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False
        )
        samples.append(time.perf_counter() - start)
        if done.returncode != 0:
            last = (done.stderr.strip() or "no output").splitlines()[-1]
            return samples, f"exit {done.returncode}: {last[:200]}"
    return samples, None


def main() -> None:
    apssh = harness.which("apssh") or "apssh"
    cases: list[tuple[str, list[str]]] = [
        ("python -c pass (floor)", [sys.executable, "-c", "pass"]),
        # the import floors: any asyncio tool, any asyncssh-based tool
        (IMPORT_ASYNCIO, [sys.executable, "-c", "import asyncio"]),
        (IMPORT_ASYNCSSH, [sys.executable, "-c", "import asyncssh"]),
        ("apssh --version", [apssh, "--version"]),
        ("apssh --help", [apssh, "--help"]),
        ("apssh inventory --help", [apssh, "inventory", "--help"]),
    ]
    for peer in ("clush", "ansible"):
        path = harness.which(peer)
        if path:
            cases.append((f"{peer} --help (peer)", [path, "--help"]))
    print(f"startup: median and best of {REPEAT} runs, wall clock")
    rows = []
    for name, argv in cases:
        samples, error = measure(argv)
        if error:
            print(f"  {name:<34} FAILED: {error}")
        else:
            median, best = statistics.median(samples), min(samples)
            print(f"  {name:<34} median {median * 1000:7.1f} ms   best {best * 1000:7.1f} ms")
        rows.append(
            {
                "case": "start-up",
                "tool": name,
                "walls": samples,
                "cpus": [],
                "error": error,
                "extra": {},
            }
        )
    harness.save("startup", {"title": "start-up of commands that do not connect", "rows": rows})


if __name__ == "__main__":
    main()
