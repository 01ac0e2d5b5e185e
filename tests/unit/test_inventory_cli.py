"""`apssh inventory ...`: exact output, messages and exit statuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .climain import apssh

LAB = """\
[all.vars]
user = "root"

[infra.hosts]
bastion = { hostname = "127.0.0.1", port = 2222, user = "admin" }

[nodes]
vars = { gateway = "bastion", tag = "x" }
hosts = { "node[1:3]" = {} }

[odd.hosts]
node2 = { user = "ops" }
"""


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("APSSH_INVENTORY", raising=False)
    path = tmp_path / "lab.toml"
    path.write_text(LAB)
    return str(path)


def test_list_with_options_on_the_group_or_the_subcommand(
    lab: str, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = (0, "bastion\nnode1\nnode2\nnode3\n", "")
    assert apssh(capsys, "inventory", "-i", lab, "list") == expected
    assert apssh(capsys, "inventory", "list", "-i", lab) == expected
    assert apssh(capsys, "inventory", "-i", lab, "list", "-g", "nodes,!odd") == (
        0,
        "node1\nnode3\n",
        "",
    )
    assert apssh(capsys, "inventory", "-g", "nodes", "list", "-i", lab, "-x", "node3") == (
        0,
        "node1\nnode2\n",
        "",
    )


def test_list_json(lab: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = apssh(capsys, "inventory", "list", "-i", lab, "-g", "node2", "--json")
    assert status == 0
    [record] = json.loads(out)["hosts"]
    assert record["name"] == "node2"
    assert record["user"] == "ops"
    assert record["gateway"] == "bastion"
    assert record["route"] == ["bastion", "node2"]
    assert record["groups"] == ["all", "nodes", "odd"]
    assert record["vars"] == {"user": "ops", "gateway": "bastion", "tag": "x"}


def test_inventory_from_the_environment(
    lab: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = tmp_path / "extra.toml"
    extra.write_text("[more.hosts]\nextra1 = {}\n")
    monkeypatch.setenv("APSSH_INVENTORY", os.pathsep.join([lab, str(extra)]))
    assert apssh(capsys, "inventory", "list", "-g", "extra1,bastion") == (
        0,
        "bastion\nextra1\n",
        "",
    )
    # an explicit -i replaces the environment, on the group as on the subcommand
    assert apssh(capsys, "inventory", "-i", str(extra), "list") == (0, "extra1\n", "")
    assert apssh(capsys, "inventory", "list", "-i", str(extra)) == (0, "extra1\n", "")


def test_graph(lab: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = apssh(capsys, "inventory", "graph", "-i", lab)
    assert status == 0
    assert out == textwrap.dedent(
        """\
        @all
        ├── @infra
        │   └── bastion
        ├── @nodes
        │   └── node[1-3]
        ├── @odd
        │   └── node2
        └── @ungrouped
        """
    )
    status, out, _ = apssh(capsys, "inventory", "graph", "-i", lab, "--expand", "nodes")
    assert out == "@nodes\n├── node1\n├── node2\n└── node3\n"
    status, out, _ = apssh(capsys, "inventory", "graph", "-i", lab, "-g", "odd")
    assert out == "@all\n├── @nodes\n│   └── node2\n└── @odd\n    └── node2\n"


def test_graph_of_an_unknown_group(lab: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert apssh(capsys, "inventory", "graph", "-i", lab, "nods") == (
        1,
        "",
        "apssh: no group named 'nods'\n",
    )


def test_host(lab: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = apssh(capsys, "inventory", "host", "-i", lab, "node2")
    assert status == 0
    assert out == textwrap.dedent(
        """\
        node2
          hostname         node2
          port             -
          user             ops
          gateway          bastion
          route            admin@127.0.0.1:2222 -> ops@node2
          identity_files   -
          known_hosts      -
          connect_timeout  -
          connection       ssh
          groups           all, nodes, odd
          vars
            gateway = "bastion"
            tag = "x"
            user = "ops"
        """
    )


def test_unknown_host_suggests(lab: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert apssh(capsys, "inventory", "host", "-i", lab, "nod1") == (
        1,
        "",
        "apssh: no host named 'nod1' (did you mean node1, node2, node3?)\n",
    )


def test_check(lab: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert apssh(capsys, "inventory", "check", "-i", lab) == (0, "ok: 4 hosts, 3 groups\n", "")
    assert apssh(capsys, "inventory", "-i", lab, "check", "-g", "nodes", "-x", "node1") == (
        0,
        "ok: 4 hosts, 3 groups; the pattern selects 2 hosts\n",
        "",
    )


def test_check_reports_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[g.hosts]\nn1 = {}\nn2 = { port = 70000 }\n")
    assert apssh(capsys, "inventory", "check", "-i", str(bad)) == (
        1,
        "",
        f"apssh: {bad}:3: g.hosts.n2.port: port must be an integer from 1 to 65535, got 70000\n",
    )
    broken = tmp_path / "broken.toml"
    broken.write_text("[g]\nhosts = {\n")
    status, out, err = apssh(capsys, "inventory", "check", "-i", str(broken))
    assert (status, out) == (1, "")
    assert err.startswith(f"apssh: {broken}:2: invalid TOML: ")
    assert "Traceback" not in err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    assert apssh(capsys, "inventory", "list", "-i", str(missing)) == (
        1,
        "",
        f"apssh: {missing}: cannot read inventory: No such file or directory\n",
    )


def test_no_inventory(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APSSH_INVENTORY", raising=False)
    assert apssh(capsys, "inventory", "list") == (
        1,
        "",
        "apssh: no inventory given: use -i FILE, or set APSSH_INVENTORY\n",
    )


def test_bad_pattern(lab: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert apssh(capsys, "inventory", "list", "-i", lab, "-g", "nodes,!nod3") == (
        1,
        "",
        "apssh: no group or host matches 'nod3' (did you mean nodes, node2, node3?)\n",
    )


def test_usage_error_exits_one(lab: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = apssh(capsys, "inventory", "list", "-i", lab, "--no-such")
    assert status == 1
    assert "No such option '--no-such'" in err


def test_inventory_commands_import_neither_asyncssh_nor_asynciojobs(lab: str) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from apssh_cli.cli.main import main
        for argv in (["list"], ["graph"], ["host", "node1"], ["check"], ["list", "--json"]):
            try:
                main(["inventory", "-i", {lab!r}, *argv])
            except SystemExit as exc:
                assert not exc.code, (argv, exc.code)
        heavy = sorted(m for m in ("asyncssh", "asynciojobs") if m in sys.modules)
        assert not heavy, heavy
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_inventory_flags_on_group_and_subcommand_add_up(
    lab: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = tmp_path / "extra.toml"
    extra.write_text("[more.hosts]\nextra1 = {}\n")
    assert apssh(capsys, "inventory", "-i", lab, "list", "-i", str(extra), "-g", "more,odd") == (
        0,
        "node2\nextra1\n",
        "",
    )
    # the same file twice is read once
    assert apssh(capsys, "inventory", "-i", lab, "check", "-i", lab) == (
        0,
        "ok: 4 hosts, 3 groups\n",
        "",
    )


def test_options_before_the_subcommand_name(lab: str, capsys: pytest.CaptureFixture[str]) -> None:
    # `apssh -i lab.toml inventory list` is `apssh inventory -i lab.toml list`
    assert apssh(capsys, "-i", lab, "inventory", "list") == (
        0,
        "bastion\nnode1\nnode2\nnode3\n",
        "",
    )


def test_secrets_are_masked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "secret.toml"
    path.write_text('[g.hosts.node1]\nansible_password = "hunter2"\napi_token = "t0k"\nrack = 3\n')
    status, out, _ = apssh(capsys, "inventory", "host", "-i", str(path), "node1")
    assert status == 0
    assert "hunter2" not in out and "t0k" not in out
    assert 'ansible_password = "********"' in out and "rack = 3" in out
    status, out, _ = apssh(capsys, "inventory", "list", "--json", "-i", str(path))
    assert status == 0
    assert "hunter2" not in out and "t0k" not in out


CONFLICTING = """\
[a.hosts]
n1 = { port = 2222, connection = "local" }

