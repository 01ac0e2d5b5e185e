"""Hostile remote output: escaping in every printing sink, exact files, long lines cut.

Issue 19, points 1 and 10: a host's output cannot pass for another host's, cannot
drive the terminal, and cannot exhaust the controller (a line without a newline is
cut into pieces in linear time and bounded memory).
"""

from __future__ import annotations

import io
import json
import logging
import sys
import time
import tracemalloc
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from apssh_cli.output import (
    CUT_MARK,
    MAX_LINE_BYTES,
    CaptureFormatter,
    ColonFormatter,
    EscapeLogFilter,
    Formatter,
    HostFormatter,
    LineSplitter,
    OutputEvent,
    RawFormatter,
    SubdirFormatter,
    TerminalFormatter,
    TimeHostFormatter,
    escape_text,
    printable_text,
)

HOSTILE = [
    "benign\rnode2: FAKE",  # a carriage return starts the line over
    "\x1b[2K\x1b[1Gnode2: FAKE",  # erase the line, back to column 1
    "\x1b]52;c;cm0gLXJmIH4K\x07",  # OSC 52: write the operator's clipboard
    "\x1b]0;owned\x1b\\",  # OSC 0: the window title, ST-terminated
    "\x9b2K\u009bnode2",  # C1 CSI (U+009B), as UTF-8
    "\u202enode2: FAKE",  # right-to-left override
    "a\x00b\x08c\x7f",  # NUL, backspace, DEL
    "x\u2028node2: FAKE",  # line separator
]

# what a terminal may act on: controls but tab, format controls, separators, surrogates
UNSAFE_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs"}


def unsafe(char: str) -> bool:
    return char != "\t" and unicodedata.category(char) in UNSAFE_CATEGORIES


def events(data: bytes, host: str = "n1", stream: Any = "stdout") -> list[OutputEvent]:
    """The events a node sends for ``data`` (one stream), through the real splitter."""
    splitter = LineSplitter()
    pieces = splitter.split(data) + splitter.flush()
    return [OutputEvent(host, stream, text, None, end, cut) for text, end, cut in pieces]


# ---------------------------------------------------------------- escape_text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("benign\rnode2: FAKE", "benign\\rnode2: FAKE"),
        ("\x1b[2K\x1b[1Gnode2", "\\x1b[2K\\x1b[1Gnode2"),
        ("\x1b]52;c;eA==\x07", "\\x1b]52;c;eA==\\x07"),
        ("a\nb", "a\\nb"),
        ("\x00\x08\x7f", "\\x00\\x08\\x7f"),
        ("\u009b2K", "\\u009b2K"),  # a C1 control character (valid UTF-8 for it)
        ("\udc9b2K", "\\x9b2K"),  # the byte 0x9b, which was not UTF-8
        ("\u202eevil\u2066", "\\u202eevil\\u2066"),
        ("\u200bzero\ufeff", "\\u200bzero\\ufeff"),
        ("\U000e0041tag", "\\U000e0041tag"),
        ("tab\tstays", "tab\tstays"),
        ("café 日本 ✓ 🙂 C:\\path", "café 日本 ✓ 🙂 C:\\path"),
    ],
)
def test_escape_text_forms(text: str, shown: str) -> None:
    assert escape_text(text) == shown


@given(st.text(alphabet=st.characters(codec=None), max_size=200))
def test_escape_text_leaves_nothing_a_terminal_acts_on(text: str) -> None:
    shown = escape_text(text)
    assert not any(unsafe(char) for char in shown)
    assert escape_text(shown) == shown  # idempotent: escaping twice changes nothing
    if not any(unsafe(char) for char in text):
        assert shown == text  # safe text is left alone


@given(st.text(alphabet=st.characters(max_codepoint=0x7F), min_size=250, max_size=600))
def test_escape_text_long_ascii_lines_take_the_same_rules(text: str) -> None:
    shown = escape_text(text)
    assert not any(unsafe(char) for char in shown)
    assert shown == "".join(escape_text(char) for char in text)  # char by char, short path


def test_every_format_control_of_this_python_is_escaped() -> None:
    """The hard-coded list covers the running Python's Unicode (checked, not trusted)."""
    missed = [
        f"U+{code:04X}"
        for code in range(sys.maxunicode + 1)
        if unsafe(chr(code)) and escape_text(chr(code)) == chr(code)
    ]
    assert missed == []


def test_printable_text_replaces_only_undecodable_bytes() -> None:
    assert printable_text("ok\udcff\x1b") == "ok\ufffd\x1b"
    assert printable_text("plain") == "plain"


