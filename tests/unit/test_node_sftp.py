"""SFTP helpers without a server: names from the node, how a line quotes them, file
kinds, the local tree walk, the request pipeline."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import unicodedata
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from hypothesis import given, strategies as st

from apssh_cli.ssh.sftp import (
    SESSIONS,
    SPREAD_THRESHOLD,
    TransferError,
    _close_all,
    _kind,
    _pipeline,
    _safe_name,
    _Sessions,
    _Spread,
    _temp_name,
    shown,
    walk_files,
)


@pytest.mark.parametrize(
    "name", ["a", "..a", "...", "a..", ".hidden", "été", "nl\nname", "esc\x1b[2J", "bad\udcffbyte"]
)
def test_plain_names_pass(name: str) -> None:
    assert _safe_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "/etc", "a\0b"])
def test_names_that_would_leave_the_destination_are_refused(name: str) -> None:
    with pytest.raises(TransferError, match="refusing the remote name"):
        _safe_name(name)


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("plain été.txt", "plain été.txt"),
        ("nl\nname", "nl\\nname"),
        ("esc\x1b[31mred\x07", "esc\\x1b[31mred\\x07"),
        ("tab\tx\r", "tab\tx\\r"),  # a tab is harmless
        ("back\\slash", "back\\slash"),
        ("zero\u200bwidth\u202e", "zero\\u200bwidth\\u202e"),
        ("del\x7f", "del\\x7f"),
        (b"bad\xffbyte", "bad\\xffbyte"),
        (b"caf\xc3\xa9", "café"),
        (b"c1\xc2\x9b", "c1\\u009b"),  # U+009B, a one-character CSI
        ("tag\U000e0041", "tag\\U000e0041"),
    ],
)
def test_a_quoted_name_is_escaped(name: str | bytes, line: str) -> None:
    assert shown(name) == line


@given(st.one_of(st.text(), st.binary()))
def test_a_quoted_name_is_one_line_that_drives_no_terminal(name: str | bytes) -> None:
    line = shown(name)
    # what a terminal acts on: controls (tab aside), format controls, line separators,
    # lone surrogates (undecodable bytes); the rule of remote output (escape_text)
    acting = {"Cc", "Cf", "Cs", "Zl", "Zp"}
    assert not [c for c in line if c != "\t" and unicodedata.category(c) in acting]
    assert shown(line) == line  # escaped once: quoting it again changes nothing


@pytest.mark.parametrize(
    ("mode", "kind"),
    [
        (stat.S_IFREG | 0o600, None),
        (stat.S_IFDIR | 0o755, "a directory"),
        (stat.S_IFLNK | 0o777, "a symbolic link"),
        (stat.S_IFIFO | 0o644, "a FIFO"),
        (stat.S_IFSOCK | 0o755, "a socket"),
        (stat.S_IFCHR | 0o666, "a character device"),
        (stat.S_IFBLK | 0o660, "a block device"),
    ],
)
def test_file_kinds_from_the_mode(mode: int, kind: str | None) -> None:
    assert _kind(asyncssh.SFTPAttrs(permissions=mode)) == kind


def test_a_server_that_gives_no_mode_is_read_only_for_a_regular_file() -> None:
    regular = asyncssh.SFTPAttrs(type=asyncssh.FILEXFER_TYPE_REGULAR)
    special = asyncssh.SFTPAttrs(type=asyncssh.FILEXFER_TYPE_SPECIAL)
    assert _kind(regular) is None
    assert _kind(special) == "a special file"


def test_walk_files_goes_deeper_than_the_recursion_limit(tmp_path: Path) -> None:
    root = tmp_path / "deep"
    directory = root
    directory.mkdir()
    for _ in range(1500):  # os.walk (Python 3.11) ends in RecursionError here
        directory /= "d"
        directory.mkdir()
    (directory / "leaf").write_text("leaf")
    try:
        walked = list(walk_files(root))
        assert len(walked) == 1501
        assert walked[-1] == (directory, ["leaf"])
        assert all(files == [] for _, files in walked[:-1])
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=True)  # shutil.rmtree recurses too


def test_walk_files_skips_what_is_not_a_regular_file_with_one_line_each(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "b").write_text("b")
    (tmp_path / "sub" / "a").write_text("a")
    os.mkfifo(tmp_path / "fifo\x1b[2J")
    (tmp_path / "to-sub").symlink_to("sub")
    (tmp_path / "to-b").symlink_to("b")
    (tmp_path / "dangling").symlink_to("nothing")
    lines: list[str] = []
    walked = list(walk_files(tmp_path, lines.append))
    assert walked == [(tmp_path, ["b", "to-b"]), (tmp_path / "sub", ["a"])]
    assert sorted(lines) == [
        f"not following {tmp_path}/to-sub: a link to a directory",
        f"skipped {tmp_path}/dangling: a link to nothing, not a file or a directory",
        f"skipped {tmp_path}/fifo\\x1b[2J: a FIFO, not a file or a directory",
    ]


@pytest.mark.parametrize("name", ["a", "x" * 255, "é" * 127, "bad\udcff" * 60])
def test_a_temporary_name_fits_where_its_name_fits(name: str, tmp_path: Path) -> None:
    temporary = _temp_name(name)
    assert temporary.startswith(".") and ".apssh-" in temporary
    assert len(os.fsencode(temporary)) <= 255
    (tmp_path / temporary).write_text("")  # the file system takes it
    assert _temp_name(name) != temporary


def test_pipeline_keeps_the_depth_and_runs_everything() -> None:
    in_flight = 0
    peak = 0
    done: list[int] = []

    async def request(index: int) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1
        done.append(index)

    asyncio.run(_pipeline((request(i) for i in range(50)), depth=4))
    assert sorted(done) == list(range(50))
    assert peak == 4


def test_pipeline_stops_at_the_first_error_and_leaves_nothing_behind() -> None:
    made = 0

    async def request(index: int) -> None:
        await asyncio.sleep(0.001 * (index % 3))
        if index == 5:
            raise OSError("lost")

    def requests() -> Iterator[Awaitable[None]]:
        nonlocal made
        for index in range(1000):
            made += 1
            yield request(index)

    async def main() -> None:
        with pytest.raises(OSError, match="lost"):
            await _pipeline(requests(), depth=8)
        # every task made was awaited or cancelled: nothing pending
        assert [task for task in asyncio.all_tasks() if task is not asyncio.current_task()] == []

    asyncio.run(main())
    assert made < 100  # it stopped early


# ------------------------------------------------------------ spreading a push


class FakeHandle:
    """A file open in one SFTP session: records its writes, each taking ``delay``."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.offsets: list[int] = []
        self.in_flight = 0
        self.peak = 0

    async def write(self, data: bytes, offset: int) -> int:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(self.delay)
        self.in_flight -= 1
        self.offsets.append(offset)
        return len(data)


