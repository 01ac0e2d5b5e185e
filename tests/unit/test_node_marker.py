"""The remote wrapper: its pid line is ours and never shown; a pid can be awaited;
the command ends when its session goes away, or at its deadline."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from apssh_cli.ssh.remote_wrapper import PidMarker, kill_group_script

GUARD = 30  # seconds: catches a hang, not a timing assertion


def chunks_reader(chunks: list[bytes]) -> Callable[[int], Awaitable[bytes]]:
    pending = list(chunks)

    async def read(size: int) -> bytes:
        return pending.pop(0) if pending else b""

    return read


def read_all(marker: PidMarker, chunks: list[bytes]) -> bytes:
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
    marker = PidMarker()
    line = f"{marker.token} 4242\n".encode()
    assert read_all(marker, split(line)) == b"hello\nworld\n"
    assert marker.pid == 4242


def test_foreign_output_passes_through() -> None:
    marker = PidMarker()
    assert read_all(marker, [b"noise from an rc file\n", b"more"]) == b"noise from an rc file\nmore"
    assert marker.pid is None
    assert marker.seen  # the end of output ends the search


def test_noise_before_the_marker_passes_and_the_marker_is_found() -> None:
    gone: list[int | None] = []
    marker = PidMarker(on_marker=lambda: gone.append(marker.pid))
    line = f"{marker.token} 77\n".encode()
    # an rc file printed without a newline: the marker follows on the same line
    chunks = [b"motd\nno newline", line[:3], line[3:] + b"out\n"]
    assert read_all(marker, chunks) == b"motd\nno newlineout\n"
    assert marker.pid == 77
    assert gone == [77]


def test_on_marker_is_called_once_even_when_the_pid_is_unreadable() -> None:
    calls: list[str] = []
    marker = PidMarker(on_marker=lambda: calls.append("seen"))
    assert read_all(marker, [f"{marker.token} $$\nx\n".encode()]) == b"x\n"
    assert marker.pid is None
    assert calls == ["seen"]


def test_empty_output() -> None:
    marker = PidMarker()
    assert read_all(marker, []) == b""
    assert marker.pid is None


def test_wrap_quotes_the_command_and_keeps_the_pid() -> None:
    marker = PidMarker()
    wrapped = marker.wrap("echo 'it' $HOME")
    assert wrapped.startswith(f"printf '%s %s\\n' {marker.token} \"$$\"; exec ")
    assert wrapped.endswith("-c 'echo '\"'\"'it'\"'\"' $HOME' </dev/null")
    assert PidMarker().token != marker.token


def test_kill_script_targets_the_group() -> None:
    script = kill_group_script(123)
    assert "kill -s TERM -- -123" in script
    assert "kill -s KILL -- -123" in script


def start_wrapped(command: str, deadline: float | None = None) -> tuple[PidMarker, Any]:
    """Run the wrapper as sshd would: a session leader, stdin a pipe the client holds."""
    marker = PidMarker()
    process = subprocess.Popen(
        ["/bin/sh", "-c", marker.wrap(command, deadline=deadline)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={"SHELL": "/bin/sh", "PATH": os.environ["PATH"]},
        start_new_session=True,
    )
    return marker, process


def test_the_wrapper_prints_its_pid_then_runs_the_command_without_input() -> None:
    marker, process = start_wrapped("echo ran; cat; echo $$")
    with process:
        out = process.stdout.read()  # cat reads /dev/null, not the session's stdin
        process.stdin.close()
        assert process.wait(GUARD) == 0
        line, ran, pid = out.decode().splitlines()
        assert line.split() == [marker.token, pid]  # exec: the command keeps the pid
        assert ran == "ran"


def test_the_command_ends_when_its_session_goes_away() -> None:
    marker, process = start_wrapped("sleep 60")
    with process:
        assert process.stdout.readline().split()[0] == marker.token.encode()
        started = time.monotonic()
        process.stdin.close()  # what sshd does when the client or its connection is gone
        assert process.wait(GUARD) in (-signal.SIGTERM, 128 + signal.SIGTERM)
        assert time.monotonic() - started < GUARD


def test_the_node_ends_the_command_at_its_deadline() -> None:
    _marker, process = start_wrapped("sleep 60", deadline=1)
    with process:
        started = time.monotonic()
        assert process.wait(GUARD) in (-signal.SIGTERM, 128 + signal.SIGTERM)
        assert time.monotonic() - started < GUARD
        process.stdin.close()


def test_a_command_that_ends_normally_leaves_its_background_jobs_alone() -> None:
    _marker, process = start_wrapped("sleep 60 >/dev/null 2>&1 </dev/null & echo $!; sleep 1")
    with process:
        process.stdout.readline()
        background = int(process.stdout.readline())
        assert process.wait(GUARD) == 0
        process.stdin.close()
        time.sleep(1.5)  # the watcher's grace, if it (wrongly) ended the group
        try:
            os.kill(background, 0)  # still there: started on purpose, like "nohup server &"
        finally:
            os.kill(background, signal.SIGKILL)


def test_await_pid_reads_up_to_the_marker_and_leaves_the_rest() -> None:
    marker = PidMarker()
    read = chunks_reader([b"motd\n", f"{marker.token} 31\n".encode(), b"after\n"])

    async def main() -> tuple[int | None, bytes]:
        pid = await marker.await_pid(read)
        return pid, await marker.reader(read)(1024)

    assert asyncio.run(main()) == (31, b"after\n")


def test_await_pid_is_none_when_the_output_ends_first() -> None:
    marker = PidMarker()
    assert asyncio.run(marker.await_pid(chunks_reader([b"no marker"]))) is None
    assert marker.seen


def test_await_pid_while_the_output_pump_searches() -> None:
    # the pump is already waiting for output when the pid is awaited: one reader at a time
    marker = PidMarker()
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    async def read(size: int) -> bytes:
        return await queue.get()

    async def main() -> tuple[bytes, int | None]:
        pump = asyncio.ensure_future(marker.reader(read)(1024))
        await asyncio.sleep(0)
        awaiting = asyncio.ensure_future(marker.await_pid(read))
        await asyncio.sleep(0)
        for chunk in (b"noise\n", f"{marker.token} 8\n".encode(), b"out\n", b""):
            queue.put_nowait(chunk)
        passed = await pump
        return passed, await awaiting

    assert asyncio.run(main()) == (b"noise\n", 8)
