"""inventory: the TOML format, precedence, gateways, Ansible compatibility, bad input."""

# ruff: noqa: E501  (the error table reads best one case per line)

from __future__ import annotations

import contextlib
import os
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from apssh_cli.errors import HostRangeError, InventoryError, SelectionError
from apssh_cli.inventory.model import Host, Inventory

INVENTORIES = Path(__file__).resolve().parents[2] / "inventories"


def inv(text: str) -> Inventory:
    return Inventory.from_toml_text(textwrap.dedent(text), "t.toml")


def error_of(text: str) -> InventoryError:
    with pytest.raises(InventoryError) as info:
        inv(text)
    return info.value


# --- Ansible's documented TOML examples, read as they are ------------------


def test_ansible_example_1_from_the_file() -> None:
    loaded = Inventory.load([INVENTORIES / "ansible-example.toml"])
    assert list(loaded.hosts) == ["host1", "host2", "tomcat1", "tomcat2", "tomcat3", "jenkins1"]
    assert loaded.groups["web"].children == ("apache", "nginx")
    assert loaded.groups["all"].children == ("web", "ungrouped")
    host2 = loaded.hosts["host2"]
    assert host2.port == 222
    assert host2.vars["ansible_port"] == 222
    # child group over parent group over all
    assert loaded.hosts["jenkins1"].vars["has_java"] is True
    assert loaded.hosts["tomcat1"].vars["has_java"] is False
    assert loaded.hosts["tomcat1"].vars["http_port"] == 8080
    # host over group
    assert loaded.hosts["tomcat2"].vars["myvar"] == 34
    assert loaded.hosts["tomcat1"].vars["myvar"] == 23
    assert loaded.hosts["tomcat3"].vars["mysecret"] == "03#pa33w0rd"
    assert loaded.hosts["tomcat1"].groups == ("all", "web", "apache")
    assert [h.name for h in loaded.select("web")] == list(loaded.hosts)


ANSIBLE_EXAMPLE_2 = """\
[all.vars]
has_java = false

[web]
children = [
    "apache",
    "nginx"
]

[web.vars]
http_port = 8080
myvar = 23

[web.hosts.host1]
[web.hosts.host2]
ansible_port = 222

[apache.hosts.tomcat1]

[apache.hosts.tomcat2]
myvar = 34

[apache.hosts.tomcat3]
mysecret = "03#pa33w0rd"

[nginx.hosts.jenkins1]

[nginx.vars]
has_java = true
"""

ANSIBLE_EXAMPLE_3 = """\
[ungrouped.hosts]
host1 = {}
host2 = { ansible_host = "127.0.0.1", ansible_port = 44 }
host3 = { ansible_host = "127.0.0.1", ansible_port = 45 }

[g1.hosts]
host4 = {}

[g2.hosts]
host4 = {}
"""


def test_ansible_example_2_matches_example_1() -> None:
    one = Inventory.load([INVENTORIES / "ansible-example.toml"])
    two = Inventory.from_toml_text(ANSIBLE_EXAMPLE_2)
    assert list(two.hosts) == list(one.hosts)
    for name, host in one.hosts.items():
        assert dict(two.hosts[name].vars) == dict(host.vars)
        assert two.hosts[name].groups == host.groups


def test_ansible_example_3() -> None:
    loaded = Inventory.from_toml_text(ANSIBLE_EXAMPLE_3)
    assert list(loaded.hosts) == ["host1", "host2", "host3", "host4"]
    host2 = loaded.hosts["host2"]
    assert (host2.hostname, host2.port) == ("127.0.0.1", 44)
    assert loaded.hosts["host3"].target == "127.0.0.1:45"
    # one host in two groups
    assert loaded.hosts["host4"].groups == ("all", "g1", "g2")
    assert loaded.groups["ungrouped"].hosts == ("host1", "host2", "host3")
    assert [h.name for h in loaded.select("ungrouped")] == ["host1", "host2", "host3"]


# --- the format --------------------------------------------------------------


