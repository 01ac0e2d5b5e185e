"""apssh reads ssh_config as OpenSSH does: `lookup` against `ssh -G` (OpenSSH's own resolution).

For every case of a corpus (a config file, a host, ``-O`` options), each option of
`HONOURED` that apssh resolves is compared with what ``ssh -G -F FILE [-o ...] HOST``
prints (no connection is made). Where apssh deliberately keeps a built-in default of
its own when nothing is configured (ServerAliveInterval 15, its cipher order, its
host key type order, its default identity files), the comparison is made when the
option is configured and the defaults are checked on their own below.

OpenSSH's client must be installed (.ci/run installs it): this test fails, never
skips, without it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from apssh_cli.ssh.sshconfig import HONOURED, HostConfig, local_user, lookup, parse_jumps
from apssh_cli.ssh.sshoptions import SshOptions

SSH = shutil.which("ssh")
HOME = pwd.getpwuid(os.getuid()).pw_dir  # what OpenSSH expands ~ to (not $HOME)


@dataclass(frozen=True)
class Case:
    name: str
    config: str
    host: str
    options: tuple[str, ...] = ()


INCLUDED = "Host inc*\n  Port 2022\n  UserKnownHostsFile ~/inc/%h\n  HostKeyAlias included\n"

CORPUS = [
    Case("empty", "", "plain"),
    Case(
        "first value wins, across blocks",
        """
Host web*
  HostName %h.example.org
  Port 2222
  StrictHostKeyChecking accept-new
  UserKnownHostsFile ~/kh/%h_%p %d/other "/tmp/with space/kh"
  HostKeyAlias alias-%n
  IdentitiesOnly yes
  IdentityAgent ~/agent.%r.sock
  HostKeyAlgorithms ssh-ed25519,rsa-sha2-512
  GlobalKnownHostsFile /etc/g1 ~/g2
  IdentityFile ~/.ssh/web_key
Host *
  StrictHostKeyChecking yes
  User bob
  Port 2200
  IdentityFile /keys/all
""",
        "web1",
    ),
    Case(
        "negated patterns and lists",
        """
Host *.lab !gw.lab
  ProxyJump alice@gw.lab:2200,gw2
  User labuser
Host gw.lab db.lab
  ServerAliveInterval 7
  ServerAliveCountMax 9
  Ciphers aes256-ctr,aes128-gcm@openssh.com
""",
        "db.lab",
    ),
    Case("negated host itself", "Host *.lab !gw.lab\n  ProxyJump gw.lab\n", "gw.lab"),
    Case(
        "equal signs, case, quotes",
        """
HOST quoted
  hostname=10.0.0.7
  USER = "carol"
  stricthostkeychecking=no
  userknownhostsfile="/tmp/a b/known" /tmp/c
  IdentityAgent none
""",
        "quoted",
    ),
    Case(
        "every token of UserKnownHostsFile",
        """
Host tok
  HostName tok.example.net
  User dave
  Port 2201
  HostKeyAlias zed
  UserKnownHostsFile ~/.ssh/kh_%k %u %r %n %h %p %d/x %i %% %C %l %L
""",
        "tok",
    ),
    Case(
        "Match blocks",
        """
Match originalhost m1
  StrictHostKeyChecking off
Match host m1.real
  Port 2300
Host m1
  HostName m1.real
Match user root,eve
  IdentitiesOnly yes
Match all
  ServerAliveInterval 30
""",
        "m1",
    ),
    Case("ask is OpenSSH's default spelled out", "Host a\n  StrictHostKeyChecking ask\n", "a"),
    Case("strict true", "Host a\n  StrictHostKeyChecking true\n", "a"),
    Case("strict false", "Host a\n  StrictHostKeyChecking false\n", "a"),
    Case("none values", "Host n\n  UserKnownHostsFile none\n  ProxyJump none\n", "n"),
    Case(
        "agent from the environment",
        "Host e\n  IdentityAgent SSH_AUTH_SOCK\n  GlobalKnownHostsFile none\n",
        "e",
    ),
    Case("include", "Include {dir}/included\nHost *\n  Port 2999\n", "inc1"),
    Case(
        "-O wins over the file, first -O wins",
        """
Host o1
  StrictHostKeyChecking yes
  UserKnownHostsFile /from/file
  Port 2400
  User fileuser
