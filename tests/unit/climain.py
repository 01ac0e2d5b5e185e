"""The `apssh` command run in-process, for the unit tests of the command line."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from apssh_cli.cli.main import main


def apssh(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `apssh argv...`: (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def apssh_argv(argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The same, the arguments as one list first."""
    return apssh(capsys, *argv)
