"""A TCP relay on 127.0.0.1 that adds a one-way delay in each direction (user-space netem).

The kernels of our machines have no netem, so a round-trip time is emulated here:
every chunk read from one side is stamped with its arrival time and written to the
other side at arrival + DELAY, whatever came before or after it. Bandwidth is not
throttled: reading never waits for writing (up to MAX_BUFFERED bytes in flight per
direction, far more than a 50 ms round trip at loopback speed needs), so a protocol
that keeps enough data in flight sees the delay once, and a protocol that waits for
answers pays it on every exchange, as on a real long link.

The TCP handshake is emulated too: a client's connect() returns at once on loopback,
so the relay holds the client's first bytes until one round trip after the connect
(when a real connect would have returned), and opens the upstream connection one and
a half round trips after it (when the server would have accepted). A server that
speaks first (an SSH banner) is thus heard two round trips after the connect, as on
a real link.

Each route counts the connections it accepted: the benchmarks read how many
connections a bastion received.

Use it from Python (``async with DelayProxy(0.025) as proxy: port = await
proxy.add_route("127.0.0.1", 32768)``) or as a process::

    python benchmarks/delayproxy.py --delay 25ms 127.0.0.1:32768 127.0.0.1:32769=40022

which prints ``route LISTEN_PORT HOST:PORT`` per route, then ``ready``; then, for
each line ``stats`` read on stdin, one JSON line ``{"accepted": {"LISTEN_PORT": n},
"active": n}``; it exits when stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TextIO

LISTEN_HOST = "127.0.0.1"
CHUNK = 256 * 1024
MAX_BUFFERED = 64 * 1024 * 1024  # per direction; reading pauses beyond it


@dataclass
class Route:
    """One listening port and where it forwards to."""

    listen_port: int
    target_host: str
    target_port: int
    accepted: int = 0
    server: asyncio.Server | None = field(default=None, repr=False)


class _DelayedPipe:
    """One direction of a connection: read, stamp, deliver at arrival + delay."""

    def __init__(
        self, delay: float, not_before: float, trace: Callable[[int], None] | None = None
    ) -> None:
        self.trace = trace
        self.delay = delay
        self.not_before = not_before  # first byte may not leave before this time
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.buffered = 0
        self.readable = asyncio.Event()  # something queued
        self.room = asyncio.Event()  # below MAX_BUFFERED
        self.room.set()

    async def read_from(self, reader: asyncio.StreamReader) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await reader.read(CHUNK)
            except (ConnectionError, OSError):
                data = b""
            due = max(loop.time(), self.not_before) + self.delay
            if self.trace is not None:
                self.trace(len(data))
            self.queue.append((due, data))
            self.buffered += len(data)
            self.readable.set()
            if not data:  # EOF travels with the same delay
                return
            if self.buffered > MAX_BUFFERED:
                self.room.clear()
                await self.room.wait()

    async def write_to(self, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.queue:
                self.readable.clear()
                await self.readable.wait()
            due, data = self.queue[0]
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            # everything due by now goes out in one write
            now = loop.time()
            batch = []
            eof = False
            while self.queue and self.queue[0][0] <= now:
                _, data = self.queue.popleft()
                if not data:
                    eof = True
                    break
                batch.append(data)
                self.buffered -= len(data)
            if batch:
                writer.write(b"".join(batch))
                if self.buffered <= MAX_BUFFERED:
                    self.room.set()
                await writer.drain()
            if eof:
                with contextlib.suppress(OSError):
                    if writer.can_write_eof():
                        writer.write_eof()
                return


class DelayProxy:
    """Listening ports on 127.0.0.1, each relaying to one target with ``delay`` each way.

    Args:
        delay: one-way delay in seconds (the round trip is twice that).
        emulate_handshake: hold data as a real TCP handshake would (see the module doc).
    """

    def __init__(
        self, delay: float, *, emulate_handshake: bool = True, trace: TextIO | None = None
    ) -> None:
        self.trace = trace
        self.delay = delay
        self.emulate_handshake = emulate_handshake
        self.routes: dict[int, Route] = {}
        self.active = 0
        self._connections: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> DelayProxy:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def add_route(self, target_host: str, target_port: int, listen_port: int = 0) -> int:
        """Listen on 127.0.0.1:listen_port (0: any free port); return the port."""
        route = Route(listen_port, target_host, target_port)

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            route.accepted += 1
            task = asyncio.current_task()
            assert task is not None
            self._connections.add(task)
            try:
                # close() cancels the relays: that is their normal end, not an error
                with contextlib.suppress(asyncio.CancelledError):
                    await self._relay(route, reader, writer)
            finally:
                self._connections.discard(task)

        server = await asyncio.start_server(accept, LISTEN_HOST, listen_port, backlog=4096)
        route.server = server
        route.listen_port = server.sockets[0].getsockname()[1]
        self.routes[route.listen_port] = route
        return route.listen_port

    def stats(self) -> dict[str, object]:
        """Connections accepted per listening port, and connections open now."""
        accepted = {str(port): route.accepted for port, route in self.routes.items()}
        return {"accepted": accepted, "active": self.active}

    async def close(self) -> None:
        """Stop listening and cut the open connections."""
        for route in self.routes.values():
            if route.server is not None:
                route.server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _relay(
        self, route: Route, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        handshake = self.emulate_handshake
        # a real connect() returns after one round trip; the server accepts half a trip later
        connection = sum(r.accepted for r in self.routes.values())
        upstream_pipe = _DelayedPipe(
            self.delay,
            start + 2 * self.delay if handshake else start,
            self._tracer(start, connection, ">"),
        )
        self.active += 1
        tasks: list[asyncio.Task[None]] = []
        server_writer: asyncio.StreamWriter | None = None
        try:
            reading_client = asyncio.create_task(upstream_pipe.read_from(client_reader))
            tasks.append(reading_client)
            if handshake:
                await asyncio.sleep(3 * self.delay)
            try:
                server_reader, server_writer = await asyncio.open_connection(
                    route.target_host, route.target_port
                )
            except OSError:
                return  # the client sees its connection closed, as if refused
            downstream_pipe = _DelayedPipe(
                self.delay, loop.time(), self._tracer(start, connection, "<")
            )
            tasks += [
                asyncio.create_task(upstream_pipe.write_to(server_writer)),
                asyncio.create_task(downstream_pipe.read_from(server_reader)),
                asyncio.create_task(downstream_pipe.write_to(client_writer)),
            ]
            # done when both directions delivered their EOF, or a write failed
            writers = [tasks[1], tasks[3]]
            await asyncio.wait(writers, return_when=asyncio.FIRST_EXCEPTION)
        except (ConnectionError, OSError):
            pass
        finally:
            self.active -= 1
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for writer in (client_writer, server_writer):
                if writer is not None:
                    writer.close()

    def _tracer(self, start: float, connection: int, way: str) -> Callable[[int], None] | None:
        # one line per chunk read: ms since the connect, connection number, direction, bytes
        trace = self.trace
        if trace is None:
            return None
        loop = asyncio.get_running_loop()

        def write(size: int) -> None:
            trace.write(f"{(loop.time() - start) * 1000:9.1f} {connection:5d} {way} {size}\n")
            trace.flush()

        return write


def parse_duration(text: str) -> float:
    """'25ms', '0.025s', '0.025' -> seconds."""
    if text.endswith("ms"):
        return float(text[:-2]) / 1000
    return float(text.removesuffix("s"))


def parse_route(text: str) -> tuple[str, int, int]:
    """'HOST:PORT' or 'HOST:PORT=LISTEN_PORT' -> (host, port, listen_port)."""
    target, _, listen = text.partition("=")
    host, _, port = target.rpartition(":")
    return host or LISTEN_HOST, int(port), int(listen or 0)


async def serve(
    delay: float, routes: list[tuple[str, int, int]], handshake: bool, trace: TextIO | None
) -> None:
    async with DelayProxy(delay, emulate_handshake=handshake, trace=trace) as proxy:
        for host, port, listen in routes:
            listening = await proxy.add_route(host, port, listen)
            print(f"route {listening} {host}:{port}", flush=True)
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        stdin = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
        while line := await stdin.readline():
            if line.strip() == b"stats":
                print(json.dumps(proxy.stats()), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", default="25ms", help="one-way delay (default 25ms)")
    parser.add_argument(
        "--no-handshake", action="store_true", help="do not emulate the TCP handshake's round trip"
    )
    parser.add_argument(
        "--trace",
        type=argparse.FileType("w"),
        help="log every chunk read (ms since connect, connection, direction, bytes) to a file:"
        " count a protocol's round trips",
    )
    parser.add_argument("routes", nargs="+", help="HOST:PORT[=LISTEN_PORT]")
    args = parser.parse_args(argv)
    routes = [parse_route(text) for text in args.routes]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(parse_duration(args.delay), routes, not args.no_handshake, args.trace))


if __name__ == "__main__":
    main()
