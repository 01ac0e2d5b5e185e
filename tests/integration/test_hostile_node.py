"""A hostile node in the topology: a compromised machine beside an honest one (issue 19).

The hostile node's own binaries lie: its ``uptime`` forges lines for the honest node
and writes terminal escapes, its ``hostname`` answers with shell code for a recipe to
capture, and its home holds a FIFO, a device, a symlink out of the tree and file names
with control characters. Through the real ``apssh`` command, with the user typing
ordinary commands, it can neither speak for the honest node, nor drive the terminal,
nor run code on the controller or on the honest node, nor hang or fill a pull.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from apssh_cli.lab import Endpoint, KeyPair
from tests.integration.command import run_apssh

pytestmark = pytest.mark.integration

GUARD = 180  # against a hang, not a timing assertion

FAKE_UPTIME = r"""#!/bin/sh
printf ' 10:00:00 up 1 day\rgood: FAKE forged by hostile\n'
printf '\033[2K\033[1Ggood: FAKE cursor\n'
printf '\033]52;c;cm0gLXJmIH4K\a\033]0;owned\a\n'
printf '== good ==\ngood FAKE block line\n'
"""
# what `hostname` answers on the hostile node: code for whoever splices it unquoted
FAKE_HOSTNAME = "#!/bin/sh\necho 'h;touch /tmp/pwned-by-hostile;$(touch /tmp/pwned2)'\n"
TREE = (
    "mkdir -p /root/tree/sub && echo data > /root/tree/plain && mkfifo /root/tree/fifo"
    " && ln -s /dev/zero /root/tree/zero && ln -s /etc /root/tree/sub/out"
    " && touch \"/root/tree/$(printf 'nl\\nname')\" \"/root/tree/$(printf 'esc\\033[31m')\""
)


def install(endpoint: Endpoint, path: str, text: str) -> None:
    rc, out = endpoint_exec(endpoint, f"cat > {path} <<'EOF'\n{text}EOF\nchmod 755 {path}")
    assert rc == 0, out


def endpoint_exec(endpoint: Endpoint, cmd: str) -> tuple[int, str]:
    from apssh_cli.lab.model import exec_in

    return exec_in(endpoint, cmd)


@dataclass(frozen=True)
class Fleet:
    inventory: Path  # group `fleet`: hosts `hostile` and `good`
    good: Endpoint


@pytest.fixture
def fleet(sshd_factory: Any, ssh_keypair: KeyPair, tmp_path: Path) -> Iterator[Fleet]:
    """The hostile node and an honest one, in one inventory."""
    hostile = sshd_factory(name="hostile")
    good = sshd_factory(name="good")
    install(hostile, "/usr/local/bin/uptime", FAKE_UPTIME)
    install(hostile, "/usr/local/bin/hostname", FAKE_HOSTNAME)
    rc, out = endpoint_exec(hostile, TREE)
    assert rc == 0, out
    known = tmp_path / "known_hosts"
    known.write_text(sshd_factory.known_hosts_line(hostile) + sshd_factory.known_hosts_line(good))
    text = ""
    for name, endpoint in (("hostile", hostile), ("good", good)):
        text += (
            f'[fleet.hosts.{name}]\nhostname = "{endpoint.host}"\nport = {endpoint.port}\n'
            f'user = "root"\nidentity_file = "{ssh_keypair.private_path}"\n'
            f'known_hosts = {{ file = "{known}", policy = "strict" }}\n'
        )
    inventory = tmp_path / "fleet.toml"
    inventory.write_text(text)
    yield Fleet(inventory, good)


def apssh(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_apssh(*args, home=cwd, cwd=cwd, timeout=GUARD)


def acting(text: str) -> list[str]:
    """The characters a terminal acts on (tab and newline aside)."""
    return [c for c in text if (ord(c) < 0x20 and c not in "\t\n") or 0x7F <= ord(c) <= 0x9F]


def test_the_hostile_node_cannot_speak_for_the_good_one(fleet: Fleet, tmp_path: Path) -> None:
    for mode in ([], ["-b"]):
        done = apssh("-i", str(fleet.inventory), "-g", "fleet", *mode, "uptime", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert not acting(done.stdout)
        lines = done.stdout.splitlines()
        if not mode:
            # every line is attributed to its own host; none of good's is forged
            assert all(line.startswith(("hostile: ", "good: ")) for line in lines), lines
            assert [line for line in lines if line.startswith("good: ")] == [
                line for line in lines if line.startswith("good: ") and "FAKE" not in line
            ]
            assert "hostile:  10:00:00 up 1 day\\rgood: FAKE forged by hostile" in lines
        else:
            # the only block headers at column 1 are apssh's own: one per distinct output
            headers = [line for line in lines if line and not line.startswith("  ")]
            assert all("FAKE" not in line for line in headers), headers
            assert "  good FAKE block line" in lines


def test_a_hostile_capture_runs_nowhere(fleet: Fleet, tmp_path: Path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        '[recipe]\nname = "r"\nformat = 1\n\n'
        '[[step]]\nid = "ask"\nhosts = "hostile"\ncapture = "name"\nrun = "hostname"\n\n'
        '[[step]]\nid = "use"\nhosts = "good"\nrequires = ["ask"]\n'
        'run = "echo got {cap.name}"\n\n'
        '[[step]]\nid = "here"\nrequires = ["ask"]\nlocal = "echo local {cap.name}"\n'
    )
    done = apssh(
        "recipe", "run", str(recipe), "-i", str(fleet.inventory),
        "--run-dir", str(tmp_path / "run"), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    value = "h;touch /tmp/pwned-by-hostile;$(touch /tmp/pwned2)"
    assert f"got {value}" in done.stdout and f"local {value}" in done.stdout
    rc, out = endpoint_exec(fleet.good, "ls /tmp/pwned-by-hostile /tmp/pwned2 2>&1")
    assert rc != 0, out  # nothing ran on the honest node
    assert not Path("/tmp/pwned-by-hostile").exists() and not Path("/tmp/pwned2").exists()
    assert not list(tmp_path.rglob("pwned*"))


def test_a_hostile_tree_neither_hangs_nor_escapes_a_pull(fleet: Fleet, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = apssh(
        "pull",
        "-i",
        str(fleet.inventory),
        "-g",
        "hostile",
        "-r",
        "/root/tree",
        str(out),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert not acting(done.stderr), done.stderr
    copied = out / "hostile" / "tree"
    assert (copied / "plain").read_text() == "data\n"
    assert not (copied / "fifo").exists() and not (copied / "zero").exists()
    assert "fifo" in done.stderr and "zero" in done.stderr  # skipped, one line each
    assert (copied / "nl\nname").exists() and (copied / "esc\x1b[31m").exists()
    # nothing was written outside the destination
    for path in out.rglob("*"):
        assert path.resolve().is_relative_to(out.resolve()), path