def test_example_inventory_loads() -> None:
    loaded = Inventory.load([INVENTORIES / "example.toml"])
    assert [h.name for h in loaded.select("rack1")] == ["node01", "node02", "node03", "node04"]
    node03 = loaded.hosts["node03"]
    assert node03.user == "ops"
    assert node03.vars["scratch"] == "/scratch"
    assert [hop.target for hop in loaded.route("node03")] == [
        "admin@192.0.2.10:2222",
        "ops@node03",
    ]
    assert loaded.hosts["bastion"].gateway is None
    assert loaded.hosts["web.example.org"].gateway is None
    assert loaded.hosts["db.example.org"].port == 2200
    assert loaded.hosts["localhost"].connection == "local"
    assert loaded.hosts["old1"].target == "deploy@203.0.113.5"


def test_ranges_and_ports_in_host_keys() -> None:
    loaded = inv(
        """
        [g.hosts]
        "node[01:03]" = {}
        "db-[a:b]:2222" = {}
        "n[1:5:2]" = { port = 23 }
        "x[1:2]y[1:2]" = {}
        "m:22" = { port = 2200 }
        """
    )
    assert list(loaded.hosts) == [
        "node01", "node02", "node03", "db-a", "db-b", "n1", "n3", "n5",
        "x1y1", "x1y2", "x2y1", "x2y2", "m",
    ]  # fmt: skip
    assert loaded.hosts["db-b"].port == 2222
    assert loaded.hosts["n5"].port == 23
    assert loaded.hosts["m"].port == 2200  # the variable wins over the key
    assert loaded.hosts["node01"].port is None


def test_precedence_depth_then_name() -> None:
    loaded = inv(
        """
        [all.vars]
        a = "all"
        b = "all"
        c = "all"
        d = "all"

        [parent]
        children = ["child"]
        vars = { a = "parent", b = "parent", c = "parent" }

        [child]
        vars = { a = "child", b = "child" }
        hosts = { h = { a = "host" } }

        [zeta]
        vars = { c = "zeta" }
        hosts = { h = {} }
        """
    )
    host = loaded.hosts["h"]
    assert host.vars["a"] == "host"
    assert host.vars["b"] == "child"  # child (depth 2) over parent (depth 1)
    assert host.vars["c"] == "zeta"  # equal depth: the name sorting last wins
    assert host.vars["d"] == "all"
    assert host.groups == ("all", "parent", "zeta", "child")


def test_host_variables_merge_over_definitions() -> None:
    loaded = inv(
        """
        [a.hosts]
        h = { user = "one", x = 1 }
        [b.hosts]
        h = { user = "two" }
        """
    )
    assert len(loaded) == 1
    assert loaded.hosts["h"].user == "two"
    assert loaded.hosts["h"].vars["x"] == 1


def test_meaningful_variables() -> None:
    loaded = inv(
        """
        [g.hosts]
        a = { identity_file = "~/k1", known_hosts = "strict", connect_timeout = 2 }
        b = { identity_file = ["/k1", "/k2"], known_hosts = "~/kh" }
        c = { known_hosts = { policy = "off", file = "/kh" }, connect_timeout = 0.5 }
        d = { known_hosts = { file = "/kh" }, connection = "local" }
        e = { ansible_connection = "smart", ansible_ssh_private_key_file = "/k3" }
        f = { ansible_user = "u", user = "mine" }
        """
    )
    a, b, c, d, e, f = (loaded.hosts[n] for n in "abcdef")
    assert a.identity_files == (os.path.expanduser("~/k1"),)
    assert (a.known_hosts_policy, a.known_hosts_file, a.connect_timeout) == ("strict", None, 2.0)
    assert b.identity_files == ("/k1", "/k2")
    assert (b.known_hosts_policy, b.known_hosts_file) == (None, os.path.expanduser("~/kh"))
    assert (c.known_hosts_policy, c.known_hosts_file, c.connect_timeout) == ("off", "/kh", 0.5)
    assert (d.known_hosts_policy, d.known_hosts_file, d.connection) == (None, "/kh", "local")
    assert (e.connection, e.identity_files) == ("ssh", ("/k3",))
    assert f.user == "mine"  # ours wins over Ansible's at the same level
    assert a.connection == "ssh" and a.hostname == "a" and a.user is None


