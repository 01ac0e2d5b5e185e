"""hostrange: expand/fold tables (ClusterShell style) and properties."""

from __future__ import annotations

import contextlib
from unittest import mock

import pytest
from hypothesis import given, settings, strategies as st

from apssh_cli.errors import HostRangeError, InventoryError
from apssh_cli.inventory import hostrange
from apssh_cli.inventory.hostrange import expand, fold

EXPAND = [
    # no range at all
    ("node1", ["node1"]),
    ("node1.example.com", ["node1.example.com"]),
    # numbers, padding follows the start
    ("node[1:3]", ["node1", "node2", "node3"]),
    ("node[01:03]", ["node01", "node02", "node03"]),
    ("node[8:11]", ["node8", "node9", "node10", "node11"]),
    ("node[08:11]", ["node08", "node09", "node10", "node11"]),
    ("node[001:002]", ["node001", "node002"]),
    ("node[0:0]", ["node0"]),
    ("node[5:5]", ["node5"]),
    # steps
    ("n[1:10:2]", ["n1", "n3", "n5", "n7", "n9"]),
    ("n[01:10:3]", ["n01", "n04", "n07", "n10"]),
    ("n[1:2:5]", ["n1"]),
    # ClusterShell spelling, which fold writes
    ("n[1-3]", ["n1", "n2", "n3"]),
    ("n[1-9/4]", ["n1", "n5", "n9"]),
    ("n[01-02,07]", ["n01", "n02", "n07"]),
    ("n[1,3,5]", ["n1", "n3", "n5"]),
    # letters
    ("db-[a:c]", ["db-a", "db-b", "db-c"]),
    ("db-[A:C]", ["db-A", "db-B", "db-C"]),
    ("db-[a:e:2]", ["db-a", "db-c", "db-e"]),
    ("db-[a-b]", ["db-a", "db-b"]),
    # several ranges multiply, left one outermost
    ("r[1:2]n[1:2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
    ("rack[1-2]-[a:b]", ["rack1-a", "rack1-b", "rack2-a", "rack2-b"]),
    # ranges in the middle and at the start
    ("www[01:02].example.com", ["www01.example.com", "www02.example.com"]),
    ("[1:2]x", ["1x", "2x"]),
    # commas outside brackets list names; duplicates vanish, order stays
    ("a,b", ["a", "b"]),
    ("n[1:2],n2,m", ["n1", "n2", "m"]),
    # a port suffix is left alone (the inventory splits it off)
    ("node[1:2]:2222", ["node1:2222", "node2:2222"]),
    # spaces around items are tolerated
    ("n[ 1:2 , 4 ]", ["n1", "n2", "n4"]),
]


@pytest.mark.parametrize(("pattern", "names"), EXPAND)
def test_expand(pattern: str, names: list[str]) -> None:
    assert expand(pattern) == names


SPLIT = [
    # (text, separator, pieces)
    ("a", ",", ["a"]),
    ("a,b", ",", ["a", "b"]),
    ("", ",", [""]),
    ("a,,b,", ",", ["a", "", "b", ""]),  # empty pieces kept
    (" a , b ", ",", [" a ", " b "]),  # not stripped
    ("node[1,3],web", ",", ["node[1,3]", "web"]),
    ("r[1,2]n[3,4],x", ",", ["r[1,2]n[3,4]", "x"]),
    ("a[1:2]:b", ":", ["a[1:2]", "b"]),
    ("a[1:2],b:c", ",", ["a[1:2]", "b:c"]),
    ("u@[::1]:22,h", ",", ["u@[::1]:22", "h"]),
    ("a[[1,2],3],b", ",", ["a[[1,2],3]", "b"]),  # brackets nest
    ("a],b", ",", ["a]", "b"]),  # a ']' with no open '[' is ordinary
    ("a]b,c[1,2]", ",", ["a]b", "c[1,2]"]),
    ("n[1,2,m", ",", ["n[1,2,m"]),  # an unclosed '[' keeps the rest whole
]


@pytest.mark.parametrize(("text", "separator", "pieces"), SPLIT)
def test_split_top_level(text: str, separator: str, pieces: list[str]) -> None:
    assert hostrange.split_top_level(text, separator) == pieces


BAD = [
    ("node[", "["),
    ("node[1:3", "[1:3"),
    ("node]", "node]"),
    ("a]b[1]", "a]"),
    ("node[]", "[]"),
    ("node[ ]", "[ ]"),
    ("node[[1:2]]", "[[1:2]"),
    ("node[1:x]", "1:x"),
    ("node[x1]", "x1"),
    ("node[ab]", "ab"),
    ("node[a:1]", "a:1"),
    ("node[a:Z]", "a:Z"),
    ("node[aa:bb]", "aa:bb"),
    ("node[3:1]", "3:1"),
    ("node[c:a]", "c:a"),
    ("node[1:5:0]", "1:5:0"),
    ("node[1:5:x]", "1:5:x"),
    ("node[1:2:3:4]", "1:2:3:4"),
    ("node[1-]", "1-"),
    ("node[1-3/]", "1-3/"),
    ("node[1-3/x]", "1-3/x"),
    ("node[-1]", "-1"),
    ("node[1,,2]", ""),
    ("a,,b", "a,,b"),
    ("", ""),
    ("n[0:2000000]", "0:2000000"),
    ("n[0:999]m[0:999]k[0:9]", "n[0:999]m[0:999]k[0:9]"),
]


@pytest.mark.parametrize(("pattern", "fragment"), BAD)
def test_expand_rejects(pattern: str, fragment: str) -> None:
    with pytest.raises(HostRangeError) as info:
        expand(pattern)
    assert info.value.fragment == fragment
    assert isinstance(info.value, InventoryError)


def test_expand_messages_name_the_problem() -> None:
    with pytest.raises(HostRangeError, match=r"reversed range '3:1' in 'n\[3:1\]': 3 > 1"):
        expand("n[3:1]")
    with pytest.raises(HostRangeError, match=r"unclosed '\[' in 'n\[1'"):
        expand("n[1")
    with pytest.raises(HostRangeError, match=r"bad step '0'"):
        expand("n[1:3:0]")


FOLD = [
    ([], ""),
    (["node1"], "node1"),
    (["node01", "node02", "node03", "node07"], "node[01-03,07]"),
    (["node3", "node1", "node2"], "node[1-3]"),
    (["node9", "node10", "node11"], "node[9-11]"),
    (["node09", "node10"], "node[09-10]"),
    (["node1", "node01"], "node[1,01]"),
    (["node1", "node1"], "node1"),
    (["web", "node1", "node2"], "node[1-2],web"),
    (["web", "db"], "db,web"),
    # the last number varies; the rest is kept around it
    (["r1n1", "r1n2", "r2n1"], "r1n[1-2],r2n1"),
    (["www01.example.com", "www02.example.com"], "www[01-02].example.com"),
    (["n1", "n3", "n5"], "n[1,3,5]"),
]


@pytest.mark.parametrize(("names", "folded"), FOLD)
def test_fold(names: list[str], folded: str) -> None:
    assert fold(names) == folded


def test_has_range() -> None:
    assert hostrange.has_range("n[1:2]")
    assert hostrange.has_range("n]")
    assert not hostrange.has_range("node1.example.com")


NAME = st.from_regex(r"[a-z][a-z0-9._-]{0,12}", fullmatch=True)


@given(st.lists(NAME, max_size=40))
def test_fold_then_expand_gives_back_the_names(names: list[str]) -> None:
    if not names:
        assert fold(names) == ""
    else:
        assert sorted(expand(fold(names))) == sorted(set(names))


@given(st.lists(st.integers(0, 300), min_size=1, max_size=60), st.sampled_from([0, 2, 3]))
def test_fold_of_padded_numbers(numbers: list[int], width: int) -> None:
    names = [f"n{number:0{width}d}" for number in numbers]
    folded = fold(names)
    assert folded.count("[") <= 1
    assert sorted(expand(folded)) == sorted(set(names))


PATTERN_CHARS = st.text(alphabet="ab01239[]:-,/ x.", max_size=24)


@settings(max_examples=400)
@given(PATTERN_CHARS)
def test_arbitrary_patterns_raise_only_host_range_errors(pattern: str) -> None:
    with mock.patch.object(hostrange, "MAX_NAMES", 5_000):
        try:
            names = expand(pattern)
        except HostRangeError:
            return
    assert names and all(isinstance(name, str) for name in names)
    assert len(names) == len(set(names))


@given(st.text(max_size=30))
def test_any_text_raises_only_host_range_errors(pattern: str) -> None:
    with mock.patch.object(hostrange, "MAX_NAMES", 5_000), contextlib.suppress(HostRangeError):
        expand(pattern)
