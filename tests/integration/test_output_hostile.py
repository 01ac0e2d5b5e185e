"""Hostile remote output through the real `apssh` against the containers (issue 19, 1 and 10).

A node prints what would spoof another host or drive the operator's terminal (a
carriage return, cursor moves, OSC 52 clipboard writes, a forged ``-b`` header), or
one line of 50 MB without a newline. Human output shows it escaped, one line per
line, each under its own host; ``-o`` files and ``--json`` keep the exact bytes;
time stays linear and the apssh process's memory bounded.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import pytest

from apssh_cli.lab import Topology
from apssh_cli.output import CUT_MARK, MAX_LINE_BYTES

pytestmark = pytest.mark.integration

# printf's arguments: what the node writes (stdout), byte for byte
HOSTILE = (
    r"benign\rnode2: FAKE\n"
    r"\033[2K\033[1Gnode2: FAKE\n"
    r"\033]52;c;cm0gLXJmIH4K\a\n"
    r"\033]0;owned\033\\\n"
    r"\302\233"
    r"2J C1 CSI\n"  # U+009B in UTF-8
    r"\342\200\256"
    r"EKAF :2edon\n"  # U+202E, the right-to-left override
    r"bad \377\376 utf-8\n"
)
HOSTILE_BYTES = (
    b"benign\rnode2: FAKE\n"
    b"\x1b[2K\x1b[1Gnode2: FAKE\n"
    b"\x1b]52;c;cm0gLXJmIH4K\x07\n"
    b"\x1b]0;owned\x1b\\\n"
    b"\xc2\x9b2J C1 CSI\n"
    b"\xe2\x80\xaeEKAF :2edon\n"
    b"bad \xff\xfe utf-8\n"
)
FORGED_BLOCK = r"real\n---------------\nnode9 (1)\n---------------\nFAKE\n"
HUGE = 50 * 1024 * 1024


def apssh_bytes(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "apssh_cli.cli.main", *args],
        capture_output=True,
        timeout=timeout,
    )


def terminal_safe(text: str) -> bool:
    """Nothing a terminal acts on: no control character but tab and newline, no format one."""
    return not any(
        char not in "\t\n" and unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs")
        for char in text
    )


def direct(topology: Topology) -> list[str]:
    return [endpoint.name for endpoint in topology.direct]


def test_hostile_lines_are_escaped_one_per_line_under_their_host(topology: Topology) -> None:
    inventory = str(topology.inventory)
    command = f"printf '{HOSTILE}'; printf 'err \\033]52;c;eA==\\a\\rnode2: FAKE\\n' >&2"
    names = direct(topology)
    done = apssh_bytes("-i", inventory, "-g", "direct", command)
    assert done.returncode == 0, done.stderr
    out, err = done.stdout.decode(), done.stderr.decode()
    assert terminal_safe(out) and terminal_safe(err)
    lines = out.splitlines()
    assert len(lines) == 7 * len(names)  # one printed line per line written
    width = max(len(name) for name in names) + 1
    for name in names:
        mine = [line for line in lines if line.startswith(f"{name}:".ljust(width) + " ")]
        assert len(mine) == 7
        assert any(line.endswith(" benign\\rnode2: FAKE") for line in mine)
        assert any(line.endswith(" \\x1b]52;c;cm0gLXJmIH4K\\x07") for line in mine)
        assert any(line.endswith(" \\u009b2J C1 CSI") for line in mine)
        assert any(line.endswith(" \\u202eEKAF :2edon") for line in mine)
        assert any(line.endswith(" bad \\xff\\xfe utf-8") for line in mine)
    assert err.count("err \\x1b]52;c;eA==\\x07\\rnode2: FAKE") == len(names)

    for option in ("-r", "--format={host}|{line}"):
        done = apssh_bytes("-i", inventory, "-g", "direct", option, command)
        assert done.returncode == 0, done.stderr
        assert terminal_safe(done.stdout.decode()) and terminal_safe(done.stderr.decode())
        assert len(done.stdout.decode().splitlines()) == 7 * len(names)


def test_raw_output_is_the_explicit_pass_through(topology: Topology) -> None:
    name = direct(topology)[0]
    done = apssh_bytes(
        "-i", str(topology.inventory), "-g", name, "-r", "--raw-output", f"printf '{HOSTILE}'"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == HOSTILE_BYTES.replace(b"\xff\xfe", b"\xef\xbf\xbd\xef\xbf\xbd")


def test_gather_blocks_cannot_be_forged(topology: Topology) -> None:
    names = direct(topology)
    done = apssh_bytes(
        "-i", str(topology.inventory), "-g", "direct", "-b", f"printf '{FORGED_BLOCK}{HOSTILE}'"
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert terminal_safe(out)
    lines = out.splitlines()
    ours = [line for line in lines if not line.startswith("  ")]
    assert len(ours) == 3 and ours[1].endswith(f"({len(names)})")  # one block, ours only
    assert lines[3:8] == ["  real", "  " + "-" * 15, "  node9 (1)", "  " + "-" * 15, "  FAKE"]


def test_out_dir_and_json_keep_the_exact_bytes(topology: Topology, tmp_path: Path) -> None:
    inventory = str(topology.inventory)
    names = direct(topology)
    command = f"printf '{HOSTILE}crlf\\r\\n'; printf 'e\\033[2J\\n' >&2"
    exact = HOSTILE_BYTES + b"crlf\r\n"
    done = apssh_bytes("-i", inventory, "-g", "direct", "-o", str(tmp_path), command)
    assert done.returncode == 0, done.stderr
    for name in names:
        assert (tmp_path / f"{name}.out").read_bytes() == exact
        assert (tmp_path / f"{name}.err").read_bytes() == b"e\x1b[2J\n"

    done = apssh_bytes("-i", inventory, "-g", "direct", "--json", command)
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    assert terminal_safe(text)  # JSON escapes every control character
    records = [json.loads(line) for line in text.splitlines()[:-1]]
    assert {record["host"] for record in records} == set(names)
    for record in records:
        assert record["stdout"].encode("utf-8", "surrogateescape") == exact
        assert record["stderr"] == "e\x1b[2J\n"


def rss_run(*args: str) -> tuple[subprocess.CompletedProcess[bytes], int, float]:
    """Run apssh under GNU time: the result, its peak RSS in KiB, and its wall time."""
    started = time.monotonic()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "maxrss=%M", sys.executable, "-m", "apssh_cli.cli.main", *args],
        capture_output=True,
        timeout=600,
    )
    elapsed = time.monotonic() - started
    line = [row for row in done.stderr.decode().splitlines() if row.startswith("maxrss=")][-1]
    return done, int(line.removeprefix("maxrss=")), elapsed


def test_a_50_mb_line_without_newline_streams_in_linear_time_and_bounded_memory(
    topology: Topology, tmp_path: Path
) -> None:
    """The old splitter took 18 s and 197 MB for 50 MB, and never finished 1 GB."""
    name = direct(topology)[0]
    inventory = str(topology.inventory)
    huge = f"head -c {HUGE} /dev/zero | tr '\\0' x"
    base, base_rss, _ = rss_run("-i", inventory, "-g", name, "echo small")
    assert base.returncode == 0, base.stderr

    done, rss, elapsed = rss_run("-i", inventory, "-g", name, "-o", str(tmp_path), huge)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / f"{name}.out").stat().st_size == HUGE + 1  # exact, and one newline
    # generous: a copy of the line would be 50 MB more; the old way took about 150 MB more
    assert rss - base_rss < 40 * 1024, (rss, base_rss)
    assert elapsed < 120, elapsed

    done, rss, elapsed = rss_run("-i", inventory, "-g", name, "-r", huge)
    assert done.returncode == 0, done.stderr[-500:]
    pieces = done.stdout.split(b"\n")[:-1]
    assert len(pieces) == HUGE // MAX_LINE_BYTES
    assert all(piece.endswith(CUT_MARK.encode()) for piece in pieces[:-1])
    assert rss - base_rss < 40 * 1024, (rss, base_rss)
    assert elapsed < 120, elapsed

    done, rss, elapsed = rss_run("-i", inventory, "-g", name, "--json", huge)
    assert done.returncode == 0, done.stderr[-500:]
    record = json.loads(done.stdout.splitlines()[0])
    # --json keeps at most its cap (1 MiB) of the line: the rest is counted
    assert len(record["stdout"]) < 2 * 1024 * 1024
    assert record["stdout"].endswith("not kept: past 1048576 characters]\n")
    assert rss - base_rss < 40 * 1024, (rss, base_rss)
    assert elapsed < 120, elapsed


def test_recipe_output_is_escaped(topology: Topology, tmp_path: Path) -> None:
    recipe = tmp_path / "hostile.toml"
    recipe.write_text(
        '[recipe]\nname = "hostile"\nformat = 1\n[[step]]\nid = "talk"\nhosts = "direct"\n'
        # a TOML literal string: the backslashes reach printf as they are
        f"run = '''printf '{HOSTILE}'; printf 'e\\033]0;t\\a\\n' >&2'''\n"
    )
    done = apssh_bytes(
        "recipe",
        "run",
        str(recipe),
        "-i",
        str(topology.inventory),
        "--run-dir",
        str(tmp_path / "run"),
    )
    assert done.returncode == 0, done.stderr
    out, err = done.stdout.decode(), done.stderr.decode()
    assert terminal_safe(out) and terminal_safe(err)
    assert out.count(": benign\\rnode2: FAKE\n") == len(direct(topology))
    assert err.count(": e\\x1b]0;t\\x07\n") == len(direct(topology))
    # the journal keeps the exact text (JSON escapes it)
    journal = (tmp_path / "run" / "journal.jsonl").read_text().splitlines()
    records = [json.loads(row) for row in journal]
    lines = [record["line"] for record in records if record["event"] == "output"]
    assert "\x1b]52;c;cm0gLXJmIH4K\x07" in lines and "bad \udcff\udcfe utf-8" in lines


def test_a_warning_quoting_a_remote_file_name_is_escaped(
    topology: Topology, tmp_path: Path
) -> None:
    """A pull skips a FIFO whose name holds OSC 0 and a carriage return: the warning is escaped."""
    inventory = str(topology.inventory)
    name = direct(topology)[0]
    made = apssh_bytes(
        "-i", inventory, "-g", name,
        "rm -rf /tmp/hostile-names && mkdir /tmp/hostile-names && "
        "mkfifo \"/tmp/hostile-names/$(printf 'f\\033]0;owned\\a\\rnode2: FAKE')\" && "
        "echo ok > /tmp/hostile-names/plain",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    done = apssh_bytes(
        "pull", "-i", inventory, "-g", name, "-r", "/tmp/hostile-names", str(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    err = done.stderr.decode()
    assert terminal_safe(err)
    assert "f\\x1b]0;owned\\x07\\rnode2: FAKE" in err and "not a file or a directory" in err
    assert (tmp_path / name / "hostile-names" / "plain").read_text() == "ok\n"
