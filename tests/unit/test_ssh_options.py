"""-O, -F, --port and host key settings from ssh_config: checks, precedence, and the CLI.

What apssh resolves is compared with OpenSSH in test_sshconfig_differential.py; here:
which options are refused and how, which setting wins over which, the known_hosts
files of a host, and the host names ssh would refuse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncssh
import pytest
from hypothesis import assume, given, strategies as st

from apssh_cli.errors import ConfigError
from apssh_cli.inventory.model import Host
from apssh_cli.inventory.targets import Target, check_hostnames, hostname_problem, parse_hop
from apssh_cli.ssh import hostkeys
from apssh_cli.ssh.node import SshNode
from apssh_cli.ssh.sshconfig import check_options, lookup
from apssh_cli.ssh.sshoptions import (
    HONOURED,
    SshOptions,
    looks_like_ssh_option,
    parse_option,
    ssh_settings,
)

from .climain import apssh_argv as apssh

# ---------------------------------------------------------------- -O names and values


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("StrictHostKeyChecking=no", ("StrictHostKeyChecking", "no")),
        ("stricthostkeychecking accept-new", ("StrictHostKeyChecking", "accept-new")),
        ("Port = 2222", ("Port", "2222")),
        ("UserKnownHostsFile=/a /b", ("UserKnownHostsFile", "/a /b")),
        ("hostname=%h.example.org", ("Hostname", "%h.example.org")),
        # as ssh -G reads them: one "=" after blanks separates, an "=" after "=" is the value's
        ("Ciphers =aes128-ctr", ("Ciphers", "aes128-ctr")),
        ("Ciphers==aes128-ctr", ("Ciphers", "=aes128-ctr")),
        ("Ciphers = =aes128-ctr", ("Ciphers", "=aes128-ctr")),
    ],
)
def test_honoured_options_parse(text: str, expected: tuple[str, str]) -> None:
    assert parse_option(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ControlMaster=auto", "-O ControlMaster: apssh does not honour this ssh option"),
        ("ConnectTimeout=3", "use --connect-timeout"),
        ("ProxyCommand=nc %h %p", "use ProxyJump"),
        ("Frobnicate=yes", "'Frobnicate' is not an OpenSSH option"),
        ("Host=x", "apssh does not honour"),
        ("Port=", "no value"),
        ("Port", "no value"),
        ("Port=22\nProxyCommand x", "a line break"),
    ],
)
def test_refused_options_name_the_option(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_option(text)


def test_values_asyncssh_refuses_are_one_message_naming_the_option() -> None:
    with pytest.raises(ConfigError, match=r"bad -O 'Port=x': Invalid Port integer value: x"):
        check_options(SshOptions(["User=bob", "Port=x"]))
    with pytest.raises(ConfigError, match=r"bad -O 'StrictHostKeyChecking=maybe'"):
        check_options(SshOptions(["StrictHostKeyChecking=maybe"]))
    with pytest.raises(ConfigError, match=r"bad -O 'HostKeyAlgorithms=bogus': .*matches no valid"):
        check_options(SshOptions(["Port=22", "HostKeyAlgorithms=bogus"]))
    with pytest.raises(ConfigError, match=r"bad -O 'ciphers nope': .*matches no valid"):
        check_options(SshOptions(["ciphers nope"]))
    check_options(SshOptions(["HostKeyAlgorithms=+ssh-rsa", "Ciphers=aes128-ctr"]))


def test_ssh_option_lookalikes() -> None:
    assert looks_like_ssh_option("StrictHostKeyChecking=no") == "StrictHostKeyChecking"
    assert looks_like_ssh_option("controlmaster=auto") == "controlmaster"
    assert looks_like_ssh_option("results") is None
    assert looks_like_ssh_option("./User=x") is None  # how to name such a directory
    assert looks_like_ssh_option("out=2024") is None


# ---------------------------------------------------------------- precedence


CONFIG = """\
Host h
  HostName h.real
  Port 2200
  User fileuser
  StrictHostKeyChecking yes
  UserKnownHostsFile ~/kh/file_%h
  GlobalKnownHostsFile /etc/global_kh
  HostKeyAlias h-alias
  HostKeyAlgorithms ssh-ed25519
  IdentitiesOnly yes
  IdentityAgent /run/agent.sock
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config"
    path.write_text(CONFIG)
    return path