[b.hosts]
n1 = { port = 22 }
"""


@pytest.fixture
def conflicting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("APSSH_INVENTORY", raising=False)
    path = tmp_path / "conflict.toml"
    path.write_text(CONFLICTING)
    return str(path)


def conflict_line(path: str) -> str:
    return (
        f"{path}:5: host 'n1' listed again with port = 22 (group 'b'), "
        f"was 2222 at {path}:2 (group 'a')"
    )


def test_check_warns_about_conflicting_listings(
    conflicting: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert apssh(capsys, "inventory", "check", "-i", conflicting) == (
        0,
        "ok: 1 host, 2 groups; 1 warning\n",
        f"apssh: warning: {conflict_line(conflicting)}; the later one wins\n",
    )


def test_check_strict_makes_them_errors(
    conflicting: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert apssh(capsys, "inventory", "check", "--strict", "-i", conflicting) == (
        1,
        "",
        f"apssh: error: {conflict_line(conflicting)}\n"
        "apssh: 1 conflicting host definition (--strict)\n",
    )


def test_strict_passes_a_clean_inventory(lab: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert apssh(capsys, "inventory", "check", "--strict", "-i", lab) == (
        0,
        "ok: 4 hosts, 3 groups\n",
        "",
    )


def test_other_commands_warn_and_go_on(
    conflicting: str, capsys: pytest.CaptureFixture[str]
) -> None:
    warning = f"apssh: warning: {conflict_line(conflicting)}; the later one wins\n"
    assert apssh(capsys, "inventory", "list", "-i", conflicting) == (0, "n1\n", warning)
    # run: the same warning, then the run
    status, out, err = apssh(capsys, "-i", conflicting, "-q", "echo", "hi")
    assert (status, out, err) == (0, "n1: hi\n", warning)
    # with the later listing's settings
    status, out, err = apssh(capsys, "inventory", "host", "-i", conflicting, "n1")
    assert status == 0 and err == warning
    assert "  port             22\n" in out