# ---------------------------------------------------------------- the splitter


@settings(max_examples=300)
@given(
    data=st.binary(max_size=400) | st.text(max_size=100).map(lambda t: t.encode()),
    sizes=st.lists(st.integers(1, 50), max_size=20),
    max_line=st.integers(4, 40),
)
def test_splitter_pieces_give_the_exact_bytes_back_and_stay_bounded(
    data: bytes, sizes: list[int], max_line: int
) -> None:
    splitter = LineSplitter(max_line=max_line)
    pieces, offset = [], 0
    for size in sizes:
        pieces += splitter.split(data[offset : offset + size])
        offset += size
    pieces += splitter.split(data[offset:]) + splitter.flush()
    rebuilt = b"".join((text + end).encode("utf-8", "surrogateescape") for text, end, _ in pieces)
    assert rebuilt == data
    for text, end, cut in pieces:
        assert len(text.encode("utf-8", "surrogateescape")) <= max_line
        assert end == "" if cut else end in ("\n", "\r\n", "")
    assert all(not cut for _, _, cut in pieces[-1:])  # the last piece always ends its line
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return
    # valid UTF-8 is never cut inside a character
    assert not any("\udc80" <= char <= "\udcff" for text, _, _ in pieces for char in text)


def test_splitter_long_line_without_newline_is_linear_and_bounded() -> None:
    """50 MB without a newline: the old splitter took 18 s and 197 MB (quadratic)."""
    chunk = b"x" * 65536
    splitter = LineSplitter()
    tracemalloc.start()
    started = time.perf_counter()
    count = cut = 0
    for _ in range(50 * 1024 * 1024 // len(chunk)):
        for piece in splitter.split(chunk):
            count += 1
            cut += piece[2]
    count += len(splitter.flush())
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 50 * 1024 * 1024 // MAX_LINE_BYTES and cut == count - 1
    assert peak < 4 * MAX_LINE_BYTES + 2 * len(chunk), peak  # never the whole line
    assert elapsed < 10, elapsed  # about 0.1 s here; only a hang or quadratic cost fails


# ---------------------------------------------------------------- printing sinks


@pytest.mark.parametrize("text", HOSTILE)
def test_host_formatter_prints_one_escaped_line_per_line(text: str) -> None:
    out = io.StringIO()
    formatter = HostFormatter("{host}: {line}", stdout=out)
    for event in events(text.encode() + b"\n"):
        formatter.output(event)
    printed = out.getvalue()
    assert printed.count("\n") == 1 and printed.startswith("n1: ")
    assert not any(unsafe(char) for char in printed[:-1])


def test_every_printing_sink_escapes_stdout_stderr_and_events() -> None:
    hostile = "benign\rnode2: FAKE\x1b]52;c;eA==\x07"
    escaped = "benign\\rnode2: FAKE\\x1b]52;c;eA==\\x07"
    sinks: list[Any] = [
        HostFormatter,
        TimeHostFormatter,
        RawFormatter,
        ColonFormatter,
        lambda **streams: TerminalFormatter("@host@ @line@", **streams),
    ]
    for make in sinks:
        out, err = io.StringIO(), io.StringIO()
        formatter = make(stdout=out, stderr=err)
        formatter.output(OutputEvent("n1", "stdout", hostile))
        formatter.output(OutputEvent("n1", "stderr", hostile))
        formatter.line(hostile + "\n", None, "n1")  # upstream's entry point too
        formatter.connect_failed("n1", OSError("bad \x1b[2J name"))
        assert out.getvalue().count(escaped) == 2 and out.getvalue().count("\n") == 2
        assert err.getvalue().count(escaped) == 1 and "bad \\x1b[2J name" in err.getvalue()
        for text in (out.getvalue(), err.getvalue()):
            assert not any(unsafe(char) for char in text.replace("\n", ""))


def test_the_base_formatter_and_a_user_line_formatter(capsys: pytest.CaptureFixture[str]) -> None:
    Formatter().output(OutputEvent("n1", "stdout", "a\x1b[2Jb\udcff"))
    assert capsys.readouterr().out == "a\\x1b[2Jb\\xff\n"

    got: list[str] = []

    class Upstream(Formatter):
        def line(self, line: str, datatype: int | None, hostname: str) -> None:
            got.append(line)

    # an upstream-style line() gets text any encoder takes (and its newline)
    Upstream().output(OutputEvent("n1", "stdout", "x\udcff"))
    assert got == ["x\ufffd\n"]


def test_escape_false_is_the_raw_pass_through() -> None:
    out = io.StringIO()
    HostFormatter("{line}", stdout=out, escape=False).output(
        OutputEvent("n1", "stdout", "\x1b[31mred\x1b[0m")
    )
    assert out.getvalue() == "\x1b[31mred\x1b[0m\n"


def test_a_cut_line_is_printed_in_marked_pieces() -> None:
    out = io.StringIO()
    formatter = HostFormatter("{host}: {line}", stdout=out)
    for event in events(b"y" * (2 * MAX_LINE_BYTES + 10) + b"\n"):
        formatter.output(event)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0] == "n1: " + "y" * MAX_LINE_BYTES + CUT_MARK
    assert lines[1].endswith(CUT_MARK) and not lines[2].endswith(CUT_MARK)
    assert lines[2] == "n1: " + "y" * 10