def test_spread_sends_each_write_once_to_the_least_busy_handle() -> None:
    fast, slow = FakeHandle(0.001), FakeHandle(0.005)
    spread = _Spread([fast, slow])  # type: ignore[list-item]
    asyncio.run(_pipeline((spread.write(b"x", offset) for offset in range(60)), depth=4))
    assert sorted(fast.offsets + slow.offsets) == list(range(60))
    assert len(fast.offsets) > len(slow.offsets)  # the faster session takes more
    assert max(fast.peak, slow.peak) <= 3


class FakeSession:
    def __init__(self) -> None:
        self.closed = False

    def exit(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        assert self.closed


def test_sessions_the_server_refuses_are_done_without() -> None:
    answers = iter([FakeSession(), asyncssh.ChannelOpenError(1, "open failed"), FakeSession()])

    async def opener() -> Any:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def scenario() -> tuple[list[Any], list[Any]]:
        main = FakeSession()
        async with _Sessions(main, opener, SESSIONS, "h") as sessions:  # type: ignore[arg-type]
            small = await sessions._for_size(SPREAD_THRESHOLD - 1)
            large = await sessions._for_size(SPREAD_THRESHOLD)
            again = await sessions._for_size(SPREAD_THRESHOLD * 2)
            assert again == large  # opened once, for the whole push
        return small, large

    small, large = asyncio.run(scenario())
    assert len(small) == 1
    assert len(large) == SESSIONS - 1  # one refused
    assert all(session.closed for session in large[1:])
    assert not large[0].closed  # the node's own session stays open


def test_a_push_cancelled_while_sessions_open_closes_those_already_open() -> None:
    opened: list[FakeSession] = []

    async def opener() -> Any:
        if opened:  # the others never finish opening
            await asyncio.Event().wait()
        session = FakeSession()
        opened.append(session)
        return session

    async def scenario() -> None:
        sessions = _Sessions(FakeSession(), opener, SESSIONS, "h")  # type: ignore[arg-type]
        task = asyncio.ensure_future(sessions._for_size(SPREAD_THRESHOLD))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)  # the done callbacks run

    asyncio.run(scenario())
    assert len(opened) == 1
    assert opened[0].closed


class ClosingHandle:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.closed = False

    async def close(self) -> None:
        self.closed = True
        if self.error is not None:
            raise self.error


def test_closing_the_extra_handles_reports_an_error_after_closing_them_all() -> None:
    handles = [ClosingHandle(), ClosingHandle(asyncssh.SFTPFailure("Failure")), ClosingHandle()]
    with pytest.raises(asyncssh.SFTPFailure):
        asyncio.run(_close_all(handles, check=True))  # type: ignore[arg-type]
    assert all(handle.closed for handle in handles)
    asyncio.run(_close_all(handles))  # type: ignore[arg-type]  # on the way out of an error
