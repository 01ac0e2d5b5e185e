"""The local stdin of `apssh run`: read once, kept in memory up to a bound, else spilled."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from apssh_cli.cli import stdin
from apssh_cli.commands import STDIN_NAME, Run, RunScript
from apssh_cli.errors import ConfigError

LOCAL_INVENTORY = '[all.hosts]\nloc1 = { connection = "local" }\nloc2 = { connection = "local" }\n'


def test_a_small_input_stays_in_memory() -> None:
    with stdin.read_stdin(io.BytesIO(b"hello\n"), memory_limit=10) as data:
        assert data == b"hello\n"


def test_an_empty_input_is_no_input() -> None:
    with stdin.read_stdin(io.BytesIO(b""), memory_limit=10) as data:
        assert data is None


def test_past_the_bound_the_input_goes_to_a_private_file_removed_after() -> None:
    payload = os.urandom(100)
    with stdin.read_stdin(io.BytesIO(payload), memory_limit=10) as data:
        assert isinstance(data, Path)
        assert data.read_bytes() == payload
        assert stat.S_IMODE(data.stat().st_mode) == 0o600
        spilled = data
    assert not spilled.exists()


def test_the_private_file_goes_also_when_the_run_fails() -> None:
    with (
        pytest.raises(RuntimeError),
        stdin.read_stdin(io.BytesIO(b"x" * 20), memory_limit=10) as data,
    ):
        assert isinstance(data, Path)
        spilled = data
        raise RuntimeError("the run failed")
    assert not spilled.exists()


class Terminal(io.BytesIO):
    def fileno(self) -> int:
        raise OSError("no descriptor")


def test_who_reads_stdin(tmp_path: Path) -> None:
    with open(tmp_path / "input", "wb+") as regular:
        assert stdin.wanted(None, script=False, stream=regular)  # a file, a pipe: read
        assert not stdin.wanted(None, script=True, stream=regular)  # -s: only when asked
        assert stdin.wanted(True, script=True, stream=regular)  # --stdin
        assert not stdin.wanted(False, script=False, stream=regular)  # --no-stdin
    main, secondary = os.openpty()
    try:
        with open(secondary, "rb", closefd=False) as terminal:
            assert not stdin.wanted(None, script=False, stream=terminal)
            assert stdin.wanted(True, script=False, stream=terminal)  # asked: until Ctrl-D
    finally:
        os.close(main)
        os.close(secondary)
    assert not stdin.wanted(True, script=False, stream=Terminal())  # not a file: none
    closed = open(tmp_path / "input", "rb")  # noqa: SIM115 - closed on purpose
    closed.close()
    assert not stdin.wanted(True, script=False, stream=closed)  # `apssh ... <&-`


def test_commands_take_bytes_text_or_a_file(tmp_path: Path) -> None:
    assert Run("cat", stdin="\u00e9").stdin == "\u00e9".encode()
    assert Run("cat", stdin=b"x").stdin == b"x"
    assert Run("cat").stdin is None
    with pytest.raises(TypeError):
        Run("cat", stdin=3)  # type: ignore[arg-type]
    missing = RunScript(tmp_path / "s.sh", stdin=tmp_path / "missing")
    (tmp_path / "s.sh").write_text("cat\n")
    with pytest.raises(ConfigError, match="stdin file not found"):
        missing._files()
    include = tmp_path / STDIN_NAME
    include.write_text("")
    clash = RunScript(tmp_path / "s.sh", includes=[include], stdin=b"x")
    with pytest.raises(ConfigError, match="distinct names"):
        clash._files()


def apssh(tmp_path: Path, *args: str, data: bytes | None) -> subprocess.CompletedProcess[bytes]:
    inventory = tmp_path / "local.toml"
    inventory.write_text(LOCAL_INVENTORY)
    return subprocess.run(
        [sys.executable, "-m", "apssh_cli.cli.main", "-i", str(inventory), "--raw", *args],
        input=data,
        stdin=None if data is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )


def test_every_local_host_reads_the_same_input(tmp_path: Path) -> None:
    done = apssh(tmp_path, "cat", data=b"hello\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"hello\nhello\n"
    done = apssh(tmp_path, "--no-stdin", "cat", data=b"hello\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b""


def test_a_dry_run_reads_nothing(tmp_path: Path) -> None:
    # a dry run on a pipe nobody writes to would hang if it read
    inventory = tmp_path / "local.toml"
    inventory.write_text(LOCAL_INVENTORY)
    reader, writer = os.pipe()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "apssh_cli.cli.main", "-i", str(inventory), "-n", "cat"],
            stdin=reader,
            capture_output=True,
            timeout=60,
        )
    finally:
        os.close(reader)
        os.close(writer)
    assert done.returncode == 0, done.stderr
