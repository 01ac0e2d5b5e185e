"""The public API: __all__ is complete, sorted, and every name resolves."""

from __future__ import annotations

import subprocess
import sys

import apssh_cli

LIBRARY = {
    "SshNode",
    "LocalNode",
    "close_nodes",
    "SshJob",
    "Scheduler",
    "Sequence",
    "Run",
    "RunScript",
    "RunString",
    "Push",
    "Pull",
    "HostFormatter",
    "RawFormatter",
    "TimeHostFormatter",
    "SubdirFormatter",
    "CaptureFormatter",
    "HostResult",
    "Status",
    "ApsshError",
}


def test_all_is_sorted_and_resolves() -> None:
    assert apssh_cli.__all__ == sorted(apssh_cli.__all__)
    for name in apssh_cli.__all__:
        assert getattr(apssh_cli, name) is not None, name


def test_library_names_are_exported() -> None:
    assert LIBRARY.issubset(apssh_cli.__all__)


def test_exports_are_defined_where_the_table_says() -> None:
    for name in apssh_cli.__all__:
        value = getattr(apssh_cli, name)
        if name.startswith("__") or name == "Sequence":
            continue  # Sequence is asynciojobs' own, re-exported by apssh_cli.engine.job
        assert value.__module__.startswith("apssh_cli"), name


def test_import_stays_light() -> None:
    # `apssh --help` and the inventory commands must not pay for asyncssh/asynciojobs
    code = (
        "import sys, apssh_cli, apssh_cli.commands, apssh_cli.output;"
        "print('asyncssh' in sys.modules, 'asynciojobs' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
