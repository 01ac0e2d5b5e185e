"""Start-up time of commands that do not connect: `apssh --help`, `--version`.

Each command is run REPEAT times as a fresh process; the median and the best
wall-clock times are printed, next to `python -c pass` (the interpreter's own
floor) and, when installed, a peer tool's `--help`. Run: `nox -s bench`.
Writes benchmarks/results/raw/startup.json.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import harness

REPEAT = 15


def measure(argv: list[str]) -> list[float]:
    samples = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    apssh = harness.which("apssh") or "apssh"
    cases: list[tuple[str, list[str]]] = [
        ("python -c pass (floor)", [sys.executable, "-c", "pass"]),
        ("apssh --version", [apssh, "--version"]),
        ("apssh --help", [apssh, "--help"]),
        ("apssh inventory --help", [apssh, "inventory", "--help"]),
        ("python -c 'import asyncssh'", [sys.executable, "-c", "import asyncssh"]),
    ]
    for peer in ("clush", "ansible"):
        path = harness.which(peer)
        if path:
            cases.append((f"{peer} --help (peer)", [path, "--help"]))
    print(f"startup: median and best of {REPEAT} runs, wall clock")
    rows = []
    for name, argv in cases:
        samples = measure(argv)
        median, best = statistics.median(samples), min(samples)
        print(f"  {name:<34} median {median * 1000:7.1f} ms   best {best * 1000:7.1f} ms")
        rows.append(
            {
                "case": "start-up",
                "tool": name,
                "walls": samples,
                "cpus": [],
                "error": None,
                "extra": {},
            }
        )
    harness.save("startup", {"title": "start-up of commands that do not connect", "rows": rows})


if __name__ == "__main__":
    main()
