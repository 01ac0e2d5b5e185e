"""Upstream apssh's API, without a network: names, keywords, command forms, labels, texts."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncssh
import pytest

import apssh_cli
from apssh_cli import (
    Capture,
    CommandFailedError,
    Deferred,
    LocalNode,
    Pull,
    Run,
    RunScript,
    Scheduler,
    Service,
    SshJob,
    SshNode,
    SshProxy,
    Variables,
    close_ssh_in_scheduler,
    import_private_key,
    load_agent_keys,
    load_private_keys,
    topology_as_dotfile,
    topology_as_pngfile,
    topology_dot,
    topology_graph,
)
from apssh_cli.engine.closing import scheduler_nodes
from apssh_cli.errors import ConfigError
from apssh_cli.ssh import keys as keys_module

# what upstream apssh 0.27 exports at its top level (formatters aside: the engine's)
UPSTREAM_NAMES = {
    "load_private_keys",
    "load_agent_keys",
    "import_private_key",
    "SshProxy",
    "Run",
    "RunScript",
    "RunString",
    "Push",
    "Pull",
    "SshJob",
    "CommandFailedError",
    "SshNode",
    "LocalNode",
    "Service",
    "close_ssh_in_scheduler",
    "co_close_ssh_in_scheduler",
    "topology_graph",
    "topology_dot",
    "topology_as_dotfile",
    "topology_as_pngfile",
    "Variables",
    "Deferred",
    "Capture",
    "CaptureFormatter",
    "RawFormatter",
    "SubdirFormatter",
    "TimeHostFormatter",
    "HostFormatter",
}


def test_upstream_names_import_from_the_package() -> None:
    assert set(apssh_cli.__all__) >= UPSTREAM_NAMES
    from apssh_cli.formatters import SubdirFormatter, TimeHostFormatter
    from apssh_cli.nodes import LocalNode as LocalNode_, SshNode as SshNode_

    assert (SshNode_, LocalNode_) == (SshNode, LocalNode)  # upstream's apssh.nodes
    assert SubdirFormatter is apssh_cli.SubdirFormatter
    assert TimeHostFormatter is apssh_cli.TimeHostFormatter
    with pytest.raises(ImportError):
        from apssh_cli.formatters import NoSuchFormatter  # noqa: F401


def test_upstream_names_stay_light_to_import() -> None:
    code = (
        "import sys; from apssh_cli import Deferred, Variables, Capture;"
        "print('asyncssh' in sys.modules, 'jinja2' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ------------------------------------------------------------ Variables, Deferred


def test_variables_are_a_dict_with_attributes() -> None:
    env = Variables(a=1)
    env.b = "two"
    assert env == {"a": 1, "b": "two"}
    assert env.a == 1 and env["b"] == env.b
    assert env.missing == ""  # as upstream: never an AttributeError
    del env.a
    assert "a" not in env
    with pytest.raises(AttributeError):
        del env.a


def test_deferred_renders_jinja_late_and_leaves_unknowns() -> None:
    env = Variables()
    deferred = Deferred("ping {{ host }} -c {{ n + 1 }} # {{ later }}", env)
    env.update(host="fit01", n=2)
    assert str(deferred) == "ping fit01 -c 3 # {{ later }}"
    assert str(deferred.replace("ping", "ping6")) == "ping6 fit01 -c 3 # {{ later }}"
    assert deferred.dup_from_string("{{host}}").variables is env
    capture = Capture("out", env)
    capture.store("line\n\n")
    assert env.out == "line\n"  # one trailing newline removed, as $(...) would


# ------------------------------------------------------------------ SshJob forms


def node() -> SshNode:
    return SshNode("fit01", username="root", gateway=SshNode("faraday", username="slice"))


def test_a_list_of_strings_is_one_command_with_its_parts_joined() -> None:
    job = SshJob(node(), commands=["echo", "a b", "$(hostname)", 3])
    (command,) = job.commands
    assert isinstance(command, Run) and command.command_line == "echo a b $(hostname) 3"


def test_command_objects_are_a_sequence_and_none_is_dropped() -> None:
    env = Variables()
    job = SshJob(node(), commands=[Run("a"), None, RunScript("s.sh", "x"), Pull("r", "l")])
    assert [type(cmd).__name__ for cmd in job.commands] == ["Run", "RunScript", "Pull"]
    deferred = SshJob(node(), command=Deferred("echo {{x}}", env)).commands
    assert len(deferred) == 1 and isinstance(deferred[0], Run)
    with pytest.raises(ValueError):
        SshJob(node(), commands=[None])


def test_upstream_job_keywords() -> None:
    job = SshJob(
        node=node(),
        command="true",
        keep_connection=True,
        verbose=True,
        forever=True,
        critical=False,
    )
    assert job.keep_connection and job.verbose and job.forever and not job.critical


def test_graph_label_is_user_at_host_then_one_line_per_command() -> None:
    job = SshJob(node(), commands=[Run("echo", "hi"), Run("secret", label=""), Run("x", label="X")])
    assert job.graph_label() == "root@fit01\necho hi\nX"
    assert job.details() == job.graph_label()
    local = SshJob(LocalNode(label="here"), "ls")
    assert local.graph_label() == "here\nls"
    dot = Scheduler(job).dot_format()
    assert "root@fit01" in dot and "secret" not in dot


def test_command_failed_error_as_upstream_raises_it() -> None:
    error = CommandFailedError("command foo returned 2 on node bar")
    assert str(error) == "command foo returned 2 on node bar"
    assert error.message == "command foo returned 2 on node bar"
    ours = CommandFailedError("n1", "ls", 2)
    assert str(ours) == "n1: command 'ls' exited with status 2" and ours.exit_status == 2


# ---------------------------------------------------------------------- nodes


def test_node_keywords_as_upstream(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    node = SshNode("h", known_hosts=str(known), timeout=7, debug=True, keys=[], ssh_config=None)
    # no policy given: the ssh configuration's (none here), else accept-new
    assert (node.known_hosts, node.known_hosts_file) == (None, known)
    assert node.resolve().host_key_policy == "accept-new"
    assert node.resolve().known_hosts[0] == str(known)
    assert node.connect_timeout == 7 and node.debug and node.verbose
    assert node.keys is None  # upstream: no keys given means the default ones
    assert SshNode("h", known_hosts=None, ssh_config=None).resolve().host_key_policy == "accept-new"
    assert SshNode("h", known_hosts="strict").known_hosts == "strict"
    assert SshNode("h", known_hosts=known).known_hosts_file == known
    assert SshNode("h", known_hosts="lab_known_hosts").known_hosts_file == Path("lab_known_hosts")
    with pytest.raises(ConfigError):
        SshNode("h", known_hosts="sloppy")  # neither a policy nor a path
    assert SshProxy is SshNode


def test_is_connected_reads_as_a_bool_and_calls_as_upstream() -> None:
    flag = SshNode("h").is_connected
    assert not flag and flag() is False and flag == False  # noqa: E712
    assert repr(flag) == "False"


def test_distance_and_user_host() -> None:
    leaf = SshNode("c", gateway=SshNode("b", username="u", gateway=SshNode("a")))
    assert leaf.distance() == 3
    assert leaf.gateway is not None and leaf.gateway.user_host() == "u@b"
    assert SshNode("a", ssh_config=None).user_host() == "a"


# ---------------------------------------------------------------------- keys


def test_import_private_key(tmp_path: Path) -> None:
    path = tmp_path / "id"
    path.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    assert import_private_key(path) is not None
    assert import_private_key(tmp_path / "missing") is None
    (tmp_path / "garbage").write_text("not a key\n")
    assert import_private_key(tmp_path / "garbage") is None
    encrypted = tmp_path / "encrypted"
    key = asyncssh.generate_private_key("ssh-ed25519")
    encrypted.write_bytes(key.export_private_key("pkcs8-pem", passphrase="secret"))
    assert import_private_key(encrypted) is None  # no terminal to ask on: skipped
    assert len(load_private_keys([path, tmp_path / "missing"])) == 1


def test_agent_keys_without_an_agent(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    assert load_agent_keys() == []

    async def inside_a_loop() -> list[object]:
        return list(load_agent_keys(str(tmp_path / "no-agent")))  # upstream's cannot

    assert asyncio.run(inside_a_loop()) == []


def test_load_private_keys_default_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    key = tmp_path / "id_ed25519"
    key.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    monkeypatch.setattr(keys_module, "DEFAULT_IDENTITIES", (str(key),))
    import apssh_cli.ssh.keyload as keyload

    monkeypatch.setattr(keyload, "DEFAULT_IDENTITIES", (str(key),))
    assert len(load_private_keys()) == 1


# --------------------------------------------------------------------- Service


def test_service_command_texts() -> None:
    service = Service("tcpdump -i eth0", service_id="dump", environ={"A": "x y"}, tty=True)
    start = service.start_command()
    assert start.command_line == (
        "{ ! systemctl is-active --quiet dump || systemctl stop dump; } && "
        "{ systemctl reset-failed dump >/dev/null 2>&1 || true; } && "
        "systemd-run --unit=dump --service-type=simple --pty --setenv='A=x y' tcpdump -i eth0"
    )
    assert start.describe() == "Service dump: start"
    plain = Service("nc -l 1234", service_id="nc", stop_if_running=False, systemd_type="forking")
    assert plain.start_command().command_line == (
        "systemd-run --unit=nc --service-type=forking nc -l 1234"
    )
    assert service.stop_command().command_line == "systemctl stop dump"
    assert service.status_command(output="/tmp/s").command_line == "systemctl status dump > /tmp/s"
    assert service.journal_command(since="1 min ago").command_line == (
        "journalctl --unit dump --since '1 min ago'"
    )
    with pytest.raises(ValueError):
        Service("x", service_id="bad name")


def test_service_with_a_deferred_command_renders_when_it_runs() -> None:
    env = Variables()
    service = Service(Deferred("ping {{ peer }}", env), service_id="ping", verbose=True)
    start = service.start_command()
    env.peer = "fit02"
    assert start.command_line.endswith("systemd-run --unit=ping --service-type=simple ping fit02")
    assert start.describe().startswith("Service ping: start ping")


# ------------------------------------------------------- topology and closing


def chain_scheduler() -> tuple[Scheduler, list[SshNode]]:
    gateway = SshNode("faraday", username="slice", ssh_config=None)
    fit01 = SshNode("fit01", username="root", gateway=gateway, ssh_config=None)
    fit02 = SshNode("fit02", username="root", gateway=fit01, ssh_config=None)
    inner = Scheduler(SshJob(fit02, "true"))
    outer = Scheduler(inner, SshJob(fit01, "true"), SshJob(LocalNode(), "true"))
    return outer, [gateway, fit01, fit02]


def test_scheduler_nodes_walks_nested_schedulers_and_gateways() -> None:
    scheduler, (gateway, fit01, fit02) = chain_scheduler()
    found = scheduler_nodes(scheduler)
    assert {id(node) for node in found} == {id(gateway), id(fit01), id(fit02)}
    assert {id(n) for n in scheduler_nodes(scheduler, manage_gateways=False)} == {
        id(fit01),
        id(fit02),
    }


def test_topology_dot_and_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scheduler, _ = chain_scheduler()
    dot = topology_dot(scheduler)
    assert dot.startswith("digraph apssh {") and '"Local Node"' in dot
    assert dot.count("->") == 3
    labels = {line.split(" ")[2]: line for line in dot.splitlines() if "label=" in line}
    assert any('"slice@faraday"' in line for line in labels.values())
    assert "0 -> 1;" in dot and "1 -> 2;" in dot and "2 -> 3;" in dot
    assert topology_as_dotfile(scheduler, tmp_path / "t.dot").startswith("(Over)wrote")
    assert (tmp_path / "t.dot").read_text() == dot
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` program here
    with pytest.raises(ConfigError, match="Graphviz's 'dot' program"):
        topology_as_pngfile(scheduler, tmp_path / "t")


def test_topology_graph_says_what_is_missing() -> None:
    scheduler, _ = chain_scheduler()
    try:
        import graphviz  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="'graphviz' Python package"):
            topology_graph(scheduler)
    else:  # pragma: no cover - graphviz is not a test dependency
        assert "Local Node" in topology_graph(scheduler).source


def test_close_ssh_in_scheduler_sync_and_inside_a_loop() -> None:
    scheduler, nodes = chain_scheduler()
    close_ssh_in_scheduler(scheduler)  # never connected: nothing to do, no error
    assert not any(node.is_connected for node in nodes)

    async def inside() -> None:
        close_ssh_in_scheduler(scheduler)

    with pytest.raises(RuntimeError, match="co_close_ssh_in_scheduler"):
        asyncio.run(inside())


def test_upstream_demo_file_still_imports_apssh() -> None:
    # the upstream-style script the integration test adapts keeps upstream's imports
    demo = Path(__file__).parents[1] / "integration" / "upstream" / "upstream_demo.py"
    assert "from apssh import" in demo.read_text()
    assert os.access(demo.with_name("demo.sh"), os.X_OK)


def test_nodes_from_inventory_share_their_gateway(tmp_path: Path) -> None:
    inventory = tmp_path / "inv.toml"
    inventory.write_text(
        '[bastions.hosts.bastion]\nhostname = "127.0.0.1"\nport = 2222\nuser = "admin"\n'
        '[nodes.vars]\ngateway = "bastion"\nuser = "root"\nknown_hosts = "strict"\n'
        '[nodes.hosts."node[1:2]"]\n'
        '[here.hosts.me]\nconnection = "local"\n'
    )
    nodes = apssh_cli.nodes_from_inventory(inventory, "nodes,here")
    assert list(nodes) == ["node1", "node2", "me"]
    node1, node2 = nodes["node1"], nodes["node2"]
    assert isinstance(node1, SshNode) and isinstance(nodes["me"], LocalNode)
    assert node1.gateway is node2.gateway  # one gateway node: one connection to it
    assert node1.gateway is not None and node1.gateway.user_host() == "admin@127.0.0.1"
    assert node1.gateway.port == 2222 and node1.known_hosts == "strict"
    assert node1.user_host() == "root@node1" and node1.distance() == 2
    assert list(apssh_cli.nodes_from_inventory(str(inventory), "nodes", exclude="node2")) == [
        "node1"
    ]