def test_an_alias_at_host_level_beats_our_name_at_group_level() -> None:
    loaded = inv(
        """
        [g]
        vars = { port = 22, user = "root" }
        hosts = { h = { ansible_port = 2222, ansible_user = "admin" } }
        """
    )
    assert loaded.hosts["h"].target == "admin@h:2222"


# --- gateways ------------------------------------------------------------------

GATEWAYS = """
[infra.hosts]
bastion = { hostname = "192.0.2.1", user = "admin", port = 2222 }
inner = { gateway = "bastion", user = "root" }

[nodes]
vars = { gateway = "inner", user = "root" }
hosts = { "node[1:2]" = {}, direct = { gateway = "none" } }
"""


def test_gateway_chain_and_route() -> None:
    loaded = inv(GATEWAYS)
    assert [h.target for h in loaded.route("node1")] == [
        "admin@192.0.2.1:2222",
        "root@inner",
        "root@node1",
    ]
    assert loaded.hosts["node1"].gateway == "inner"
    assert loaded.route("direct") == [loaded.hosts["direct"]]
    assert loaded.hosts["direct"].vars["gateway"] == "none"


def test_gateway_in_all_vars_spares_the_gateway_itself() -> None:
    loaded = inv(
        """
        [all.vars]
        gateway = "bastion"
        [g.hosts]
        bastion = {}
        n1 = {}
        """
    )
    assert loaded.hosts["bastion"].gateway is None
    assert [h.name for h in loaded.route("n1")] == ["bastion", "n1"]


@pytest.mark.parametrize(
    ("args", "route"),
    [
        ("-o ProxyJump=admin@jump:2222", ["admin@jump:2222", "n1"]),
        ("-o 'ProxyJump admin@jump'", ["admin@jump", "n1"]),
        ("-oProxyJump=jump", ["jump", "n1"]),
        ("-J admin@jump:2222", ["admin@jump:2222", "n1"]),
        ("-Jjump,root@inner:23", ["jump", "root@inner:23", "n1"]),
        ("-o StrictHostKeyChecking=no -J [2001:db8::1]:22", ["[2001:db8::1]:22", "n1"]),
        ("-o ProxyCommand='ssh -W %h:%p -q -p 2200 user@bastion'", ["user@bastion:2200", "n1"]),
        ("-o 'ProxyCommand=ssh -l me -W %h:%p bastion'", ["me@bastion", "n1"]),
    ],
)
def test_gateway_from_ansible_ssh_common_args(args: str, route: list[str]) -> None:
    loaded = Inventory.from_dict({"g": {"hosts": {"n1": {"ansible_ssh_common_args": args}}}})
    assert [h.target for h in loaded.route("n1")] == route
    assert list(loaded.hosts) == ["n1"]  # jump hosts are implicit, never selected
    assert all(h.is_implicit for h in loaded.route("n1")[:-1])


def test_proxyjump_naming_an_inventory_host_uses_it() -> None:
    loaded = inv(
        """
        [g.hosts]
        bastion = { user = "admin", port = 2222 }
        n1 = { ansible_ssh_common_args = "-J bastion" }
        """
    )
    assert loaded.hosts["n1"].gateway == "bastion"
    assert [h.target for h in loaded.route("n1")] == ["admin@bastion:2222", "n1"]
    assert not loaded.implicit_hosts


def test_ssh_args_without_a_jump_are_a_free_variable() -> None:
    loaded = inv('[g.hosts]\nn1 = { ansible_ssh_common_args = "-o ServerAliveInterval=5" }\n')
    assert loaded.hosts["n1"].gateway is None


