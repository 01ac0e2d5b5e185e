"""Host key policy decisions and the known_hosts file (recording, privacy, matching)."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from apssh_cli.errors import ConfigError
from apssh_cli.ssh import hostkeys
from apssh_cli.ssh.context import SshContext
from apssh_cli.ssh.hostkeys import Decision, decide, host_pattern
from apssh_cli.ssh.node import SshNode


@pytest.mark.parametrize(
    ("policy", "has_record", "decision"),
    [
        ("accept-new", False, Decision.RECORD),
        ("accept-new", True, Decision.REFUSE_CHANGED),
        ("strict", False, Decision.REFUSE_UNKNOWN),
        ("strict", True, Decision.REFUSE_CHANGED),
    ],
)
def test_decide(policy: str, has_record: bool, decision: Decision) -> None:
    assert decide(policy, has_record) is decision


def test_unknown_policy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown host key policy 'yes'"):
        SshNode("h", known_hosts="yes")


@pytest.mark.parametrize(
    ("host", "port", "pattern"),
    [("h", None, "h"), ("h", 22, "h"), ("127.0.0.1", 2222, "[127.0.0.1]:2222")],
)
def test_host_pattern(host: str, port: int | None, pattern: str) -> None:
    assert host_pattern(host, port) == pattern


def test_record_creates_private_file_and_matches(tmp_path: Path) -> None:
    path = tmp_path / "ssh" / "known_hosts"
    file = hostkeys.KnownHostsFile(path)
    key = asyncssh.generate_private_key("ssh-ed25519")
    other = asyncssh.generate_private_key("ssh-ed25519")
    assert not file.has_record("127.0.0.1", "127.0.0.1", 2222)
    file.record("127.0.0.1", 2222, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_text().startswith("[127.0.0.1]:2222 ssh-ed25519 ")
    assert file.has_record("127.0.0.1", "127.0.0.1", 2222)
    assert not file.has_record("127.0.0.1", "127.0.0.1", 2223)
    trusted = file.load().match("127.0.0.1", "", 2222)[0]
    assert trusted == [key.convert_to_public()]
    assert other.convert_to_public() not in trusted


def test_record_appends_after_a_line_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    first = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    path.write_text(f"alpha {first}")
    hostkeys.KnownHostsFile(path).record("beta", None, asyncssh.generate_private_key("ssh-ed25519"))
    lines = path.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["alpha", "beta"]


def test_files_are_shared_within_a_context_only(tmp_path: Path) -> None:
    context = SshContext()
    assert context.known_hosts_file(tmp_path / "k") is context.known_hosts_file(tmp_path / "k")
    assert SshContext().known_hosts_file(tmp_path / "k") is not context.known_hosts_file(
        tmp_path / "k"
    )


def test_record_writes_a_key_once_and_never_a_second_key_for_the_host(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    key = asyncssh.generate_private_key("ssh-ed25519")
    other = asyncssh.generate_private_key("ssh-ed25519")
    # two connections that both found the host new record the same key: one line
    first, second = hostkeys.KnownHostsFile(path), hostkeys.KnownHostsFile(path)
    assert first.record("h", 2222, key) is True
    assert second.record("h", 2222, key) is True
    written = path.read_text()
    assert len(written.splitlines()) == 1
    # a different key recorded meanwhile is not written: the caller refuses the host
    assert second.record("h", 2222, other) is False
    assert path.read_text() == written


def test_judge_accepts_a_key_recorded_since_the_connection_started(tmp_path: Path) -> None:
    file = hostkeys.KnownHostsFile(tmp_path / "known_hosts")
    key = asyncssh.generate_private_key("ssh-ed25519")
    other = asyncssh.generate_private_key("ssh-ed25519")
    assert file.judge("accept-new", "h", "10.0.0.1", 2222, key) is Decision.RECORD
    file.record("h", 2222, key)
    assert file.judge("accept-new", "h", "10.0.0.1", 2222, key) is None
    assert file.judge("strict", "h", "10.0.0.1", 2222, key) is None
    assert file.judge("accept-new", "h", "10.0.0.1", 2222, other) is Decision.REFUSE_CHANGED


_RECORDERS = 6


def _record_in_another_process(path: str, key_data: bytes, barrier: Any) -> bool:
    # each process has its own KnownHostsFile (and threading lock): only flock is shared
    key = asyncssh.import_public_key(key_data)
    barrier.wait()
    return hostkeys.KnownHostsFile(Path(path)).record("node9", 2222, key)


def test_processes_recording_the_same_host_write_one_line(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    key = asyncssh.generate_private_key("ssh-ed25519").convert_to_public()
    context = multiprocessing.get_context("spawn")
    barrier = context.Manager().Barrier(_RECORDERS)
    with context.Pool(_RECORDERS) as pool:
        results = pool.starmap(
            _record_in_another_process,
            [(str(path), key.export_public_key(), barrier)] * _RECORDERS,
        )
    assert results == [True] * _RECORDERS
    lines = path.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("[node9]:2222 ssh-ed25519 ")
