"""TOML sources: read a file's text, parse it, and find the line that wrote a key.

tomllib gives a position for syntax errors only; `Locator` scans the raw text
so that errors about well-formed but wrong contents can name a line too, and
`Origin` carries (file, locator, key path) to wherever such an error is raised::

    >>> Locator('[g.hosts]\\nn1 = { port = "x" }\\n').line(("g", "hosts", "n1", "port"))
    2
"""

from __future__ import annotations

import contextlib
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apssh_cli.errors import InventoryError

MAX_INVENTORY_BYTES = 256 * 2**20  # far above a million hosts written out
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_END = re.compile(r"\s*\(at end of document\)\s*$")


def read_text(path: Path) -> str:
    """The UTF-8 text of an inventory file.

    Raises:
        InventoryError: the file cannot be read, is too large, or is not UTF-8
            (with the line).
    """
    try:
        with path.open("rb") as stream:  # a fifo (`-i <(...)`) is fine, /dev/zero is not
            raw = stream.read(MAX_INVENTORY_BYTES + 1)
    except OSError as exc:
        raise InventoryError(
            f"cannot read inventory: {exc.strerror or exc}", source=str(path)
        ) from None
    if len(raw) > MAX_INVENTORY_BYTES:
        raise InventoryError(
            f"inventory larger than {MAX_INVENTORY_BYTES // 2**20} MiB", source=str(path)
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InventoryError("not UTF-8 text", source=str(path), line=line) from None


def parse(text: str, source: str) -> dict[str, Any]:
    """Parse TOML text (``source`` names it in errors).

    Raises:
        InventoryError: a syntax error, with its line (and column in the message).
    """
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        line = None
        found = _TOML_POSITION.search(message)
        if found:
            line = int(found.group(1))
            message = f"{message[: found.start()]} (column {found.group(2)})"
        elif _TOML_END.search(message):
            line = text.count("\n") + 1
            message = _TOML_END.sub(" (at end of file)", message)
        raise InventoryError(f"invalid TOML: {message}", source=source, line=line) from None
    except RecursionError:
        raise InventoryError("invalid TOML: nested too deeply", source=source) from None


class Locator:
    """Map TOML key paths to the lines that write them (headers and ``key =`` lines)."""

    _KEY = re.compile(r"""\s*(?:([A-Za-z0-9_-]+)|"((?:[^"\\]|\\.)*)"|'([^']*)')\s*""")

    def __init__(self, text: str) -> None:
        self.text = text
        self._paths: list[tuple[tuple[str, ...], int, int]] | None = None

    def _scan(self) -> list[tuple[tuple[str, ...], int, int]]:
        """(full key path, line, index where that line's own keys begin) per line."""
        if self._paths is None:
            paths = []
            header: tuple[str, ...] = ()
            for number, line in enumerate(self.text.splitlines(), start=1):
                stripped = line.lstrip()
                if stripped.startswith("["):
                    array = stripped.startswith("[[")
                    keys, _ = self._keys(stripped[2 if array else 1 :])
                    if keys:
                        header = tuple(keys)
                        paths.append((header, number, 0))
                    continue
                keys, rest = self._keys(stripped)
                if keys and rest.startswith("="):
                    paths.append(((*header, *keys), number, len(header)))
            self._paths = paths
        return self._paths

    def _keys(self, text: str) -> tuple[list[str], str]:
        keys: list[str] = []
        position = 0
        while True:
            match = self._KEY.match(text, position)
            if match is None:
                return [], ""
            bare, basic, literal = match.groups()
            if basic is not None:
                with contextlib.suppress(tomllib.TOMLDecodeError):
                    basic = tomllib.loads(f'k = "{basic}"')["k"]
            keys.append(next(k for k in (bare, basic, literal) if k is not None))
            position = match.end()
            if text.startswith(".", position):
                position += 1
                continue
            return keys, text[position:]

    def line(self, path: Sequence[str]) -> int | None:
        """The first line whose key path shares the most leading keys with ``path``."""
        best_size, best_line = 0, None
        for keys, number, _ in self._scan():
            size = 0
            for key, wanted in zip(keys, path, strict=False):
                if key != wanted:
                    break
                size += 1
            # a longer key path must start with ours; a shorter one must be its prefix
            if size == min(len(keys), len(path)) and size > best_size:
                best_size, best_line = size, number
        return best_line

    def dotted_host(self, group: str, host: str) -> tuple[str, int] | None:
        """An unquoted dotted key that TOML split at the host name: (whole key, line)."""
        for keys, number, start in self._scan():
            if (
                len(keys) > 3
                and keys[:3] == (group, "hosts", host)
                and start <= 2  # this line's own keys run past the host name
            ):
                return ".".join(keys[2:]), number
        return None


@dataclass(frozen=True)
class Origin:
    """Where something was written, for error messages."""

    source: str
    locator: Locator | None
    path: tuple[str, ...]

    def child(self, key: str) -> Origin:
        """The origin of ``key`` inside this one."""
        return Origin(self.source, self.locator, (*self.path, key))

    def line(self) -> int | None:
        """The line that wrote this key path, when the text is known."""
        return self.locator.line(self.path) if self.locator else None

    def error(self, message: str) -> InventoryError:
        """An error naming this file, line and key path."""
        where = ".".join(self.path) or None
        return InventoryError(message, source=self.source, line=self.line(), where=where)