def test_adhoc_hosts() -> None:
    loaded = inv(GATEWAYS)
    target = Host.from_target("me@10.0.0.9:2200", gateway="bastion")
    assert (target.name, target.user, target.hostname, target.port) == (
        "10.0.0.9",
        "me",
        "10.0.0.9",
        2200,
    )
    assert [h.name for h in loaded.route(target)] == ["bastion", "10.0.0.9"]
    assert Host.adhoc("x", gateway="none").gateway is None
    assert Host.from_target("[2001:db8::1]:22").target == "[2001:db8::1]:22"
    loaded.add_host(Host.adhoc("extra", user="u"))
    assert loaded.hosts["extra"].groups == ("all", "ungrouped")
    assert [h.name for h in loaded.select("ungrouped")] == ["extra"]
    with pytest.raises(InventoryError, match="gateway 'nowhere' is not an inventory host"):
        loaded.add_host(Host.adhoc("lost", gateway="nowhere"))
    empty = Inventory()
    empty.add_host(Host.adhoc("solo"))
    assert [h.name for h in empty.select()] == ["solo"]


@pytest.mark.parametrize("spec", ["", "@h", "u@", "h:x", "h:0", "h:70000", "[::1"])
def test_bad_targets(spec: str) -> None:
    with pytest.raises(InventoryError):
        Host.from_target(spec)


# --- several files ---------------------------------------------------------------


def test_several_files_merge(tmp_path: Path) -> None:
    first = tmp_path / "a.toml"
    second = tmp_path / "b.toml"
    first.write_text("[web]\nvars = { port = 80 }\nhosts = { w1 = {}, w2 = { x = 1 } }\n")
    second.write_text(
        "[web]\nvars = { port = 8080 }\nhosts = { w2 = { x = 2 }, w3 = {} }\n"
        '[all]\nchildren = ["web"]\n'
    )
    loaded = Inventory.load([first, second, str(first)])  # the same file twice: read once
    assert list(loaded.hosts) == ["w1", "w2", "w3"]
    assert loaded.hosts["w1"].port == 8080
    assert loaded.hosts["w2"].vars["x"] == 2


