"""Formatters and the line splitter: decoding, partial lines, routing to streams and files."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from apssh_cli.output import (
    CaptureFormatter,
    HostFormatter,
    LineSplitter,
    RawFormatter,
    SubdirFormatter,
    TimeHostFormatter,
)


@pytest.mark.parametrize(
    ("chunks", "lines", "rest"),
    [
        ([b"a\nb\n"], ["a", "b"], []),
        ([b"a", b"b\nc"], ["ab"], ["c"]),
        ([b"crlf\r\n"], ["crlf"], []),
        ([b"\xff\xfe ok\n"], ["\ufffd\ufffd ok"], []),
        # a multi-byte character cut between two chunks is decoded whole
        ([b"caf\xc3", b"\xa9\n"], ["café"], []),
        # a truncated character at the very end is replaced, not raised
        ([b"end\xc3"], [], ["end\ufffd"]),
        ([b"\n\n"], ["", ""], []),
        ([], [], []),
    ],
)
def test_line_splitter(chunks: list[bytes], lines: list[str], rest: list[str]) -> None:
    splitter = LineSplitter()
    got = [line for chunk in chunks for line in splitter.feed(chunk)]
    assert got == lines
    assert splitter.flush() == rest
    assert splitter.flush() == []


def test_host_formatter_routes_streams() -> None:
    out, err = io.StringIO(), io.StringIO()
    formatter = HostFormatter(stdout=out, stderr=err)
    formatter.line("n1", "hello", "stdout")
    formatter.line("n2", "oops", "stderr")
    assert out.getvalue() == "n1:hello\n"
    assert err.getvalue() == "n2:oops\n"


def test_host_formatter_uses_sys_streams_at_write_time(capsys: pytest.CaptureFixture[str]) -> None:
    HostFormatter().line("n1", "x", "stdout")
    HostFormatter().line("n1", "y", "stderr")
    captured = capsys.readouterr()
    assert captured.out == "n1:x\n"
    assert captured.err == "n1:y\n"


def test_host_formatter_template_time_and_strftime() -> None:
    out = io.StringIO()
    HostFormatter("[%Y] {time} {host} {line}", stdout=out).line("n1", "100% done {x}", "stdout")
    # the remote text is neither strftime'd nor format()ted
    assert re.fullmatch(r"\[\d{4}\] \d\d:\d\d:\d\d n1 100% done \{x\}\n", out.getvalue())


def test_raw_and_time_formatters() -> None:
    out = io.StringIO()
    RawFormatter(stdout=out).line("n1", "plain", "stdout")
    TimeHostFormatter(stdout=out).line("n1", "timed", "stdout")
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


def test_subdir_formatter_writes_one_file_per_host_and_stream(tmp_path: Path) -> None:
    formatter = SubdirFormatter(tmp_path / "out")
    formatter.line("n1", "a", "stdout")
    formatter.line("n1", "b", "stdout")
    formatter.line("n1", "e", "stderr")
    formatter.line("n2", "c", "stdout")
    formatter.close()
    assert (tmp_path / "out/n1.out").read_text() == "a\nb\n"
    assert (tmp_path / "out/n1.err").read_text() == "e\n"
    assert (tmp_path / "out/n2.out").read_text() == "c\n"
    assert not (tmp_path / "out/n2.err").exists()


def test_capture_formatter() -> None:
    capture = CaptureFormatter()
    capture.line("n1", "one", "stdout")
    capture.line("n1", "two", "stdout")
    capture.line("n1", "bad", "stderr")
    capture.line("n0", "zero", "stdout")
    assert capture.stdout("n1") == "one\ntwo\n"
    assert capture.stderr("n1") == "bad\n"
    assert capture.stdout("unknown") == ""
    assert capture.lines("n1") == ["one", "two"]
    assert capture.hosts() == ["n0", "n1"]
