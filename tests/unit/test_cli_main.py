"""The `apssh` entry point: routing, --version, error-to-exit-code mapping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.shell_completion import ShellComplete
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from apssh_cli.cli import execution
from apssh_cli.cli.exitcodes import ExitCode
from apssh_cli.cli.main import cli, main
from apssh_cli.cli.options import Count, Seconds


def run_main(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(argv)
    return int(info.value.code or 0)


def test_version_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(["--version"]) == 0
    assert "apssh, version" in capsys.readouterr().out


def test_help_lists_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "130" in out and "unreachable" in out


def test_usage_error_exits_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(["inventory", "--no-such-option"]) == 1


def test_help_does_not_import_asyncssh() -> None:
    code = (
        "import sys\n"
        "from apssh_cli.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'asyncssh' not in sys.modules, 'asyncssh imported by --help'\n"
        "assert 'asynciojobs' not in sys.modules, 'asynciojobs imported by --help'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_remote_command_named_like_a_subcommand_goes_after_double_dash(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # without `--`, `inventory` is the subcommand (options moved after it): dry run of
    # the remote command `inventory` on an ad hoc target, with `--`
    assert run_main(["-t", "node1", "-n", "--", "inventory"]) == 0
    assert "inventory on 1 host" in capsys.readouterr().err


def apssh(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = run_main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def local_inventory(tmp_path: Path) -> str:
    path = tmp_path / "local.toml"
    path.write_text('[locals]\nhosts = { "loc[1:2]" = { connection = "local" } }\n')
    return str(path)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--timeout", "nan"], "Invalid value for '--timeout': expected a duration above 0"),
        (["--timeout", "inf"], "got 'inf'"),
        (["--timeout", "-Infinity"], "got '-Infinity'"),
        (["--timeout", "0"], "got '0'"),
        (["--timeout=-1"], "got '-1'"),
        (
            ["--timeout", "1e10"],
            "at most 1000000000 s (seconds, or with a unit: 500ms, 30s, 2m, 1h), got '1e10'",
        ),
        (["--timeout", "10x"], "got '10x'"),
        (["--timeout", "0s"], "got '0s'"),
        (["--keepalive", "-1s"], "Invalid value for '--keepalive'"),
        (["--timeout", "ten"], "got 'ten'"),
        (["--connect-timeout", "nan"], "Invalid value for '--connect-timeout'"),
        (["--connect-timeout", "0"], "Invalid value for '--connect-timeout'"),
        (["-w", "0"], "Invalid value for '-w' / '--window': expected a whole number from 1"),
        (["-w", "-3"], "got '-3'"),
        (["-w", "1.5"], "got '1.5'"),
        (["-w", "nan"], "got 'nan'"),
        (
            ["--retries", "-1"],
            "Invalid value for '--retries': expected a whole number from 0 to 100",
        ),
        (["--retries", "100000"], "got '100000'"),
    ],
)
def test_bad_option_values_run_nothing(
    options: list[str],
    message: str,
    local_inventory: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    marker = tmp_path / "ran"
    argv = ["-i", local_inventory, *options, "touch", str(marker)]
    status, out, err = apssh(argv, capsys)
    assert status == 1 and out == ""
    first, hint = err.splitlines()
    assert first.startswith("apssh: ") and message in first
    assert hint == "try 'apssh run --help'"
    assert not marker.exists()


@pytest.mark.parametrize("subcommand", ["push", "pull"])
def test_transfers_refuse_bad_timeouts_too(
    subcommand: str, local_inventory: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = apssh(
        [subcommand, "-i", local_inventory, "--timeout", "nan", "a", "b"], capsys
    )
    assert status == 1
    assert err.splitlines() == [
        "apssh: Invalid value for '--timeout': expected a duration above 0 and at most "
        "1000000000 s (seconds, or with a unit: 500ms, 30s, 2m, 1h), got 'nan'",
        f"try 'apssh {subcommand} --help'",
    ]


def test_good_option_values_are_taken(
    local_inventory: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["-i", local_inventory, "--timeout", "2.5", "--connect-timeout", "1e1", "-w", "1"]
    status, out, _ = apssh([*argv, "--retries", "0", "echo", "hi"], capsys)
    assert status == 0
    assert sorted(out.splitlines()) == ["loc1: hi", "loc2: hi"]


@pytest.mark.parametrize(
    ("argv", "lines"),
    [
        (
            ["--bogus"],
            [
                "apssh: No such option '--bogus'. Did you mean '--verbose'?",
                "try 'apssh run --help'",
            ],
        ),
        # click raises this one without a context: the hint still names the subcommand
        (["-t"], ["apssh: Option '-t' requires an argument", "try 'apssh run --help'"]),
        (
            ["-t", "h", "-o"],
            ["apssh: Option '-o' requires an argument", "try 'apssh run --help'"],
        ),
        (
            ["push", "-t", "h", "--timeout"],
            ["apssh: Option '--timeout' requires an argument", "try 'apssh push --help'"],
        ),
        (["push"], ["apssh: Missing argument 'LOCAL... REMOTE'", "try 'apssh push --help'"]),
        (["inventory", "nope"], ["apssh: No such command 'nope'", "try 'apssh inventory --help'"]),
        (
            ["inventory", "list", "--nope"],
            [
                "apssh: No such option '--nope'. Did you mean '--group'?",
                "try 'apssh inventory list --help'",
            ],
        ),
        (
            ["-t", "h", "--known-hosts", "maybe", "x"],
            [
                "apssh: Invalid value for '--known-hosts': 'maybe' is not one of 'strict', "
                "'accept-new', 'off'",
                "try 'apssh run --help'",
            ],
        ),
    ],
)
def test_usage_errors_are_one_line_and_a_hint(
    argv: list[str], lines: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = apssh(argv, capsys)
    assert (status, out) == (1, "")
    assert err.splitlines() == lines


@pytest.mark.parametrize("argv", [[], ["lab"], ["inventory"]])
def test_a_group_without_subcommand_prints_its_help(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = apssh(argv, capsys)
    assert (status, out) == (1, "")
    assert err.startswith(f"Usage: {' '.join(['apssh', *argv])} [OPTIONS] COMMAND [ARGS]...")
    assert "Commands:" in err


def test_an_apssh_error_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APSSH_INVENTORY", raising=False)
    missing = tmp_path / "missing.toml"
    status, out, err = apssh(["inventory", "list", "-i", str(missing)], capsys)
    assert (status, out) == (1, "")
    assert len(err.splitlines()) == 1 and err.startswith("apssh: ")
    assert str(missing) in err


# --- python -m apssh_cli, and shell completion --------------------------------

COMPLETION_INVENTORY = """\
[infra.hosts]
bastion = {}

