"""Rendering: streamed lines, gather, JSON, out-dir, progress, summary, exit status."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from apssh_cli.cli.exitcodes import ExitCode
from apssh_cli.cli.render import (
    OutputOptions,
    Renderer,
    check_format,
    exit_status,
    short_names,
    summary_lines,
)
from apssh_cli.errors import ConfigError
from apssh_cli.inventory.model import Host
from apssh_cli.inventory.targets import Target
from apssh_cli.output import OutputEvent, Stream
from apssh_cli.results import HostResult, Status


def target(name: str, hostname: str | None = None, user: str | None = "root") -> Target:
    hop = Host.adhoc(name, hostname=hostname or name, user=user)
    return Target(name, (hop,), from_inventory=True)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def line(renderer: Renderer, host: str, text: str, stream: Stream = "stdout") -> None:
    """What a node does with each line of output."""
    renderer.output(OutputEvent(host, stream, text))


def make(names: list[str], **options: object) -> tuple[Renderer, io.StringIO, io.StringIO, Clock]:
    out, err, clock = io.StringIO(), io.StringIO(), Clock()
    renderer = Renderer(
        [target(name) for name in names],
        OutputOptions(**options),  # type: ignore[arg-type]
        stdout=out,
        stderr=err,
        clock=clock,
        localtime=lambda: time.struct_time((2026, 11, 27, 13, 5, 9, 4, 331, 0)),
        width=lambda: 60,
    )
    return renderer, out, err, clock


@pytest.mark.parametrize(
    ("statuses", "interrupted", "expected"),
    [
        ([], False, ExitCode.OK),
        ([Status.OK, Status.OK], False, ExitCode.OK),
        ([Status.OK, Status.FAILED], False, ExitCode.REMOTE_FAILED),
        ([Status.FAILED, Status.TIMEOUT], False, ExitCode.TIMEOUT),
        ([Status.TIMEOUT, Status.UNREACHABLE, Status.FAILED], False, ExitCode.UNREACHABLE),
        ([Status.AUTH_REFUSED], False, ExitCode.UNREACHABLE),
        ([Status.HOSTKEY_REFUSED, Status.OK], False, ExitCode.UNREACHABLE),
        ([Status.OK, Status.INTERRUPTED], True, ExitCode.INTERRUPTED),
    ],
)
def test_exit_status(statuses: list[Status], interrupted: bool, expected: ExitCode) -> None:
    results = [HostResult(f"h{i}", status) for i, status in enumerate(statuses)]
    assert exit_status(results, interrupted=interrupted) == expected


def test_short_names_only_when_distinct_and_not_addresses() -> None:
    assert short_names([target("a.lab.org"), target("b.lab.org"), target("10.0.0.1")]) == {
        "a.lab.org": "a",
        "b.lab.org": "b",
        "10.0.0.1": "10.0.0.1",
    }
    clash = short_names([target("a.x.org"), target("a.y.org")])
    assert clash == {"a.x.org": "a.x.org", "a.y.org": "a.y.org"}


def test_streamed_lines_are_aligned_and_stderr_goes_to_stderr() -> None:
    renderer, out, err, _ = make(["n1", "node10"])
    line(renderer, "n1", "hello")
    line(renderer, "node10", "world", "stderr")
    line(renderer, "gateway-not-a-target", "ignored")
    assert out.getvalue() == "n1:     hello\n"
    assert err.getvalue() == "node10: world\n"


def test_raw_and_format() -> None:
    renderer, out, _, _ = make(["n1"], raw=True)
    line(renderer, "n1", "x")
    assert out.getvalue() == "x\n"
    renderer, out, _, _ = make(["n1.lab"], fmt="%Y {time} {user}@{fqdn} {host}> {line}")
    line(renderer, "n1.lab", "%d {x}")  # remote text is never interpreted
    assert out.getvalue() == "2026 13:05:09 root@n1.lab n1> %d {x}\n"


@pytest.mark.parametrize("template", ["{nope}", "{host", "{0}"])
def test_bad_format_is_rejected_before_running(template: str) -> None:
    with pytest.raises(ConfigError, match="bad --format"):
        check_format(template)


def test_error_line_when_a_host_fails_to_connect() -> None:
    renderer, out, err, _ = make(["n1", "n2"])
    renderer.host_done(HostResult("n2", Status.UNREACHABLE, error="connection refused"))
    assert err.getvalue() == "n2: [unreachable] connection refused\n"
    assert out.getvalue() == ""


def test_json_one_object_per_host_then_summary() -> None:
    renderer, out, err, clock = make(["n1", "n2", "n3"], json=True)
    line(renderer, "n1", "a")
    line(renderer, "n1", "oops", "stderr")
    clock.now += 2.5
    renderer.host_done(HostResult("n1", Status.FAILED, rc=3, duration=1.23456))
    first = json.loads(out.getvalue())
    assert first == {
        "host": "n1",
        "status": "failed",
        "rc": 3,
        "duration": 1.235,
        "stdout": "a\n",
        "stderr": "oops\n",
        "error": None,
    }
    status = renderer.finish(
        [
            HostResult("n1", Status.FAILED, rc=3),
            HostResult("n2", Status.OK, rc=0),
            HostResult("n3", Status.SKIPPED),
        ],
        interrupted=True,
    )
    assert status == ExitCode.INTERRUPTED
    records = [json.loads(text) for text in out.getvalue().splitlines()]
    assert [r.get("host") for r in records] == ["n1", "n2", "n3", None]
    summary = records[-1]["summary"]
    assert summary["hosts"] == 3 and summary["exit_status"] == 130
    assert (summary["ok"], summary["failed"], summary["skipped"], summary["timeout"]) == (
        1,
        1,
        1,
        0,
    )
    assert summary["duration"] == 2.5
    assert "interrupted" in err.getvalue()  # the human summary stays on stderr


def test_gather_groups_identical_outputs() -> None:
    renderer, out, err, _ = make(["n1", "n2", "n3", "n4"], gather=True)
    for name in ("n1", "n2", "n4"):
        line(renderer, name, "same")
    line(renderer, "n3", "other")
    line(renderer, "n3", "warning", "stderr")
    assert out.getvalue() == ""  # nothing before the end
    assert err.getvalue() == "n3: warning\n"
    results = [
        HostResult("n1", Status.OK, rc=0),
        HostResult("n2", Status.OK, rc=0),
        HostResult("n3", Status.FAILED, rc=1),
        HostResult("n4", Status.OK, rc=0),
    ]
    assert renderer.finish(results) == ExitCode.REMOTE_FAILED
    assert out.getvalue() == (
        "---------------\nn[1-2,4] (3)\n---------------\n  same\n"
        "------------------\nn3 (1) failed rc=1\n------------------\n  other\n"
    )


def test_summary_folds_hosts_and_groups_return_codes() -> None:
    results = [
        HostResult("node01", Status.OK),
        HostResult("node02", Status.FAILED, rc=1),
        HostResult("node03", Status.FAILED, rc=2),
        HostResult("node04", Status.FAILED, rc=1),
        HostResult("node05", Status.TIMEOUT),
        HostResult("node06", Status.UNREACHABLE),
        HostResult("node07", Status.AUTH_REFUSED),
    ]
    assert summary_lines(results, 3.04) == [
        "apssh: 7 hosts in 3.0s: 1 ok, 3 failed, 1 timeout, 1 unreachable, 1 auth-refused",
        "  failed           node[02,04] (rc=1), node03 (rc=2)",
        "  timed out        node05",
        "  unreachable      node06",
        "  auth refused     node07",
    ]


def test_out_dir_mark_and_failed_to(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    failed_to = tmp_path / "retry.txt"
    names = ["n1", "n2", "n3"]
    renderer, out, _, _ = make(names, out_dir=out_dir, mark=True, failed_to=failed_to)
    line(renderer, "n1", "one")
    line(renderer, "n1", "two")
    line(renderer, "n2", "bad", "stderr")
    renderer.host_done(HostResult("n1", Status.OK, rc=0))
    renderer.host_done(HostResult("n2", Status.FAILED, rc=1))
    renderer.finish(
        [
            HostResult("n1", Status.OK, rc=0),
            HostResult("n2", Status.FAILED, rc=1),
            HostResult("n3", Status.UNREACHABLE, error="refused"),
        ]
    )
    assert out.getvalue() == ""  # -o: files instead of stdout
    assert (out_dir / "n1.out").read_text() == "one\ntwo\n"
    assert (out_dir / "n1.err").read_text() == ""
    assert (out_dir / "n2.err").read_text() == "bad\n"
    assert (out_dir / "n3.out").exists()
    assert (out_dir / "succeeded.txt").read_text() == "n1\n"
    assert (out_dir / "failed.txt").read_text() == "n2\nn3\n"
    assert failed_to.read_text() == "n2\nn3\n"


def test_failed_to_writes_adhoc_specs(tmp_path: Path) -> None:
    failed_to = tmp_path / "retry.txt"
    out, err = io.StringIO(), io.StringIO()
    adhoc = Target("h", (Host.adhoc("gw", user="u"), Host.adhoc("h", port=2222)))
    renderer = Renderer([adhoc], OutputOptions(failed_to=failed_to), stdout=out, stderr=err)
    renderer.finish([HostResult("h", Status.TIMEOUT)])
    assert failed_to.read_text() == "u@gw->h:2222\n"


def test_progress_never_tears_output_lines() -> None:
    # one terminal: stdout and stderr interleave, as a person sees them
    screen, clock = io.StringIO(), Clock()
    renderer = Renderer(
        [target(name) for name in ["n1", "n2", "n3"]],
        OutputOptions(progress=True),
        stdout=screen,
        stderr=screen,
        clock=clock,
        width=lambda: 60,
    )
    renderer.host_started("n1")
    clock.now += 4
    renderer.host_started("n2")
    line(renderer, "n2", "hello")
    assert renderer.progress_text() == "apssh: 0/3 done, 0 failed, 2 running, slowest n1 4s"
    renderer.host_done(HostResult("n1", Status.FAILED, rc=1))
    renderer.finish([HostResult("n1", Status.FAILED, rc=1), HostResult("n2", Status.OK)])
    text = screen.getvalue()
    # every output line starts right after a cleared progress line, and ends the line
    assert "\r\x1b[Kn2: hello\n" in text
    assert "\x1b[K" + "apssh: 0/3" in text
    # the progress line was cleared before the summary
    summary_at = text.index("apssh: 3 hosts")
    assert text[summary_at - 4 : summary_at] == "\r\x1b[K"


def test_no_progress_when_not_asked() -> None:
    renderer, _, err, _ = make(["n1"])
    renderer.host_started("n1")
    renderer.tick()
    assert err.getvalue() == ""


def test_verbose_notes_go_to_stderr() -> None:
    renderer, out, err, _ = make(["n1", "node2"])
    renderer.note("node2", "connected")
    renderer.note("bastion", "connected")  # a gateway: not a target
    assert err.getvalue() == "node2: -- connected\nbastion: -- connected\n"
    assert out.getvalue() == ""


class ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_broken_stdout_stops_quietly() -> None:
    err = io.StringIO()
    renderer = Renderer(
        [target("n1"), target("n2")], OutputOptions(), stdout=ClosedPipe(), stderr=err
    )
    calls: list[str] = []
    renderer.on_broken_stdout = lambda: calls.append("stop")
    line(renderer, "n1", "a")
    line(renderer, "n2", "b")
    renderer.host_done(HostResult("n1", Status.INTERRUPTED, error="interrupted"))
    assert renderer.stdout_broken and calls == ["stop"]  # told once
    assert err.getvalue() == ""


def test_json_output_is_bounded_and_says_so() -> None:
    out, err = io.StringIO(), io.StringIO()
    renderer = Renderer(
        [target("n1")], OutputOptions(json=True), stdout=out, stderr=err, capture_bytes=8
    )
    for index in range(1000):
        line(renderer, "n1", f"{index:03d}")
    renderer.host_done(HostResult("n1", Status.OK, rc=0))
    record = json.loads(out.getvalue().splitlines()[0])
    assert record["stdout"] == "000\n001\n[apssh: 998 more lines not kept: past 8 characters]\n"


def test_streamed_output_keeps_nothing() -> None:
    renderer, out, _, _ = make(["n1"])
    for index in range(100):
        line(renderer, "n1", str(index))
    renderer.host_done(HostResult("n1", Status.OK, rc=0))
    assert out.getvalue().count("\n") == 100
    assert renderer._capture is None  # no sink keeps lines when they are only streamed
    assert renderer._results["n1"].stdout == ""
