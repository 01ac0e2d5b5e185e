"""Property: whatever a recipe file holds, loading and planning it either work or raise RecipeError.

Never a KeyError, a TypeError, a traceback: a bad recipe is always one message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings, strategies as st

from apssh_cli.inventory.model import Inventory
from apssh_cli.recipe.loader import STEP_KEYS, parse_recipe
from apssh_cli.recipe.model import RecipeError
from apssh_cli.recipe.planner import Selection, make_plan

INVENTORY = Inventory.from_toml_text(
    """
[bastions.hosts.bastion]
hostname = "127.0.0.1"
[nodes.vars]
gateway = "bastion"
[nodes.hosts.node1]
rate = 1
[nodes.hosts.node2]
"""
)

# pieces that make templates and patterns interesting
WORDS = st.sampled_from(
    [
        "a", "b", "nodes", "node1", "all", "bastion", "!node2", "&nodes", "node[1-2]",
        "{size}", "{x}", "{host}", "{rate:q}", "{cap.v}", "{cap.v@node1}", "{cap.v[*]}",
        "{ok.a}", "{failed.b}", "{group.nodes}", "{{", "}}", "{", "}", "{cap.}", "{ok.}",
        "x.sh", "go.sh", "/tmp/x", "50%", "1s", "10ms", "true", "false", "host", " ",
    ]
)  # fmt: skip
TEXT = st.lists(WORDS, max_size=4).map("".join) | st.text(max_size=8)
SCALAR = TEXT | st.integers(-3, 300) | st.booleans() | st.floats(allow_nan=False, width=16)
VALUE = SCALAR | st.lists(SCALAR, max_size=3)
OFTEN = st.sampled_from([True, True, True, True, True, False])  # integers() favour 0
IDS = st.sampled_from(["a", "b", "c"]) | st.sampled_from(["A", "a b", ""])
GOOD_KEYS = sorted(STEP_KEYS - {"id", "do", "run", "local", "script", "pull", "push", "args", "to"})
STEP_KEY = st.sampled_from(sorted(STEP_KEYS)) | st.sampled_from(["zz", "ID"])


# plausible values per key, so that many examples get past the first check
PLAUSIBLE: dict[str, Any] = {
    "hosts": WORDS,
    "run": TEXT,
    "local": TEXT,
    "script": st.sampled_from(["go.sh", "missing.sh", "{x}.sh"]),
    "pull": TEXT,
    "push": st.sampled_from(["go.sh", "nope"]),
    "to": TEXT,
    "args": st.lists(TEXT, max_size=2),
    "capture": st.sampled_from(["v", "w", "1"]),
    "sync": st.sampled_from(["all", "host", "x"]),
    "max_fail": st.sampled_from([0, 1, "50%", "x"]),
    "timeout": st.sampled_from(["1s", 0, "x"]),
    "enabled": st.sampled_from([True, False, "{x}", "{size}", "maybe"]),
    "background": st.booleans(),
    "always": st.booleans(),
    "once": st.booleans(),
}


@st.composite
def step_tables(draw: Any) -> dict[str, Any]:
    table: dict[str, Any] = {}
    if draw(OFTEN):
        table["id"] = draw(st.sampled_from(["a", "b", "c"]) if draw(OFTEN) else IDS)
    action = draw(st.sampled_from(["run", "local", "script", "pull"]))
    table[action] = draw(PLAUSIBLE[action] if draw(OFTEN) else TEXT)
    if action != "local" and draw(OFTEN):
        table["hosts"] = draw(st.sampled_from(["nodes", "node1", "all"]) | WORDS)
    keys = st.sampled_from(GOOD_KEYS) if draw(OFTEN) else STEP_KEY
    for key in draw(st.lists(keys, max_size=4)):
        if key in PLAUSIBLE and draw(OFTEN):
            table[key] = draw(PLAUSIBLE[key])
        elif key in ("requires", "stop_after"):
            table[key] = draw(st.lists(IDS, max_size=2) | IDS)
        elif key == "do":
            table[key] = draw(
                st.lists(
                    st.dictionaries(st.sampled_from(["run", "pull", "args", "to", "local"]), VALUE),
                    max_size=2,
                )
            )
        else:
            table[key] = draw(VALUE)
    return table


@st.composite
def recipes(draw: Any) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if draw(OFTEN):  # mostly a good head, to reach the steps
        data["recipe"] = {"name": "a", "format": 1}
    elif draw(st.booleans()):
        data["recipe"] = {
            "name": draw(IDS),
            "format": draw(st.sampled_from([1, 2, "1"])),
            draw(st.sampled_from(["window", "timeout", "x"])): draw(VALUE),
        }
    names = st.sampled_from(["x", "size"]) if draw(OFTEN) else st.just("1x")
    if draw(st.booleans()):
        data["vars"] = draw(st.dictionaries(names, VALUE, max_size=2))
    if draw(st.booleans()):
        good = st.lists(st.integers(0, 3), min_size=1, max_size=3, unique=True)
        matrix_value = good if draw(OFTEN) else VALUE
        data["matrix"] = draw(st.dictionaries(names, matrix_value, max_size=2))
    data["step"] = draw(
        st.lists(step_tables(), min_size=draw(st.sampled_from([1, 1, 1, 0])), max_size=4)
    )
    return data


def to_toml(data: dict[str, Any]) -> str:
    """A tiny TOML writer: enough for tables, arrays of tables and scalar values."""

    def dumps(item: Any) -> str:
        return json.dumps(item, ensure_ascii=False)

    def value(item: Any) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, list):
            return "[" + ", ".join(value(v) for v in item) + "]"
        if isinstance(item, dict):
            return "{" + ", ".join(f"{dumps(k)} = {value(v)}" for k, v in item.items()) + "}"
        return dumps(item)

    out = []
    for key, table in data.items():
        if isinstance(table, list):
            for entry in table:
                out.append(f"[[{key}]]")
                out.extend(f"{dumps(k)} = {value(v)}" for k, v in entry.items())
        else:
            out.append(f"[{key}]")
            out.extend(f"{dumps(k)} = {value(v)}" for k, v in table.items())
    return "\n".join(out) + "\n"


def load_and_plan(text: str, directory: Path, selection: Selection) -> None:
    try:
        recipe = parse_recipe(text, directory / "r.toml")
        make_plan(recipe, INVENTORY, selection, run_dir=directory / "run")
    except RecipeError as exc:
        assert exc.source is not None or "resume" in exc.message or exc.message
        assert str(exc)


@settings(max_examples=300)
@given(data=recipes(), pattern=st.sampled_from([None, "nodes", "zz", "node1", ""]))
def test_structured_recipes_only_raise_recipe_errors(
    tmp_path_factory: Any, data: dict[str, Any], pattern: str | None
) -> None:
    directory = tmp_path_factory.getbasetemp()
    (directory / "go.sh").write_text("#!/bin/sh\n")
    load_and_plan(to_toml(data), directory, Selection(pattern=pattern))


@settings(max_examples=300)
@given(text=st.text(max_size=200))
def test_arbitrary_text_only_raises_recipe_errors(tmp_path_factory: Any, text: str) -> None:
    load_and_plan(text, tmp_path_factory.getbasetemp(), Selection())
