"""Run directories: never shared by two runs, private, and a journal that survives a crash."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apssh_cli.recipe import planner
from apssh_cli.recipe.journal import JOURNAL, RunDirLock, last_run, read_previous
from apssh_cli.recipe.loader import parse_recipe
from apssh_cli.recipe.model import RecipeError
from apssh_cli.recipe.planner import Selection, make_plan
from apssh_cli.recipe.runner import RecipeRun

from .climain import apssh

RECIPE = """\
[recipe]
name = "t"
format = 1
[matrix]
n = [1, 2]
[[step]]
id = "a"
local = "echo a{n}"
capture = "x"
"""
SLOW = '[recipe]\nname = "slow"\nformat = 1\n[[step]]\nid = "a"\nlocal = "sleep 4"\n'


@pytest.fixture
def same_second(monkeypatch: pytest.MonkeyPatch) -> str:
    """Every run starts in the same second."""
    monkeypatch.setattr(planner, "new_run_id", lambda: "20261203-101010")
    return "20261203-101010"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_two_runs_started_in_the_same_second_get_two_directories(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], same_second: str
) -> None:
    recipe = tmp_path / "t.toml"
    recipe.write_text(RECIPE)
    for _ in range(2):
        code, _, err = apssh(capsys, "recipe", "run", str(recipe), "-q")
        assert code == 0, err
    runs = tmp_path / "runs" / "t"
    assert sorted(p.name for p in runs.iterdir()) == [same_second, f"{same_second}-2"]
    for run_dir in runs.iterdir():
        events = [json.loads(line) for line in (run_dir / JOURNAL).read_text().splitlines()]
        assert [e["event"] for e in events].count("recipe_start") == 1
        assert events[0]["run_dir"] == str(run_dir)
    assert last_run(runs).name == f"{same_second}-2"


def test_a_claimed_id_is_skipped_and_a_bad_recipe_leaves_no_directory(
    tmp_path: Path, same_second: str
) -> None:
    recipe = parse_recipe(RECIPE, tmp_path / "t.toml")
    first = make_plan(recipe, None, claim=True)
    second = make_plan(recipe, None, claim=True)
    assert (first.run_id, second.run_id) == (same_second, f"{same_second}-2")
    assert first.run_dir.is_dir() and second.run_dir.is_dir()
    assert mode(first.run_dir) == 0o700
    # the ids sort as they were made, past 9
    for _ in range(3, 12):
        make_plan(recipe, None, claim=True)
    assert last_run_with_journals(tmp_path / "runs" / "t") == f"{same_second}-11"
    with pytest.raises(RecipeError, match="no step 'zz'"):
        make_plan(recipe, None, Selection(start="zz"), claim=True)
    assert len(list((tmp_path / "runs" / "t").iterdir())) == 11


def last_run_with_journals(runs: Path) -> str:
    for run_dir in runs.iterdir():
        (run_dir / JOURNAL).write_text("")
    return last_run(runs).name


def test_a_library_run_never_takes_a_directory_another_run_created(
    tmp_path: Path, same_second: str
) -> None:
    recipe = parse_recipe(RECIPE, tmp_path / "t.toml")
    first, second = make_plan(recipe, None), make_plan(recipe, None)  # same id: not created
    assert first.run_dir == second.run_dir
    assert not first.run_dir.exists()  # planning (recipe plan, check) creates nothing
    assert RecipeRun(first, quiet=True).run() == 0
    with pytest.raises(RecipeError, match="exists already"):
        RecipeRun(second, quiet=True).run()
    assert (first.run_dir / JOURNAL).read_text().count('"recipe_start"') == 1


def test_a_run_directory_in_use_is_refused_naming_the_holder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "slow.toml"
    recipe.write_text(SLOW)
    run_dir = tmp_path / "the-run"
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "apssh_cli",
            "recipe",
            "run",
            str(recipe),
            "--run-dir",
            str(run_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not ((run_dir / ".lock").exists() and (run_dir / ".lock").read_text()):
            assert time.monotonic() < deadline, "the first run never started"
            time.sleep(0.05)
        for option in ("--run-dir", "--resume"):
            code, out, err = apssh(capsys, "recipe", "run", str(recipe), option, str(run_dir))
            assert code == 1
            assert f"run directory {run_dir} is in use by pid {first.pid} on " in err
            assert "Traceback" not in err and out == ""
    finally:
        assert first.wait(timeout=60) == 0
    journal = (run_dir / JOURNAL).read_text().splitlines()
    assert [json.loads(line)["event"] for line in journal].count("recipe_start") == 1
    # once it ended, the directory is free again
    code, _, err = apssh(capsys, "recipe", "run", str(recipe), "--resume", str(run_dir), "-q")
    assert code == 0, err


def test_the_lock_is_one_run_at_a_time_and_released(tmp_path: Path) -> None:
    lock = RunDirLock(tmp_path)
    with pytest.raises(RecipeError, match=f"pid {os.getpid()} on "):
        RunDirLock(tmp_path)
    lock.release()
    RunDirLock(tmp_path).release()


def test_run_directories_and_journals_are_private(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "t.toml"
    recipe.write_text(RECIPE)
    code, _, err = apssh(capsys, "recipe", "run", str(recipe), "-q")
    assert code == 0, err
    (run_dir,) = (tmp_path / "runs" / "t").iterdir()
    assert mode(run_dir) == 0o700
    assert {p.name: mode(p) for p in run_dir.iterdir()} == {
        "n=1": 0o700,
        "n=2": 0o700,
        ".lock": 0o600,
        "journal.jsonl": 0o600,
        "captures.json": 0o600,
        "summary.json": 0o600,
    }


def test_resume_reads_past_a_journal_a_crash_damaged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "t.toml"
    recipe.write_text(RECIPE)
    run_dir = tmp_path / "run"
    code, _, err = apssh(capsys, "recipe", "run", str(recipe), "--run-dir", str(run_dir), "-q")
    assert code == 0, err
    journal = run_dir / JOURNAL
    lines = journal.read_bytes().splitlines(keepends=True)
    count = len(lines)
    # line 2 is not UTF-8; the last line was cut mid-write, in a multi-byte character
    damaged = [
        lines[0],
        b'{"v": 1, "event": "\xff\xfe"}\n',
        *lines[1:],
        '{"v": 1, "é'.encode()[:-1],
    ]
    journal.write_bytes(b"".join(damaged))
    code, _, err = apssh(capsys, "recipe", "run", str(recipe), "--resume", str(run_dir), "-q")
    assert code == 0, err
    assert err.count("cannot be read") == 1
    assert f"{journal}: 2 lines (2, {count + 2}) cannot be read" in err
    tasks, _, unreadable = read_previous(run_dir)
    assert unreadable == [2, count + 2]  # the resumed run's events start on a line of their own
    assert all(status == "ok" for status, _ in tasks.values())
    resumed = [json.loads(line) for line in journal.read_bytes().splitlines()[count + 2 :]]
    assert [e["resumed"] for e in resumed if e["event"] == "task_end"] == [True, True]


def test_a_run_directory_that_cannot_be_made_is_one_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "t.toml"
    recipe.write_text(RECIPE)
    (tmp_path / "a-file").write_text("")
    code, _, err = apssh(capsys, "recipe", "run", str(recipe), "--run-dir", f"{tmp_path}/a-file/x")
    assert code == 1
    assert err == f"apssh: run directory {tmp_path}/a-file/x: Not a directory\n"
