#!/usr/bin/env python3
"""Gather the samples a sweep pulled (COMBO/HOST/samples.csv) into one CSV.

usage: sweep_aggregate.py RUN_DIR OUTPUT.csv
Each combination directory is named like "size_mb=1,samples=2"; its keys become
columns, next to the host and the measure.sh columns (sample, size_mb, micros).
"""

import csv
import sys
from pathlib import Path


def main(run_dir: str, output: str) -> int:
    rows = []
    keys: list[str] = []
    for path in sorted(Path(run_dir).glob("*=*/*/samples.csv")):
        combo = dict(part.split("=", 1) for part in path.parent.parent.name.split(","))
        for key in combo:
            if key not in keys:
                keys.append(key)
        with path.open(newline="") as handle:
            for sample in csv.DictReader(handle):
                rows.append(
                    {
                        **{f"combo_{k}": v for k, v in combo.items()},
                        "host": path.parent.name,
                        "sample": sample["sample"],
                        "micros": sample["micros"],
                    }
                )
    if not rows:
        print("no samples found", file=sys.stderr)
        return 1
    columns = [f"combo_{k}" for k in keys] + ["host", "sample", "micros"]
    with open(output, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    hosts = len({row["host"] for row in rows})
    print(f"{output}: {len(rows)} samples from {hosts} hosts")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
