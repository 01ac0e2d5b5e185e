"""Colour: host names and statuses on a terminal, never in a pipe; --color; NO_COLOR."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from apssh_cli.cli.render import OutputOptions, Renderer, colour_wanted, summary_lines
from apssh_cli.inventory.model import Host
from apssh_cli.inventory.targets import Target
from apssh_cli.output import STDERR, STDOUT, OutputEvent
from apssh_cli.results import HostResult, Status

ESC = "\x1b["
LOCAL_INVENTORY = '[all.hosts.loc1]\nconnection = "local"\n'


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def targets(*names: str) -> list[Target]:
    return [Target(name, (Host.adhoc(name),), from_inventory=True) for name in names]


@pytest.mark.parametrize(
    ("choice", "terminal", "environ", "expected"),
    [
        ("auto", True, {}, True),
        ("auto", False, {}, False),  # a pipe, a file
        ("auto", True, {"NO_COLOR": "1"}, False),
        ("auto", True, {"NO_COLOR": ""}, True),  # empty: as if unset (no-color.org)
        ("auto", True, {"TERM": "dumb"}, False),
        ("always", False, {"NO_COLOR": "1"}, True),  # asked for on the command line
        ("never", True, {}, False),
    ],
)
def test_when_colour_is_used(
    choice: str, terminal: bool, environ: dict[str, str], expected: bool
) -> None:
    stream = Terminal() if terminal else io.StringIO()
    assert colour_wanted(choice, stream, environ) is expected


def render(options: OutputOptions, status: Status = Status.FAILED) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    renderer = Renderer(targets("n1", "node22"), options, stdout=out, stderr=err)
    # a host's own escape sequence: shown escaped, coloured or not
    renderer.output(OutputEvent("n1", STDOUT, "hi \x1b[31mred", None))
    renderer.output(OutputEvent("n1", STDERR, "oops", None))
    renderer.host_done(HostResult("n1", status, rc=3, error="it failed"))
    renderer.host_done(HostResult("node22", Status.OK, rc=0))
    renderer.finish([])
    return out.getvalue(), err.getvalue()


def test_coloured_names_and_statuses_around_escaped_text() -> None:
    out, err = render(OutputOptions(color_stdout=True, color_stderr=True))
    # the name is coloured, the alignment kept outside the codes
    assert out == f"{ESC}36mn1:{ESC}0m     hi \\x1b[31mred\n"
    assert f"{ESC}36mn1:{ESC}0m     oops\n" in err
    assert f"{ESC}36mn1:{ESC}0m     {ESC}31m[failed]{ESC}0m it failed\n" in err
    assert f"{ESC}32m1 ok{ESC}0m" in err and f"{ESC}31m1 failed{ESC}0m" in err
    assert "\x1b[31mred" not in out  # never the host's own code


def test_no_colour_is_plain_text() -> None:
    out, err = render(OutputOptions())
    assert ESC not in out and ESC not in err
    assert out == "n1:     hi \\x1b[31mred\n"


def test_each_stream_decides_for_itself() -> None:
    # `apssh ... | less` on a terminal: stdout is a pipe, stderr still a terminal
    out, err = render(OutputOptions(color_stdout=False, color_stderr=True))
    assert ESC not in out
    assert f"{ESC}36mn1:{ESC}0m     oops\n" in err


def test_gathered_headers_are_coloured_on_stdout() -> None:
    out, _ = render(OutputOptions(gather=True, color_stdout=True, color_stderr=True))
    assert f"{ESC}36mn1 (1){ESC}0m{ESC}31m failed rc=3{ESC}0m" in out
    assert "  hi \\x1b[31mred" in out


def test_summary_rows_keep_their_alignment() -> None:
    results = [HostResult("a", Status.FAILED, rc=1), HostResult("b", Status.TIMEOUT)]
    plain = summary_lines(results, 1.0)
    coloured = summary_lines(results, 1.0, colour=True)
    strip = [line.replace(f"{ESC}0m", "") for line in coloured]
    for code in ("31m", "33m"):
        strip = [line.replace(f"{ESC}{code}", "") for line in strip]
    assert strip == plain


def apssh_on_a_terminal(tmp_path: Path, *args: str, env: dict[str, str]) -> bytes:
    """Run apssh with its stdout and stderr on a pseudo-terminal; what it printed."""
    inventory = tmp_path / "local.toml"
    inventory.write_text(LOCAL_INVENTORY)
    main, secondary = pty.openpty()
    environ = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    environ.update(TERM="xterm", **env)
    process = subprocess.Popen(
        [sys.executable, "-m", "apssh_cli.cli.main", "-i", str(inventory), *args],
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
        env=environ,
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert process.wait(timeout=60) == 0
    return b"".join(chunks)


def test_a_real_terminal_gets_colour_unless_no_color(tmp_path: Path) -> None:
    shown = apssh_on_a_terminal(tmp_path, "--no-progress", "echo hi", env={})
    assert b"\x1b[36mloc1:\x1b[0m hi" in shown
    shown = apssh_on_a_terminal(tmp_path, "--no-progress", "echo hi", env={"NO_COLOR": "1"})
    assert b"\x1b[" not in shown
    shown = apssh_on_a_terminal(tmp_path, "--no-progress", "--color", "never", "echo hi", env={})
    assert b"\x1b[" not in shown


def test_a_pipe_never_gets_colour_unless_always(tmp_path: Path) -> None:
    inventory = tmp_path / "local.toml"
    inventory.write_text(LOCAL_INVENTORY)
    command = [sys.executable, "-m", "apssh_cli.cli.main", "-i", str(inventory)]
    done = subprocess.run([*command, "echo hi"], capture_output=True, stdin=subprocess.DEVNULL)
    assert done.stdout == b"loc1: hi\n" and b"\x1b[" not in done.stderr
    done = subprocess.run(
        [*command, "--color", "always", "echo hi"], capture_output=True, stdin=subprocess.DEVNULL
    )
    assert done.stdout == b"\x1b[36mloc1:\x1b[0m hi\n"
