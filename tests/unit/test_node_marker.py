"""The pid marker: the first stdout line of a remote command is ours, and never shown."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from apssh_cli.node import _kill_group_script, _PidMarker


def chunks_reader(chunks: list[bytes]) -> Callable[[int], Awaitable[bytes]]:
    pending = list(chunks)

    async def read(size: int) -> bytes:
        return pending.pop(0) if pending else b""

    return read


def read_all(marker: _PidMarker, chunks: list[bytes]) -> bytes:
    read = marker.reader(chunks_reader(chunks))

    async def main() -> bytes:
        out = b""
        while data := await read(1024):
            out += data
        return out

    return asyncio.run(main())


@pytest.mark.parametrize(
    "split",
    [
        lambda line: [line + b"hello\nworld\n"],
        lambda line: [line[:5], line[5:], b"hello\n", b"world\n"],
        lambda line: [line, b"hello\nworld\n"],
    ],
)
def test_marker_is_stripped_and_pid_read(split) -> None:  # type: ignore[no-untyped-def]
    marker = _PidMarker()
    line = f"{marker.token} 4242\n".encode()
    assert read_all(marker, split(line)) == b"hello\nworld\n"
    assert marker.pid == 4242


def test_foreign_first_line_passes_through() -> None:
    marker = _PidMarker()
    assert read_all(marker, [b"noise from an rc file\n", b"more"]) == b"noise from an rc file\nmore"
    assert marker.pid is None


def test_empty_output() -> None:
    marker = _PidMarker()
    assert read_all(marker, []) == b""
    assert marker.pid is None


def test_wrap_quotes_the_command_and_keeps_the_pid() -> None:
    marker = _PidMarker()
    wrapped = marker.wrap("echo 'it' $HOME")
    assert wrapped.startswith(f"printf '%s %s\\n' {marker.token} \"$$\"; exec ")
    assert wrapped.endswith("-c 'echo '\"'\"'it'\"'\"' $HOME'")
    assert _PidMarker().token != marker.token


def test_kill_script_targets_the_group() -> None:
    script = _kill_group_script(123)
    assert "kill -s TERM -- -123" in script
    assert "kill -s KILL -- -123" in script
