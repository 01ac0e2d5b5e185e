"""Running the real `apssh` command in a process of its own, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def run_apssh(
    *args: str,
    home: Path | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run ``apssh ARGS`` to its end; output as text (undecodable bytes kept as escapes).

    Args:
        home: HOME for the process (an empty one: no ~/.ssh, no known_hosts); the
            agent is left out then too, so that only the keys given are used.
        cwd: where it starts (the package is found from anywhere).
        timeout: a guard against a hang, not a timing assertion.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if home is not None:
        env["HOME"] = str(home)
        env.pop("SSH_AUTH_SOCK", None)
    return subprocess.run(
        [sys.executable, "-m", "apssh_cli.cli.main", *args],
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=timeout,
        env=env,
        cwd=cwd,
    )