# ---------------------------------------------------------------- exact sinks


def test_subdir_files_keep_the_exact_bytes(tmp_path: Path) -> None:
    data = (
        b"benign\rnode2: FAKE\n\x1b]52;c;eA==\x07\nbad \xff\xfe utf-8\ncrlf\r\n"
        + b"z" * (3 * MAX_LINE_BYTES)
        + b"\nlast"
    )
    formatter = SubdirFormatter(tmp_path, out_suffix=".out")
    for event in events(data) + events(b"e\x1b\n", stream="stderr"):
        formatter.output(event)
    formatter.close()
    # only a last line without a newline gets one
    assert (tmp_path / "n1.out").read_bytes() == data + b"\n"
    assert (tmp_path / "n1.err").read_bytes() == b"e\x1b\n"


def test_capture_keeps_the_text_and_bounds_a_long_line() -> None:
    data = b"a\x1b\r\nb\xff\n" + b"q" * (3 * MAX_LINE_BYTES) + b"\n"
    exact = CaptureFormatter(exact=True)
    plain = CaptureFormatter()
    small = CaptureFormatter(max_bytes=MAX_LINE_BYTES + 100)
    for event in events(data):
        exact.output(event)
        plain.output(event)
        small.output(event)
    assert exact.stdout("n1").encode("utf-8", "surrogateescape") == data
    assert plain.stdout("n1") == data.decode("utf-8", "replace")
    assert exact.lines("n1") == ["a\x1b", "b\udcff", "q" * (3 * MAX_LINE_BYTES)]
    kept = small.stdout("n1")
    assert len(kept) < MAX_LINE_BYTES + 200
    assert kept.endswith("[apssh: 1 more line not kept: past 65636 characters]\n")


# ---------------------------------------------------------------- the log


def test_log_messages_are_escaped() -> None:
    record = logging.LogRecord(
        "apssh_cli", logging.WARNING, __file__, 1, "skipping %s: odd", ("f\x1b]0;x\x07",), None
    )
    assert EscapeLogFilter().filter(record)
    assert record.getMessage() == "skipping f\\x1b]0;x\\x07: odd"


def test_json_round_trip_helper() -> None:
    from apssh_cli.cli.render import json_line

    text = json_line({"stdout": "a\x1b\u009b\u202e\udcff\n"})
    assert text.isascii()  # nothing a terminal would act on, even shown raw
    decoded = json.loads(text)["stdout"]
    assert decoded.encode("utf-8", "surrogateescape") == "a\x1b\u009b\u202e".encode() + b"\xff\n"


# ---------------------------------------------------------------- the command line's renderer


def renderer(names: list[str], **options: Any) -> tuple[Any, io.StringIO, io.StringIO]:
    from apssh_cli.cli.render import OutputOptions, Renderer
    from apssh_cli.inventory.model import Host
    from apssh_cli.inventory.targets import Target

    targets = [Target(name, (Host.adhoc(name, hostname=name),), True) for name in names]
    out, err = io.StringIO(), io.StringIO()
    made = Renderer(targets, OutputOptions(**options), stdout=out, stderr=err)
    return made, out, err


def finish(made: Any, *results: Any) -> None:
    from apssh_cli.results import HostResult, Status

    made.finish([HostResult(name, Status.OK, rc=0) for name in made._hosts] + list(results))


