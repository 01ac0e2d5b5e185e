"""The benchmarks' delay proxy (benchmarks/delayproxy.py): delays, never throttles, counts.

The proxy stands in for netem in `nox -s bench`: figures at 50 ms RTT are only as
good as its delays. Timing bounds here are generous (a loaded 2-core machine):
lower bounds check the delay is there, upper bounds only catch a proxy that
serialises the data (one delay per chunk instead of one per trip).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from delayproxy import DelayProxy, parse_duration, parse_route

DELAY = 0.05  # one way
T = TypeVar("T")


async def _echo_server() -> asyncio.Server:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"banner\n")  # a server that speaks first, as sshd does
        await writer.drain()
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(echo, "127.0.0.1", 0)


async def _through_proxy(scenario: Callable[[DelayProxy, int], Awaitable[T]]) -> T:
    server = await _echo_server()
    port = server.sockets[0].getsockname()[1]
    try:
        async with DelayProxy(DELAY) as proxy:
            listen = await proxy.add_route("127.0.0.1", port)
            return await scenario(proxy, listen)
    finally:
        server.close()


def test_round_trips_are_delayed_like_a_real_link() -> None:
    async def scenario(proxy: DelayProxy, listen: int) -> tuple[float, float]:
        start = time.perf_counter()
        reader, writer = await asyncio.open_connection("127.0.0.1", listen)
        await reader.readline()
        banner = time.perf_counter() - start
        start = time.perf_counter()
        writer.write(b"x")
        await reader.readexactly(1)
        trip = time.perf_counter() - start
        writer.close()
        return banner, trip

    banner, trip = asyncio.run(_through_proxy(scenario))
    # the TCP handshake (1 round trip) and the banner's way back (1 more)
    assert banner >= 4 * DELAY * 0.95
    assert trip >= 2 * DELAY * 0.95
    assert trip < 2 * DELAY + 2.0


def test_data_in_flight_is_not_throttled() -> None:
    chunks, size = 40, 64 * 1024

    async def scenario(proxy: DelayProxy, listen: int) -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", listen)
        await reader.readline()
        start = time.perf_counter()
        for _ in range(chunks):  # separate writes, nobody waits for an answer
            writer.write(b"y" * size)
            await writer.drain()
            await asyncio.sleep(0.001)
        await reader.readexactly(chunks * size)
        elapsed = time.perf_counter() - start
        writer.close()
        return elapsed

    elapsed = asyncio.run(_through_proxy(scenario))
    assert elapsed >= 2 * DELAY * 0.95
    # one delay per chunk would take chunks * 2 * DELAY = 4 s
    assert elapsed < chunks * 2 * DELAY / 2


def test_connections_are_counted_per_route() -> None:
    async def scenario(proxy: DelayProxy, listen: int) -> dict[str, object]:
        for _ in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", listen)
            await reader.readline()
            writer.close()
        return proxy.stats()

    stats = asyncio.run(_through_proxy(scenario))
    accepted = stats["accepted"]
    assert isinstance(accepted, dict)
    assert list(accepted.values()) == [3]


def test_command_line_parsing() -> None:
    assert parse_duration("25ms") == 0.025
    assert parse_duration("0.5s") == 0.5
    assert parse_route("127.0.0.1:2222") == ("127.0.0.1", 2222, 0)
    assert parse_route("127.0.0.1:2222=40000") == ("127.0.0.1", 2222, 40000)
