"""Formatters and the line splitter: decoding, partial lines, routing to streams and files."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from apssh_cli.output import (
    EXTENDED_DATA_STDERR,
    CaptureFormatter,
    ColonFormatter,
    Formatter,
    HostFormatter,
    LineSplitter,
    OutputEvent,
    RawFormatter,
    Stream,
    SubdirFormatter,
    TeeFormatter,
    TerminalFormatter,
    TimeColonFormatter,
    TimeHostFormatter,
    VerboseFormatter,
    output_step,
)


def emit(formatter: Formatter, host: str, text: str, stream: Stream = "stdout") -> None:
    """What a node does with each line."""
    formatter.output(OutputEvent(host, stream, text))


@pytest.mark.parametrize(
    ("chunks", "lines", "rest"),
    [
        ([b"a\nb\n"], ["a", "b"], []),
        ([b"a", b"b\nc"], ["ab"], ["c"]),
        ([b"crlf\r\n"], ["crlf"], []),
        # bytes that are not UTF-8 are kept, as surrogate escapes
        ([b"\xff\xfe ok\n"], ["\udcff\udcfe ok"], []),
        # a multi-byte character cut between two chunks is decoded whole
        ([b"caf\xc3", b"\xa9\n"], ["café"], []),
        # a truncated character at the very end is kept as its byte, not raised
        ([b"end\xc3"], [], ["end\udcc3"]),
        ([b"\n\n"], ["", ""], []),
        ([], [], []),
    ],
)
def test_line_splitter(chunks: list[bytes], lines: list[str], rest: list[str]) -> None:
    splitter = LineSplitter()
    got = [line for chunk in chunks for line in splitter.feed(chunk)]
    assert got == lines
    assert [text for text, _, _ in splitter.flush()] == rest
    assert splitter.flush() == []


def test_host_formatter_routes_streams() -> None:
    out, err = io.StringIO(), io.StringIO()
    formatter = HostFormatter(stdout=out, stderr=err)
    emit(formatter, "n1", "hello")
    emit(formatter, "n1", "oops", "stderr")
    assert out.getvalue() == "n1:hello\n"
    assert err.getvalue() == "n1:oops\n"


def test_host_formatter_uses_sys_streams_at_write_time(capsys: pytest.CaptureFixture[str]) -> None:
    emit(HostFormatter(), "n1", "x")
    emit(HostFormatter(), "n1", "y", "stderr")
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("n1:x\n", "n1:y\n")


def test_host_formatter_template_time_strftime_step_and_fields() -> None:
    out = io.StringIO()
    HostFormatter("[%Y] {time} {host} {line}", stdout=out).output(
        OutputEvent("n1", "stdout", "100% done {x}")
    )
    assert re.fullmatch(r"\[\d{4}\] \d\d:\d\d:\d\d n1 100% done \{x\}\n", out.getvalue())
    out = io.StringIO()
    formatter = HostFormatter(
        "{step}/{host}/{fqdn}: {line}", stdout=out, fields={"n1": {"fqdn": "n1.lab"}}
    )
    with output_step("init"):
        formatter.output(OutputEvent("n1", "stdout", "a", step="init"))
    assert out.getvalue() == "init/n1/n1.lab: a\n"


def test_raw_and_time_formatters() -> None:
    out = io.StringIO()
    emit(RawFormatter(stdout=out), "n1", "plain")
    emit(TimeHostFormatter(stdout=out), "n1", "timed")
    first, second = out.getvalue().splitlines()
    assert first == "plain"
    assert re.fullmatch(r"\d\d:\d\d:\d\d n1:timed", second)


def test_verbose_events_go_to_stderr() -> None:
    out, err = io.StringIO(), io.StringIO()
    formatter = HostFormatter(stdout=out, stderr=err)
    formatter.connected("n1")
    formatter.command_started("n1", "uptime")
    formatter.command_done("n1", "uptime", 0)
    formatter.connect_failed("n1", OSError("refused"))
    assert out.getvalue() == ""
    assert err.getvalue().splitlines() == [
        "n1: -- connected",
        "n1: -- start uptime",
        "n1: -- done uptime (rc=0)",
        "n1: -- connection failed: refused",
    ]


def test_subdir_formatter_upstream_layout_and_suffixes(tmp_path: Path) -> None:
    formatter = SubdirFormatter(tmp_path / "run")
    emit(formatter, "n1", "a")
    emit(formatter, "n1", "b")
    emit(formatter, "n1", "e", "stderr")
    emit(formatter, "n2", "c")
    formatter.close()
    assert formatter.run_name == str(tmp_path / "run")
    assert (tmp_path / "run/n1").read_text() == "a\nb\n"
    assert (tmp_path / "run/n1.err").read_text() == "e\n"
    assert (tmp_path / "run/n2").read_text() == "c\n"
    assert not (tmp_path / "run/n2.err").exists()
    files = SubdirFormatter(tmp_path / "out", out_suffix=".out")
    emit(files, "n1", "x")
    files.close_host("n1", create=True)  # a host done: its files closed, both present
    assert (tmp_path / "out/n1.out").read_text() == "x\n"
    assert (tmp_path / "out/n1.err").read_text() == ""
    emit(files, "n1", "later")  # appended, not truncated
    files.close()
    assert (tmp_path / "out/n1.out").read_text() == "x\nlater\n"


def test_capture_formatter() -> None:
    capture = CaptureFormatter()
    emit(capture, "n1", "one")
    emit(capture, "n1", "two")
    emit(capture, "n1", "bad", "stderr")
    emit(capture, "n0", "zero")
    assert capture.stdout("n1") == "one\ntwo\n"
    assert capture.stderr("n1") == "bad\n"
    assert capture.stdout("unknown") == ""
    assert capture.lines("n1") == ["one", "two"]
    assert capture.hosts() == ["n0", "n1"]
    capture.forget("n1")
    assert capture.stdout("n1") == "" and capture.hosts() == ["n0"]


def test_capture_is_bounded_and_says_so() -> None:
    capture = CaptureFormatter(max_bytes=10)
    for index in range(100_000):
        emit(capture, "n1", f"{index:04d}")
    assert capture.lines("n1") == ["0000", "0001"]
    assert capture.dropped("n1") == 99_998
    assert capture.stdout("n1") == (
        "0000\n0001\n[apssh: 99998 more lines not kept: past 10 characters]\n"
    )
    # upstream's capture has the same bound
    assert capture.get_capture().endswith("not kept: past 10 characters]\n")


def test_upstream_capture_api() -> None:
    capture = CaptureFormatter()
    emit(capture, "n1", "before")
    capture.start_capture()
    emit(capture, "n1", "a")
    emit(capture, "n2", "err", "stderr")
    emit(capture, "n2", "b")
    assert capture.get_capture() == "a\nb\n"


def test_upstream_formatters_and_placeholders() -> None:
    out, err = io.StringIO(), io.StringIO()
    TerminalFormatter("<@host@> @line@", False, stdout=out, stderr=err).output(
        OutputEvent("n1", "stderr", "x")
    )
    assert err.getvalue() == "<n1> x\n" and out.getvalue() == ""
    out = io.StringIO()
    emit(ColonFormatter(stdout=out), "n1", "a")
    emit(RawFormatter(verbose=True, stdout=out), "n1", "b")
    emit(TimeColonFormatter(verbose=False, stdout=out), "n1", "c")
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["n1:a", "b"]
    assert re.fullmatch(r"\d\d-\d\d-\d\d:n1:c", lines[2])
    # strftime codes expand in the template only, never in remote text
    out = io.StringIO()
    emit(TerminalFormatter("%Y @line@", stdout=out), "n1", "50% %d")
    assert re.fullmatch(r"\d{4} 50% %d\n", out.getvalue())


def test_upstream_style_custom_formatter_gets_upstream_arguments() -> None:
    seen: list[tuple[str, int | None, str]] = []

    class Mine(TerminalFormatter):
        def __init__(self) -> None:
            super().__init__("@line@", verbose=False)

        def line(self, line: str, datatype: int | None, hostname: str) -> None:
            seen.append((line, datatype, hostname))

    class MineToo(HostFormatter):  # overriding line() wins over our output()
        def line(self, line: str, datatype: int | None, hostname: str) -> None:
            seen.append((line, datatype, hostname))

    class Bare(Formatter):  # upstream subclasses may not call __init__
        def __init__(self) -> None:
            pass

        def line(self, line: str, datatype: int | None, hostname: str) -> None:
            seen.append((self.format_line(line, hostname), datatype, hostname))

    emit(Mine(), "n1", "out")
    emit(Mine(), "n1", "err", "stderr")
    emit(MineToo(), "n2", "x")
    emit(Bare(), "n3", "y")
    assert seen == [
        ("out\n", None, "n1"),
        ("err\n", EXTENDED_DATA_STDERR, "n1"),
        ("x\n", None, "n2"),
        ("y\n", None, "n3"),
    ]


def test_upstream_event_names_are_called() -> None:
    calls: list[str] = []

    class Events(Formatter):
        def connection_made(self, hostname: str, username: str | None, direct: bool) -> None:
            calls.append(f"made {hostname}")

        def connection_lost(
            self, hostname: str, exc: Exception | None, username: str | None
        ) -> None:
            calls.append(f"lost {hostname} {exc}")

        def session_start(self, hostname: str, command: str) -> None:
            calls.append(f"start {hostname} {command}")

        def session_stop(self, hostname: str, command: str) -> None:
            calls.append(f"stop {hostname} {command}")

    events = Events()
    events.connected("n1")
    events.command_started("n1", "ls")
    events.command_done("n1", "ls", 0)
    events.connect_failed("n2", OSError("refused"))
    assert calls == ["made n1", "start n1 ls", "stop n1 ls", "lost n2 refused"]


def test_verbose_formatter_prints_events_only_when_verbose() -> None:
    err = io.StringIO()
    VerboseFormatter("@line@", False, stderr=err).connected("n1")
    assert err.getvalue() == ""
    VerboseFormatter("@line@", True, stderr=err).connected("n1")
    VerboseFormatter("@line@", False, stderr=err).connect_failed("n2", OSError("no"))
    assert err.getvalue() == "n1: -- connected\nn2: -- connection failed: no\n"


def test_tee_sends_to_every_sink() -> None:
    first, second = CaptureFormatter(), CaptureFormatter()
    tee = TeeFormatter(first, second)
    emit(tee, "n1", "a")
    assert first.stdout("n1") == second.stdout("n1") == "a\n"


def test_upstream_style_formatter_on_a_node(capsys: pytest.CaptureFixture[str]) -> None:
    # the whole path: a job on a node, lines through output(), into upstream's line()
    import asyncio

    from apssh_cli.engine.job import SshJob
    from apssh_cli.ssh.node import LocalNode

    class Bracketed(TerminalFormatter):
        def __init__(self) -> None:
            super().__init__("@line@", verbose=False)

        def line(self, line: str, datatype: int | None, hostname: str) -> None:
            where = "err" if datatype == EXTENDED_DATA_STDERR else "out"
            print(f"[{hostname}/{where}] {line}", end="")

    node = LocalNode(formatter=Bracketed(), label="me")
    asyncio.run(SshJob(node, "echo one; echo two >&2").co_run())
    printed = capsys.readouterr().out.splitlines()
    assert sorted(printed) == ["[me/err] two", "[me/out] one"]
