"""Verbosity levels and --debug, without SSH (with SSH: tests/integration/test_cli_verbosity.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from apssh_cli.ssh.keys import describe_key, read_key
from apssh_cli.ssh.sshconfig import HostConfig, JumpHost

from .climain import apssh_argv as apssh

LOCAL_INVENTORY = '[all.hosts]\nloc1 = { connection = "local" }\n'


@pytest.fixture
def inventory(tmp_path: Path) -> str:
    path = tmp_path / "local.toml"
    path.write_text(LOCAL_INVENTORY)
    return str(path)


@pytest.mark.parametrize(
    "argv",
    [
        ["--debug", "-i", "{inv}", "true"],
        ["-i", "{inv}", "--debug", "true"],
        ["run", "-i", "{inv}", "--debug", "true"],
        ["inventory", "--debug", "list", "-i", "{inv}"],
        ["inventory", "list", "--debug", "-i", "{inv}"],
    ],
)
def test_debug_is_accepted_anywhere_among_the_options(
    argv: list[str], inventory: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = apssh([word.replace("{inv}", inventory) for word in argv], capsys)
    assert status == 0, err


def test_debug_after_the_command_belongs_to_the_command(
    inventory: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = apssh(["-i", inventory, "-r", "echo", "--debug"], capsys)
    assert status == 0
    assert out == "--debug\n"


@pytest.mark.parametrize(("flags", "level"), [([], None), (["-v"], 1), (["-vv"], 2), (["-vvv"], 3)])
def test_v_counts(
    flags: list[str],
    level: int | None,
    inventory: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[int] = []
    from apssh_cli.cli import execution

    real = execution._library_log

    def spy(renderer: object, verbosity: int) -> object:
        seen.append(verbosity)
        return real(renderer, verbosity)  # type: ignore[arg-type]

    monkeypatch.setattr(execution, "_library_log", spy)
    status, _, err = apssh(["-i", inventory, *flags, "true"], capsys)
    assert status == 0
    assert seen == [level or 0]
    # -v and more keep the lines that say where each setting came from
    assert ("apssh: setting window" in err) is bool(level)
    assert logging.getLogger("apssh_cli").level == logging.NOTSET  # restored


def test_the_ssh_config_entries_are_named_as_openssh_names_them() -> None:
    config = HostConfig(
        hostname="10.0.0.1",
        port=2222,
        user="root",
        proxy_jump=(JumpHost("gw", "u", 22),),
        keepalive_interval=5.0,
        identities_only=True,
    )
    assert config.entries() == [
        "HostName 10.0.0.1",
        "User root",
        "Port 2222",
        "ProxyJump u@gw:22",
        "ServerAliveInterval 5",
        "IdentitiesOnly True",
    ]
    assert HostConfig(proxy_jump=()).entries() == ["ProxyJump none"]
    assert HostConfig().entries() == []


def test_a_key_is_shown_with_its_file_and_fingerprint(tmp_path: Path) -> None:
    import subprocess

    path = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(path)], capture_output=True, text=True, check=True
    )
    fingerprint = listed.stdout.split()[1]
    assert describe_key(read_key(path), path) == f"{path} (ssh-ed25519 {fingerprint})"
    assert describe_key(read_key(path)) == f"a loaded key (ssh-ed25519 {fingerprint})"
