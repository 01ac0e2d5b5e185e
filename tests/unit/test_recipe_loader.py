"""Recipe files: what loads, and every bad input as ONE RecipeError with file, step and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from apssh_cli.inventory.model import Inventory
from apssh_cli.recipe.checks import repeating_steps
from apssh_cli.recipe.loader import load_recipe, parse_recipe
from apssh_cli.recipe.model import RecipeError, parse_duration
from apssh_cli.recipe.planner import Selection, make_plan

HEAD = '[recipe]\nname = "t"\nformat = 1\n'

INVENTORY = """
[all.vars]
user = "root"
[bastions.hosts.bastion]
hostname = "127.0.0.1"
[nodes.vars]
gateway = "bastion"
[nodes.hosts.node1]
rate = 10
[nodes.hosts.node2]
rate = 20
"""


def write(tmp_path: Path, body: str, head: str = HEAD) -> Path:
    path = tmp_path / "r.toml"
    path.write_text(head + body)
    (tmp_path / "go.sh").write_text("#!/bin/sh\necho go\n")
    return path


def load(tmp_path: Path, body: str, head: str = HEAD) -> object:
    return load_recipe(write(tmp_path, body, head))


def test_a_full_recipe_loads(tmp_path: Path) -> None:
    recipe = load_recipe(
        write(
            tmp_path,
            """