def test_children_may_come_from_another_file(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('[compute]\nchildren = ["rack1"]\n')
    (tmp_path / "b.toml").write_text("[rack1.hosts]\nn1 = {}\n")
    loaded = Inventory.load([tmp_path / "a.toml", tmp_path / "b.toml"])
    assert loaded.hosts["n1"].groups == ("all", "compute", "rack1")


def test_file_problems(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(InventoryError) as info:
        Inventory.load([missing])
    assert str(info.value) == f"{missing}: cannot read inventory: No such file or directory"
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"[g]\n\xff\xfe\n")
    with pytest.raises(InventoryError) as info:
        Inventory.load([binary])
    assert str(info.value) == f"{binary}:2: not UTF-8 text"
    with pytest.raises(InventoryError, match="no inventory file given"):
        Inventory.load([])


# --- bad input: one message, with the file and the line ------------------------

ERRORS = [
    # TOML syntax: tomllib's position becomes the line
    ("[g.hosts]\nn1 = {\n", "t.toml:2: invalid TOML: Invalid initial character for a key part (column 7)"),
    ("[g]\nhosts = 3 3\n", "t.toml:2: invalid TOML: Expected newline or end of document after a statement (column 11)"),
    ("[g]\n[g]\n", "t.toml:2: invalid TOML: Cannot declare ('g',) twice (column 3)"),
    # unquoted dotted host names
    ("[g.vars]\nuser = 'x'\n\n[g.hosts.node1.example.com]\n", "t.toml:4: g.hosts: host name 'node1.example.com' must be quoted: TOML reads an unquoted dotted key as nested tables (write \"node1.example.com\")"),
    ("[g.hosts]\nn0 = {}\nnode1.example.com = {}\n", "t.toml:3: g.hosts: host name 'node1.example.com' must be quoted: TOML reads an unquoted dotted key as nested tables (write \"node1.example.com\")"),
    # wrong types and keys
    ("x = 1\n", "t.toml:1: x: top-level key 'x' is not a group: groups are tables ([name] with hosts, vars, children)"),
    ("[g]\nhosts = ['a']\n", "t.toml:2: g.hosts: hosts must be a table of host = { variables }, not an array"),
    ("[g.hosts]\na = 1\n", "t.toml:2: g.hosts.a: host 'a': expected a table of variables ({} for none), not an integer"),
    ("[g]\nvars = 'x'\n", "t.toml:2: g.vars: vars must be a table, not a string"),
    ("[g]\nchildren = 'h'\n", "t.toml:2: g.children: children must be an array of group names"),
    ("[g]\nkids = []\n", "t.toml:2: g.kids: unknown key 'kids' in group 'g' (expected hosts, vars, children)"),
    ("[web.servers.hosts]\na = {}\n", "t.toml:1: web.servers: unknown key 'servers' in group 'web' (expected hosts, vars, children); a group name with a dot must be quoted: [\"web.servers\"]"),
    ('["web servers".hosts]\na = {}\n', "t.toml:1: web servers: bad group name 'web servers': no spaces or any of , & ! ~ * ? [ ] @"),
    ('[g.hosts]\n"a b" = {}\n', "t.toml:2: g.hosts.a b: bad host name 'a b': no spaces, commas or colons, and [...] only for ranges"),
    # bad values
    ("[g.hosts]\nn1 = {}\nn2 = { port = 70000 }\n", "t.toml:3: g.hosts.n2.port: port must be an integer from 1 to 65535, got 70000"),
    ("[g.hosts.n2]\nuser = 'a'\nport = 'x'\n", "t.toml:3: g.hosts.n2.port: port must be an integer from 1 to 65535, got 'x'"),
    ("[g.hosts]\nn2 = { port = true }\n", "t.toml:2: g.hosts.n2.port: port must be an integer from 1 to 65535, got True"),
    ("[g.hosts.n2]\nansible_port = 0\n", "t.toml:2: g.hosts.n2.ansible_port: port must be an integer from 1 to 65535, got 0"),
    ('[g.hosts]\n"n:99999" = {}\n', "t.toml:2: g.hosts.n:99999: host 'n': port must be from 1 to 65535, got 99999"),
    ("[g.vars]\nuser = 3\n", "t.toml:2: g.vars.user: user must be a non-empty string, not an integer"),
    ("[g.vars]\nhostname = ''\n", "t.toml:2: g.vars.hostname: hostname must be a non-empty string, not a string"),
    ("[g.vars]\nidentity_file = [1]\n", "t.toml:2: g.vars.identity_file: identity_file must be a path or an array of paths"),
    ("[g.vars]\nconnect_timeout = -1\n", "t.toml:2: g.vars.connect_timeout: connect_timeout must be a positive number of seconds, got -1"),
    ("[g.vars]\nconnection = 'winrm'\n", "t.toml:2: g.vars.connection: connection must be \"ssh\" or \"local\", got 'winrm'"),
    ("[g.vars]\nknown_hosts = { policy = 'maybe' }\n", "t.toml:2: g.vars.known_hosts: known_hosts policy must be one of \"strict\", \"accept-new\", \"off\", got 'maybe'"),
    ("[g.vars]\nknown_hosts = 3\n", "t.toml:2: g.vars.known_hosts: known_hosts must be one of \"strict\", \"accept-new\", \"off\", a path, or { policy, file }"),
    ("[g.vars]\nknown_hosts = { path = 'x' }\n", "t.toml:2: g.vars.known_hosts: known_hosts: unknown key 'path' (use policy, file)"),
    ("[g.vars]\ngateway = 3\n", "t.toml:2: g.vars.gateway: gateway must be the name of an inventory host or \"none\", not an integer"),
    ("[g.vars]\nansible_ssh_common_args = \"-o 'ProxyCommand nc %h %p'\"\n", "t.toml:2: g.vars.ansible_ssh_common_args: unsupported ProxyCommand 'nc %h %p': only 'ssh -W %h:%p [user@]host' is understood; use the gateway variable"),
    ("[g.vars]\nansible_ssh_common_args = '-J u@'\n", "t.toml:2: g.vars.ansible_ssh_common_args: bad ProxyJump: empty host name in 'u@'"),
    ("[g.vars]\nansible_ssh_common_args = '-o \"x'\n", "t.toml:2: g.vars.ansible_ssh_common_args: ansible_ssh_common_args: No closing quotation"),
    # structure
    ("[g]\nchildren = ['h']\n[hh.hosts]\nn1 = {}\n", "t.toml:2: g.children: child 'h' of group 'g' is not a group (did you mean hh?)"),
    ("[g]\nchildren = ['all']\n", "t.toml:2: g.children: child 'all' of group 'g' cannot be a child (did you mean all?)"),
    ("[a]\nchildren = ['b']\n[b]\nchildren = ['c']\n[c]\nchildren = ['a']\n", "t.toml:6: c.children: cycle in children: a -> b -> c -> a"),
    ("[a]\nchildren = ['a']\n", "t.toml:2: a.children: cycle in children: a -> a"),
    ("[g.vars]\ngateway = 'bastoin'\n[g.hosts]\nn1 = {}\n[infra.hosts]\nbastion = {}\n", "t.toml:2: g.vars.gateway: host 'n1': gateway 'bastoin' is not an inventory host (did you mean bastion?)"),
    ("[g.hosts]\nn1 = { gateway = 'n2' }\nn2 = { gateway = 'n1' }\n", "t.toml:3: g.hosts.n2.gateway: gateway cycle: n1 -> n2 -> n1"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_errors_name_file_line_and_problem(text: str, message: str) -> None:
    with pytest.raises(InventoryError) as info:
        Inventory.from_toml_text(text, "t.toml")
    assert str(info.value) == message
    assert info.value.source == "t.toml"


def test_range_error_is_a_host_range_error_with_position() -> None:
    with pytest.raises(HostRangeError) as info:
        Inventory.from_toml_text('[g.hosts]\nok = {}\n"n[1:x]" = {}\n', "t.toml")
    assert info.value.line == 3
    assert info.value.fragment == "1:x"
    assert str(info.value) == (
        "t.toml:3: g.hosts: bad range '1:x' in 'n[1:x]': both ends must be numbers, "
        "or single letters of the same case"
    )


def test_free_table_variables_are_not_mistaken_for_dotted_names() -> None:
    loaded = inv(
        """
        [g.hosts]
        node1 = { disks = { sda = 1 } }
        [g.hosts.node2]
        disks.sda = 2
        """
    )
    assert loaded.hosts["node1"].vars["disks"] == {"sda": 1}
    assert loaded.hosts["node2"].vars["disks"] == {"sda": 2}


def test_unknown_host_suggests() -> None:
    loaded = inv(GATEWAYS)
    with pytest.raises(SelectionError) as info:
        loaded.host("node3")
    assert str(info.value) == "no host named 'node3' (did you mean node1, node2?)"


# --- property tests: bad input raises InventoryError and nothing else ----------


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_inventory_errors(text: str) -> None:
    with contextlib.suppress(InventoryError):
        Inventory.from_toml_text(text)


KEY = st.sampled_from(
    ["g", "web", "all", "ungrouped", "hosts", "vars", "children", "n1", '"n[1:3]"', '"a.b"',
     "port", "user", "gateway", "hostname", "known_hosts", "identity_file", "connection",
     "connect_timeout", "ansible_port", "ansible_ssh_common_args", "x.y", '"n[1:"', '"h:22"']
)  # fmt: skip
VALUE = st.sampled_from(
    ["{}", "1", "0", "70000", "true", '"none"', '"n1"', '"g"', '"local"', '"strict"', "[]",
     '["g"]', '["web", "g"]', '{ port = 22 }', '{ gateway = "n1" }', '"-J n1"', '"-J u@x:2"',
     "-1.5", '{ policy = "off" }', '"~/k"', '["~/k"]', '"03#pa"']
)  # fmt: skip
LINE = st.one_of(
    st.builds(lambda a, b: f"[{a}.{b}]", KEY, KEY),
    st.builds(lambda a: f"[{a}]", KEY),
    st.builds(lambda a, b: f"{a} = {b}", KEY, VALUE),
)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LINE, max_size=12))
def test_toml_shaped_input_raises_only_inventory_errors(lines: list[str]) -> None:
    try:
        loaded = Inventory.from_toml_text("\n".join(lines))
    except InventoryError:
        return
    for host in loaded:
        route = loaded.route(host.name)
        assert route[-1] == host
        assert isinstance(host.port, int | None)


SCALAR = st.one_of(
    st.integers(-5, 70000), st.booleans(), st.text(max_size=6), st.floats(allow_nan=True)
)
TREE: Any = st.recursive(
    SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["hosts", "vars", "children", "n1", "port", "gateway",
                                         "user", "g", "known_hosts", "h[1:2]"]) | st.text(max_size=4),
                        inner, max_size=4),
    ),
    max_leaves=12,
)  # fmt: skip


