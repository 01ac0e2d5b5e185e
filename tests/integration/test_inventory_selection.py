"""`-x` means what it says on real runs: a typo stops before anything runs anywhere.

Issue 19.6: ``-g nodes -x nod3`` used to run on node3 too. Each test writes a marker
file through apssh and then looks for it in every container with ``docker exec``.
"""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest

from apssh_cli.lab import Topology
from tests.integration.command import run_apssh

pytestmark = pytest.mark.integration


def apssh(*args: str) -> subprocess.CompletedProcess[str]:
    return run_apssh(*args)


def marked(topology: Topology, marker: str) -> list[str]:
    """The direct nodes where the marker file exists."""
    return [
        endpoint.name
        for endpoint in topology.direct
        if topology.exec(endpoint, f"test -e {marker}")[0] == 0
    ]


def remove(topology: Topology, marker: str) -> None:
    """The topology is shared by the session's tests: leave nothing on its nodes."""
    for endpoint in topology.direct:
        topology.exec(endpoint, f"rm -f {marker}")


def test_run_with_a_typo_in_x_runs_nowhere(topology: Topology) -> None:
    first, second, *_ = (endpoint.name for endpoint in topology.direct)
    marker = f"/tmp/xsel-{secrets.token_hex(4)}"  # not apssh-*: other tests count those
    typo = second[:-1] + "9"  # direct9: no such host
    done = apssh("-i", str(topology.inventory), "-g", "direct", "-x", typo, f"touch {marker}")
    assert done.returncode == 1
    assert done.stderr.startswith(f"apssh: no group or host matches '{typo}'"), done.stderr
    assert marked(topology, marker) == []
    # the right name leaves that host out, and only it
    done = apssh("-i", str(topology.inventory), "-g", "direct", "-x", second, f"touch {marker}")
    assert done.returncode == 0, done.stderr
    assert second not in marked(topology, marker) and first in marked(topology, marker)
    remove(topology, marker)


def test_recipe_run_with_a_typo_in_x_runs_nowhere(topology: Topology, tmp_path: Path) -> None:
    marker = f"/tmp/xsel-{secrets.token_hex(4)}"  # not apssh-*: other tests count those
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        f'[recipe]\nname = "x"\nformat = 1\n[[step]]\nid = "mark"\nhosts = "direct"\n'
        f'run = "touch {marker}"\n'
    )
    inventory = str(topology.inventory)
    done = apssh("recipe", "run", str(recipe), "-i", inventory, "-x", "direct9", "-q")
    assert done.returncode == 1
    assert "-x 'direct9': no group or host matches 'direct9'" in done.stderr
    assert marked(topology, marker) == []
    assert not (tmp_path / "runs").exists()
    excluded = topology.direct[0].name
    done = apssh("recipe", "run", str(recipe), "-i", inventory, "-x", excluded, "-q")
    assert done.returncode == 0, done.stderr
    assert sorted(marked(topology, marker)) == sorted(e.name for e in topology.direct[1:])
    remove(topology, marker)
