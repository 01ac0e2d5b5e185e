"""The real `apssh` process against the container topology: output modes and exit statuses.

Each test runs ``python -m apssh_cli.cli.main`` as a user would, with the
topology's inventory: ``direct`` nodes published on 127.0.0.1, ``nodes`` behind
the bastion.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apssh_cli.lab import KeyPair, Topology

pytestmark = pytest.mark.integration

RECIPES = Path(__file__).parents[2] / "recipes"


def apssh(*args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the apssh command; HOME may point to an empty directory (no ~/.ssh)."""
    env = None
    if home is not None:
        import os

        env = {**os.environ, "HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "apssh_cli.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def json_records(out: str) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    records = [json.loads(line) for line in out.splitlines()]
    *hosts, summary = records
    return {record["host"]: record for record in hosts}, summary["summary"]


def names(topology: Topology, group: str) -> list[str]:
    endpoints = topology.internal if group == "nodes" else topology.direct
    return [endpoint.name for endpoint in endpoints]


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port that refuses connections for the whole test: bound, so that nothing else
    (a container published meanwhile) can take it, and never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("group", ["direct", "nodes"])
def test_streamed_output_directly_and_through_the_bastion(topology: Topology, group: str) -> None:
    done = apssh("-i", str(topology.inventory), "-g", group, "hostname; echo oops >&2")
    assert done.returncode == 0, done.stderr
    expected = names(topology, group)
    width = max(len(name) for name in expected) + 1
    assert sorted(done.stdout.splitlines()) == sorted(
        f"{(name + ':').ljust(width)} {name}" for name in expected
    )
    assert sorted(line for line in done.stderr.splitlines() if "oops" in line) == sorted(
        f"{(name + ':').ljust(width)} oops" for name in expected
    )
    assert done.stderr.splitlines()[-1].endswith(f": {len(expected)} ok")


def test_the_first_hosts_handshake_on_their_early_tcp_connections(
    topology: Topology, tmp_path: Path
) -> None:
    # direct hosts, and the bastion of the hosts behind it, are connected to before
    # asyncssh is imported; -v shows which connection each handshake used
    done = apssh("-i", str(topology.inventory), "-g", "direct,nodes", "-v", "true", home=tmp_path)
    assert done.returncode == 0, done.stderr
    early = [line for line in done.stderr.splitlines() if "(on its early TCP connection)" in line]
    assert len(early) == len(topology.direct) + 1, done.stderr  # + the bastion, once
    # an ssh_config that redirects other hosts only: the head start stays
    (tmp_path / ".ssh").mkdir()
    config = tmp_path / ".ssh" / "config"
    config.write_text("Host unused\n  HostName 127.0.0.1\n")
    done = apssh("-i", str(topology.inventory), "-g", "direct", "-v", "true", home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("(on its early TCP connection)") == len(topology.direct)
    # one that could send these very addresses elsewhere: none for them
    config.write_text("Host 127.0.0.1\n  Port 2222\n")  # the inventory's ports win
    done = apssh("-i", str(topology.inventory), "-g", "direct", "-v", "true", home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "connected to" in done.stderr
    assert "early TCP connection" not in done.stderr


def test_raw_and_format(topology: Topology) -> None:
    inventory = str(topology.inventory)
    done = apssh("-i", inventory, "-g", "nodes", "-r", "hostname")
    assert sorted(done.stdout.split()) == sorted(names(topology, "nodes"))
    done = apssh("-i", inventory, "-g", "direct", "--format", "{user}@{host}|{line}", "id -un")
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == sorted(
        f"root@{name}|root" for name in names(topology, "direct")
    )


def test_gather_folds_identical_outputs_across_routes(topology: Topology) -> None:
    done = apssh("-i", str(topology.inventory), "-g", "nodes,direct", "-b", "echo same; uname -s")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1].endswith(f"({len(topology.internal) + len(topology.direct)})")
    assert lines[3:] == ["  same", "  Linux"]  # a block's lines are indented


def test_json_all_hosts(topology: Topology) -> None:
    done = apssh("-i", str(topology.inventory), "-g", "all", "--json", "hostname")
    assert done.returncode == 0, done.stderr
    hosts, summary = json_records(done.stdout)
    assert {name: record["stdout"] for name, record in hosts.items()} == {
        endpoint.name: endpoint.name + "\n" for endpoint in topology.endpoints
    }
    assert {record["status"] for record in hosts.values()} == {"ok"}
    assert summary["hosts"] == len(topology.endpoints) and summary["exit_status"] == 0


def test_mixed_succeeding_failing_unreachable_and_hung_under_a_window_of_two(
    topology: Topology, tmp_path: Path, refused_port: int
) -> None:
    extra = tmp_path / "extra.toml"
    extra.write_text(f'[dead.hosts]\ndead = {{ hostname = "127.0.0.1", port = {refused_port} }}\n')
    ok, failing, *hung = names(topology, "direct")
    internal_ok, *_ = names(topology, "nodes")
    command = (
        f'case "$(hostname)" in {ok}|{internal_ok}) echo fine;; {failing}) exit 3;; '
        "*) sleep 30;; esac"
    )
    failed_to = tmp_path / "retry.txt"
    done = apssh(
        "-i", str(topology.inventory), "-i", str(extra),
        "-g", f"direct,{internal_ok},dead", "-w", "2", "--timeout", "2",
        "--json", "--failed-to", str(failed_to), command,
    )  # fmt: skip
    assert done.returncode == 4, done.stderr
    hosts, summary = json_records(done.stdout)
    statuses = {name: (record["status"], record["rc"]) for name, record in hosts.items()}
    assert statuses == {  # (with the records, should it fail)
        ok: ("ok", 0),
        internal_ok: ("ok", 0),
        failing: ("failed", 3),
        **{name: ("timeout", None) for name in hung},
        "dead": ("unreachable", None),
    }, done.stdout
    assert hosts["dead"]["error"]
    assert (summary["ok"], summary["failed"], summary["timeout"], summary["unreachable"]) == (
        2,
        1,
        len(hung),
        1,
    )
    assert f"  failed           {failing} (rc=3)" in done.stderr
    assert "  unreachable      dead" in done.stderr
    assert sorted(failed_to.read_text().split()) == sorted([failing, *hung, "dead"])
    # no remote process left behind by the timeout
    for endpoint in topology.direct:
        rc, _ = topology.exec(endpoint, "pgrep -f 'slee[p] 30'")
        assert rc == 1, f"sleep still running on {endpoint.name}"


@pytest.mark.parametrize(
    ("command", "expected"),
    [("true", 0), ("exit 1", 2), ("sleep 30", 3)],
)
def test_exit_statuses_through_the_bastion(topology: Topology, command: str, expected: int) -> None:
    done = apssh("-i", str(topology.inventory), "-g", "nodes", "--timeout", "2", command)
    assert done.returncode == expected, done.stderr


def test_auth_refused_is_four(topology: Topology) -> None:
    done = apssh("-i", str(topology.inventory), "-g", "direct", "-l", "nosuchuser", "true")
    assert done.returncode == 4, done.stderr
    assert "  auth refused" in done.stderr


@pytest.mark.parametrize("retries", [0, 2])
def test_retries_attempt_again_then_report_unreachable(retries: int) -> None:
    # bound but not listening: every attempt is refused at once, whatever the timing
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        done = apssh("-v", "--json", "--retries", str(retries), "-t", f"127.0.0.1:{port}", "true")
    assert done.returncode == 4, done.stderr
    hosts, summary = json_records(done.stdout)
    assert hosts["127.0.0.1"]["status"] == "unreachable"
    assert summary["unreachable"] == 1 and summary["exit_status"] == 4
    lines = done.stderr.splitlines()
    retried = [line for line in lines if line.startswith("127.0.0.1: -- unreachable (")]
    assert [line.split("), ")[-1].split(" in ")[0] for line in retried] == [
        f"retry {attempt}" for attempt in range(1, retries + 1)
    ]
    assert sum("-- connection failed" in line for line in lines) == 1


def test_inventory_names_in_a_target_route(topology: Topology) -> None:
    # -t 'bastion->node' with -i: both hops are the inventory's hosts (address, user, key)
    internal = names(topology, "nodes")
    targets = ",".join(f"{topology.bastion.name}->{name}" for name in internal)
    done = apssh("-i", str(topology.inventory), "-t", targets, "-r", "hostname")
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == sorted(internal)


def test_adhoc_targets_keys_and_host_key_policy(
    topology: Topology, ssh_keypair: KeyPair, tmp_path: Path
) -> None:
    bastion, first = topology.bastion, topology.direct[0]
    internal = topology.internal[0]
    targets = f"root@127.0.0.1:{first.port},root@127.0.0.1:{bastion.port}->root@{internal.name}"
    key = str(ssh_keypair.private_path)
    home = tmp_path / "home"
    home.mkdir()
    # strict, with an empty ~/.ssh/known_hosts: refused
    done = apssh("-t", targets, "-k", key, "--known-hosts", "strict", "hostname", home=home)
    assert done.returncode == 4, done.stderr
    assert "  hostkey refused" in done.stderr
    # accept-new records the keys, then the same run succeeds with strict
    done = apssh(
        "-t", targets, "-k", key, "--known-hosts", "accept-new", "-r", "hostname", home=home
    )
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == sorted([first.name, internal.name])
    done = apssh("-t", targets, "-k", key, "--known-hosts", "strict", "true", home=home)
    assert done.returncode == 0, done.stderr


def test_gateway_option_for_adhoc_targets(
    topology: Topology, ssh_keypair: KeyPair, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    targets = ",".join(f"root@{endpoint.name}" for endpoint in topology.internal)
    done = apssh(
        "-i", str(topology.inventory), "-t", targets, "-G", topology.bastion.name,
        "-k", str(ssh_keypair.private_path), "--known-hosts", "off", "-r", "hostname",
        home=home,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == names(topology, "nodes")


def test_out_dir_mark(topology: Topology, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    done = apssh(
        "-i", str(topology.inventory), "-g", "nodes", "-o", str(out_dir), "--mark",
        "hostname; echo e >&2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    for name in names(topology, "nodes"):
        assert (out_dir / f"{name}.out").read_text() == f"{name}\n"
        assert (out_dir / f"{name}.err").read_text() == "e\n"
    assert sorted((out_dir / "succeeded.txt").read_text().split()) == names(topology, "nodes")
    assert (out_dir / "failed.txt").read_text() == ""


def test_recipes_with_script_include_and_pull(topology: Topology, tmp_path: Path) -> None:
    inventory = str(topology.inventory)
    nodes = names(topology, "nodes")
    done = apssh("-i", inventory, "-g", "nodes", "-b", "-s", str(RECIPES / "facts.sh"), "--brief")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].endswith(f"({len(nodes)})")
    assert "os: Debian" in done.stdout

    setup = ["-i", inventory, "-g", "nodes", "-r", "-s", str(RECIPES / "setup.sh")]
    include = ["--include", str(RECIPES / "setup.conf")]
    done = apssh(*setup[:-2], "--include", str(RECIPES / "setup.conf"), "-s", setup[-1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["set up in /tmp/apssh-lab"] * len(nodes)
    done = apssh(*setup[:-2], *include, "-s", setup[-1])
    assert "already set up in /tmp/apssh-lab" in done.stdout
    done = apssh(*setup[:-2], *include, "-s", setup[-1], "--force")
    assert done.stdout.splitlines() == ["set up in /tmp/apssh-lab"] * len(nodes)

    done = apssh(
        "-i", inventory, "-g", "nodes", "-s", str(RECIPES / "measure.sh"), "-n", "2", "-s", "1"
    )
    assert done.returncode == 0, done.stderr
    results = tmp_path / "results"
    done = apssh("pull", "-i", inventory, "-g", "nodes", "/tmp/apssh-measure.csv", str(results))
    assert done.returncode == 0, done.stderr
    for name in nodes:
        lines = (results / name / "apssh-measure.csv").read_text().splitlines()
        assert lines[0] == "host,sample,size_mb,micros"
        assert [line.split(",")[:3] for line in lines[1:]] == [[name, "1", "1"], [name, "2", "1"]]


def test_push_templated_then_pull_recursive(topology: Topology, tmp_path: Path) -> None:
    inventory = str(topology.inventory)
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "data.bin").write_bytes(bytes(range(256)) * 4)
    done = apssh(
        "push", "-i", inventory, "-g", "nodes,direct", "-r", str(source), "/tmp/push-{host}"
    )
    assert done.returncode == 0, done.stderr
    check = apssh(
        "-i", inventory, "-g", "nodes", "-r", 'md5sum < "/tmp/push-$(hostname)/sub/data.bin"'
    )
    assert len(set(check.stdout.splitlines())) == 1
    back = tmp_path / "back"
    done = apssh(
        "pull", "-i", inventory, "-g", "nodes", "-R", "/tmp/push-{host}", f"{back}/{{host}}"
    )
    assert done.returncode == 0, done.stderr
    for name in names(topology, "nodes"):
        pulled = back / name / f"push-{name}" / "sub" / "data.bin"
        assert pulled.read_bytes() == bytes(range(256)) * 4
    missing = apssh("pull", "-i", inventory, "-g", "direct", "/no/such/file", str(tmp_path / "m"))
    assert missing.returncode == 2, missing.stderr


def test_ctrl_c_stops_remote_commands_and_exits_130(topology: Topology) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "apssh_cli.cli.main", "-i", str(topology.inventory),
         "-g", "nodes,direct", "-w", "2", "echo ready; sleep 31"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    # both hosts of the window are running their command
    for _ in range(2):
        line = process.stdout.readline()
        if not line:  # it ended by itself: say why
            pytest.fail(f"apssh ended early ({process.wait()}): {process.communicate()[1]}")
        assert line.rstrip().endswith("ready")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "(interrupted)" in err and "  not started" in err
    for endpoint in [*topology.internal, *topology.direct]:
        rc, _ = topology.exec(endpoint, "pgrep -f 'slee[p] 31'")
        assert rc == 1, f"sleep still running on {endpoint.name}"
