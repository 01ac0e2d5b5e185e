"""apssh_cli.lab without Docker: generated files, naming, state, and the no-engine error."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from apssh_cli import lab
from apssh_cli.cli.main import main
from apssh_cli.lab import Endpoint

BASTION = Endpoint("bastion", "127.0.0.1", 49153, None, "ssh-ed25519 AAAAbastion")
NODES = [Endpoint(f"node{i}", f"node{i}", 22, None, f"ssh-ed25519 AAAAnode{i}") for i in (1, 2)]
DIRECT = [Endpoint("direct1", "127.0.0.1", 49154, None, "ssh-ed25519 AAAAdirect1")]


def test_known_hosts_names_published_and_internal_hosts_as_a_client_does() -> None:
    assert lab.known_hosts_text([BASTION, *NODES]) == (
        "[127.0.0.1]:49153 ssh-ed25519 AAAAbastion\n"
        "node1 ssh-ed25519 AAAAnode1\n"
        "node2 ssh-ed25519 AAAAnode2\n"
    )


def test_inventory_has_the_documented_shape(tmp_path: Path) -> None:
    key = tmp_path / 'a "quoted" dir' / "id_ed25519"
    text = lab.inventory_text(
        bastion=BASTION,
        internal=NODES,
        direct=DIRECT,
        identity_file=key,
        known_hosts=tmp_path / "known_hosts",
        comment="two\nlines",
    )
    assert text.startswith("# two\n# lines\n")
    assert tomllib.loads(text) == {
        "all": {
            "vars": {
                "user": "root",
                "identity_file": str(key),
                "known_hosts": {"policy": "accept-new", "file": str(tmp_path / "known_hosts")},
            }
        },
        "bastions": {"hosts": {"bastion": {"hostname": "127.0.0.1", "port": 49153}}},
        "nodes": {"vars": {"gateway": "bastion"}, "hosts": {"node1": {}, "node2": {}}},
        "direct": {"hosts": {"direct1": {"hostname": "127.0.0.1", "port": 49154}}},
    }


def test_inventory_without_nodes_has_no_nodes_group(tmp_path: Path) -> None:
    text = lab.inventory_text(
        bastion=BASTION,
        internal=[],
        direct=[],
        identity_file=tmp_path / "k",
        known_hosts=tmp_path / "kh",
    )
    assert set(tomllib.loads(text)) == {"all", "bastions"}


def test_generated_keys_are_ed25519_and_private(tmp_path: Path) -> None:
    pair = lab.generate_keypair(tmp_path / "sub" / "id_ed25519")
    assert pair.public_path == tmp_path / "sub" / "id_ed25519.pub"
    assert pair.public_key.startswith("ssh-ed25519 ")
    assert pair.private_path.stat().st_mode & 0o077 == 0
    host_key = lab.generate_host_key()
    assert host_key.public_line.startswith("ssh-ed25519 ")
    assert len(host_key.public_line.split()) == 2
    assert "OPENSSH PRIVATE KEY" in host_key.private_pem


def test_lab_name_is_recorded_or_derived_from_the_directory(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert lab.default_lab_name(first) == lab.default_lab_name(first)
    assert lab.default_lab_name(first) != lab.default_lab_name(second)
    assert lab.default_lab_name(first).startswith("lab-")
    first.mkdir()
    (first / lab.STATE_FILE).write_text(json.dumps({"name": "mine"}))
    assert lab.default_lab_name(first) == "mine"


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", ""])
def test_unreadable_state_counts_as_none(tmp_path: Path, content: str) -> None:
    (tmp_path / lab.STATE_FILE).write_text(content)
    assert lab.read_state(tmp_path) == {}


def test_state_dir_defaults_to_env_then_dot_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APSSH_LAB_DIR", raising=False)
    assert lab.default_state_dir() == Path(".lab")
    monkeypatch.setenv("APSSH_LAB_DIR", "/somewhere/else")
    assert lab.default_state_dir() == Path("/somewhere/else")


def test_docker_dir_is_found_next_to_the_package() -> None:
    found = lab.docker_dir()
    assert found is not None
    assert (found / "Dockerfile").is_file()


def test_lab_up_without_an_engine_says_how_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(SystemExit) as info:
        main(["lab", "up", "--dir", str(tmp_path / "state")])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "\napssh: no Docker engine answers" in err
    assert "bash docker/engine" in err
    assert "Traceback" not in err
    assert not (tmp_path / "state").exists()


def test_lab_nodes_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["lab", "up", "--nodes", "0"])
    assert info.value.code == 1
    assert "--nodes" in capsys.readouterr().err


def test_lab_help_imports_neither_docker_nor_testcontainers() -> None:
    code = (
        "import sys\n"
        "from apssh_cli.cli.main import main\n"
        "try:\n    main(['lab', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = {'docker', 'testcontainers', 'asyncssh'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "up" in proc.stdout and "down" in proc.stdout and "status" in proc.stdout
