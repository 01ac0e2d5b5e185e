"""The README's own commands leave nothing that `git status` shows: what they write is ignored."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

# what the README's commands write besides their -o, --failed-to and pull destinations
KNOWN_OUTPUTS = [
    ".lab/inventory.toml",  # apssh lab up
    "recipes/runs/sweep/20261203-101500/results.csv",  # apssh recipe run recipes/sweep.toml
    "results/node1/samples.csv",  # python examples/lab_experiment.py (-o results)
    "build/site/index.html",  # nox -s docs
    "build/man/apssh.1",
    ".nox/tests/bin/python",  # nox
]


def readme_outputs() -> list[str]:
    """The local paths the README's apssh command lines name as outputs."""
    found: list[str] = []
    for line in (ROOT / "README.md").read_text().splitlines():
        command = line.split("#", 1)[0].strip()
        if not command.startswith("apssh "):
            continue
        words = shlex.split(command)
        for option in ("-o", "--out-dir", "--failed-to"):
            if option in words:
                found.append(words[words.index(option) + 1])
        if len(words) > 1 and words[1] == "pull":
            found.append(words[-1])
    return found


def test_the_readme_names_its_outputs() -> None:
    # the parsing above finds the outputs the README shows today
    assert {"out/", "retry.txt", "results/"} <= set(readme_outputs())


@pytest.mark.parametrize("path", [*readme_outputs(), *KNOWN_OUTPUTS])
def test_what_the_readme_commands_write_is_ignored(path: str) -> None:
    git = shutil.which("git")
    assert git is not None, "git is needed to check .gitignore"
    # a file inside a directory output, the way the commands write them
    inside = re.sub(r"/$", "", path) + ("/node1/file" if path.endswith("/") else "")
    done = subprocess.run(
        [git, "check-ignore", "--no-index", "-q", inside], cwd=ROOT, capture_output=True
    )
    assert done.returncode == 0, f"{inside} is not ignored by .gitignore"
