"""-t parsing, target resolution against an inventory, and node building."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from apssh_cli.cli.targets import (
    Hop,
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
from apssh_cli.errors import ConfigError, SelectionError
from apssh_cli.hostrange import expand


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
        ("node1:x", "port 'x' is not a number"),
        ("node1:0", "port '0'"),
        ("node1:70000", "port '70000'"),
        ("@node1", "empty user"),
        ("root@", "empty host"),
        ("[::1", "unclosed"),
        ("[::1]x", "unexpected"),
    ],
)
def test_parse_hop_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_hop(text)


def test_route_chain() -> None:
    hops = parse_route("gw->u@mid:2200->node1")
    assert [hop.spec() for hop in hops] == ["gw", "u@mid:2200", "node1"]
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


@dataclass(frozen=True)
class FakeHost:
    name: str
    hostname: str | None = None
    port: int | None = None
    user: str | None = None
    gateway: str | None = None
    identity_files: tuple[str, ...] = ()
    known_hosts_policy: str | None = None
    known_hosts_file: str | None = None
    connect_timeout: float | None = None
    connection: str = "ssh"
    groups: tuple[str, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict)


class FakeInventory:
    """Enough of Inventory: hosts, select (names, @group, comma union), route."""

    def __init__(self, *hosts: FakeHost) -> None:
        self.hosts = {host.name: host for host in hosts}

    def select(self, pattern: str = "all", exclude: str | None = None) -> list[FakeHost]:
        chosen: list[FakeHost] = []
        for term in pattern.split(","):
            if term == "all":
                chosen.extend(self.hosts.values())
            elif term.startswith("@") or term in {g for h in self.hosts.values() for g in h.groups}:
                group = term.lstrip("@")
                chosen.extend(h for h in self.hosts.values() if group in h.groups)
            elif term in self.hosts:
                chosen.append(self.hosts[term])
            else:
                raise SelectionError(f"no host or group {term!r}", pattern=term)
        return chosen

    def route(self, name: str) -> list[FakeHost]:
        host = self.hosts[name]
        hops = [host]
        while host.gateway is not None:
            host = self.hosts[host.gateway]
            hops.insert(0, host)
        return hops


INVENTORY = FakeInventory(
    FakeHost("bastion", hostname="127.0.0.1", port=2200, user="jump", known_hosts_file="kh"),
    FakeHost("node01", hostname="10.0.0.1", user="root", gateway="bastion", groups=("nodes",)),
    FakeHost("node02", hostname="10.0.0.2", user="root", gateway="bastion", groups=("nodes",)),
    FakeHost("me", connection="local", groups=("local",)),
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
    assert not adhoc.from_inventory and adhoc.route == (Hop("node02", "node02", user="root"),)


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
    assert local.route[-1].is_local and len(local.route) == 1
    assert [hop.spec() for hop in resolve_gateway("a->u@b:1", None)] == ["a", "u@b:1"]


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
        Target("a", (Hop("a", "10.0.0.9"),)),
        Target("b", (Hop("b", "10.0.0.9"),)),
    ]
    nodes, _ = build_nodes(targets, ssh_node=FakeNode, local_node=FakeNode)
    assert nodes["a"] is not nodes["b"]
    assert nodes["b"].kwargs["label"] == "b"