def test_ssh_config_decides_when_nothing_is_given(config: Path) -> None:
    target = SshNode("h", ssh_config=config).resolve()
    assert (target.host, target.port, target.username) == ("h.real", 2200, "fileuser")
    assert target.host_key_policy == "strict"
    assert target.known_hosts == (str(Path("~/kh/file_h.real").expanduser()), "/etc/global_kh")
    assert target.host_key_alias == "h-alias"
    assert target.host_key_algorithms == "ssh-ed25519"
    assert target.identities_only and target.identity_agent == "/run/agent.sock"


def test_options_win_over_the_file_and_explicit_settings_over_both(config: Path) -> None:
    options = [
        "StrictHostKeyChecking=accept-new",
        "StrictHostKeyChecking=no",  # the first value wins, as with ssh -o
        "Port=2300",
        "UserKnownHostsFile=/opt/kh",
    ]
    target = SshNode("h", ssh_config=config, ssh_options=options).resolve()
    assert (target.host_key_policy, target.port, target.known_hosts[0]) == (
        "accept-new",
        2300,
        "/opt/kh",
    )
    explicit = SshNode(
        "h",
        ssh_config=config,
        ssh_options=options,
        known_hosts="off",
        known_hosts_file="/given/kh",
        port=2400,
        username="me",
    ).resolve()
    assert (explicit.host_key_policy, explicit.port, explicit.username) == ("off", 2400, "me")
    assert explicit.known_hosts == ("/given/kh", "/etc/global_kh")


@pytest.mark.parametrize(
    ("value", "policy"),
    [("yes", "strict"), ("ask", "strict"), ("accept-new", "accept-new"), ("no", "off"),
     ("off", "off")],
)  # fmt: skip
def test_strict_host_key_checking_spellings(value: str, policy: str) -> None:
    target = SshNode("x", ssh_config=None, ssh_options=[f"StrictHostKeyChecking={value}"])
    assert target.resolve().host_key_policy == policy


def test_ssh_settings_give_f_and_o_to_the_nodes_made_inside(config: Path, tmp_path: Path) -> None:
    with ssh_settings(config, ["Port=2999"]):
        inside = SshNode("h")
        assert SshNode("h", ssh_config=None).resolve().port == 2999  # -O without a file
    assert inside.resolve().port == 2999 and inside.resolve().host == "h.real"
    outside = SshNode("h", ssh_config=tmp_path / "missing")
    assert (outside.resolve().port, outside.resolve().host) == (22, "h")


def test_without_config_ssh_defaults_for_known_hosts(tmp_path: Path) -> None:
    target = SshNode("plain", ssh_config=tmp_path / "missing").resolve()
    assert target.known_hosts == (
        *hostkeys.DEFAULT_USER_KNOWN_HOSTS,
        *hostkeys.DEFAULT_GLOBAL_KNOWN_HOSTS,
    )
    assert target.host_key_policy == "accept-new"


def test_lookup_of_a_bad_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("Host x\n  StrictHostKeyChecking perhaps\n")
    with pytest.raises(ConfigError, match=r"config: bad ssh config: .* line 2: Invalid"):
        lookup(path, "x")


def test_every_honoured_option_is_documented() -> None:
    text = (Path(__file__).parents[2] / "docs" / "cli.md").read_text()
    assert [name for name in HONOURED if f"`{name}`" not in text] == []


# ---------------------------------------------------------------- known_hosts files


def _key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


def test_keys_are_read_from_every_file_and_written_to_the_first(tmp_path: Path) -> None:
    first, second = tmp_path / "user_kh", tmp_path / "global_kh"
    known_key, new_key = _key(), _key()
    second.write_text(f"h {known_key.export_public_key().decode()}")
    known = hostkeys.KnownHosts([hostkeys.KnownHostsFile(first), hostkeys.KnownHostsFile(second)])
    assert known.judge("strict", "h", "", None, known_key) is None
    # a key recorded in the second file makes the host known: another one is a change
    assert known.judge("accept-new", "h", "", None, new_key) is hostkeys.Decision.REFUSE_CHANGED
    assert known.judge("accept-new", "g", "", None, new_key) is hostkeys.Decision.RECORD
    assert known.record("g", 2222, new_key)
    assert first.read_text().startswith("[g]:2222 ssh-ed25519 ")
    assert known.match("g", "", 2222)[0] == [new_key.convert_to_public()]


