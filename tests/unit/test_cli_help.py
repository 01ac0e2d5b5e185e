"""`--help`: every leaf subcommand shows 2-3 examples that parse, and `apssh --help` lists
every exit status of `ExitCode`.

The examples are checked through the real entry point (`main`), with every leaf
command's callback replaced by a recorder: each example must reach a command (the one
whose help shows it, for a leaf) without a usage error, and nothing runs.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import click
import pytest

from apssh_cli.cli.exitcodes import ExitCode
from apssh_cli.cli.main import cli, main
from apssh_cli.recipe.state import EXIT_ABORTED
from tools.manpages import Page, walk

PAGES = list(walk(cli))
LEAVES = [page for page in PAGES if not isinstance(page.command, click.Group)]


def help_text(words: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main([*words, "--help"])
    assert info.value.code in (0, None)
    return capsys.readouterr().out


def examples(text: str) -> list[str]:
    """The lines under `Examples:` (more indented than it, up to the first other line)."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == "Examples:"]
    assert len(starts) == 1, f"one 'Examples:' block expected, found {len(starts)}"
    indent = len(lines[starts[0]]) - len(lines[starts[0]].lstrip())
    found = []
    for line in lines[starts[0] + 1 :]:
        if not line.strip() or len(line) - len(line.lstrip()) <= indent:
            break
        found.append(line.strip())
    return found


def test_every_leaf_subcommand_is_found() -> None:
    # the walk sees the lazily imported subcommands: a new one cannot slip past the tests
    names = {" ".join(page.words) for page in LEAVES}
    assert {"run", "push", "pull", "inventory list", "lab up", "recipe run"} <= names
    assert len(LEAVES) >= 14


@pytest.mark.parametrize("page", LEAVES, ids=lambda page: page.title)
def test_leaf_help_has_two_or_three_examples(
    page: Page, capsys: pytest.CaptureFixture[str]
) -> None:
    found = examples(help_text(page.words, capsys))
    assert 2 <= len(found) <= 3, found
    assert all(line.startswith("apssh ") for line in found), found


@pytest.fixture
def reached(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Every leaf's callback records its words instead of running."""
    calls: list[tuple[str, ...]] = []
    for page in LEAVES:

        def record(*args: Any, _words: tuple[str, ...] = page.words, **kwargs: Any) -> None:
            calls.append(_words)

        monkeypatch.setattr(page.command, "callback", record)
    return calls


def _all_examples() -> list[tuple[Page, str]]:
    pairs = []
    for page in PAGES:
        text = page.command.get_help(page.ctx)
        if "Examples:" in text:
            pairs += [(page, example) for example in examples(text)]
    return pairs


@pytest.mark.parametrize(
    ("page", "example"),
    _all_examples(),
    ids=lambda value: value.title if isinstance(value, Page) else value,
)
def test_examples_parse_and_reach_their_command(
    page: Page,
    example: str,
    reached: list[tuple[str, ...]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = shlex.split(example)
    assert argv[0] == "apssh"
    with pytest.raises(SystemExit) as info:
        main(argv[1:])
    assert info.value.code in (0, None), capsys.readouterr().err
    assert len(reached) == 1
    if page in LEAVES:
        assert reached[0] == page.words
    else:  # a group's example reaches a command under it, or `apssh run` (the lab's)
        assert reached[0][: len(page.words)] == page.words or reached[0] == ("run",)


def exit_section(text: str) -> str:
    match = re.search(r"^\s*Exit status:\n(.*)", text, re.M | re.S)
    assert match, "no 'Exit status:' section"
    return match.group(1)


def test_top_help_lists_every_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    section = exit_section(help_text((), capsys))
    for code in ExitCode:
        # one line per status, its number first
        assert re.search(rf"^\s+{int(code)}\s+\S", section, re.M), f"{code!r} not listed"


@pytest.mark.parametrize("words", [("run",), ("push",), ("pull",)])
def test_run_push_pull_help_list_the_exit_statuses(
    words: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    section = exit_section(help_text(words, capsys))
    for code in (ExitCode.OK, ExitCode.USAGE, ExitCode.UNREACHABLE, ExitCode.INTERRUPTED):
        assert re.search(rf"^\s+{int(code)}\s+\S", section, re.M)


def test_recipe_aborted_is_the_recipe_runner_status() -> None:
    # written twice (the library never imports cli/): the two must agree
    assert ExitCode.RECIPE_ABORTED == EXIT_ABORTED
