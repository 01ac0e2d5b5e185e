"""The `apssh` entry point: routing, --version, error-to-exit-code mapping."""

from __future__ import annotations

import subprocess
import sys

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
