"""apssh_cli.lab without Docker: files, image name, naming, state; the harness: owners, sweeps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from apssh_cli import lab
from apssh_cli.cli.main import main
from apssh_cli.lab import Endpoint
from tests.integration import harness

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


def test_the_image_files_are_in_the_package() -> None:
    context = lab.image_context()
    assert context.parent == Path(lab.__file__).parent
    for name in ("Dockerfile", "sshd_config", "entrypoint", "build-image"):
        assert (context / name).is_file(), name


def test_image_name_is_what_both_build_scripts_print() -> None:
    # the package's build-image and the repository's docker/build-image (which runs it)
    # name the image as image_name() does, so each finds what the other built
    repo = Path(__file__).parents[2]
    for script in (lab.image_context() / "build-image", repo / "docker" / "build-image"):
        proc = subprocess.run(
            ["bash", str(script), "--print-name"], capture_output=True, text=True, check=True
        )
        assert proc.stdout.strip() == lab.image_name()
    assert lab.image_name().startswith(f"{lab.IMAGE_REPOSITORY}:")


def test_image_name_changes_with_any_file_that_makes_the_image(tmp_path: Path) -> None:
    for name in ("Dockerfile", "sshd_config", "entrypoint", "build-image"):
        (tmp_path / name).write_bytes((lab.image_context() / name).read_bytes())
    assert lab.image_name(tmp_path) == lab.image_name()
    (tmp_path / "sshd_config").write_text("LogLevel DEBUG\n")
    assert lab.image_name(tmp_path) != lab.image_name()


def test_lab_up_without_an_engine_says_how_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(SystemExit) as info:
        main(["lab", "up", "--dir", str(tmp_path / "state")])
    assert info.value.code == 1
    err = capsys.readouterr().err
    # said before "starting lab ...", which is not printed
    assert err.startswith("apssh: no Docker engine answers")
    assert "bash docker/engine" in err
    assert "Traceback" not in err
    assert not (tmp_path / "state").exists()


def test_an_invalid_lab_name_is_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["lab", "up", "--dir", str(tmp_path / "state"), "--name", "my lab"])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("apssh: invalid lab name 'my lab'\n")
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


# ---------------------------------------------------------------- owners and sweeps


def test_owner_token_of_this_process_is_not_gone_and_fits_a_container_name() -> None:
    token = harness.owner_token()
    assert lab.LAB_NAME.fullmatch(f"tl-{token}-abcdef")
    assert token.split("-")[1] == str(os.getpid())
    assert not harness.is_owner_gone(token)


def test_owner_token_of_a_process_that_ended_is_gone() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    token = harness.owner_token(child.pid)
    assert not harness.is_owner_gone(token)
    child.communicate(b"")  # ends it and reaps it
    assert harness.is_owner_gone(token)


def test_a_reused_pid_is_not_taken_for_the_owner() -> None:
    scope, pid, start = harness.owner_token().split("-")
    assert start != "0"  # /proc is there
    assert harness.is_owner_gone(f"{scope}-{pid}-{int(start) + 1}")


@pytest.mark.parametrize(
    "token",
    [
        "0123456789-999999999-1",  # another machine, boot or PID namespace: never ours to judge
        "vm:999999999",  # an older format
        "",
        "garbage",
    ],
)
def test_owners_of_unknown_scope_or_format_are_never_gone(token: str) -> None:
    assert not harness.is_owner_gone(token)


class _Engine:
    """The few docker-py calls the sweep makes, over a dict of objects by id.

    Like docker-py, a non-sparse container listing inspects each container after
    listing them all, and fails with NotFound when one went away in between
    (unless ignore_removed); ``vanish`` names ids another process removes then.
    """

    def __init__(self, objects: dict[str, dict[str, str]], vanish: tuple[str, ...] = ()) -> None:
        self.objects = {
            key: (labels, "container" if key.startswith("c") else "network")
            for key, labels in objects.items()
        }
        self.vanish = vanish
        self.containers = _Collection(self, "container")
        self.networks = _Collection(self, "network")


class _Collection:
    def __init__(self, engine: _Engine, kind: str) -> None:
        self.engine, self.kind = engine, kind

    def list(
        self,
        all: bool = False,
        filters: dict[str, str] | None = None,
        sparse: bool = False,
        ignore_removed: bool = False,
    ) -> list[Any]:
        key, _, value = (filters or {})["label"].partition("=")
        listed = [
            ident
            for ident, (labels, kind) in self.engine.objects.items()
            if kind == self.kind and labels.get(key) == value
        ]
        for ident in self.engine.vanish:
            self.engine.objects.pop(ident, None)
        found = []
        for ident in listed:
            if self.kind == "container" and not sparse and ident not in self.engine.objects:
                if ignore_removed:
                    continue
                raise docker.errors.NotFound(f"No such container: {ident}")
            found.append(
                _Object(
                    self.engine,
                    ident,
                    self.engine.objects.get(ident, ({}, ""))[0],
                    sparse or self.kind == "network",
                )
            )
        return found


class _Object:
    def __init__(self, engine: _Engine, ident: str, labels: dict[str, str], sparse: bool) -> None:
        self.engine, self.id = engine, ident
        self.attrs: dict[str, Any] = (
            {"Labels": labels} if sparse else {"Config": {"Labels": labels}}
        )

    def remove(self, **kwargs: Any) -> None:
        if self.engine.objects.pop(self.id, None) is None:
            raise docker.errors.NotFound(f"No such object: {self.id}")


def _test_labels(name: str, owner: str) -> dict[str, str]:
    return {lab.LABEL_LAB: name, lab.LABEL_KIND: "test", lab.LABEL_OWNER: owner}


def test_sweep_removes_only_topologies_whose_owner_is_known_gone() -> None:
    mine = harness.owner_token()
    scope, pid, start = mine.split("-")
    dead = f"{scope}-{pid}-{int(start) + 1}"  # this pid, another start: the owner is gone
    elsewhere = "0123456789-999999999-1"  # a dead pid, but in another PID namespace
    engine = _Engine(
        {
            "c-live": _test_labels("live", mine),
            "n-live": _test_labels("live", mine),
            "c-dead-1": _test_labels("dead", dead),
            "c-dead-2": _test_labels("dead", dead),
            "n-dead": _test_labels("dead", dead),
            "n-netonly": _test_labels("netonly", dead),  # a network its containers left behind
            "c-elsewhere": _test_labels("elsewhere", elsewhere),
            "c-legacy": _test_labels("legacy", "vm:999999999"),
            "c-lab": {lab.LABEL_LAB: "mylab", lab.LABEL_KIND: "lab"},
        }
    )
    assert harness.sweep_orphans(engine) == ["dead", "netonly"]
    assert sorted(engine.objects) == ["c-elsewhere", "c-lab", "c-legacy", "c-live", "n-live"]


def test_sweep_and_removal_bear_containers_that_vanish_meanwhile() -> None:
    # another session removes its containers while this one lists them
    dead = "-".join([*harness.owner_token().split("-")[:2], "1"])
    objects = {
        "c-other": _test_labels("other", harness.owner_token()),
        "c-dead": _test_labels("dead", dead),
        "c-dead-2": _test_labels("dead", dead),
    }
    engine = _Engine(objects, vanish=("c-other", "c-dead-2"))
    assert harness.sweep_orphans(engine) == ["dead"]
    assert engine.objects == {}
    assert lab.remove_topology("dead", _Engine(objects, vanish=("c-dead",))) == (1, 0)


def test_shipped_test_topology_inventory_is_what_the_lab_writes() -> None:
    # inventories/test-topology.toml shows the shape of the generated inventory,
    # with the fixed ports and relative paths below
    shipped = Path(__file__).parents[2] / "inventories" / "test-topology.toml"
    bastion = Endpoint("bastion", "127.0.0.1", 2200, None)
    internal = [Endpoint(f"node{i}", f"node{i}", 22, None) for i in (1, 2)]
    direct = [Endpoint(f"direct{i}", "127.0.0.1", 2200 + i, None) for i in (1, 2, 3)]
    generated = lab.inventory_text(
        bastion=bastion,
        internal=internal,
        direct=direct,
        identity_file=Path("id_ed25519"),
        known_hosts=Path("known_hosts"),
    )
    body = "".join(line for line in shipped.read_text().splitlines(True) if line[0] != "#")
    assert body == generated


# ---------------------------------------------------------------- lab status: what is stale


class _Container:
    def __init__(self, name: str, role: str, status: str, port: int | None) -> None:
        self.name, self.status = name, status
        bindings = [{"HostIp": "127.0.0.1", "HostPort": str(port)}] if port else None
        self.attrs: dict[str, Any] = {
            "Config": {"Labels": {lab.LABEL_ROLE: role}, "Hostname": name.rsplit("-", 1)[1]},
            # a stopped container has no live binding, only the configured one
            "NetworkSettings": {"Ports": {"22/tcp": bindings if status == "running" else None}},
            "HostConfig": {"PortBindings": {"22/tcp": bindings}},
        }


class _StatusEngine:
    def __init__(self, containers: list[_Container], networks: int = 1) -> None:
        self.containers = _Listing(containers)
        self.networks = _Listing([object()] * networks)


class _Listing:
    def __init__(self, objects: list[Any]) -> None:
        self.objects = objects

    def list(self, **kwargs: Any) -> list[Any]:
        return list(self.objects)


def _up_lab(tmp_path: Path, port: int) -> Path:
    """The files `apssh lab up` writes for lab 'x' (bastion on port, node1), without Docker."""
    state = tmp_path / "state"
    pair = lab.generate_keypair(state / "id_ed25519")
    bastion = Endpoint("bastion", "127.0.0.1", port, None, "ssh-ed25519 AAAAb")
    node = Endpoint("node1", "node1", 22, None, "ssh-ed25519 AAAAn")
    (state / "known_hosts").write_text(lab.known_hosts_text([bastion, node]))
    (state / "inventory.toml").write_text(
        lab.inventory_text(
            bastion=bastion,
            internal=[node],
            direct=[],
            identity_file=pair.private_path,
            known_hosts=state / "known_hosts",
        )
    )
    files = [pair.private_path, pair.public_path, state / "known_hosts", state / "inventory.toml"]
    record = {
        "name": "x",
        "network": "apssh-x-net",
        "inventory": str(state / "inventory.toml"),
        "known_hosts": str(state / "known_hosts"),
        "files": [str(path) for path in files],
        "containers": ["apssh-x-bastion", "apssh-x-node1"],
    }
    (state / lab.STATE_FILE).write_text(json.dumps(record))
    return state


def _report(
    monkeypatch: pytest.MonkeyPatch, state: Path, engine: _StatusEngine
) -> list[tuple[str, str]]:
    monkeypatch.setattr("apssh_cli.lab.state.docker_client", lambda: engine)
    report = lab.lab_report(state, "x")
    return [(stale.what, stale.fix) for stale in report.stale]


def test_a_running_lab_as_its_files_say_is_ok(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _up_lab(tmp_path, 40001)
    engine = _StatusEngine(
        [
            _Container("apssh-x-node1", "node", "running", None),
            _Container("apssh-x-bastion", "bastion", "running", 40001),
        ]
    )
    monkeypatch.setattr("apssh_cli.lab.state.docker_client", lambda: engine)
    report = lab.lab_report(state, "x")
    assert report.is_ok
    assert [(row.name, row.address) for row in report.containers] == [
        ("apssh-x-bastion", "127.0.0.1:40001"),
        ("apssh-x-node1", "node1"),
    ]


def test_stale_containers_network_and_files_each_say_their_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _up_lab(tmp_path, 40001)
    (state / "id_ed25519.pub").unlink()
    engine = _StatusEngine([_Container("apssh-x-bastion", "bastion", "exited", 40001)], 0)
    recreate = "recreate the lab: `apssh lab down`, then `apssh lab up`"
    assert _report(monkeypatch, state, engine) == [
        ("container apssh-x-node1 is missing", recreate),
        ("apssh-x-bastion is exited", "`docker start apssh-x-bastion`"),
        ("network apssh-x-net is missing", recreate),
        (f"{state / 'id_ed25519.pub'} is missing", recreate),
    ]


def test_a_bastion_published_elsewhere_than_the_files_say_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what a lab made with random ports looked like after `docker restart`
    state = _up_lab(tmp_path, 40001)
    engine = _StatusEngine(
        [
            _Container("apssh-x-bastion", "bastion", "running", 40002),
            _Container("apssh-x-node1", "node", "running", None),
        ]
    )
    whats = [what for what, _ in _report(monkeypatch, state, engine)]
    assert whats == [
        "the bastion is published on 127.0.0.1:40002, "
        f"but {state / 'inventory.toml'} says port 40001",
        f"{state / 'known_hosts'} has no host key for 127.0.0.1:40002",
    ]


def test_status_of_a_stale_lab_exits_1_after_saying_what_and_how(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = _up_lab(tmp_path, 40001)
    engine = _StatusEngine(
        [
            _Container("apssh-x-bastion", "bastion", "running", 40001),
            _Container("apssh-x-node1", "node", "exited", None),
        ]
    )
    monkeypatch.setattr("apssh_cli.lab.state.docker_client", lambda: engine)
    with pytest.raises(SystemExit) as info:
        main(["lab", "status", "--dir", str(state)])
    assert info.value.code == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "lab 'x':"
    assert out[-1] == "stale: apssh-x-node1 is exited; fix: `docker start apssh-x-node1`"
