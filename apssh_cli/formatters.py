"""Upstream's ``apssh.formatters``: the formatters, under the module name scripts import.

``from apssh.formatters import TimeHostFormatter, SubdirFormatter`` becomes
``from apssh_cli.formatters import ...`` (or ``from apssh_cli import ...``). The
formatters themselves live in :mod:`apssh_cli.output`.
"""

from __future__ import annotations

from typing import Any

from apssh_cli import output


def __getattr__(name: str) -> Any:
    # every formatter output.py defines, including those added after this module
    if name.endswith("Formatter") and hasattr(output, name):
        return getattr(output, name)
    raise AttributeError(f"module 'apssh_cli.formatters' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(name for name in vars(output) if name.endswith("Formatter"))