[nodes.hosts]
"node[1:3]" = {}

[gpus]
hosts = { "gpu-[a:b]" = {} }
children = ["nodes"]
"""


@pytest.fixture
def completion_inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("APSSH_INVENTORY", raising=False)
    path = tmp_path / "lab.toml"
    path.write_text(COMPLETION_INVENTORY)
    return str(path)


def completions(args: list[str], incomplete: str) -> list[str]:
    complete = ShellComplete(cli, {}, "apssh", "_APSSH_COMPLETE")
    return [item.value for item in complete.get_completions(args, incomplete)]


ALL_NAMES = ["all", "infra", "nodes", "gpus", "bastion", "node1", "node2", "node3"]
ALL_NAMES += ["gpu-a", "gpu-b"]


@pytest.mark.parametrize(
    ("before", "incomplete", "expected"),
    [
        (["-g"], "", ALL_NAMES),
        (["-g"], "no", ["nodes", "node1", "node2", "node3"]),
        (["-g"], "gpu", ["gpus", "gpu-a", "gpu-b"]),
        (["-g"], "nodes,!node", ["nodes,!nodes", "nodes,!node1", "nodes,!node2", "nodes,!node3"]),
        (["-g"], "gpus,&n", ["gpus,&nodes", "gpus,&node1", "gpus,&node2", "gpus,&node3"]),
        (["-g"], "@", ["@all", "@infra", "@nodes", "@gpus"]),
        (["-x"], "b", ["bastion"]),
        (["-t", "x", "-x"], "node2", ["node2"]),
        (["run", "-g"], "i", ["infra"]),
        (["push", "-g"], "i", ["infra"]),
        (["pull", "-x"], "i", ["infra"]),
        (["inventory", "list", "-g"], "i", ["infra"]),
        (["inventory", "host"], "node", ["node1", "node2", "node3"]),
        (["inventory", "graph"], "g", ["gpus"]),
        (["-g"], "zzz", []),
    ],
)
def test_group_and_host_names_complete(
    before: list[str], incomplete: str, expected: list[str], completion_inventory: str
) -> None:
    # -i before everything, as a user types it (it moves to the subcommand)
    if before[0] in ("run", "push", "pull", "inventory"):
        args = [*before[:1], "-i", completion_inventory, *before[1:]]
        if before[0] == "inventory":  # -i on the group: its subcommands see it too
            args = ["inventory", "-i", completion_inventory, *before[1:]]
    else:
        args = ["-i", completion_inventory, *before]
    assert completions(args, incomplete) == expected


def test_completion_reads_the_environment(
    completion_inventory: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APSSH_INVENTORY", completion_inventory)
    assert completions(["-g"], "bas") == ["bastion"]


@pytest.mark.parametrize(
    "content", [None, "[broken\n", "[g.hosts]\nn1 = { port = 0 }\n", b"\xff\xfe"]
)
def test_completion_without_a_usable_inventory_offers_nothing_quietly(
    content: str | bytes | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "inventory.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    monkeypatch.setenv("APSSH_INVENTORY", str(path))
    assert completions(["-g"], "") == []
    assert completions(["-i", str(path), "-x"], "n") == []
    assert completions(["-i", "/dev/zero", "-g"], "") == []  # not read: it never ends
    assert capsys.readouterr() == ("", "")


def test_python_dash_m_and_bash_completion_without_asyncssh(completion_inventory: str) -> None:
    # the way bash calls it: _APSSH_COMPLETE=bash_complete with COMP_WORDS/COMP_CWORD
    code = (
        "import sys, runpy\n"
        "sys.argv = ['apssh']\n"
        "try:\n    runpy.run_module('apssh_cli', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "assert 'asyncssh' not in sys.modules, 'asyncssh imported by completion'\n"
        "assert 'asynciojobs' not in sys.modules, 'asynciojobs imported by completion'\n"
    )
    env = {
        **os.environ,
        "_APSSH_COMPLETE": "bash_complete",
        "COMP_WORDS": f"apssh -i {completion_inventory} -g nodes,!n",
        "COMP_CWORD": "4",
    }
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "plain,nodes,!nodes",
        "plain,nodes,!node1",
        "plain,nodes,!node2",
        "plain,nodes,!node3",
    ]


def test_python_dash_m_runs_apssh() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "apssh_cli", "-t", "h1", "-n", "uptime"],
        capture_output=True,
        text=True,
    )
    assert (done.returncode, done.stdout) == (0, "h1  h1\n")
    assert done.stderr == "apssh: dry run: uptime on 1 host(s)\n"


def test_bash_completion_script_names_apssh() -> None:
    env = {**os.environ, "_APSSH_COMPLETE": "bash_source"}
    done = subprocess.run(
        [sys.executable, "-m", "apssh_cli"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0
    assert "_APSSH_COMPLETE=bash_complete" in done.stdout
    assert "complete -o nosort -F _apssh_completion apssh" in done.stdout


# --- property: no argv makes a traceback -------------------------------------

FUZZ_INVENTORY = """\
[nodes]
hosts = { "node[1:3]" = { connection = "local" } }
vars = { rack = "r1" }

