"""~/.ssh/config reading: first value wins, patterns, ProxyJump, Include, errors, caching."""

from __future__ import annotations

from pathlib import Path

import pytest

from apssh_cli.errors import ConfigError
from apssh_cli.ssh.node import SshNode
from apssh_cli.ssh.sshconfig import (
    JumpHost,
    SshConfig,
    clear_ssh_config_cache,
    load_ssh_config,
)

CONFIG = """\
# comment
User everyone

Host web? !web9
    HostName %h.example.org
    Port 2222
    IdentityFile ~/.ssh/id_%h

Host db
    HostName=10.0.0.5
    User = dba
    ProxyJump alice@bastion:2200,ssh://gw
    IdentityFile /keys/db

Host db *
    Port 22
    IdentityFile /keys/all
    ProxyJump none

Match host db
    User ignored
"""


@pytest.fixture
def config() -> SshConfig:
    return SshConfig.parse(CONFIG, "cfg")


def test_first_value_wins_and_identity_files_accumulate(config: SshConfig) -> None:
    db = config.lookup("db")
    assert db.hostname == "10.0.0.5"
    assert db.user == "everyone"  # set before any Host: applies first
    assert db.port == 22
    assert db.identity_files == ("/keys/db", "/keys/all")
    assert db.proxy_jump == (JumpHost("bastion", "alice", 2200), JumpHost("gw", None, None))


def test_patterns_negation_and_tokens(config: SshConfig) -> None:
    web = config.lookup("web1")
    assert web.hostname == "web1.example.org"
    assert web.port == 2222
    assert web.identity_files[0].endswith("/.ssh/id_web1.example.org")
    assert web.proxy_jump == ()  # "ProxyJump none" from the * block
    assert config.lookup("web9").port == 22  # negated
    assert config.lookup("web10").port == 22  # ? is one character


def test_unknown_host_gets_defaults(config: SshConfig) -> None:
    other = config.lookup("other")
    assert other.hostname is None
    assert other.port == 22


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("Host a\n  Port banana\n", 2, "bad Port"),
        ("Host a\n\n  User\n", 3, "has no value"),
    ],
)
def test_errors_carry_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        SshConfig.parse(text, "cfg").lookup("a")
    assert info.value.source == "cfg"
    assert info.value.line == line


def test_include_is_followed(tmp_path: Path) -> None:
    (tmp_path / "extra.conf").write_text("Host inc\n  Port 2022\n")
    main = tmp_path / "config"
    main.write_text(f"Include {tmp_path}/*.conf\nHost *\n  Port 22\n")
    assert SshConfig.read(main).lookup("inc").port == 2022


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert SshConfig.read(tmp_path / "nope").lookup("x").port is None


def test_parsed_once_per_process(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("Host a\n  Port 1022\n")
    clear_ssh_config_cache()
    first = load_ssh_config(path)
    path.write_text("Host a\n  Port 2022\n")
    assert load_ssh_config(path) is first
    assert load_ssh_config(path).lookup("a").port == 1022
    clear_ssh_config_cache()
    assert load_ssh_config(path).lookup("a").port == 2022


def test_node_applies_config_and_builds_a_shared_proxyjump_chain(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(
        "Host n1 n2\n  User root\n  Port 2200\n  ProxyJump admin@bastion:2222\n"
        "Host bastion\n  ProxyJump elsewhere\n"
    )
    clear_ssh_config_cache()
    n1 = SshNode("n1", ssh_config=path)
    n2 = SshNode("n2", ssh_config=path, port=2300, username="me")
    t1, t2 = n1.resolve(), n2.resolve()
    assert (t1.host, t1.port, t1.username) == ("n1", 2200, "root")
    assert (t2.port, t2.username) == (2300, "me")  # explicit arguments win
    assert t1.gateway is not None and t1.gateway is t2.gateway  # one bastion connection
    bastion = t1.gateway.resolve()
    assert (bastion.host, bastion.port, bastion.username) == ("bastion", 2222, "admin")
    assert bastion.gateway is None  # a jump host's own ProxyJump is not followed
    explicit = SshNode("gw")
    assert SshNode("n1", ssh_config=path, gateway=explicit).resolve().gateway is explicit
    assert SshNode("n1", ssh_config=None).resolve().port == 22
