"""selection: Ansible-style host patterns, as a table of pattern -> hosts."""

# ruff: noqa: E501  (the tables read best one case per line)

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings, strategies as st

from apssh_cli.errors import InventoryError, SelectionError
from apssh_cli.inventory.model import Inventory
from apssh_cli.inventory.selection import did_you_mean, split_pattern

TEXT = """
[infra.hosts]
bastion = {}

[web.hosts]
"web[01:03]" = {}

[db.hosts]
db01 = {}
db02 = {}

[prod]
children = ["web", "db"]

[staging.hosts]
web03 = {}
db02 = {}

[empty]

[ungrouped.hosts]
lonely = {}
"""
ORDER = ["bastion", "web01", "web02", "web03", "db01", "db02", "lonely"]


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return Inventory.from_toml_text(TEXT, "sel.toml")


SELECT = [
    ("all", None, ORDER),
    ("*", None, ORDER),
    ("web", None, ["web01", "web02", "web03"]),
    ("@web", None, ["web01", "web02", "web03"]),
    ("prod", None, ["web01", "web02", "web03", "db01", "db02"]),  # children included
    ("db01", None, ["db01"]),
    # union, in inventory order whatever the pattern's order
    ("db,web", None, ["web01", "web02", "web03", "db01", "db02"]),
    ("db:web", None, ["web01", "web02", "web03", "db01", "db02"]),
    ("db01, bastion", None, ["bastion", "db01"]),
    # intersection and exclusion
    ("prod,&staging", None, ["web03", "db02"]),
    ("prod:&staging", None, ["web03", "db02"]),
    ("prod,!staging", None, ["web01", "web02", "db01"]),
    ("web:!web02", None, ["web01", "web03"]),
    # unions first, then intersections, then exclusions, whatever the order
    ("!web02,&staging,web,db", None, ["web03", "db02"]),
    # only ! or &: start from all
    ("!prod", None, ["bastion", "lonely"]),
    ("&staging", None, ["web03", "db02"]),
    # globs over hosts and groups
    ("web0*", None, ["web01", "web02", "web03"]),
    ("db0?", None, ["db01", "db02"]),
    ("st*", None, ["web03", "db02"]),  # the group staging
    ("*01", None, ["web01", "db01"]),
    # ranges: the names that exist
    ("web[01:02]", None, ["web01", "web02"]),
    ("web[02:09]", None, ["web02", "web03"]),
    ("db[01-02],&staging", None, ["db02"]),
    # regular expressions, matched from the start of the name
    ("~web0[13]", None, ["web01", "web03"]),
    ("~(db|bast)", None, ["bastion", "db01", "db02"]),
    ("~.*eb", None, ["web01", "web02", "web03"]),
    # ungrouped, and an existing empty group
    ("ungrouped", None, ["lonely"]),
    ("empty", None, []),
    # -x
    ("all", "prod", ["bastion", "lonely"]),
    ("prod", "web0[1:2],db01", ["web03", "db02"]),
    ("prod", "staging", ["web01", "web02", "db01"]),
]


@pytest.mark.parametrize(("pattern", "exclude", "names"), SELECT)
def test_select(inventory: Inventory, pattern: str, exclude: str | None, names: list[str]) -> None:
    assert [host.name for host in inventory.select(pattern, exclude)] == names


BAD = [
    ("", "empty host pattern", ""),
    (" , ", "empty host pattern", " , "),
    ("!", "bad term '!' in pattern '!'", "!"),
    ("web,&", "bad term '&' in pattern 'web,&'", "&"),
    ("!!web", "bad term '!!web' in pattern '!!web'", "!!web"),
    ("wbe", "no group or host matches 'wbe' (did you mean web?)", "wbe"),
    ("web01,db3", "no group or host matches 'db3' (did you mean db?)", "db3"),
    ("prod,!stagin", "no group or host matches 'stagin' (did you mean staging, bastion?)", "stagin"),
    ("@web01", "no group matches '@web01' (did you mean web?)", "@web01"),
    ("zzz*", "no group or host matches 'zzz*'", "zzz*"),
    ("web[05:09]", "no group or host matches 'web[05:09]'", "web[05:09]"),
    ("~xyz", "no group or host matches '~xyz'", "~xyz"),
    ("~web(", "bad regular expression '~web(': missing ), unterminated subpattern at position 3", "~web("),
    ("web[3:1]", "bad range in pattern: reversed range '3:1' in 'web[3:1]': 3 > 1", "web[3:1]"),
]  # fmt: skip


@pytest.mark.parametrize(("pattern", "message", "term"), BAD)
def test_bad_patterns(inventory: Inventory, pattern: str, message: str, term: str) -> None:
    with pytest.raises(SelectionError) as info:
        inventory.select(pattern)
    assert str(info.value) == message
    assert info.value.pattern == term


def test_exclude_pattern_with_unknown_name_is_an_error(inventory: Inventory) -> None:
    # a typo in -x must not silently run on the host meant to be left out
    with pytest.raises(SelectionError, match="no group or host matches 'web1'"):
        inventory.select("web", "web1")


@pytest.mark.parametrize(
    ("pattern", "terms"),
    [
        ("a,b", ["a", "b"]),
        ("a:b", ["a", "b"]),
        ("a[1:2]:b", ["a[1:2]", "b"]),
        ("a[1:2],b:c", ["a[1:2]", "b:c"]),  # a comma wins: colons stay in terms
        (" a , !b ,&c ", ["a", "!b", "&c"]),
        ("a,,b", ["a", "b"]),
    ],
)
def test_split_pattern(pattern: str, terms: list[str]) -> None:
    assert split_pattern(pattern) == terms


def test_did_you_mean_keeps_the_given_order() -> None:
    assert did_you_mean("node3", ["node1", "other", "node2"]) == " (did you mean node1, node2?)"
    assert did_you_mean("zzz", ["node1"]) == ""


@settings(max_examples=300)
@given(st.text(alphabet="webd01*?~![]:,&@ .()|-", max_size=20))
def test_arbitrary_patterns_raise_only_selection_errors(pattern: str) -> None:
    loaded = Inventory.from_toml_text(TEXT)
    with contextlib.suppress(InventoryError):
        hosts = loaded.select(pattern)
        assert [h.name for h in hosts] == [name for name in ORDER if loaded.hosts[name] in hosts]
