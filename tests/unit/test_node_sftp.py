"""SFTP helpers without a server: names from the node, the request pipeline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from typing import Any

import asyncssh
import pytest

from apssh_cli.ssh.sftp import (
    SESSIONS,
    SPREAD_THRESHOLD,
    TransferError,
    _close_all,
    _pipeline,
    _safe_name,
    _Sessions,
    _Spread,
)


@pytest.mark.parametrize("name", ["a", "..a", "...", "a..", ".hidden", "été"])
def test_plain_names_pass(name: str) -> None:
    assert _safe_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "/etc", "a\0b"])
def test_names_that_would_leave_the_destination_are_refused(name: str) -> None:
    with pytest.raises(TransferError, match="refusing the remote name"):
        _safe_name(name)


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