def test_a_host_key_alias_names_the_keys_without_port(tmp_path: Path) -> None:
    path = tmp_path / "kh"
    key = _key()
    known = hostkeys.KnownHosts([hostkeys.KnownHostsFile(path)], "the-alias")
    assert known.judge("accept-new", "10.0.0.1", "10.0.0.1", 2222, key) is hostkeys.Decision.RECORD
    known.record("10.0.0.1", 2222, key)
    assert path.read_text().split()[0] == "the-alias"
    assert known.judge("strict", "another-name", "10.9.9.9", 22, key) is None


def test_a_key_of_an_unrecorded_type_says_which_types(tmp_path: Path) -> None:
    path = tmp_path / "kh"
    path.write_text(f"[h]:2222 {_key().export_public_key().decode()}")
    known = hostkeys.KnownHosts([hostkeys.KnownHostsFile(path)])
    rsa = asyncssh.generate_private_key("ssh-rsa", key_size=2048)
    decision = known.judge("accept-new", "h", "", 2222, rsa)
    assert decision is hostkeys.Decision.REFUSE_CHANGED
    message = known.refusal(decision, "h", 2222, rsa)
    assert "the server offers ssh-rsa, but only ssh-ed25519 is recorded in" in message
    assert "ssh-keygen -R '[h]:2222'" in message


# ---------------------------------------------------------------- host names


@pytest.mark.parametrize(
    "name", ["$(reboot)", "a;b", "a`b`", "a|b", "a&b", "a>b", "x'y", 'x"y', "a\\b", "-oops", "a\tb"]
)
def test_host_names_ssh_refuses(name: str) -> None:
    assert hostname_problem(name) is not None
    with pytest.raises(ConfigError, match="invalid characters"):
        check_hostnames(Target(name, (Host.adhoc(name),)))


@pytest.mark.parametrize("name", ["node1", "node-1.lab", "10.0.0.1", "fe80::1%eth0", "n_1"])
def test_host_names_ssh_accepts(name: str) -> None:
    assert hostname_problem(name) is None


def test_a_bad_target_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "ran"
    status, _, err = apssh(["-t", f"$(touch${{IFS}}{marker})", "true"], capsys)
    assert status == 1
    assert "hostname contains invalid characters" in err
    assert not marker.exists()
    with pytest.raises(ConfigError, match="invalid characters"):
        parse_hop("root@a;b")


def test_nodes_are_never_built_for_a_bad_host_name() -> None:
    from apssh_cli.inventory.targets import build_nodes

    good = Target("ok", (Host.adhoc("ok"),))
    bad = Target("web", (Host.adhoc("gw;id"), Host.adhoc("web")))
    made: list[str] = []
    with pytest.raises(ConfigError, match=r"gateway 'gw;id': hostname contains invalid"):
        build_nodes([good, bad], ssh_node=lambda name, **_: made.append(name), local_node=dict)
    assert "gw;id" not in made


def test_a_bad_inventory_host_name_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = tmp_path / "inv.toml"
    inventory.write_text('[g]\nhosts = { web = { hostname = "w$(id)" } }\n')
    status, _, err = apssh(["-i", str(inventory), "-g", "g", "-n", "true"], capsys)
    assert status == 1
    assert "apssh: host 'web': hostname contains invalid characters ('$', '(', ')')" in err
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        '[recipe]\nname = "t"\nformat = 1\n[[step]]\nid = "s"\nhosts = "g"\nrun = "true"\n'
    )
    status, _, err = apssh(
        ["recipe", "run", str(recipe), "-i", str(inventory), "--run-dir", str(tmp_path / "run")],
        capsys,
    )
    assert status == 1
    assert "apssh: host 'web': hostname contains invalid characters" in err


# ---------------------------------------------------------------- the command line


def test_o_with_an_ssh_option_is_refused_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    status, _, err = apssh(["-t", "h", "-o", "StrictHostKeyChecking=no", "true"], capsys)
    assert status == 1
    assert "'StrictHostKeyChecking=no' is an ssh option" in err
    assert "-O StrictHostKeyChecking=no" in err
    assert list(tmp_path.iterdir()) == []  # no directory of that name
    assert "-o ./StrictHostKeyChecking=no" in err


