"""Values that come from hosts (captures, host lists) never run as code.

A capture is whatever a host printed: spliced into a shell command (``run``,
``local``, a ``string`` body) it is shell-quoted, unless the recipe opts in with
``{cap.NAME:raw}``; spliced into an argument or a path it is inserted as it is
(an argument is quoted whole, a path is no command). A value with a NUL byte
fails the task that uses it, naming the capture. The SSH side is in
tests/integration/test_recipe_run.py.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings, strategies as st

from apssh_cli.cli.main import main
from apssh_cli.recipe.loader import parse_recipe
from apssh_cli.recipe.model import RecipeError
from apssh_cli.recipe.planner import Selection, make_plan
from apssh_cli.recipe.runner import RecipeRun
from apssh_cli.recipe.template import (
    IN_DOUBLE,
    IN_SINGLE,
    WORD,
    Field,
    TemplateError,
    parse,
    render,
    shell_places,
    text_of,
)

HEAD = '[recipe]\nname = "t"\nformat = 1\n'
HOSTILE = ["v;touch pwned", "$(touch pwned)", "`touch pwned`", "a'b\"c", "x\ny", "", " -n "]


def run_recipe(tmp_path: Path, body: str) -> tuple[RecipeRun, list[dict[str, Any]]]:
    recipe = parse_recipe(HEAD + body, tmp_path / "r.toml")
    plan = make_plan(recipe, None, Selection(), run_dir=tmp_path / "run")
    events: list[dict[str, Any]] = []
    run = RecipeRun(plan, listener=events.append, quiet=True)
    run.run()
    return run, events


def status(run: RecipeRun) -> dict[str, str]:
    return {state.key: state.status for state in run.tasks}


def capture_step(value: str) -> str:
    """A local step that captures exactly ``value`` (printf: no echo escapes)."""
    command = _toml("printf '%s\\n' " + shlex.quote(value))
    return f'\n[[step]]\nid = "a"\nlocal = {command}\ncapture = "x"\n'


def _toml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# ------------------------------------------------------------------ templates


def render_one(template: str, value: Any, *, shell: bool = True) -> str:
    return text_of(render(parse(template), lambda field: value, shell=shell))


@given(st.text(alphabet=st.characters(blacklist_characters="\0"), max_size=20))
def test_a_capture_in_a_shell_command_is_one_word_whatever_it_holds(value: str) -> None:
    assert shlex.split(render_one("echo {cap.x}", value)) == ["echo", value]
    assert shlex.split(render_one("echo {cap.x@h}", value)) == ["echo", value]


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\0"), max_size=8)))
def test_a_list_of_values_is_one_word_too(values: list[str]) -> None:
    # one word per value would run the second one as a command in `v={cap.x[*]}`
    for template in ("x {cap.x[*]} y", "x {cap.x[*]:q} y"):
        assert shlex.split(render_one(template, " ".join(values))) == ["x", " ".join(values), "y"]


SAFE = "v;touch pwned $(touch pwned) `touch pwned` 'q\" \\ * \n$HOME"


@pytest.mark.parametrize(
    ("template", "printed"),
    [
        ("printf '%s|' {cap.x}", SAFE),
        ("printf '%s|' 'a {cap.x} b'", f"a {SAFE} b"),
        ("printf '%s|' \"a {cap.x} b\"", f"a {SAFE} b"),
        ("printf '%s|' \"it's $(printf '%s' {cap.x})\"", f"it's {SAFE}"),
        ("v={cap.x}; printf '%s|' \"$v\"", SAFE),
        ("printf '%s|' \\\\{cap.x}", "\\" + SAFE),
        ("# a comment\nprintf '%s|' {cap.x}", SAFE),
        ("printf '%s|' x#{cap.x}", "x#" + SAFE),
        ("cat <<EOF\n$HOME\nEOF\nprintf '%s|' {cap.x} >/dev/null", ""),
    ],
)
def test_a_value_stays_one_string_inside_or_outside_quotes(
    tmp_path: Path, template: str, printed: str
) -> None:
    """Run by a real /bin/sh: nothing runs but printf, the value arrives intact."""
    command = render_one(template, SAFE)
    done = subprocess.run(["sh", "-c", command], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.iterdir())
    if printed:
        assert done.stdout == printed + "|"


@pytest.mark.parametrize(
    ("template", "where"),
    [
        ("cat <<EOF\n{cap.x}\nEOF", "in a here-document"),
        ("cat <<-'E'\n\t{cap.x}\n\tE\necho ok", "in a here-document"),
        ("cat <<E # a comment\n{cap.x}\nE", "in a here-document"),
        ("cat <<A <<B\nA\n{cap.x}\nB", "in a here-document"),
        ("cat <<{cap.x}\nbody\n", "in a here-document's delimiter"),
        ("cat <<'E F'\n{cap.x}\nE F", "in a here-document"),
        ("echo >&{cap.x}", "after a >& or <& redirection"),  # bash expands it twice
        ("echo <<$E\n\n{cap.x}", "unclear"),
        ("echo $(( {cap.x} + 1 ))", "in an arithmetic expression"),
        ("echo ${{v:-{cap.x}}}", "in a ${...} expansion"),
        ("echo `echo {cap.x}`", "in a `...` substitution"),
        ("echo ${cap.x}", "right after a '$'"),
        ("echo \\{cap.x}", "right after a backslash"),
        ('echo "\\{cap.x}"', "right after a backslash"),
        ("echo $'{cap.x}'", "in a $'...' string"),
        ("true # {cap.x}", "in a comment"),
    ],
)
def test_where_no_quoting_holds_a_value_it_is_refused(template: str, where: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(where)):
        render_one(template, "v")
    assert render_one(template.replace("{cap.x}", "{cap.x:raw}"), "v")  # the opt-in


def test_the_shell_places_of_fields() -> None:
    parts = parse("a {cap.x} '{cap.x}' \"{cap.x}\" $(b {cap.x}) <<E\n{cap.x}\nE\n{cap.x}")
    assert list(shell_places(parts).values()) == [
        WORD,
        IN_SINGLE,
        IN_DOUBLE,
        WORD,
        "in a here-document",
        WORD,
    ]
    # a case pattern's ')' does not end the $(...) it stands in
    parts = parse('"$(case a in a) echo {cap.x};; esac) {cap.x}"')
    assert list(shell_places(parts).values()) == [WORD, IN_DOUBLE]
    # quotes do not hide a backquote: the substitution ends at the second one
    assert list(shell_places(parse("echo `'`{cap.x}")).values()) == [WORD]


def test_raw_is_the_explicit_opt_in_and_args_and_paths_take_values_as_they_are() -> None:
    assert render_one("{cap.x:raw}", "ls; id") == "ls; id"
    assert render_one("{ok.a:raw}", ["n1", "n2"]) == "n1 n2"
    assert render_one("{ok.a}", ["n1", "n2"]) == "'n1 n2'"
    assert render_one("{cap.x:q}", "a b", shell=False) == "'a b'"  # :q still quotes
    assert render_one("/tmp/{cap.x}/data", "a b;c", shell=False) == "/tmp/a b;c/data"
    # user values keep their rules: as written, :q to quote
    assert render_one("echo {size}", "1;2") == "echo 1;2"
    assert render_one("echo {size:q}", "1;2") == "echo '1;2'"


def test_raw_on_a_value_the_user_wrote_is_refused() -> None:
    with pytest.raises(TemplateError, match=r"\{size:raw\}.*values from hosts"):
        parse("echo {size:raw}")
    field = parse("{cap.x:raw}")[0]
    assert isinstance(field, Field) and field.raw and not field.quote


# ------------------------------------------------------------------ local steps


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_capture_in_local_runs_no_command_and_arrives_intact(
    tmp_path: Path, value: str
) -> None:
    body = (
        capture_step(value)
        + """
