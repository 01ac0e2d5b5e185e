"""The remote wrapper: its pid line is ours and never shown; the command waits for go."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from apssh_cli.remote_wrapper import PidMarker, kill_group_script


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


def test_go_is_sent_once_even_when_the_pid_is_unreadable() -> None:
    calls: list[str] = []
    marker = PidMarker(on_marker=lambda: calls.append("go"))
    assert read_all(marker, [f"{marker.token} $$\nx\n".encode()]) == b"x\n"
    assert marker.pid is None
    assert calls == ["go"]


def test_empty_output() -> None:
    marker = PidMarker()
    assert read_all(marker, []) == b""
    assert marker.pid is None


def test_wrap_quotes_the_command_and_keeps_the_pid() -> None:
    marker = PidMarker()
    wrapped = marker.wrap("echo 'it' $HOME")
    assert wrapped.startswith(f"printf '%s %s\\n' {marker.token} \"$$\"; IFS= read -r ")
    assert wrapped.endswith("-c 'echo '\"'\"'it'\"'\"' $HOME'")
    assert PidMarker().token != marker.token


def test_kill_script_targets_the_group() -> None:
    script = kill_group_script(123)
    assert "kill -s TERM -- -123" in script
    assert "kill -s KILL -- -123" in script


def run_wrapper(tmp_path: Path, stdin: bytes) -> tuple[str, bool]:
    """Run the wrapper with a local sh; return its stdout and whether the command ran."""
    flag = tmp_path / "ran"
    marker = PidMarker()
    wrapped = marker.wrap(f"touch {flag}; echo ran")
    done = subprocess.run(
        ["/bin/sh", "-c", wrapped], input=stdin, capture_output=True, env={"SHELL": "/bin/sh"}
    )
    return done.stdout.decode(), flag.exists()


def test_the_command_starts_only_after_go(tmp_path: Path) -> None:
    out, ran = run_wrapper(tmp_path, b"")
    assert not ran
    (line,) = out.splitlines()
    assert line.startswith("apssh-pid-") and line.split()[1].isdigit()
    out, ran = run_wrapper(tmp_path, b"go\n")
    assert ran
    assert out.splitlines()[1:] == ["ran"]