@settings(max_examples=300)
@given(st.dictionaries(st.text(max_size=5), TREE, max_size=4))
def test_arbitrary_data_raises_only_inventory_errors(data: dict[str, Any]) -> None:
    with contextlib.suppress(InventoryError):
        Inventory.from_dict(data)


def test_the_lab_inventory_loads_and_routes_through_the_bastion(tmp_path: Path) -> None:
    from apssh_cli import lab

    text = lab.inventory_text(
        bastion=lab.Endpoint("bastion", "127.0.0.1", 49153, None, "ssh-ed25519 AAAAb"),
        internal=[lab.Endpoint("node1", "node1", 22, None, "ssh-ed25519 AAAAn")],
        direct=[lab.Endpoint("direct1", "127.0.0.1", 49154, None, "ssh-ed25519 AAAAd")],
        identity_file=tmp_path / "id_ed25519",
        known_hosts=tmp_path / "known_hosts",
    )
    loaded = Inventory.from_toml_text(text, "lab.toml")
    assert [h.target for h in loaded.route("node1")] == ["root@127.0.0.1:49153", "root@node1"]
    assert loaded.route("direct1") == [loaded.hosts["direct1"]]
    node = loaded.hosts["node1"]
    assert (node.known_hosts_policy, node.known_hosts_file) == (
        "accept-new",
        str(tmp_path / "known_hosts"),
    )
    assert node.identity_files == (str(tmp_path / "id_ed25519"),)


