"""Durations as people write them: ``"500ms"``, ``"30s"``, ``"2m"``, ``"1h"``, or plain seconds.

One grammar for the command line (``--timeout 30s``) and recipes (``timeout = "2m"``).
A leaf: the standard library only.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["UNITS", "parse_duration"]

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)?\s*")
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any, *, allow_zero: bool = False) -> float:
    """``"500ms"``, ``"30s"``, ``"10m"``, ``"1h"`` or a number of seconds -> seconds.

    >>> parse_duration("1m"), parse_duration(2), parse_duration("250ms"), parse_duration("1.5")
    (60.0, 2.0, 0.25, 1.5)

    Raises:
        ValueError: anything else, or a duration that is not positive (0 is
            accepted with ``allow_zero``, for options where 0 means "off").
    """
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value)):
        seconds = float(match.group(1)) * UNITS[match.group(2)]
    else:
        raise ValueError(f'not a duration: {value!r} (write "500ms", "30s", "10m", "1h")')
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"a duration must be positive: {value!r}")
    return seconds
