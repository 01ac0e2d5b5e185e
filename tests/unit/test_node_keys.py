"""Local key problems are found before anything runs: one ConfigError naming the file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import asyncssh
import pytest

from apssh_cli.errors import ConfigError
from apssh_cli.ssh.keys import check_key_files, resolve_keys


@pytest.fixture
def good_key(tmp_path: Path) -> Path:
    path = tmp_path / "good"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(path)
    return path


@pytest.fixture
def encrypted_key(tmp_path: Path) -> Path:
    path = tmp_path / "encrypted"
    key = asyncssh.generate_private_key("ecdsa-sha2-nistp256")
    key.write_private_key(path, "pkcs8-pem", passphrase="secret")
    return path


def test_a_good_key_passes(good_key: Path) -> None:
    check_key_files([good_key, str(good_key)])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read key file: No such file"),
        ("garbage\n", "not a usable private key"),
        ("", "not a usable private key"),
    ],
)
def test_missing_and_garbage_files(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "key"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message) as info:
        check_key_files([path])
    assert info.value.source == str(path)


def test_a_directory_is_not_a_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a regular file"):
        check_key_files([tmp_path])


def test_encrypted_key_without_agent(encrypted_key: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.raises(ConfigError, match="encrypted and no ssh-agent runs"):
        check_key_files([encrypted_key])
    with pytest.raises(ConfigError, match="encrypted"):
        resolve_keys([encrypted_key])


def test_encrypted_key_with_an_agent_uses_the_agent(
    encrypted_key: Path, good_key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # any socket file stands for the agent here: nothing is asked of it
    socket_path = tmp_path / "agent.sock"
    subprocess.run(
        [
            "python3",
            "-c",
            f"import socket; socket.socket(socket.AF_UNIX).bind({str(socket_path)!r})",
        ],
        check=True,
    )
    monkeypatch.setenv("SSH_AUTH_SOCK", str(socket_path))
    check_key_files([encrypted_key])
    chosen = resolve_keys([encrypted_key, good_key])
    assert chosen.use_agent is True
    assert len(chosen.keys) == 1


def test_explicit_keys_alone_do_not_ask_the_agent(good_key: Path) -> None:
    chosen = resolve_keys([good_key])
    assert chosen.use_agent is False and len(chosen.keys) == 1
