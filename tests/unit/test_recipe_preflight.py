"""A recipe run's options are checked before anything connects (issue 20, point 4).

Each bad option is one message and exit 1, with no run directory made and no TCP
connection opened: the inventory's hosts point at a listener of ours that counts
the connections it is offered (and closes them, so that a run that does get
through fails fast as unreachable: the positive control).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from apssh_cli.inventory.model import Inventory
from apssh_cli.recipe.loader import parse_recipe
from apssh_cli.recipe.model import RecipeError
from apssh_cli.recipe.planner import Selection, make_plan
from apssh_cli.recipe.preflight import (
    check_variables,
    empty_steps,
    parse_variables,
    preflight,
    unused_variables,
)

from .climain import apssh

HEAD = '[recipe]\nname = "pre"\nformat = 1\n'

# init captures on each node, measure reads it, once per size
SWEEP = (
    HEAD
    + """\
[matrix]
size = [1, 2]
[[step]]
id = "init"
hosts = "nodes"
run = "echo {host}"
capture = "who"
[[step]]
id = "measure"
hosts = "nodes"
requires = ["init"]
run = "echo {size} {cap.who}"
"""
)

# the same DAG on the controller: runs without SSH
LOCAL = (
    HEAD
    + """\
[matrix]
size = [1, 2]
[[step]]
id = "init"
local = "echo init{size}"
capture = "who"
[[step]]
id = "measure"
requires = ["init"]
local = "echo {cap.who} > {combo_dir}/measured"
"""
)


class Listener:
    """A TCP port on 127.0.0.1 that accepts and closes at once, counting the connections."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port: int = self.socket.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                peer, _ = self.socket.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            peer.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.socket.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def inventory(tmp_path: Path, listener: Listener, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("APSSH_INVENTORY", raising=False)
    path = tmp_path / "inv.toml"
    path.write_text(
        f'[nodes.vars]\nhostname = "127.0.0.1"\nport = {listener.port}\n'
        "[nodes.hosts.node1]\n[nodes.hosts.node2]\n"
        '[bastion.hosts.bastion]\nhostname = "127.0.0.1"\nport = 1\n'
    )
    return str(path)


