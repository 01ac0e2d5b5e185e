"""ssh_config through asyncssh's reader: Host and Match, Include, tokens, ProxyJump chains."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from apssh_cli.errors import ConfigError
from apssh_cli.ssh.context import SshContext
from apssh_cli.ssh.node import SshNode
from apssh_cli.ssh.sshconfig import JumpHost, lookup, parse_jumps

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
    ServerAliveInterval 7
    Ciphers aes256-ctr
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config"
    path.write_text(CONFIG)
    return path


def test_first_value_wins_and_identity_files_accumulate(config: Path) -> None:
    db = lookup(config, "db")
    assert db.hostname == "10.0.0.5"
    assert db.user == "everyone"  # set before any Host: applies first
    assert db.port == 22
    assert db.identity_files == ("/keys/db", "/keys/all")
    assert db.proxy_jump == (JumpHost("bastion", "alice", 2200), JumpHost("gw", None, None))
    assert db.keepalive_interval == 7.0
    assert db.ciphers == "aes256-ctr"
    assert SshNode("db", ssh_config=config).resolve().ciphers == "aes256-ctr"


def test_patterns_negation_and_tokens(config: Path) -> None:
    web = lookup(config, "web1")
    assert web.hostname == "web1.example.org"
    assert web.port == 2222
    assert web.identity_files[0].endswith("/.ssh/id_web1.example.org")
    assert web.proxy_jump == ()  # "ProxyJump none" from the * block
    assert lookup(config, "web9").port == 22  # negated
    assert lookup(config, "web10").port == 22  # ? is one character


def test_unknown_host_gets_defaults(config: Path) -> None:
    other = lookup(config, "other")
    assert other.hostname is None
    assert other.port == 22


def test_match_blocks_and_include_are_evaluated(tmp_path: Path) -> None:
    # what the hand-written reader could not do: Match, evaluated by asyncssh
    (tmp_path / "extra.conf").write_text(
        "Match host 10.1.2.3 user root\n  Port 2022\n  IdentityFile /keys/%r-%h\n"
        "Match originalhost other\n  Port 3033\n"
    )
    main = tmp_path / "config"
    # an Include inside a Host block applies to that block's hosts only (as in OpenSSH)
    main.write_text(
        f"Host inc\n  HostName 10.1.2.3\n  User root\nHost *\n  Include {tmp_path}/*.conf\n"
    )
    inc = lookup(main, "inc")
    assert (inc.hostname, inc.port, inc.user) == ("10.1.2.3", 2022, "root")
    assert inc.identity_files == ("/keys/root-10.1.2.3",)
    assert lookup(main, "inc", user="someone").port is None  # Match user fails
    assert lookup(main, "other").port == 3033


def test_explicit_user_and_port_are_kept(config: Path) -> None:
    db = lookup(config, "db", user="me", port=2300)
    assert (db.user, db.port) == ("me", 2300)


def test_a_malformed_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("Host a\n  Port banana\n")
    with pytest.raises(ConfigError, match="bad ssh config") as info:
        lookup(path, "a")
    assert info.value.source == str(path)


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert lookup(tmp_path / "nope", "x").port is None


def test_file_is_read_again_by_each_node(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("Host a\n  Port 1022\n")
    assert SshNode("a", ssh_config=path).resolve().port == 1022
    path.write_text("Host a\n  Port 2022\n")
    assert SshNode("a", ssh_config=path).resolve().port == 2022


@pytest.mark.parametrize("value", ["a:", "a:99999", "a,,b"])
def test_bad_proxyjump(value: str) -> None:
    with pytest.raises(ConfigError, match="bad ProxyJump"):
        parse_jumps(value)


def test_node_applies_config_and_builds_a_shared_proxyjump_chain(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(
        "Host n1 n2\n  User root\n  Port 2200\n  ProxyJump admin@bastion:2222\n"
        "Host bastion\n  ProxyJump elsewhere\n"
    )
    context = SshContext()
    n1 = SshNode("n1", ssh_config=path, context=context)
    n2 = SshNode("n2", ssh_config=path, port=2300, username="me", context=context)
    t1, t2 = n1.resolve(), n2.resolve()
    assert (t1.host, t1.port, t1.username) == ("n1", 2200, "root")
    assert (t2.port, t2.username) == (2300, "me")  # explicit arguments win
    assert t1.gateway is not None and t1.gateway is t2.gateway  # one bastion connection
    assert context.jump_nodes == [t1.gateway]
    bastion = t1.gateway.resolve()
    assert (bastion.host, bastion.port, bastion.username) == ("bastion", 2222, "admin")
    assert bastion.gateway is None  # a jump host's own ProxyJump is not followed
    explicit = SshNode("gw")
    assert SshNode("n1", ssh_config=path, gateway=explicit).resolve().gateway is explicit
    assert SshNode("n1", ssh_config=None).resolve().port == 22
    # another context, another jump node
    other = SshNode("n1", ssh_config=path, context=SshContext()).resolve()
    assert other.gateway is not t1.gateway


def test_default_context_is_the_running_loops(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("Host n*\n  ProxyJump bastion\n")

    async def gateways() -> tuple[SshNode | None, SshNode | None]:
        a, b = SshNode("n1", ssh_config=path), SshNode("n2", ssh_config=path)
        return a.resolve().gateway, b.resolve().gateway

    first = asyncio.run(gateways())
    second = asyncio.run(gateways())
    assert first[0] is first[1] and second[0] is second[1]  # shared within a run
    assert first[0] is not second[0]  # not across runs


def test_keepalive_settings(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("Host k\n  ServerAliveInterval 5\n  ServerAliveCountMax 9\n")
    target = SshNode("k", ssh_config=path).resolve()
    assert (target.keepalive_interval, target.keepalive_count_max) == (5.0, 9)
    target = SshNode("k", ssh_config=path, keepalive_interval=0).resolve()
    assert target.keepalive_interval == 0  # explicit wins; 0 disables
    target = SshNode("other", ssh_config=None).resolve()
    assert (target.keepalive_interval, target.keepalive_count_max) == (15.0, 3)
    for bad in (float("nan"), float("inf"), -1):
        with pytest.raises(ConfigError, match="keepalive_interval"):
            SshNode("k", keepalive_interval=bad)
