"""`apssh recipe check | plan | graph | run`: messages, output and exit statuses (no SSH)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .climain import apssh

RECIPE = """\
[recipe]
name = "demo"
format = 1
[vars]
n = 2
[matrix]
size = [10, 20]
[[step]]
id = "init"
hosts = "nodes"
run = "echo init {host} {n}"
capture = "who"
[[step]]
id = "measure"
hosts = "nodes"
requires = ["init"]
sync = "host"
run = "echo {size} {cap.who}"
[[step]]
id = "sum"
requires = ["measure"]
once = true
local = "echo done"
"""

INVENTORY = """\
[bastions.hosts.bastion]
hostname = "127.0.0.1"
[nodes.vars]
gateway = "bastion"
[nodes.hosts.node1]
[nodes.hosts.node2]
"""


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.delenv("APSSH_INVENTORY", raising=False)
    recipe = tmp_path / "demo.toml"
    recipe.write_text(RECIPE)
    inventory = tmp_path / "inv.toml"
    inventory.write_text(INVENTORY)
    return str(recipe), str(inventory)


def test_check(files: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    recipe, inventory = files
    code, out, _ = apssh(capsys, "recipe", "check", recipe, "-i", inventory)
    assert code == 0
    assert out == f"{recipe}: ok: recipe demo, 3 steps, 7 tasks on 2 hosts\n"
    code, out, _ = apssh(capsys, "recipe", "check", recipe)
    assert code == 0 and "give -i" in out


def test_check_reports_one_error_with_exit_1(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, inventory = files
    bad = tmp_path / "bad.toml"
    bad.write_text(RECIPE.replace('hosts = "nodes"\nrequires', 'hosts = "nodez"\nrequires'))
    code, out, err = apssh(capsys, "recipe", "check", str(bad), "-i", inventory)
    assert code == 1 and out == ""
    assert err.startswith(f"apssh: {bad}:15: step 'measure': hosts 'nodez': ")
    assert len(err.strip().splitlines()) == 1


def test_plan_text_and_json(files: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    recipe, inventory = files
    code, out, _ = apssh(capsys, "recipe", "plan", recipe, "-i", inventory, "--var", "n=5")
    assert code == 0
    assert "recipe demo: 3 steps, 7 tasks, 2 combinations, 2 hosts" in out
    assert "node[1-2]: echo 10 {cap.who}" in out  # deferred: shown as written
    assert "node1: echo init node1 5" in out
    code, out, _ = apssh(capsys, "recipe", "plan", recipe, "-i", inventory, "--json", "-g", "node2")
    data = json.loads(out)
    assert data["hosts"] == ["node2"] and data["tasks"] == 4
    assert data["combos"] == ["size=10", "size=20"]
    measure = next(s for s in data["steps"] if s["id"] == "measure")
    assert measure["repeats"] and len(measure["instances"]) == 2


def test_graph_formats(files: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    recipe, inventory = files
    code, out, _ = apssh(capsys, "recipe", "graph", recipe)
    assert code == 0
    assert out.startswith("flowchart TD\n")
    assert "s_init -.-> s_measure" in out and "s_measure --> s_sum" in out
    code, out, _ = apssh(capsys, "recipe", "graph", recipe, "-i", inventory, "--format", "dot")
    assert out.startswith('digraph "demo" {') and '"init" -> "measure" [style=dashed];' in out
    assert "node[1-2]" in out


def test_graph_image_without_graphviz(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    code, _, err = apssh(capsys, "recipe", "graph", files[0], "--format", "svg")
    assert code == 1 and "needs Graphviz's 'dot'" in err


def test_bad_var_and_unknown_step(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    recipe, inventory = files
    code, _, err = apssh(capsys, "recipe", "plan", recipe, "-i", inventory, "--var", "oops")
    assert code == 1 and "write KEY=VALUE" in err
    code, _, err = apssh(capsys, "recipe", "plan", recipe, "-i", inventory, "--only", "zz")
    assert code == 1 and "no step 'zz'" in err


def test_run_local_recipe_with_events_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APSSH_INVENTORY", raising=False)
    recipe = tmp_path / "loc.toml"
    recipe.write_text(
        '[recipe]\nname = "loc"\nformat = 1\n[[step]]\nid = "hi"\nlocal = "echo hello"\n'
        '[[step]]\nid = "no"\nrequires = ["hi"]\ncritical = false\nlocal = "exit 4"\n'
    )
    inventory = tmp_path / "inv.toml"
    inventory.write_text(INVENTORY)
    run_dir = tmp_path / "out"
    code, out, err = apssh(
        capsys, "recipe", "run", str(recipe), "-i", str(inventory), "--run-dir", str(run_dir),
        "--events", "-",
    )  # fmt: skip
    assert code == 2
    events = [json.loads(line) for line in out.splitlines()]
    assert events[0]["event"] == "recipe_start"
    assert {"event": "output", "line": "hello"}.items() <= next(
        e for e in events if e["event"] == "output"
    ).items()
    assert "hi local: hello" in err  # people's lines on stderr when stdout has the events
    assert "no: failed local" in err
    assert (run_dir / "journal.jsonl").is_file() and (run_dir / "summary.json").is_file()
    # local steps only: no inventory needed
    code, out, _ = apssh(capsys, "recipe", "run", str(recipe), "--resume", str(run_dir), "--json")
    summary = json.loads(out)
    assert code == 2 and summary["exit"] == 2
    assert [t["resumed"] for t in summary["tasks"]] == [True, False]


def test_graph_svg_with_graphviz_or_a_clear_message(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import shutil

    output = tmp_path / "g.svg"
    code, _, err = apssh(capsys, "recipe", "graph", files[0], "--format", "svg", "-o", str(output))
    if shutil.which("dot") is None:  # CI machines may not have Graphviz
        assert code == 1 and "needs Graphviz's 'dot'" in err
    else:
        assert code == 0 and "<svg" in output.read_text()
