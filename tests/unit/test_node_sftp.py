"""SFTP helpers without a server: names from the node, the request pipeline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator

import pytest

from apssh_cli.ssh.sftp import TransferError, _pipeline, _safe_name


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