# --- a host listed in two groups with different connection settings --------


def conflicts_of(text: str) -> list[str]:
    return [str(conflict) for conflict in inv(text).conflicts]


def test_conflicting_listings_are_reported_with_both_places() -> None:
    loaded = inv(
        """\
        [a.hosts]
        n1 = { port = 2222, hostname = "10.0.0.1" }

        [b.hosts]
        n1 = { port = 22, hostname = "10.0.0.1" }
        """
    )
    (conflict,) = loaded.conflicts
    assert (conflict.host, conflict.variable, conflict.first, conflict.second) == (
        "n1",
        "port",
        "2222",
        "22",
    )
    assert str(conflict) == (
        "t.toml:5: host 'n1' listed again with port = 22 (group 'b'), "
        "was 2222 at t.toml:2 (group 'a')"
    )
    assert loaded.hosts["n1"].port == 22  # the later listing wins, as documented


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a :port suffix against a port variable
        (
            '[a.hosts]\n"n[1:2]:2200" = {}\n[b.hosts]\nn2 = { port = 22 }\n',
            [
                "t.toml:4: host 'n2' listed again with port = 22 (group 'b'), was 2200 at t.toml:2 (group 'a')"
            ],
        ),
        # Ansible's names count as ours
        (
            '[a.hosts]\nn1 = { user = "alice" }\n[b.hosts]\nn1 = { ansible_user = "bob" }\n',
            [
                "t.toml:4: host 'n1' listed again with user = \"bob\" (group 'b'), was \"alice\" at t.toml:2 (group 'a')"
            ],
        ),
        (
            '[a.hosts]\nn1 = { ansible_host = "10.0.0.1" }\n[b.hosts]\nn1 = { hostname = "10.0.0.2" }\n',
            [
                "t.toml:4: host 'n1' listed again with hostname = \"10.0.0.2\" (group 'b'), was \"10.0.0.1\" at t.toml:2 (group 'a')"
            ],
        ),
        (
            '[x.hosts]\ngw = {}\ngw2 = {}\n[a.hosts]\nn1 = { gateway = "gw" }\n[b.hosts]\nn1 = { gateway = "gw2" }\n',
            [
                "t.toml:7: host 'n1' listed again with gateway = \"gw2\" (group 'b'), was \"gw\" at t.toml:5 (group 'a')"
            ],
        ),
        # three listings: each one against the one before
        (
            "[a.hosts]\nn1 = { port = 1 }\n[b.hosts]\nn1 = { port = 2 }\n[c.hosts]\nn1 = { port = 3 }\n",
            [
                "t.toml:4: host 'n1' listed again with port = 2 (group 'b'), was 1 at t.toml:2 (group 'a')",
                "t.toml:6: host 'n1' listed again with port = 3 (group 'c'), was 2 at t.toml:4 (group 'b')",
            ],
        ),
    ],
)
def test_conflicts(text: str, expected: list[str]) -> None:
    assert conflicts_of(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # the same value twice, or a value on one side only: the listings agree
        '[a.hosts]\nn1 = { port = 2222 }\n[b.hosts]\nn1 = { port = 2222, user = "x" }\n',
        "[a.hosts]\nn1 = { port = 2222 }\n[b.hosts]\nn1 = {}\n",
        '[a.hosts]\n"n1:2222" = {}\n[b.hosts]\nn1 = { port = "2222" }\n',
        # a range, then an exception in the same group: deliberate
        '[a.hosts]\n"n[1:3]" = { user = "a" }\nn2 = { user = "b" }\n',
        # group variables follow the precedence rules: not a listing conflict
        '[a]\nvars = { user = "a" }\nhosts = { n1 = {} }\n[b]\nvars = { user = "b" }\nhosts = { n1 = {} }\n',
        # free variables may differ
        "[a.hosts]\nn1 = { rack = 1 }\n[b.hosts]\nn1 = { rack = 2 }\n",
    ],
)
def test_no_conflict(text: str) -> None:
    assert conflicts_of(text) == []


