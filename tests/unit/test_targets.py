"""-t parsing, target resolution against an inventory, and node building."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, strategies as st

from apssh_cli.errors import ConfigError, SelectionError
from apssh_cli.inventory.hostrange import expand
from apssh_cli.inventory.model import Host, Inventory
from apssh_cli.inventory.targets import (
    NodeSettings,
    Overrides,
    Target,
    build_nodes,
    parse_hop,
    parse_route,
    read_specs,
    resolve_gateway,
    resolve_targets,
    split_specs,
)


@pytest.mark.parametrize(
    ("text", "user", "hostname", "port"),
    [
        ("node1", None, "node1", None),
        ("root@node1", "root", "node1", None),
        ("node1:2222", None, "node1", 2222),
        ("root@10.0.0.1:22", "root", "10.0.0.1", 22),
        ("[::1]:2200", None, "::1", 2200),
        ("u@[fe80::1]", "u", "fe80::1", None),
        ("fe80::1", None, "fe80::1", None),
        ("a@b@host", "a@b", "host", None),
    ],
)
def test_parse_hop(text: str, user: str | None, hostname: str, port: int | None) -> None:
    hop = parse_hop(text)
    assert (hop.user, hop.hostname, hop.port) == (user, hostname, port)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # the messages are the inventory's (hostvars.parse_target), after "bad target 'TEXT': "
        ("node1:x", "^bad target 'node1:x': bad port 'x'"),
        ("node1:0", "^bad target 'node1:0': port must be .* 1 to 65535, got 0$"),
        ("node1:70000", "^bad target 'node1:70000': port must be .* got 70000$"),
        ("@node1", "empty user"),
        ("root@", "empty host"),
        ("[::1", "bad address"),
        ("[::1]x", "bad address"),
        ("node 1", "white space in host name"),
    ],
)
def test_parse_hop_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_hop(text)


def test_route_chain() -> None:
    hops = parse_route("gw->u@mid:2200->node1")
    assert [hop.target for hop in hops] == ["gw", "u@mid:2200", "node1"]
    with pytest.raises(ConfigError, match="empty hop"):
        parse_route("gw->->node1")


def test_split_keeps_commas_in_ranges() -> None:
    assert split_specs(" a, node[1,3] ,b,,") == ["a", "node[1,3]", "b"]


def test_read_specs_from_file_and_nested(tmp_path: Path) -> None:
    inner = tmp_path / "inner.txt"
    inner.write_text("deep\n")
    listing = tmp_path / "hosts.txt"
    listing.write_text(f"# a comment\nroot@a  b:2222 # trailing\n\ngw->c,d\n@{inner}\n")
    specs = read_specs([f"x,@{listing}"])
    assert [spec.text for spec in specs] == ["x", "root@a", "b:2222", "gw->c", "d", "deep"]
    assert (specs[2].source, specs[2].line) == (str(listing), 2)


def test_bad_spec_in_file_names_file_and_line(tmp_path: Path) -> None:
    listing = tmp_path / "hosts.txt"
    listing.write_text("ok\n\nnode:port\n")
    with pytest.raises(ConfigError) as info:
        read_specs([f"@{listing}"])
    assert str(info.value).startswith(f"{listing}:3: bad target 'node:port'")


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read target file"):
        read_specs(["@/no/such/file"])


# ---------------------------------------------------------------- resolution


INVENTORY = Inventory.from_toml_text(
    """
    [infra.hosts]
    bastion = { hostname = "127.0.0.1", port = 2200, user = "jump", known_hosts = "kh" }

    [nodes]
    vars = { user = "root", gateway = "bastion" }
    hosts = { node01 = { hostname = "10.0.0.1" }, node02 = { hostname = "10.0.0.2" } }

    [local.hosts]
    me = { connection = "local" }
    """
)


def resolve(
    pattern: str | None = None,
    targets: tuple[str, ...] = (),
    exclude: str | None = None,
    overrides: Overrides | None = None,
) -> list[Target]:
    return resolve_targets(
        inventory=INVENTORY,
        pattern=pattern,
        exclude=exclude,
        specs=read_specs(targets),
        overrides=overrides or Overrides(),
        expand=expand,
    )


def test_group_selection_uses_inventory_routes() -> None:
    targets = resolve("nodes")
    assert [t.name for t in targets] == ["node01", "node02"]
    assert [hop.name for hop in targets[0].route] == ["bastion", "node01"]
    assert targets[0].describe() == "node01  jump@127.0.0.1:2200 -> root@10.0.0.1"
    assert targets[0].spec() == "node01"


def test_plain_target_naming_an_inventory_host_is_that_host() -> None:
    (target,) = resolve(targets=("node02",))
    assert target.from_inventory and target.host.hostname == "10.0.0.2"
    (adhoc,) = resolve(targets=("root@node02",))
    assert not adhoc.from_inventory and adhoc.route == (Host("node02", "node02", user="root"),)


def test_inventory_names_in_a_route_are_inventory_hosts() -> None:
    (through, ranged, adhoc) = resolve(targets=("bastion->node02", "bastion->n[1-1]", "gw->node01"))
    assert through.describe() == "node02  jump@127.0.0.1:2200 -> root@10.0.0.2"
    assert not through.from_inventory
    assert ranged.describe() == "n1  jump@127.0.0.1:2200 -> n1"
    assert adhoc.describe() == "node01  gw -> root@10.0.0.1"
    # a hop with a user or a port is an address, not an inventory name
    (literal,) = resolve(targets=("u@bastion->node02:22",))
    assert literal.describe() == "node02  u@bastion -> node02:22"


def test_union_dedup_and_exclude() -> None:
    targets = resolve("nodes", targets=("node01", "extra[1-3]"), exclude="node02,extra2")
    assert [t.name for t in targets] == ["node01", "extra1", "extra3"]


def test_range_target_with_gateway() -> None:
    targets = resolve(targets=("u@gw:2222->root@n[1-2]",))
    assert [t.spec() for t in targets] == ["u@gw:2222->root@n1", "u@gw:2222->root@n2"]
    with pytest.raises(ConfigError, match="gateway cannot be a host range"):
        resolve(targets=("gw[1-2]->n1",))


def test_bad_range_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="bad target"):
        resolve(targets=("n[3-x]",))


def test_group_without_inventory() -> None:
    with pytest.raises(ConfigError, match="-g needs an inventory"):
        resolve_targets(inventory=None, pattern="nodes", exclude=None, specs=[])


def test_unknown_group_propagates() -> None:
    with pytest.raises(SelectionError):
        resolve("nosuch")


def test_overrides() -> None:
    overrides = Overrides(user="admin", keys=("k1",), known_hosts="strict", connect_timeout=3.0)
    inv, explicit, bare = resolve("node01", targets=("bob@h1", "gw->h2"), overrides=overrides)
    # -l wins over the inventory for the host, not for its gateway (which has a user)
    assert [hop.user for hop in inv.route] == ["jump", "admin"]
    assert explicit.host.user == "bob"  # written in -t: wins over -l
    assert [hop.user for hop in bare.route] == ["admin", "admin"]
    assert all(hop.identity_files[0] == "k1" for t in (inv, bare) for hop in t.route)
    assert {hop.known_hosts_policy for hop in inv.route} == {"strict"}
    assert {hop.connect_timeout for hop in bare.route} == {3.0}


def test_gateway_option_only_for_targets_without_gateway() -> None:
    gateway = resolve_gateway("bastion", INVENTORY)
    overrides = Overrides(gateway=gateway)
    direct, chained, bastion, local = resolve(
        targets=("h1", "gw->h2", "bastion", "me"), overrides=overrides
    )
    assert [hop.name for hop in direct.route] == ["bastion", "h1"]
    assert [hop.name for hop in chained.route] == ["gw", "h2"]
    assert [hop.name for hop in bastion.route] == ["bastion"]  # not through itself
    assert local.route[-1].connection == "local" and len(local.route) == 1
    assert [hop.target for hop in resolve_gateway("a->u@b:1", None)] == ["a", "u@b:1"]


# ---------------------------------------------------------------- nodes


class FakeNode:
    def __init__(self, hostname: str = "localhost", **kwargs: Any) -> None:
        self.hostname = hostname
        self.kwargs = kwargs


def test_build_nodes_shares_gateways() -> None:
    targets = resolve("nodes", targets=("me", "other->node01x"))
    nodes, created = build_nodes(
        targets,
        ssh_node=FakeNode,
        local_node=FakeNode,
        settings=NodeSettings(connect_retries=2, formatter="F"),
    )
    assert set(nodes) == {"node01", "node02", "me", "node01x"}
    gateway = nodes["node01"].kwargs["gateway"]
    assert gateway is nodes["node02"].kwargs["gateway"]
    assert gateway.hostname == "127.0.0.1" and gateway.kwargs["port"] == 2200
    assert gateway.kwargs["known_hosts_file"] == "kh"
    assert "known_hosts" not in gateway.kwargs  # the node's default stays
    assert nodes["node01"].kwargs["label"] == "node01"
    assert nodes["node01"].kwargs["connect_retries"] == 2
    assert nodes["me"].kwargs == {"formatter": "F", "label": "me", "verbose": False}
    assert len(created) == 6  # bastion, node01, node02, me, other, node01x


def test_same_address_twice_gets_two_nodes() -> None:
    targets = [
        Target("a", (Host("a", "10.0.0.9"),)),
        Target("b", (Host("b", "10.0.0.9"),)),
    ]
    nodes, _ = build_nodes(targets, ssh_node=FakeNode, local_node=FakeNode)
    assert nodes["a"] is not nodes["b"]
    assert nodes["b"].kwargs["label"] == "b"


# ---------------------------------------------------------------- -x means what it says


def test_exclude_typo_is_an_error_not_a_silent_run() -> None:
    # issue 19.6: `-g nodes -x nod3` used to run on every node, the excluded one included
    with pytest.raises(SelectionError, match=r"no group or host matches 'node3'.*node01"):
        resolve("nodes", exclude="node3")
    with pytest.raises(SelectionError, match="no group or host matches 'nod01'"):
        resolve("nodes", exclude="node02,nod01")


def test_exclude_names_a_t_target_or_an_inventory_host() -> None:
    # a -t target's name is a name -x may use, with globs and ranges like -g
    assert [t.name for t in resolve(targets=("x1", "x2", "b1"), exclude="x*")] == ["b1"]
    assert [t.name for t in resolve(targets=("n[1-4]",), exclude="n[2:3]")] == ["n1", "n4"]
    # an inventory host that is not selected is still a name: not an error
    assert [t.name for t in resolve("nodes", exclude="bastion")] == ["node01", "node02"]
    # groups work, and exclusion inside the -x pattern too
    assert [t.name for t in resolve("all", exclude="nodes,!node02")] == ["bastion", "node02", "me"]


def test_exclude_typo_with_targets_only() -> None:
    specs = read_specs(["web1,web2"])
    with pytest.raises(
        SelectionError, match=r"no group or host matches 'wbe2' \(did you mean web2"
    ):
        resolve_targets(inventory=None, pattern=None, exclude="wbe2", specs=specs, expand=expand)
    kept = resolve_targets(inventory=None, pattern=None, exclude="web2", specs=specs)
    assert [t.name for t in kept] == ["web1"]


def test_exclude_an_ipv6_target_by_its_name() -> None:
    # one name as a whole: the ':' pattern separator must not cut it up
    specs = read_specs(["[::1]:2222,n1"])
    kept = resolve_targets(inventory=None, pattern=None, exclude="::1", specs=specs)
    assert [t.name for t in kept] == ["n1"]


@given(
    st.lists(st.sampled_from(["node01", "node02", "bastion", "me", "x1", "x2"]), min_size=1),
    st.sampled_from(["all", "nodes", "infra,local"]),
)
def test_excluded_names_never_run(excluded: list[str], pattern: str) -> None:
    targets = resolve(pattern, targets=("x1", "x2"), exclude=",".join(excluded))
    names = [t.name for t in targets]
    assert not set(names) & set(excluded)
    full = [t.name for t in resolve(pattern, targets=("x1", "x2"))]
    assert names == [name for name in full if name not in excluded]


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8))
def test_an_exclude_naming_nothing_is_always_an_error(word: str) -> None:
    hosts = {"node01", "node02", "bastion", "me", "x1"}
    if word in hosts | {"nodes", "infra", "local", "all", "ungrouped"}:
        return
    with pytest.raises(SelectionError):
        resolve("all", targets=("x1",), exclude=word)


def test_a_hosts_persist_variable_reaches_its_node() -> None:
    inventory = Inventory.from_toml_text(
        '[g.hosts]\nwarm = { hostname = "10.0.0.5", persist = "10m" }\n'
        'cold = { hostname = "10.0.0.6", persist = 0 }\nplain = { hostname = "10.0.0.7" }\n'
    )
    targets = resolve_targets(inventory=inventory, pattern="g", exclude=None, specs=[])
    nodes, _ = build_nodes(targets, ssh_node=FakeNode, local_node=FakeNode)
    assert nodes["warm"].kwargs["persist"] == 600
    assert nodes["cold"].kwargs["persist"] == 0
    assert "persist" not in nodes["plain"].kwargs
    bad = Inventory.from_toml_text('[g.hosts]\nh = { hostname = "10.0.0.5", persist = "ever" }\n')
    with pytest.raises(ConfigError, match="host h: persist must be a duration"):
        build_nodes(
            resolve_targets(inventory=bad, pattern="g", exclude=None, specs=[]),
            ssh_node=FakeNode,
            local_node=FakeNode,
        )