window = 4
[vars]
packets = 10
[matrix]
size = [1, 2]
[[step]]
id = "init"
hosts = "nodes"
script = "go.sh"
args = ["init", 3]
timeout = "60s"
[[step]]
id = "measure"
hosts = "nodes"
requires = ["init"]
sync = "host"
max_fail = "50%"
[[step.do]]
run = "echo {size} {packets}"
[[step.do]]
pull = "out"
[[step]]
id = "sum"
requires = "measure"
local = "ls {combo_dir}"
""",
            head='[recipe]\nname = "t"\nformat = 1\n',
        )
    )
    assert [s.id for s in recipe.steps] == ["init", "measure", "sum"]
    measure = recipe.step("measure")
    assert [a.kind for a in measure.actions] == ["run", "pull"]
    assert measure.tolerated(3) == 1
    assert recipe.step("init").timeout == 60.0
    assert recipe.step("init").actions[0].args == ("init", "3")
    assert repeating_steps(recipe) == {"measure", "sum"}


# (body, expected message fragment, step, line) -- line counted in the whole file (HEAD is 3)
BAD = [
    ("[[step]\nid = 'a'\n", "invalid TOML", None, 4),
    ("[other]\nx = 1\n", "unknown key 'other'", None, 4),
    ("", "no [[step]]", None, None),
    ("[[step]]\nhosts = 'all'\nrun = 'x'\n", "id is required", None, 4),
    ("[[step]]\nid = 'Bad Id'\nhosts = 'all'\nrun = 'x'\n", "id 'Bad Id' is required", None, 5),
    ("[[step]]\nid = 'a'\nhosts = 'all'\nrun = 'x'\ncolour = 1\n", "unknown key 'colour'", "a", 8),
    (
        "[[step]]\nid = 'a'\nhosts = 'all'\nrun = 'x'\n"
        "[[step]]\nid = 'a'\nhosts = 'all'\nrun = 'y'\n",
        "duplicate id",
        "a",
        9,
    ),
    (
        "[[step]]\nid = 'a'\nhosts = 'all'\nrun = 'x'\nrequires = ['b']\n",
        "unknown step 'b'",
        "a",
        4,
    ),
    (
        "[[step]]\nid = 'a'\nhosts = 'all'\nrun = 'x'\nrequires = ['b']\n"
        "[[step]]\nid = 'b'\nhosts = 'all'\nrun = 'x'\nrequires = ['a']\n",
        "cycle in requires: a -> b -> a",
        "a",
        4,
    ),
    ("[[step]]\nid = 'a'\nhosts = 'all'\nscript = 'missing.sh'\n", "file not found", "a", 7),
    ("[[step]]\nid = 'a'\nhosts = 'all'\nrun = 'echo {oops'\n", "unclosed '{'", "a", 7),
    ("[[step]]\nid = 'a'\nhosts = 'all'\nrun = 'echo }'\n", "lone '}'", "a", 7),
    ("[[step]]\nid = 'a'\nhosts = 'all'\n", "no action", "a", 4),
    ("[[step]]\nid = 'a'\nhosts = 'all'\nrun = 'x'\nlocal = 'y'\n", "one action per", "a", 8),
    ("[[step]]\nid = 'a'\nhosts = 'all'\nlocal = 'y'\n", "remove hosts", "a", 6),
    ("[[step]]\nid = 'a'\nrun = 'x'\n", "hosts is required", "a", 4),
    ("[[step]]\nid = 'a'\nhosts = 'all'\nrun = 'x'\ntimeout = 'soon'\n", "not a duration", "a", 8),
    ("[[step]]\nid = 'a'\nhosts = 'all'\nrun = 'x'\nmax_fail = '120%'\n", "max_fail", "a", 8),
    ("[[step]]\nid = 'a'\nhosts = 'all'\nrun = 'x'\nstop_after = ['a']\n", "background", "a", 8),
    ("[[step]]\nid = 'a'\nhosts = 'all'\nrun = 'x'\nok_exits = ['NOPE']\n", "signal", "a", 8),
    ("[[step]]\nid = 'a'\nhosts = 'all'\nrun = 'x'\nargs = ['1']\n", "args go with", "a", 8),
    (
        "[[step]]\nid = 'a'\nhosts = 'all'\nrun = 'x'\ncapture = 'v'\n"
        "[[step]]\nid = 'b'\nhosts = 'all'\nrun = 'echo {cap.v}'\n",
        "not an ancestor",
        "b",
        12,
    ),
    (
        "[[step]]\nid = 'a'\nhosts = 'all'\nrun = 'x'\ncapture = 'v'\n"
        "[[step]]\nid = 'b'\nhosts = '{cap.v}'\nrun = 'x'\nrequires = ['a']\n",
        "not allowed in hosts",
        "b",
        11,
    ),
    ("[[step]]\nid = 'a'\nhosts = 'all'\nrun = 'echo {ok.zz}'\n", "unknown step 'zz'", "a", 7),
    ("[[step]]\nid = 'a'\nlocal = 'echo {host}'\n", "a local step has no host", "a", 6),
    ("[[step]]\nid = 'a'\nlocal = 'echo {nothing}'\n", "unknown name 'nothing'", "a", 6),
    (
        "[[step]]\nid = 'a'\nhosts = 'all'\n[[step.do]]\nrun = 'x'\nto = 'y'\n",
        "to goes with",
        "a",
        9,
    ),
]


@pytest.mark.parametrize(("body", "fragment", "step", "line"), BAD)
def test_bad_recipes_give_one_error_with_file_step_and_line(
    tmp_path: Path, body: str, fragment: str, step: str | None, line: int | None
) -> None:
    with pytest.raises(RecipeError) as caught:
        load(tmp_path, body)
    error = caught.value
    assert fragment in error.message
    assert error.source == str(tmp_path / "r.toml")
    assert error.step == step
    if line is not None:
        assert error.line == line, str(error)


@pytest.mark.parametrize(
    ("body", "message", "line"),
    [
        (
            "[[step]]\nid = 'a'\nhosts = 'all'\nrun = 'x'\nrequries = []\n",
            "unknown key 'requries' (did you mean requires, retries?)",
            8,
        ),
        (
            "[[step]]\nid = 'a'\nhosts = 'all'\nrun = 'x'\ntimout = 5\n",
            "unknown key 'timout' (did you mean timeout?)",
            8,
        ),
        (
            "[[step]]\nid = 'a'\nhots = 'all'\nrun = 'x'\n",
            "unknown key 'hots' (did you mean hosts?)",
            6,
        ),
        (  # nothing near: no hint
            "[[step]]\nid = 'a'\nhosts = 'all'\nrun = 'x'\ncolour = 1\n",
            "unknown key 'colour'",
            8,
        ),
        (
            "[[step]]\nid = 'a'\nhosts = 'all'\n[[step.do]]\nrun = 'x'\nags = ['1']\n",
            "do[1]: unknown key 'ags' (did you mean args?) (an action: run, script, string, "
            "push, pull, local, with args or to)",
            9,
        ),
        (
            "[var]\nx = 1\n[[step]]\nid = 'a'\nlocal = 'x'\n",
            "unknown key 'var' (did you mean vars?)",
            4,
        ),
    ],
)
def test_unknown_keys_suggest_near_ones_as_the_inventory_does(
    tmp_path: Path, body: str, message: str, line: int
) -> None:
    with pytest.raises(RecipeError) as caught:
        load(tmp_path, body)
    assert (caught.value.message, caught.value.line) == (message, line)


def test_an_unknown_recipe_key_lists_the_known_ones_when_none_is_near(tmp_path: Path) -> None:
    with pytest.raises(RecipeError) as caught:
        load(tmp_path, "[[step]]\nid = 'a'\nlocal = 'x'\n", head=HEAD + "windw = 2\n")
    assert caught.value.message == "[recipe]: unknown key 'windw' (did you mean window?)"
    with pytest.raises(RecipeError) as caught:
        load(tmp_path, "[[step]]\nid = 'a'\nlocal = 'x'\n", head=HEAD + "zz = 2\n")
    assert caught.value.message == (
        "[recipe]: unknown key 'zz' (known: description, format, name, timeout, window)"
    )


@pytest.mark.parametrize(
    ("head", "fragment"),
    [
        ('[recipe]\nname = "t"\n', "format is required"),
        ('[recipe]\nname = "t"\nformat = 2\n', "format 2 is not supported"),
        ("[recipe]\nformat = 1\n", "name is required"),
        ('[recipe]\nname = "T T"\nformat = 1\n', "name is required"),
        ('[recipe]\nname = "t"\nformat = 1\ncolor = 1\n', "unknown key 'color'"),
        ('[recipe]\nname = "t"\nformat = 1\n[matrix]\nsize = []\n', "non-empty list"),
        ('[recipe]\nname = "t"\nformat = 1\n[matrix]\nsize = [1, 2, 1]\n', "is repeated"),
        ('[recipe]\nname = "t"\nformat = 1\n[matrix]\nsize = [1, "1"]\n', "is repeated"),
    ],
)
def test_bad_recipe_table(tmp_path: Path, head: str, fragment: str) -> None:
    with pytest.raises(RecipeError, match=fragment):
        load(tmp_path, "[[step]]\nid = 'a'\nlocal = 'x'\n", head=head)


def test_unreadable_and_not_utf8(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="cannot read recipe"):
        load_recipe(tmp_path / "nope.toml")
    path = tmp_path / "bin.toml"
    path.write_bytes(b'[recipe]\nname = "\xff"\n')
    with pytest.raises(RecipeError, match="not UTF-8") as caught:
        load_recipe(path)
    assert caught.value.line == 2


def plan_of(tmp_path: Path, body: str, **selection: object) -> object:
    recipe = load(tmp_path, body)
    inventory = Inventory.from_toml_text(INVENTORY)
    return make_plan(recipe, inventory, Selection(**selection), run_dir=tmp_path / "run")  # type: ignore[arg-type]


def test_pattern_that_matches_nothing_is_an_error_at_plan_time(tmp_path: Path) -> None:
    with pytest.raises(RecipeError) as caught:
        plan_of(tmp_path, "[[step]]\nid = 'a'\nhosts = 'nodez'\nrun = 'x'\n")
    assert caught.value.step == "a"
    assert caught.value.line == 6  # the hosts line
    assert "nodez" in caught.value.message


def test_host_variables_resolve_and_unknown_names_fail(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, "[[step]]\nid = 'a'\nhosts = 'nodes'\nrun = 'rate {rate:q} {host}'\n")
    texts = [task.actions[0].describe() for task in plan.tasks]  # type: ignore[attr-defined]
    assert texts == ["rate 10 node1", "rate 20 node2"]
    with pytest.raises(RecipeError, match="unknown name 'speed'") as caught:
        plan_of(tmp_path, "[[step]]\nid = 'a'\nhosts = 'nodes'\nrun = 'x {speed}'\n")
    assert caught.value.step == "a"


def test_cap_of_a_multi_host_step_in_a_local_step_needs_a_host(tmp_path: Path) -> None:
    body = (
        "[[step]]\nid = 'a'\nhosts = 'nodes'\nrun = 'x'\ncapture = 'v'\n"
        "[[step]]\nid = 'b'\nrequires = ['a']\nlocal = 'echo {cap.v}'\n"
    )
    with pytest.raises(RecipeError, match=r"runs on 2 hosts.*cap\.v@HOST"):
        plan_of(tmp_path, body)
    ok = body.replace("{cap.v}", "{cap.v@node2} {cap.v[*]}")
    plan = plan_of(tmp_path, ok)
    assert plan.tasks[-1].actions[0].describe() == "echo {cap.v@node2} {cap.v[*]}"  # type: ignore[attr-defined]


def test_only_and_from_select_steps(tmp_path: Path) -> None:
    body = (
        "[[step]]\nid = 'a'\nhosts = 'nodes'\nrun = 'x'\n"
        "[[step]]\nid = 'b'\nhosts = 'nodes'\nrun = 'y'\nrequires = ['a']\n"
        "[[step]]\nid = 'c'\nhosts = 'node1'\nrun = 'z'\nrequires = ['b']\n"
    )
    plan = plan_of(tmp_path, body, start="b")
    assert {t.step.id for t in plan.tasks} == {"b", "c"}  # type: ignore[attr-defined]
    plan = plan_of(tmp_path, body, only=("a", "c"))
    assert {t.step.id for t in plan.tasks} == {"a", "c"}  # type: ignore[attr-defined]
    plan = plan_of(tmp_path, body, pattern="node2")
    assert [t.key for t in plan.tasks] == ["a/node2", "b/node2"]  # type: ignore[attr-defined]
    with pytest.raises(RecipeError, match="no step 'zz'"):
        plan_of(tmp_path, body, only=("zz",))


def test_vars_precedence_and_enabled(tmp_path: Path) -> None:
    body = (
        "[vars]\nx = 'vars'\nflag = false\n[matrix]\nm = [1]\n"
        "[[step]]\nid = 'a'\nhosts = 'node1'\nrun = 'echo {x} {m}'\n"
        "[[step]]\nid = 'b'\nhosts = 'node1'\nrun = 'y'\nenabled = '{flag}'\n"
    )
    plan = plan_of(tmp_path, body)
    assert plan.tasks[0].actions[0].describe() == "echo vars 1"  # type: ignore[attr-defined]
    assert [t.step.id for t in plan.tasks] == ["a"]  # type: ignore[attr-defined]
    plan = plan_of(tmp_path, body, variables={"x": "cli", "m": 7, "flag": True})
    assert plan.tasks[0].actions[0].describe() == "echo cli 7"  # type: ignore[attr-defined]
    assert [t.step.id for t in plan.tasks] == ["a", "b"]  # type: ignore[attr-defined]
    # --var on a matrix key narrows (or widens) the sweep
    plan = plan_of(tmp_path, body, variables={"m": [3, 4]})
    assert [t.key for t in plan.tasks] == ["a@m=3/node1", "a@m=4/node1"]  # type: ignore[attr-defined]


def test_durations() -> None:
    assert parse_duration("500ms") == 0.5
    assert parse_duration("10m") == 600
    assert parse_duration("1h") == 3600
    assert parse_duration(3) == 3
    for bad in ("", "1d", True, -1, 0, "ms"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_the_example_recipes_check(tmp_path: Path) -> None:
    recipes = Path(__file__).parents[2] / "recipes"
    inventory = Inventory.from_toml_text(INVENTORY.replace("node2]", "node2]\n[nodes.hosts.node3]"))
    names = sorted(path.name for path in recipes.glob("*.toml"))
    assert len(names) >= 3
    for name in names:
        recipe = load_recipe(recipes / name)
        plan = make_plan(recipe, inventory, run_dir=tmp_path / name)
        assert plan.tasks, name


def test_parse_recipe_from_text() -> None:
    recipe = parse_recipe(HEAD + "[[step]]\nid = 'a'\nlocal = 'true'\n", "mem.toml")
    assert recipe.name == "t"
    assert recipe.source == "mem.toml"


def test_a_pull_destination_shared_by_hosts_is_refused(tmp_path: Path) -> None:
    body = "[[step]]\nid = 'a'\nhosts = 'nodes'\npull = '/tmp/x'\nto = 'results/'\n"
    with pytest.raises(RecipeError, match=r"put \{host\} in it") as caught:
        plan_of(tmp_path, body)
    assert caught.value.line == 7
    plan = plan_of(tmp_path, body.replace("results/", "results/{host}/"))
    assert [t.actions[0].describe() for t in plan.tasks] == [  # type: ignore[attr-defined]
        f"pull /tmp/x -> {tmp_path}/run/results/node1/",
        f"pull /tmp/x -> {tmp_path}/run/results/node2/",
    ]


def test_a_script_under_an_unknown_home_is_a_recipe_error(tmp_path: Path) -> None:
    # found by hypothesis: Path.expanduser raised RuntimeError for `~0` (no such user)
    text = '[recipe]\nname = "a"\nformat = 1\n[[step]]\nid = "a"\nhosts = "nodes"\nscript = "~0"\n'
    with pytest.raises(RecipeError, match="file not found: ~0"):
        parse_recipe(text, tmp_path / "r.toml")
