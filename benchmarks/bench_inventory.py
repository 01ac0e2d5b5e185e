"""Time the inventory on 10,000 hosts: load, expand/fold, select.

A plain script (no pytest): ``python benchmarks/bench_inventory.py [--hosts N]``.
It writes a generated inventory to a temporary directory, one explicit line per
host (the slow case for the parser; ranges would be faster), and prints the
best of a few runs for each step. The goal of the inventory issue: load plus
select well under one second for 10,000 hosts.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from apssh_cli.inventory import hostrange
from apssh_cli.inventory.model import Inventory

RACK_SIZE = 100


def write_inventory(directory: Path, hosts: int) -> Path:
    """One rack group per RACK_SIZE hosts, two parent groups, a bastion, some variables."""
    lines = [
        "[all.vars]",
        'user = "root"',
        'gateway = "bastion"',
        'known_hosts = "accept-new"',
        "",
        "[infra.hosts]",
        'bastion = { hostname = "192.0.2.1", port = 2222, user = "admin" }',
        "",
    ]
    racks = []
    for rack in range((hosts + RACK_SIZE - 1) // RACK_SIZE):
        name = f"rack{rack:03d}"
        racks.append(name)
        lines += [f"[{name}]", f'vars = {{ rack = {rack}, scratch = "/scratch/{name}" }}', ""]
        lines.append(f"[{name}.hosts]")
        first = rack * RACK_SIZE + 1
        for number in range(first, min(first + RACK_SIZE, hosts + 1)):
            extra = (
                f'port = {2200 + number % 7}, role = "r{number % 3}"' if number % 10 == 0 else ""
            )
            lines.append(f"node{number:05d} = {{ {extra} }}")
        lines.append("")
    half = len(racks) // 2
    lines += ["[compute]", f"children = {racks[:half]!r}".replace("'", '"'), ""]
    lines += ["[storage]", f"children = {racks[half:]!r}".replace("'", '"'), ""]
    path = directory / "big.toml"
    path.write_text("\n".join(lines))
    return path


def best_of(runs: int, action: Callable[[], Any]) -> tuple[float, Any]:
    """The shortest wall time over ``runs`` calls, and the last result."""
    best = float("inf")
    result = None
    for _ in range(runs):
        start = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs = args.runs

    with tempfile.TemporaryDirectory() as directory:
        path = write_inventory(Path(directory), args.hosts)
        size = path.stat().st_size
        seconds, inventory = best_of(runs, lambda: Inventory.load([path]))
        print(
            f"hosts: {len(inventory)} in {len(inventory.groups)} groups ({size / 1e6:.1f} MB TOML)"
        )
        print(f"load                              {seconds * 1000:8.1f} ms")
        assert len(inventory) == args.hosts + 1

    pattern = f"node[00001:{args.hosts:05d}]"
    seconds, names = best_of(runs, lambda: hostrange.expand(pattern))
    print(f"expand {pattern:<26} {seconds * 1000:8.1f} ms  ({len(names)} names)")
    seconds, folded = best_of(runs, lambda: hostrange.fold(names))
    print(f"fold {len(names)} names {'':<16} {seconds * 1000:8.1f} ms  -> {folded}")

    patterns = [
        ("all", None),
        ("compute", None),
        ("compute,&~node0[0-4].*", "rack00*"),
        ("node0*,!storage", None),
        (f"node[00001:{args.hosts // 2:05d}],bastion", None),
    ]
    total_select = 0.0
    for pattern, exclude in patterns:
        seconds, hosts = best_of(runs, lambda p=pattern, x=exclude: inventory.select(p, x))
        total_select += seconds
        label = pattern + (f"  -x {exclude}" if exclude else "")
        print(f"select {label:<26} {seconds * 1000:8.1f} ms  ({len(hosts)} hosts)")

    seconds, _ = best_of(1, lambda: [inventory.route(host.name) for host in inventory])
    print(f"route of every host               {seconds * 1000:8.1f} ms")

    with tempfile.TemporaryDirectory() as directory:
        path = write_inventory(Path(directory), args.hosts)

        def load_and_select() -> list[Any]:
            return Inventory.load([path]).select("compute,!rack001", "node0000*")

        seconds, _ = best_of(runs, load_and_select)
    verdict = "ok" if seconds < 1.0 else "TOO SLOW"
    print(f"load + select (the CLI's path)    {seconds * 1000:8.1f} ms  {verdict} (< 1000 ms)")


if __name__ == "__main__":
    main()