def test_a_later_file_may_list_a_host_again_in_the_same_group(tmp_path: Path) -> None:
    base = tmp_path / "base.toml"
    base.write_text("[nodes.hosts]\nn1 = { port = 22 }\n")
    local = tmp_path / "local.toml"
    local.write_text("[nodes.hosts]\nn1 = { port = 2222 }\n[other.hosts]\nn1 = { port = 2200 }\n")
    loaded = Inventory.load([base, local])
    assert [str(c) for c in loaded.conflicts] == [
        f"{local}:4: host 'n1' listed again with port = 2200 (group 'other'), "
        f"was 2222 at {local}:2 (group 'nodes')"
    ]


def test_the_shipped_inventories_have_no_conflicts() -> None:
    for path in sorted(INVENTORIES.glob("*.toml")):
        assert Inventory.load([path]).conflicts == (), path


def test_an_endless_file_is_refused_not_read_forever(monkeypatch: pytest.MonkeyPatch) -> None:
    from apssh_cli.inventory import tomlsource

    monkeypatch.setattr(tomlsource, "MAX_INVENTORY_BYTES", 2**20)
    with pytest.raises(InventoryError) as info:
        Inventory.load(["/dev/zero"])
    assert str(info.value) == "/dev/zero: inventory larger than 1 MiB"


def test_a_fifo_is_read(tmp_path: Path) -> None:
    # `-i <(generate-inventory)` hands apssh a pipe
    fifo = tmp_path / "inventory.fifo"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "w") as stream:
            stream.write('[g.hosts]\n"n[1:2]" = {}\n')

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert list(Inventory.load([fifo]).hosts) == ["n1", "n2"]
    finally:
        writer.join(timeout=10)