[[step]]
id = "b"
requires = ["a"]
local = "printf '%s' {cap.x} > got; printf '%s' {cap.x[*]} > joined"
"""
    )
    run, _ = run_recipe(tmp_path, body)
    assert run.exit_status == 0, run.summary()
    assert not (tmp_path / "run" / "pwned").exists()
    for name in ("got", "joined"):
        assert (tmp_path / "run" / name).read_text() == value, name


def test_raw_splices_the_capture_as_code(tmp_path: Path) -> None:
    body = (
        capture_step("touch made-by-raw")
        + """
[[step]]
id = "b"
requires = ["a"]
local = "{cap.x:raw}"
"""
    )
    run, _ = run_recipe(tmp_path, body)
    assert run.exit_status == 0
    assert (tmp_path / "run" / "made-by-raw").exists()


def test_a_capture_with_a_nul_byte_fails_the_task_that_uses_it(tmp_path: Path) -> None:
    body = """
[[step]]
id = "a"
local = "printf 'v\\\\000w'"
capture = "x"
[[step]]
id = "b"
requires = ["a"]
critical = false
local = "echo {cap.x}"
[[step]]
id = "c"
requires = ["a"]
local = "echo still here"
"""
    run, events = run_recipe(tmp_path, body)
    assert status(run) == {"a/local": "ok", "b/local": "failed", "c/local": "ok"}
    (end,) = [e for e in events if e["event"] == "task_end" and e["step"] == "b"]
    assert "{cap.x}" in end["error"] and "NUL" in end["error"]
    assert run.exit_status == 2


# ------------------------------------------------------------------ recipe check


def test_check_says_where_raw_is_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APSSH_INVENTORY", raising=False)
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        HEAD + capture_step("x") + '\n[[step]]\nid = "b"\nrequires = ["a"]\n'
        'local = "echo {cap.x} {cap.x:raw}"\n'
    )
    with pytest.raises(SystemExit) as info:
        main(["recipe", "check", str(recipe)])
    out = capsys.readouterr().out
    assert info.value.code == 0
    assert f"{recipe}:13: step 'b': local: {{cap.x:raw}}" in out
    assert "unquoted" in out
    assert out.count(":raw") == 1


def test_a_capture_where_no_quoting_holds_it_is_an_error_before_anything_runs(
    tmp_path: Path,
) -> None:
    body = capture_step("x") + (
        '[[step]]\nid = "b"\nrequires = ["a"]\nlocal = "cat <<EOF\\n{cap.x}\\nEOF"\n'
    )
    with pytest.raises(RecipeError, match=r"step 'b': local: \{cap.x\} in a here-document"):
        parse_recipe(HEAD + body, tmp_path / "r.toml")


def test_a_variable_that_moves_a_capture_into_a_here_document_fails_the_task(
    tmp_path: Path,
) -> None:
    """The check cannot see inside a variable's value: the task that would run it fails."""
    body = (
        '[vars]\nopen = "cat <<EOF"\n'
        + capture_step("x")
        + (
            '[[step]]\nid = "b"\nrequires = ["a"]\ncritical = false\n'
            'local = "{open}\\n{cap.x}\\nEOF"\n'
        )
    )
    run, events = run_recipe(tmp_path, body)
    assert status(run) == {"a/local": "ok", "b/local": "failed"}
    (end,) = [e for e in events if e["event"] == "task_end" and e["step"] == "b"]
    assert "in a here-document" in end["error"]