[infra.hosts]
bastion = { connection = "local" }
"""


def _option_names() -> list[str]:
    from apssh_cli.cli.inventory_cmd import inventory
    from apssh_cli.cli.run_cmd import run
    from apssh_cli.cli.transfer_cmd import pull, push

    commands: list[click.Command] = [cli, run, push, pull, inventory]
    commands += list(inventory.commands.values())
    names = {
        name
        for command in commands
        for param in command.params
        if isinstance(param, click.Option)
        for name in [*param.opts, *param.secondary_opts]
    }
    return sorted(names)


WORDS = [
    *("run", "push", "pull", "inventory", "list", "graph", "host", "check", "--"),
    *("nan", "inf", "-inf", "NaN", "0", "-1", "1", "2.5", "1e10", "99999999999999999999"),
    *("node1", "nodes", "bastion", "all", "nodes,!node2", "node[1-3]", "@nodes", "~n.*"),
    *("&nodes", "!x", "nodes,", ",", "[", "node[3-1]", "node[1:x]", "@retry.txt", "@"),
    *("{host}", "{nope}", "{", "}", "{host", "a->b", "root@h:22", "h:99999", "[::1]:22"),
    *("strict", "off", "accept-new", "-", "", " ", "echo", "true", "x\udcff", "é"),
    *("retry.txt", "local.toml", "out", "script.sh", "missing.toml"),
]
# no "/", "." or "~": every path the CLI may write stays inside the test's directory
FREE_TEXT = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs",), blacklist_characters="/\\.~\x00", min_codepoint=32
    ),
    max_size=6,
)
ARGV = st.lists(
    st.one_of(st.sampled_from(_option_names()), st.sampled_from(WORDS), FREE_TEXT),
    max_size=8,
)
STATUSES = {0, 1, 2, 3, 4, 130}


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(argv=ARGV, with_env_inventory=st.booleans())
def test_no_argv_gives_a_traceback(
    argv: list[str], with_env_inventory: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what runs is faked (the parsing, checks and plans are real): no SSH, no Docker
    monkeypatch.setattr(execution, "execute", lambda *args, **kwargs: ExitCode.OK)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "local.toml").write_text(FUZZ_INVENTORY)
    (tmp_path / "retry.txt").write_text("node1\nbastion\n")
    (tmp_path / "script.sh").write_text("echo hi\n")
    if with_env_inventory:
        monkeypatch.setenv("APSSH_INVENTORY", str(tmp_path / "local.toml"))
    else:
        monkeypatch.delenv("APSSH_INVENTORY", raising=False)
    argv = [word for word in argv if word != "lab"]  # lab would start containers
    runner = CliRunner()
    with runner.isolation() as streams:
        try:
            main(argv)
        except SystemExit as exit_:
            status = exit_.code
        else:
            status = 0
        out, err = streams[0].getvalue().decode(), streams[1].getvalue().decode()
    assert status in STATUSES, (argv, status, err)
    assert "Traceback" not in out + err, (argv, err)
    assert "apssh: internal error" not in err, (argv, err)
    if status == 1 and not err.startswith("Usage: "):  # a bare group prints its help
        lines = err.splitlines()
        assert lines and lines[0].startswith("apssh: "), (argv, err)
        assert len(lines) <= 2, (argv, err)
        assert len(lines) == 1 or lines[1].startswith(("try 'apssh", "hint: ")), (argv, err)


@pytest.mark.parametrize(
    ("text", "allow_zero", "expected"),
    [
        ("2.5", False, 2.5),
        (" 10 ", False, 10.0),
        ("1000000000", False, 1e9),
        ("0", True, 0.0),
        ("-0", True, 0.0),
        ("0.001", True, 0.001),
        ("0", False, None),
        ("-1", True, None),
        ("nan", True, None),
        ("inf", True, None),
        ("1000000001", False, None),
        ("", False, None),
    ],
)
def test_seconds_type(text: str, allow_zero: bool, expected: float | None) -> None:
    kind = Seconds(allow_zero=allow_zero)
    if expected is None:
        with pytest.raises(click.BadParameter):
            kind.convert(text, None, None)
    else:
        assert kind.convert(text, None, None) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", 1), ("+7", 7), ("1000000", 1000000), ("0", None), ("1000001", None), ("x", None)],
)
def test_count_type(text: str, expected: int | None) -> None:
    if expected is None:
        with pytest.raises(click.BadParameter):
            Count(minimum=1).convert(text, None, None)
    else:
        assert Count(minimum=1).convert(text, None, None) == expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30.0), ("2.5", 2.5), ("1e1", 10.0), ("30s", 30.0), ("2m", 120.0), ("500ms", 0.5),
     ("1h", 3600.0), (" 45s ", 45.0)],
)  # fmt: skip
def test_durations_with_units_on_the_command_line(text: str, seconds: float) -> None:
    from apssh_cli.cli.options import Seconds

    assert Seconds().convert(text, None, None) == seconds


def test_a_timeout_with_a_unit_terminates_the_command(
    local_inventory: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["-i", local_inventory, "--timeout", "300ms", "--keepalive", "0s", "sleep", "30"]
    status, _, err = apssh(argv, capsys)
    assert status == 3, err
