"""The documentation tools: man pages from the click commands, and the site's link rules.

`nox -s docs` runs the real build (MkDocs strict, groff on every page); these tests check
the same rules without MkDocs installed, on made-up pages and on the real docs/ and README.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import click
import pytest

import apssh_cli
from apssh_cli.cli.exitcodes import ExitCode
from apssh_cli.cli.main import cli
from tools import manpages, mkdocs_hooks
from tools.mkdocs_hooks import REPO, on_page_markdown

CONFIG = SimpleNamespace(docs_dir=str(REPO / "docs"))


def relinked(markdown: str, src_uri: str) -> str:
    page = SimpleNamespace(file=SimpleNamespace(src_uri=src_uri))
    return on_page_markdown(markdown, page, CONFIG, None)  # type: ignore[arg-type]


def hook_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == mkdocs_hooks.log.name]


def test_readme_is_the_home_page_and_its_docs_links_follow(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = "[cli](docs/cli.md#exit-status), ![plot](benchmarks/results/fanout.png)"
    assert relinked(text, "index.md") == (
        "[cli](cli.md#exit-status), ![plot](repo/benchmarks/results/fanout.png)"
    )
    assert hook_warnings(caplog) == []


def test_docs_links_out_of_docs_point_into_the_site() -> None:
    text = "[home](../README.md#install) and [demo](../examples/lab_experiment.py)"
    assert relinked(text, "migrating.md") == (
        "[home](index.md#install) and [demo](repo/examples/lab_experiment.py)"
    )
    # a copied Markdown file links relative to where it really is
    assert relinked("[plot](fanout.png)", "repo/benchmarks/results/report.md") == (
        "[plot](fanout.png)"
    )


@pytest.mark.parametrize(
    ("link", "reason"),
    [
        ("../nope.md", "no such file"),
        ("../recipes/", "is a directory"),
        ("../../etc/passwd", "out of the repository"),
    ],
)
def test_a_broken_link_is_a_warning_which_strict_mode_fails_on(
    link: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert relinked(f"see [x]({link})", "lab.md") == f"see [x]({link})"
    (message,) = hook_warnings(caplog)
    assert "docs/lab.md" in message and link in message and reason in message
    # under "mkdocs.": the logger whose warnings `mkdocs build --strict` counts
    assert mkdocs_hooks.log.name.startswith("mkdocs.")


def test_links_in_code_are_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    text = (
        "`[x](../nope.md)`\n\n```toml\n[a](../nope.md)\n```\n[web](https://example.org/x.md)\n"
        "- a list item:\n\n    ```\n    [b](../nope.md)\n    ```\n"
    )
    assert relinked(text, "lab.md") == text
    assert hook_warnings(caplog) == []


def test_reference_links_are_followed_and_footnotes_are_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = "[demo]: ../examples/lab_experiment.py\n[^1]: see ../nope.md\n"
    assert relinked(text, "lab.md") == (
        "[demo]: repo/examples/lab_experiment.py\n[^1]: see ../nope.md\n"
    )
    assert hook_warnings(caplog) == []


def test_every_link_of_the_real_docs_resolves(caplog: pytest.LogCaptureFixture) -> None:
    # the same check as the site build, so that `nox -s tests` catches it too
    pages = {"index.md": REPO / "README.md"}
    pages.update({p.name: p for p in sorted((REPO / "docs").glob("*.md"))})
    with caplog.at_level(logging.WARNING):
        for src_uri, path in pages.items():
            relinked(path.read_text(encoding="utf-8"), src_uri)
    assert hook_warnings(caplog) == []


def test_the_api_page_covers_every_exported_name() -> None:
    page = mkdocs_hooks.api_reference()
    for name in apssh_cli._LAZY:
        assert re.search(rf"members: \[[^\]]*\b{name}\b", page) or f"`{name}`" in page, name


def test_the_commands_page_shows_every_help() -> None:
    page = mkdocs_hooks.command_reference()
    for command in manpages.walk(cli):
        assert f"## {command.title}\n" in page
        assert f"Usage: {command.title} " in page, command.title
    assert "Examples:" in page and "Exit status:" in page


# man pages


def unescape(roff: str) -> str:
    return roff.replace("\\-", "-").replace("\\&", "").replace("\\e", "\\")


def section(page: str, title: str) -> str:
    match = re.search(rf'^\.SH "?{title}"?\n(.*?)(?=^\.SH|\Z)', page, re.M | re.S)
    assert match, f"no {title} section"
    return unescape(match.group(1))


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("man")
    return {p.name: p.read_text() for p in manpages.write_pages(out)}


def test_one_man_page_per_command(written: dict[str, str]) -> None:
    expected = {f"{page.name}.1" for page in manpages.walk(cli)}
    assert set(written) == expected
    assert {"apssh.1", "apssh-run.1", "apssh-inventory-list.1", "apssh-recipe-run.1"} <= expected


def test_leaf_pages_show_the_help_examples(written: dict[str, str]) -> None:
    for page in manpages.walk(cli):
        if isinstance(page.command, click.Group):
            continue
        shown = section(written[f"{page.name}.1"], "EXAMPLES")
        lines = [line for line in shown.splitlines() if line.startswith("apssh ")]
        assert 2 <= len(lines) <= 3, (page.name, shown)
        for line in lines:
            assert line in page.command.get_help(page.ctx), (page.name, line)


def test_top_page_lists_every_exit_status(written: dict[str, str]) -> None:
    shown = section(written["apssh.1"], "EXIT STATUS")
    for code in ExitCode:
        assert re.search(rf"^\s*{int(code)}\s+\S", shown, re.M), code


@pytest.mark.parametrize(
    "checker",
    [["groff", "-man", "-Tutf8", "-ww", "-z"], ["mandoc", "-T", "lint", "-W", "all"]],
    ids=lambda checker: checker[0],
)
def test_man_pages_lint_clean(checker: list[str], written: dict[str, str], tmp_path: Path) -> None:
    program = shutil.which(checker[0])
    if program is None:
        pytest.skip(f"{checker[0]} is not installed (nox -s docs says so too)")
    for name, text in written.items():
        (tmp_path / name).write_text(text)
        done = subprocess.run(
            [program, *checker[1:], str(tmp_path / name)], capture_output=True, text=True
        )
        assert (done.returncode, done.stderr + done.stdout) == (0, ""), name


def test_a_code_span_holding_a_backtick_hides_what_follows_its_pairs() -> None:
    # ``a ` b`` is one code span: the next `[host]:port` span is code, not a reference link
    text = "see `` ' ` \" `` and `[host]:port` here\n"
    assert list(mkdocs_hooks._links(text)) == []
