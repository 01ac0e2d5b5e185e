"""The `apssh` entry point: routing, --version, error-to-exit-code mapping."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from apssh_cli.cli.main import main


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
        (["--timeout", "nan"], "Invalid value for '--timeout': expected a number of seconds"),
        (["--timeout", "inf"], "got 'inf'"),
        (["--timeout", "-Infinity"], "got '-Infinity'"),
        (["--timeout", "0"], "got '0'"),
        (["--timeout=-1"], "got '-1'"),
        (["--timeout", "1e10"], "at most 1000000000, got '1e10'"),
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
        "apssh: Invalid value for '--timeout': expected a number of seconds above 0 and at "
        "most 1000000000, got 'nan'",
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
        (["-t"], ["apssh: Option '-t' requires an argument", "try 'apssh --help'"]),
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