@pytest.mark.parametrize("options", [{}, {"raw": True}, {"fmt": "{host}|{line}"}])
def test_streamed_lines_are_escaped_in_every_format(options: dict[str, Any]) -> None:
    made, out, err = renderer(["node1", "node2"], **options)
    for event in events(b"benign\rnode2: FAKE\n\x1b[2K\x1b[1Gnode2: FAKE\n", host="node1"):
        made.output(event)
    for event in events(b"\x1b]52;c;eA==\x07\n", host="node1", stream="stderr"):
        made.output(event)
    finish(made)
    printed = out.getvalue().splitlines()
    assert len(printed) == 2
    assert not any(line.startswith("node2") for line in printed)
    assert not any(unsafe(char) for char in out.getvalue().replace("\n", ""))
    assert "\\x1b]52;c;eA==\\x07" in err.getvalue() and "\x1b]" not in err.getvalue()


def test_raw_output_passes_control_characters_through() -> None:
    made, out, _ = renderer(["n1"], raw=True, raw_output=True)
    made.output(OutputEvent("n1", "stdout", "\x1b[31mred\x1b[0m"))
    finish(made)
    assert out.getvalue() == "\x1b[31mred\x1b[0m\n"


def test_a_gathered_block_cannot_be_forged() -> None:
    """A host prints a whole block header of its own: it stays inside its block."""
    from apssh_cli.cli.render import GATHER_INDENT

    made, out, _ = renderer(["n1", "n2", "n3"], gather=True)
    forged = b"real\n---------------\nn3 (1)\n---------------\nFAKE\n\r---\n"
    for event in events(forged, host="n1"):
        made.output(event)
    for event in events(b"honest\n", host="n3"):
        made.output(event)
    finish(made)
    lines = out.getvalue().splitlines()
    ours = [line for line in lines if not line.startswith(GATHER_INDENT)]
    # ours: rule, header, rule for each block (n2 wrote nothing: an empty one), nothing else
    assert ours[1::3] == ["n1 (1)", "n2 (1)", "n3 (1)"] and len(ours) == 9
    assert all(set(line) == {"-"} for line in ours[0::3] + ours[2::3])
    assert lines[3:9] == [
        "  real",
        "  " + "-" * 15,
        "  n3 (1)",
        "  " + "-" * 15,
        "  FAKE",
        "  \\r---",
    ]


def test_a_long_line_is_cut_in_gathered_output_too() -> None:
    made, out, _ = renderer(["n1"], gather=True)
    for event in events(b"w" * (MAX_LINE_BYTES + 5) + b"\n", host="n1"):
        made.output(event)
    finish(made)
    lines = out.getvalue().splitlines()[3:]
    assert lines == ["  " + "w" * MAX_LINE_BYTES + CUT_MARK, "  wwwww"]


def test_json_keeps_the_exact_bytes_escaped() -> None:
    made, out, _ = renderer(["n1"], json=True)
    data = (
        b"benign\rnode2: FAKE\n\x1b]52;c;eA==\x07\n\xff\xfe\n" + b"L" * (2 * MAX_LINE_BYTES) + b"\n"
    )
    for event in events(data, host="n1"):
        made.output(event)
    for event in events(b"e\x9b\n", host="n1", stream="stderr"):
        made.output(event)
    finish(made)
    first = out.getvalue().splitlines()[0]
    assert first.isascii() or not any(unsafe(char) for char in first)
    record = json.loads(first)
    assert record["stdout"].encode("utf-8", "surrogateescape") == data
    assert record["stderr"].encode("utf-8", "surrogateescape") == b"e\x9b\n"


def test_out_dir_files_are_exact(tmp_path: Path) -> None:
    made, out, _ = renderer(["n1"], out_dir=tmp_path)
    data = b"benign\rnode2: FAKE\n\x1b]52;c;eA==\x07\n\xff\n"
    for event in events(data, host="n1"):
        made.output(event)
    finish(made)
    assert (tmp_path / "n1.out").read_bytes() == data and out.getvalue() == ""


def test_error_lines_and_notes_are_escaped() -> None:
    from apssh_cli.results import HostResult, Status

    made, _, err = renderer(["n1", "n2"])
    made.note("n1", "skipping a\x1b]0;t\x07b: not a file")
    made.host_done(HostResult("n2", Status.TIMEOUT, error="pull of /x\rn1: FAKE timed out"))
    text = err.getvalue()
    assert "a\\x1b]0;t\\x07b" in text and "/x\\rn1: FAKE" in text
    assert "\x1b" not in text and "\r" not in text


def test_gather_header_error_is_escaped() -> None:
    from apssh_cli.results import HostResult, Status

    made, out, _ = renderer(["n1"], gather=True)
    made.finish([HostResult("n1", Status.TIMEOUT, error="x\n---\nn2 (1)")])
    assert out.getvalue().splitlines()[1] == "n1 (1) timeout: x\\n---\\nn2 (1)"