""",
        "o1",
        (
            "StrictHostKeyChecking=accept-new",
            "StrictHostKeyChecking=no",
            "UserKnownHostsFile=/from/option1 ~/from/option2_%h",
            "port 2401",
            "HostKeyAlias=o-alias",
            "IdentitiesOnly=yes",
        ),
    ),
    Case(
        "-O alone",
        "",
        "only-options",
        (
            "HostName=10.1.2.3",
            "User=frank",
            "ProxyJump=hop1,root@hop2:2022",
            "HostKeyAlgorithms=ssh-ed25519",
            "IdentityAgent=/run/agent.sock",
            "GlobalKnownHostsFile=/etc/one /etc/two",
            "ServerAliveInterval=5",
            "ServerAliveCountMax=2",
            "Ciphers=aes128-ctr",
            "IdentityFile=~/.ssh/opt_key",
        ),
    ),
    Case("-O on a Host block", "Host b1\n  Port 2500\n", "b1", ("Port=2501",)),
]


def ssh_g(config: Path, host: str, options: tuple[str, ...]) -> dict[str, list[str]]:
    """What OpenSSH resolves: `ssh -G` lines, by lower-case keyword (several for a list)."""
    assert SSH is not None, "OpenSSH's client is needed: apt-get install openssh-client"
    args = [SSH, "-G", "-F", str(config)]
    for option in options:
        args += ["-o", option]
    done = subprocess.run(
        [*args, host], capture_output=True, text=True, check=True, timeout=30, env=_env()
    )
    resolved: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        resolved.setdefault(key, []).append(value)
    return resolved


def _env() -> dict[str, str]:
    return {**os.environ, "HOME": HOME, "SSH_AUTH_SOCK": "/tmp/agent-from-env.sock"}


def _paths(values: tuple[str, ...] | None, default: tuple[str, ...]) -> str:
    if values == ():
        return "none"
    return " ".join(os.path.expanduser(value) for value in (values or default))


# for each honoured option: (ssh -G keyword, apssh's value as ssh -G prints it, or
# None when the option is not configured and apssh keeps a default of its own)
Render = Callable[[HostConfig, str], str | None]
COMPARED: dict[str, tuple[str, Render]] = {
    "Hostname": ("hostname", lambda c, host: c.hostname or host),
    "User": ("user", lambda c, host: c.user or local_user()),
    "Port": ("port", lambda c, host: str(c.port or 22)),
    "IdentityFile": (
        "identityfile",
        lambda c, host: "\n".join(c.identity_files) if c.identity_files else None,
    ),
    "IdentitiesOnly": ("identitiesonly", lambda c, host: "yes" if c.identities_only else "no"),
    "IdentityAgent": ("identityagent", lambda c, host: c.identity_agent),
    "ProxyJump": (
        "proxyjump",
        lambda c, host: repr(c.proxy_jump) if c.proxy_jump else "(absent)",
    ),
    "ServerAliveInterval": (
        "serveraliveinterval",
        lambda c, host: str(int(c.keepalive_interval or 0)),
    ),
    "ServerAliveCountMax": (
        "serveralivecountmax",
        lambda c, host: str(c.keepalive_count_max if c.keepalive_count_max is not None else 3),
    ),
    "Ciphers": ("ciphers", lambda c, host: c.ciphers),
    "StrictHostKeyChecking": (
        "stricthostkeychecking",
        lambda c, host: c.strict_host_key_checking or "ask",
    ),
    "UserKnownHostsFile": (
        "userknownhostsfile",
        lambda c, host: _paths(c.user_known_hosts, ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")),
    ),
    "GlobalKnownHostsFile": (
        "globalknownhostsfile",
        lambda c, host: _paths(
            c.global_known_hosts, ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
        ),
    ),
    "HostKeyAlias": ("hostkeyalias", lambda c, host: c.host_key_alias or "(absent)"),
    "HostKeyAlgorithms": ("hostkeyalgorithms", lambda c, host: c.host_key_algorithms),
}


def openssh_value(option: str, resolved: dict[str, list[str]]) -> str:
    keyword = COMPARED[option][0]
    values = resolved.get(keyword)
    if values is None:
        return "(absent)"
    if option == "IdentityFile":
        return "\n".join(os.path.expanduser(value) for value in values)
    if option == "ProxyJump":
        return repr(parse_jumps(values[0]))
    if option == "GlobalKnownHostsFile":  # ssh -G prints it before expanding ~
        return " ".join(os.path.expanduser(value) for value in values[0].split())
    if option == "IdentityAgent" and values[0] == "SSH_AUTH_SOCK":
        return os.environ["SSH_AUTH_SOCK"]
    return values[0]


def test_the_comparison_covers_exactly_the_honoured_options() -> None:
    assert set(COMPARED) == set(HONOURED)


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_apssh_resolves_what_ssh_g_prints(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in _env().items():
        monkeypatch.setenv(name, value)
    (tmp_path / "included").write_text(INCLUDED)
    config = tmp_path / "config"
    config.write_text(case.config.replace("{dir}", str(tmp_path)))
    resolved = ssh_g(config, case.host, case.options)
    ours = lookup(config, case.host, options=SshOptions(case.options))
    differences = {}
    for option, (_keyword, render) in COMPARED.items():
        mine = render(ours, case.host)
        if mine is None:  # not configured: apssh's own default (checked below)
            continue
        theirs = openssh_value(option, resolved)
        if mine != theirs:
            differences[option] = (mine, theirs)
    assert differences == {}, f"apssh vs ssh -G: {differences}"


def test_apssh_own_defaults_when_nothing_is_configured(tmp_path: Path) -> None:
    """The documented differences: apssh's built-in values, where OpenSSH has others."""
    from apssh_cli.ssh.connection import PREFERRED_CIPHERS
    from apssh_cli.ssh.keys import DEFAULT_IDENTITIES
    from apssh_cli.ssh.node import DEFAULT_KEEPALIVE_INTERVAL, SshNode

    config = tmp_path / "config"
    config.write_text("")
    resolved = ssh_g(config, "plain", ())
    target = SshNode("plain", ssh_config=config).resolve()
    assert (target.keepalive_interval, resolved["serveraliveinterval"]) == (
        DEFAULT_KEEPALIVE_INTERVAL,
        ["0"],
    )
    assert target.ciphers is None  # PREFERRED_CIPHERS: OpenSSH's, AES-GCM first
    assert set(PREFERRED_CIPHERS) <= set(resolved["ciphers"][0].split(","))
    # OpenSSH's default identities include apssh's (it also tries dsa, sk, xmss keys)
    assert set(DEFAULT_IDENTITIES) <= set(resolved["identityfile"])
    # OpenSSH asks; apssh never prompts: accept-new unless configured
    assert (target.host_key_policy, resolved["stricthostkeychecking"]) == ("accept-new", ["ask"])