def write(tmp_path: Path, text: str, name: str = "pre.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, listener: Listener, *argv: str
) -> str:
    """Run `apssh recipe run ...`; check: exit 1, nothing on stdout, no run directory, no
    connection; return the one line of stderr."""
    code, out, err = apssh(capsys, "recipe", "run", *argv)
    assert (code, out) == (1, ""), err
    assert len(err.splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()
    assert listener.accepted == 0
    return err


# ------------------------------------------------------------------ positive control


def test_a_run_that_passes_the_checks_does_connect(
    tmp_path: Path, inventory: str, listener: Listener, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = write(tmp_path, SWEEP)
    code, _, err = apssh(capsys, "recipe", "run", recipe, "-i", inventory, "-q")
    assert code == 5, err  # the listener is no sshd: unreachable, the recipe aborted
    assert "init: unreachable node[1-2]" in err
    assert listener.accepted >= 2
    assert (tmp_path / "runs" / "pre").is_dir()


# ------------------------------------------------------------------ --only / --from


@pytest.mark.parametrize(
    ("selection", "how"),
    [(("--only", "measure"), "--only measure"), (("--from", "measure"), "--from measure")],
)
def test_a_capture_left_out_without_resume_is_a_usage_error(
    tmp_path: Path,
    inventory: str,
    listener: Listener,
    capsys: pytest.CaptureFixture[str],
    selection: tuple[str, str],
    how: str,
) -> None:
    recipe = write(tmp_path, SWEEP)
    err = refused(capsys, tmp_path, listener, recipe, "-i", inventory, *selection)
    assert err == (
        f"apssh: {recipe}:15: step 'measure': {{cap.who}}: step 'init', which captures it, is "
        f"left out by {how}: its value would come from an earlier run; give --resume "
        "[RUN_DIR], or run 'init' too\n"
    )


def test_only_with_the_capturing_step_too_passes(
    tmp_path: Path, inventory: str, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = parse_recipe(SWEEP, tmp_path / "pre.toml")
    plan = make_plan(
        recipe, Inventory.load([inventory]), Selection(only=("init", "measure")), run_dir="r"
    )
    assert preflight(plan) == []


def test_only_with_resume_takes_the_captures_of_the_resumed_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APSSH_INVENTORY", raising=False)
    recipe = write(tmp_path, LOCAL)
    run_dir = tmp_path / "run"
    code, _, err = apssh(
        capsys, "recipe", "run", recipe, "--only", "init", "--run-dir", str(run_dir), "-q"
    )
    assert code == 0, err
    assert not (run_dir / "size=1" / "measured").exists()
    code, _, err = apssh(
        capsys, "recipe", "run", recipe, "--only", "measure", "--resume", str(run_dir)
    )
    assert code == 0, err
    assert (run_dir / "size=1" / "measured").read_text() == "init1\n"
    assert (run_dir / "size=2" / "measured").read_text() == "init2\n"
    # a combination the resumed run never had: its capture is not there, said before running
    code, out, err = apssh(
        capsys, "recipe", "run", recipe, "--only", "measure", "--resume", str(run_dir),
        "--var", "size=3",
    )  # fmt: skip
    assert (code, out) == (1, "")
    assert err == (
        f"apssh: {recipe}:13: step 'measure': {{cap.who}}: the run in {run_dir} has no value "
        "of 'who' for size=3 (step 'init', left out by --only measure, did not capture it "
        "there): run 'init' too\n"
    )
    assert not (run_dir / "size=3").exists()


def test_the_hosts_of_a_step_left_out_are_an_empty_list_said_as_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APSSH_INVENTORY", raising=False)
    body = (
        HEAD + '[[step]]\nid = "a"\nlocal = "true"\n'
        '[[step]]\nid = "b"\nrequires = ["a"]\nlocal = "echo ok:{ok.a}:{failed.a}:"\n'
    )
    recipe = write(tmp_path, body)
    warnings = [
        f"{recipe}:10: step 'b': {{{kind}.a}}: step 'a' is left out by --only b: no host of it "
        "ends in this run, the list is empty (also with --resume)"
        for kind in ("ok", "failed")
    ]
    code, out, err = apssh(capsys, "recipe", "run", recipe, "--only", "b")
    assert code == 0 and out == "b local: ok:::\n"  # what the warning is about
    assert err.splitlines()[:2] == [f"apssh: warning: {line}" for line in warnings]
    code, _, err = apssh(capsys, "recipe", "check", recipe, "--only", "b", "--strict")
    assert code == 1 and err.splitlines()[-1] == f"apssh: {warnings[1]} (--strict)"
    code, _, err = apssh(capsys, "recipe", "run", recipe)  # a runs: nothing to say
    assert code == 0 and "warning" not in err


# ------------------------------------------------------------------ --var


@pytest.mark.parametrize(
    ("var", "message"),
    [
        (
            "count=[1,",
            "--var count=[1,: not valid TOML (invalid value at the end); for a string, "
            "quote it: count='[1,'",
        ),
        (
            "size=[]",
            "--var size=[]: a matrix key needs at least one value (without --var: "
            "the recipe's 1, 2)",
        ),
        (
            "size=[1, 2, 1]",
            "--var size: 1 is given twice (each value is one combination of the sweep)",
        ),
        (
            'size=[1, "1"]',
            "--var size: '1' is given twice (each value is one combination of the sweep)",
        ),
        (
            "size={a = 1}",
            "--var size: the values of a matrix key are strings, numbers or booleans, not a table",
        ),
        (
            "n={a = 1}",
            "--var n: a table is not a value a recipe takes (a string, number, "
            "boolean or a list of them)",
        ),
        (
            "n=[[1], [2]]",
            "--var n: [[1], [2]] is not a value a recipe takes (a string, "
            "number, boolean or a list of them)",
        ),
    ],
)
def test_a_bad_var_value_is_one_message_before_anything_runs(
    tmp_path: Path,
    inventory: str,
    listener: Listener,
    capsys: pytest.CaptureFixture[str],
    var: str,
    message: str,
) -> None:
    recipe = write(tmp_path, SWEEP.replace('run = "echo {host}"', 'run = "echo {host} {n}"'))
    err = refused(capsys, tmp_path, listener, recipe, "-i", inventory, "--var", var)
    assert err.removeprefix("apssh: ").removeprefix(f"{recipe}: ") == message + "\n"


def test_var_values_read_as_toml_only_when_they_are_one_value() -> None:
    assert parse_variables(["n=10", "flag=true", "words=a b", "sizes=[1, 2]"]) == {
        "n": 10,
        "flag": True,
        "words": "a b",
        "sizes": [1, 2],
    }
    # a date is a string for a recipe; `a=1<newline>b=2` is no single value: both the text
    assert parse_variables(["day=2026-12-03", "two=1\nb=2"]) == {
        "day": "2026-12-03",
        "two": "1\nb=2",
    }
    # a quoted value is the string it quotes; the suggested quoting gives the text back
    assert parse_variables(["s='[1,'"]) == {"s": "[1,"}
    with pytest.raises(RecipeError) as caught:
        parse_variables(["s=\"it's"])
    suggested = caught.value.message.split("quote it: ")[1]
    assert parse_variables([suggested]) == {"s": "\"it's"}
    with pytest.raises(RecipeError, match="write KEY=VALUE"):
        parse_variables(["noequal"])


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_var_text_is_a_value_or_one_recipe_error_whose_quoting_gives_it_back(
    text: str,
) -> None:
    try:
        value = parse_variables([f"k={text}"])["k"]
    except RecipeError as error:
        assert text.strip()[:1] in "[{\"'" and text.strip()
        suggested = error.message.rsplit("quote it: ", 1)[1]
        assert parse_variables([suggested]) == {"k": text}
    else:
        assert isinstance(value, str | int | float | bool | list | dict)
        if isinstance(value, str) and not text.strip().startswith(("'", '"')):
            assert value == text  # not TOML: the text as written


def test_check_variables_takes_what_the_loader_takes(tmp_path: Path) -> None:
    recipe = parse_recipe(SWEEP, tmp_path / "pre.toml")
    check_variables(recipe, {"size": [3, 4], "n": ["a", 1, True], "m": 1.5})
    check_variables(recipe, {"size": 7})
    with pytest.raises(RecipeError, match="given twice"):
        check_variables(recipe, {"size": (1, 1)})


def test_a_var_the_recipe_never_uses_is_a_warning_with_a_suggestion(
    tmp_path: Path, inventory: str, listener: Listener, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = write(tmp_path, SWEEP.replace('run = "echo {host}"', 'run = "echo {samples}"'))
    warning = (
        f"{recipe}: --var sampels: the recipe never uses it (no template reads {{sampels}}, "
        "and it is no matrix key) (did you mean samples?)"
    )
    argv = ["-i", inventory, "--var", "samples=1", "--var", "sampels=5"]
    code, out, err = apssh(capsys, "recipe", "check", recipe, *argv)
    assert code == 0 and out.startswith(f"{recipe}: ok")
    assert err == f"apssh: warning: {warning}\n"
    code, out, err = apssh(capsys, "recipe", "check", recipe, *argv, "--strict")
    assert (code, out, err) == (1, "", f"apssh: {warning} (--strict)\n")
    err = refused(capsys, tmp_path, listener, recipe, *argv, "--strict")
    assert err == f"apssh: {warning} (--strict)\n"


def test_names_in_use_are_template_names_and_matrix_keys(tmp_path: Path) -> None:
    recipe = parse_recipe(
        SWEEP + '[[step]]\nid = "x"\nhosts = "{where}"\nenabled = "{on}"\nrun = "true"\n',
        tmp_path / "pre.toml",
    )
    assert unused_variables(recipe, ["size", "host", "where", "on", "who"]) == [
        f"{recipe.source}: --var who: the recipe never uses it (no template reads {{who}}, "
        "and it is no matrix key)"
    ]


# ------------------------------------------------------------------ steps with no host


def test_a_step_whose_pattern_selects_no_host_is_a_warning_an_error_with_strict(
    tmp_path: Path, inventory: str, listener: Listener, capsys: pytest.CaptureFixture[str]
) -> None:
    body = LOCAL + '[[step]]\nid = "none"\nhosts = "nodes,!nodes"\nrun = "true"\n'
    recipe = write(tmp_path, body)
    warning = (
        f"{recipe}:16: step 'none': hosts 'nodes,!nodes' selects no host: the step does nothing"
    )
    code, _, err = apssh(capsys, "recipe", "check", recipe, "-i", inventory)
    assert code == 0 and err == f"apssh: warning: {warning}\n"
    code, _, err = apssh(capsys, "recipe", "check", recipe, "-i", inventory, "--strict")
    assert code == 1 and err == f"apssh: {warning} (--strict)\n"
    err = refused(capsys, tmp_path, listener, recipe, "-i", inventory, "--strict")
    assert err == f"apssh: {warning} (--strict)\n"
    # without --strict the run goes on
    code, _, err = apssh(capsys, "recipe", "run", recipe, "-i", inventory, "-q")
    assert code == 0 and err.startswith(f"apssh: warning: {warning}\n")


def test_g_that_leaves_every_step_without_a_host(
    tmp_path: Path, inventory: str, listener: Listener, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = write(tmp_path, SWEEP)
    lines = [
        f"{recipe}:8: step 'init': hosts 'nodes' with -g 'bastion' selects no host: the step "
        "does nothing",
        f"{recipe}:13: step 'measure': hosts 'nodes' with -g 'bastion' selects no host: the "
        "step does nothing",
    ]
    code, _, err = apssh(capsys, "recipe", "plan", recipe, "-i", inventory, "-g", "bastion")
    assert code == 0 and err == "".join(f"apssh: warning: {line}\n" for line in lines)
    code, out, err = apssh(
        capsys, "recipe", "run", recipe, "-i", inventory, "-g", "bastion", "--strict"
    )
    assert (code, out) == (1, "")
    assert err == f"apssh: error: {lines[0]}\napssh: {lines[1]} (--strict)\n"
    assert not (tmp_path / "runs").exists() and listener.accepted == 0


def test_a_step_empty_in_some_combinations_only(tmp_path: Path, inventory: str) -> None:
    body = SWEEP.replace('hosts = "nodes"\nrequires', 'hosts = "{where}"\nrequires')
    body = body.replace("size = [1, 2]", "size = [1, 2]\nwhere = ['nodes', 'nodes,!nodes']")
    recipe = parse_recipe(body, tmp_path / "pre.toml")
    plan = make_plan(recipe, Inventory.load([inventory]), run_dir=tmp_path / "r")
    assert empty_steps(plan) == [
        f"{recipe.source}:14: step 'measure': hosts '{{where}}' selects no host in "
        "size=1,where=nodes,!nodes, size=2,where=nodes,!nodes: the step does nothing there"
    ]


def test_a_step_not_selected_or_disabled_is_not_warned_about(
    tmp_path: Path, inventory: str
) -> None:
    body = SWEEP + '[[step]]\nid = "off"\nhosts = "nodes,!nodes"\nenabled = false\nrun = "x"\n'
    recipe = parse_recipe(body, tmp_path / "pre.toml")
    inv = Inventory.load([inventory])
    assert empty_steps(make_plan(recipe, inv, run_dir=tmp_path / "r")) == []
    plan = make_plan(recipe, inv, Selection(pattern="bastion", only=("init",)), run_dir="r")
    assert [w.split(": step ")[1].split(":")[0] for w in empty_steps(plan)] == ["'init'"]


# ------------------------------------------------------------------ --resume RECIPE


def test_resume_given_the_recipe_file_says_so(
    tmp_path: Path, inventory: str, listener: Listener, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = write(tmp_path, SWEEP)
    # the recipe taken as --resume's value: no RECIPE left
    err = refused(capsys, tmp_path, listener, "--resume", recipe, "-i", inventory)
    assert err == (
        f"apssh: --resume {recipe}: a file (the recipe?) where a run directory goes; the "
        f"recipe comes first: apssh recipe run {recipe} --resume [RUN_DIR]\n"
    )
    err = refused(capsys, tmp_path, listener, recipe, "--resume", recipe, "-i", inventory)
    assert err == (
        f"apssh: --resume {recipe}: a file (a recipe?), not a run directory: give "
        "runs/NAME/RUN_ID, or --resume alone for the last run\n"
    )
    # RECIPE still required
    code, _, err = apssh(capsys, "recipe", "run", "-i", inventory)
    assert code == 1 and err.startswith("apssh: Missing argument 'RECIPE'")


# ------------------------------------------------------------------ output


def test_the_summary_goes_to_stderr_and_json_is_one_line_per_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APSSH_INVENTORY", raising=False)
    recipe = write(tmp_path, LOCAL)
    code, out, err = apssh(capsys, "recipe", "run", recipe, "--run-dir", str(tmp_path / "a"))
    assert code == 0
    assert out.splitlines() == [  # stdout: the streamed lines only
        "init[size=1] local: init1",
        "init[size=2] local: init2",
    ]
    assert err.splitlines()[-1].startswith("recipe pre: ok, exit 0, ")
    assert "measure[size=2]: ok local" in err
    code, out, err = apssh(
        capsys, "recipe", "run", recipe, "--run-dir", str(tmp_path / "b"), "--json",
        "--events", "-",
    )  # fmt: skip
    records = [json.loads(line) for line in out.splitlines()]
    assert [r.get("event") for r in records[:2]] == ["recipe_start", "step_start"]
    assert records[-2]["event"] == "recipe_end"
    assert records[-1]["recipe"] == "pre" and records[-1]["exit"] == 0  # the summary
    assert "recipe pre: ok" in err
    code, out, _ = apssh(capsys, "recipe", "plan", recipe, "--json")
    assert code == 0 and len(out.splitlines()) == 1 and json.loads(out)["recipe"] == "pre"


def test_a_run_id_taken_between_the_checks_and_the_claim_gives_the_next_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from apssh_cli.recipe import journal, planner

    monkeypatch.delenv("APSSH_INVENTORY", raising=False)
    monkeypatch.setattr(planner, "new_run_id", lambda: "20261203-101010")
    real = journal.create_run_dir
    rivals: list[Path] = []

    def rival_first(path: Path) -> bool:
        if not rivals:  # another run creates it just before us
            rivals.append(path)
            real(path)
            return False
        return real(path)

    monkeypatch.setattr(journal, "create_run_dir", rival_first)
    recipe = write(tmp_path, LOCAL)
    code, _, err = apssh(capsys, "recipe", "run", recipe, "-q")
    assert code == 0, err
    runs = tmp_path / "runs" / "pre"
    assert rivals == [runs / "20261203-101010"]
    assert sorted(p.name for p in runs.iterdir()) == ["20261203-101010", "20261203-101010-2"]
    assert not any(rivals[0].iterdir())  # the rival's, untouched
    assert (runs / "20261203-101010-2" / "journal.jsonl").is_file()