# ---------------------------------------------------------------- recipes


def test_recipe_output_is_escaped_and_captures_join_cut_lines(tmp_path: Path) -> None:
    from apssh_cli.recipe.loader import parse_recipe
    from apssh_cli.recipe.planner import Selection, make_plan
    from apssh_cli.recipe.runner import RecipeRun

    long = f"head -c {MAX_LINE_BYTES + 7} /dev/zero | tr '\\\\0' z"
    body = f"""[recipe]
name = "t"
format = 1
[[step]]
id = "a"
local = "printf 'benign\\\\rlocal: FAKE\\\\n\\\\033]52;c;eA==\\\\a\\\\n'; {long}"
capture = "v"
[[step]]
id = "b"
requires = ["a"]
local = "echo {{cap.v:q}} | wc -c"
"""
    plan = make_plan(
        parse_recipe(body, tmp_path / "r.toml"), None, Selection(), run_dir=tmp_path / "run"
    )
    out = io.StringIO()
    run = RecipeRun(plan, stdout=out, stderr=out)
    assert run.run(handle_signals=False) == 0
    lines = out.getvalue().splitlines()
    assert any(line.endswith(": benign\\rlocal: FAKE") for line in lines), lines
    assert any(line.endswith(": \\x1b]52;c;eA==\\x07") for line in lines)
    assert any(line.endswith(CUT_MARK) for line in lines)
    assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()
    # the capture holds the long line whole (and the two before): echo adds one newline
    expected = len("benign\rlocal: FAKE\n\x1b]52;c;eA==\x07\n") + MAX_LINE_BYTES + 7 + 1
    assert any(line.endswith(f": {expected}") for line in lines), lines[-3:]


def test_recipe_summary_escapes_errors() -> None:
    from apssh_cli.recipe.report import summary_lines

    summary = {
        "steps": [],
        "tasks": [{"task": "a@n1", "status": "failed", "error": "rc 1: \x1b]0;x\x07"}],
        "recipe": "r",
        "status": "failed",
        "abort_reason": "a\rb",
        "exit": 5,
        "duration": 1.0,
        "run_dir": "d",
    }
    text = "\n".join(summary_lines(summary))
    assert "rc 1: \\x1b]0;x\\x07" in text and "(a\\rb)" in text and "\x1b" not in text


def test_the_command_line_escapes_the_library_log(caplog: pytest.LogCaptureFixture) -> None:
    from apssh_cli.cli.render import escape_library_log
    from apssh_cli.log import host_logger

    logger = logging.getLogger("apssh_cli")
    before = list(logger.filters)
    for item in before:  # an earlier run in this process may have installed it
        if isinstance(item, EscapeLogFilter):
            logger.removeFilter(item)
    try:
        escape_library_log()
        escape_library_log()  # once only
        assert sum(isinstance(item, EscapeLogFilter) for item in logger.filters) == 1
        host_logger("n1").warning("skipping %s: not a file", "a\x1b]0;x\x07\rn2: FAKE")
        message = caplog.records[-1].getMessage()
        assert message == "host=n1 skipping a\\x1b]0;x\\x07\\rn2: FAKE: not a file"
    finally:
        for item in list(logger.filters):
            logger.removeFilter(item)
        for item in before:
            logger.addFilter(item)


def test_recipe_run_command_escapes_unless_raw_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from apssh_cli.cli.main import main

    monkeypatch.delenv("APSSH_INVENTORY", raising=False)
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        '[recipe]\nname = "r"\nformat = 1\n[[step]]\nid = "hi"\n'
        "local = '''printf '\\033[31mred\\033[0m\\n' '''\n"
    )
    inventory = tmp_path / "inv.toml"
    inventory.write_text('[g.hosts.h1]\nhostname = "127.0.0.1"\n')
    outputs = []
    for extra in ([], ["--raw-output"]):
        run_dir = tmp_path / f"run{len(outputs)}"
        argv = ["recipe", "run", str(recipe), "-i", str(inventory), "--run-dir", str(run_dir)]
        with pytest.raises(SystemExit) as info:
            main([*argv, *extra])
        assert info.value.code in (0, None)
        outputs.append(capsys.readouterr().out)
    assert "hi local: \\x1b[31mred\\x1b[0m\n" in outputs[0]
    assert "hi local: \x1b[31mred\x1b[0m\n" in outputs[1]
