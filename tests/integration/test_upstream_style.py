"""Scripts written for upstream apssh run with their import lines changed, and the example runs.

- upstream/upstream_demo.py is an experiment in upstream's style (asynciojobs'
  own Scheduler, a gateway chain, RunScript leaving ``rawdata`` for a Pull,
  argv joining, a list of strings as one command, Capture and Deferred,
  allowed_exits, keep_connection, LocalNode, close_ssh_in_scheduler): it runs
  with ``from apssh`` changed to ``from apssh_cli`` and its constants set to
  the test topology, nothing else.
- examples/lab_experiment.py runs against the topology's inventory, as it does
  against ``apssh lab up``.

Both run in a subprocess, as a user runs them.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from apssh_cli.lab import KeyPair, Topology

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
LIMIT = 180  # seconds: only catches a hang


def adapt(source: str, constants: dict[str, object]) -> str:
    """The script with its import lines renamed and its constants set, and nothing else."""
    lines = []
    for line in source.splitlines(keepends=True):
        line = re.sub(r"^from apssh(\.| )", r"from apssh_cli\1", line)
        name = line.split(" = ", 1)[0]
        if name in constants and not line.startswith(" "):
            line = f"{name} = {constants[name]!r}\n"
        lines.append(line)
    return "".join(lines)


def test_upstream_script_runs_with_only_its_imports_and_constants_changed(
    topology: Topology, ssh_keypair: KeyPair, tmp_path: Path
) -> None:
    first, second = topology.internal[:2]
    constants: dict[str, object] = {
        "gateway_host": topology.bastion.host,
        "gateway_port": topology.bastion.port,
        "gateway_user": "root",
        "node_names": [first.host, second.host],
        "key_file": str(ssh_keypair.private_path),
        "known_hosts_file": str(topology.known_hosts),
    }
    original = (HERE / "upstream" / "upstream_demo.py").read_text()
    adapted = adapt(original, constants)
    changed = [
        line[1:]
        for line in difflib.unified_diff(original.splitlines(), adapted.splitlines(), n=0)
        if line.startswith("-") and not line.startswith("---")
    ]
    # only the import lines from apssh, and the constants block
    for line in changed:
        assert line.startswith("from apssh") or line.split(" = ")[0] in constants, line
    assert len(changed) == 4 + len(constants)
    script = tmp_path / "upstream" / "upstream_demo.py"
    script.parent.mkdir()
    script.write_text(adapted)
    (script.parent / "demo.sh").write_bytes((HERE / "upstream" / "demo.sh").read_bytes())

    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=LIMIT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["ok"] is True, done.stdout + done.stderr
    # argv joining: $(hostname) expanded on the node, by the remote shell
    node1_name = report["env"]["host1"]
    assert report["rawdata"] == "".join(f"sample {i} on {node1_name}\n" for i in (1, 2, 3))
    # a Deferred rendered from a capture made by another job, on another node
    assert report["env"]["peer"] == f"peer is {node1_name}"
    assert report["env"]["host2"] and report["env"]["host2"] != node1_name
    assert report["distances"] == [1, 2, 2]
    assert report["results"] == [0, 0, 0]
    assert report["connected_after_close"] == [False, False, False]
    assert "Local Node" in report["topology"] and f"root@{first.host}" in report["topology"]
    # graph labels: user@host, then one line per command; a label "" is hidden
    assert f"root@{second.host}" in report["dot"] and "exit 3" in report["dot"]
    assert "false" not in report["dot"]
    out = done.stdout
    assert re.search(r"warmup on \S+", out)  # ONE command from a list of strings
    assert "args: 2 first=two words second=more" in out  # RunString args joined too
    assert f"preparing {first.host} in /root" in out  # RunScript runs in the login dir
    assert re.search(r"localhost:3$", out, re.MULTILINE)  # the LocalNode epilogue


def test_example_runs_against_the_lab_inventory(topology: Topology, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "lab_experiment.py"),
            "-i",
            str(topology.inventory),
            "--samples",
            "2",
            "--size",
            "16",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=LIMIT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "experiment OK" in done.stdout
    # Run("echo", "gateway up since", "$(uptime -s)"): expanded by the remote shell
    assert re.search(r"gateway up since \d{4}-\d\d-\d\d \d", done.stdout), done.stdout
    names = [endpoint.name for endpoint in topology.internal]
    for name in names:
        raw = (tmp_path / "results" / f"{name}.raw").read_text().splitlines()
        assert len(raw) == 2 and all(len(line.split()) == 3 for line in raw)
        assert re.search(rf"localhost:{name} mean \d+ us over 2 samples", done.stdout)
    assert f"measured {' '.join(names)} through" in done.stdout
    assert (tmp_path / "results" / "experiment.dot").read_text().startswith("digraph")


def test_readme_library_example_runs_as_written(topology: Topology, tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## The library") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    (tmp_path / "example.py").write_text(match.group(1))
    # the lab's files where `apssh lab up` puts them, the repository's recipes
    (tmp_path / ".lab").symlink_to(topology.inventory.parent)
    assert (tmp_path / ".lab" / "inventory.toml").exists()
    (tmp_path / "recipes").symlink_to(ROOT / "recipes")
    home = tmp_path / "home"
    home.mkdir()
    done = subprocess.run(
        [sys.executable, "example.py"],
        cwd=tmp_path,
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=LIMIT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    for endpoint in topology.internal:
        lines = (tmp_path / "results" / f"{endpoint.name}.csv").read_text().splitlines()
        assert lines[0] == "host,sample,size_mb,micros" and len(lines) == 4
    assert not (home / ".ssh").exists()  # nothing written to ~/.ssh/known_hosts