@pytest.mark.parametrize("command", [[], ["push", "a", "b"], ["pull", "a", "b"]])
def test_unhonoured_o_option_is_one_error(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*command[:1], "-t", "h", "-O", "ControlMaster=auto", *(command[1:] or ["true"])]
    status, out, err = apssh(argv, capsys)
    assert status == 1 and out == ""
    assert "-O ControlMaster: apssh does not honour this ssh option" in err


def test_bad_o_value_is_refused_before_anything_runs(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = apssh(["-t", "h", "-n", "-O", "Port=x", "true"], capsys)
    assert status == 1
    assert "bad -O 'Port=x': Invalid Port integer value: x" in err


def test_missing_f_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = apssh(["-t", "h", "-F", str(tmp_path / "nope"), "true"], capsys)
    assert status == 1
    assert "does not exist" in err


def test_port_applies_to_the_host_not_to_gateways_nor_an_explicit_port(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, _ = apssh(
        ["-n", "--port", "2222", "-t", "a,b:2200", "-t", "gw:2201->c", "true"], capsys
    )
    assert status == 0
    assert out.splitlines() == ["a  a:2222", "b  b:2200", "c  gw:2201 -> c:2222"]


def test_recipe_run_takes_the_ssh_options(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = apssh(
        ["recipe", "run", "r.toml", "-i", "i.toml", "-O", "ControlPath=/x"], capsys
    )
    assert status == 1
    assert "-O ControlPath: apssh does not honour this ssh option" in err


# ---------------------------------------------------------------- the server's offer


class _Conn:
    """What _Client reads of a connection after the server's KEXINIT came."""

    def __init__(self, offer: list[bytes], ours: list[bytes]) -> None:
        from asyncssh.constants import MSG_KEXINIT
        from asyncssh.packet import Byte, NameList

        self._server_kexinit = (
            Byte(MSG_KEXINIT) + bytes(16) + NameList([b"curve25519-sha256"]) + NameList(offer)
        )
        self._server_host_key_algs = ours


def _client(conn: object) -> Any:
    from apssh_cli.ssh.connection import _Client

    client = _Client("strict", hostkeys.KnownHosts([]), lambda: None, "h")
    client.connection_made(conn)  # type: ignore[arg-type]
    return client


def test_a_server_offering_none_of_our_types_is_a_host_key_refusal() -> None:
    client = _client(_Conn([b"rsa-sha2-512", b"rsa-sha2-256"], [b"ssh-ed25519"]))
    assert client.server_offer() == ["rsa-sha2-512", "rsa-sha2-256"]
    assert client.negotiation_refusal("h", 2222) == (
        "host key for [h]:2222: the server offers rsa-sha2-512, rsa-sha2-256, none of the "
        "types accepted (ssh-ed25519; see HostKeyAlgorithms)"
    )
    # a common type: the failure was something else
    assert _client(_Conn([b"ssh-ed25519"], [b"ssh-ed25519"])).negotiation_refusal("h", 22) is None
    # nothing received from the server (it hung up first): unknown, not a host key problem
    assert _client(object()).negotiation_refusal("h", 22) is None


@given(
    name=st.sampled_from(sorted(HONOURED)),
    upper=st.lists(st.booleans(), min_size=30, max_size=30),
    separator=st.sampled_from(["=", " ", " = ", "\t"]),
    value=st.text(
        alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1
    ).filter(lambda text: text.strip() != ""),
)
def test_any_spelling_of_an_honoured_option_parses(
    name: str, upper: list[bool], separator: str, value: str
) -> None:
    # ssh takes one "=" after blanks as the separator ("Ciphers =x" is x), but keeps an "="
    # after a first "=" ("Ciphers==x" is =x): an "=" value after blanks is not this case
    assume(separator.strip() or not value.lstrip().startswith("="))
    spelled = "".join(c.upper() if up else c.lower() for c, up in zip(name, upper, strict=False))
    assert parse_option(f"{spelled}{separator}{value}") == (name, value.strip())
    assert looks_like_ssh_option(f"{spelled}={value}") == spelled