def test_raw_on_a_variable_is_an_error_naming_the_step(tmp_path: Path) -> None:
    body = '[vars]\nn = 1\n[[step]]\nid = "a"\nlocal = "echo {n:raw}"\n'
    with pytest.raises(RecipeError, match=r"step 'a'.*\{n:raw\}"):
        parse_recipe(HEAD + body, tmp_path / "r.toml")


_SHELLISH = st.text(alphabet="'\"\\$(){}`;|&<> \n#=*ab-E", max_size=12)


@settings(max_examples=500, deadline=None)
@given(before=_SHELLISH, after=_SHELLISH)
@example(before="${'}|", after="")  # found by this test in CI: a quote inside ${...}
def test_any_shell_text_around_a_capture_never_runs_it(
    tmp_path_factory: pytest.TempPathFactory, before: str, after: str
) -> None:
    """Whatever shell text surrounds it, a quoted capture that /bin/sh accepts runs nothing.

    The text cannot spell a command that writes ``pwned``: only the value can.
    """
    escape = {"{": "{{", "}": "}}"}
    template = "".join(escape.get(c, c) for c in before) + "{cap.x}"
    template += "".join(escape.get(c, c) for c in after)
    try:
        command = render_one(template, "$(touch pwned);touch pwned`touch pwned`\ntouch pwned'")
    except TemplateError:
        return  # refused: nothing runs
    for shell in ("sh", "bash"):  # dash, and bash's quirks (it expands >& words twice)
        cwd = tmp_path_factory.mktemp(shell)
        subprocess.run(
            [shell, "-c", command],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10,
        )
        assert not (cwd / "pwned").exists(), (shell, command)
