"""The package logger, and an adapter that prefixes messages with the host.

The library adds no handler: applications (the CLI's ``-v``) decide what is shown.
Remote output is data and goes to formatters, never to the log.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

logger = logging.getLogger("apssh_cli")


class HostAdapter(logging.LoggerAdapter[logging.Logger]):
    """Prefix every message with ``host=<name>`` and put ``host`` in the record."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        host = self.extra["host"] if self.extra else "?"
        kwargs.setdefault("extra", {})["host"] = host
        return f"host={host} {msg}", kwargs


def host_logger(host: str) -> HostAdapter:
    """A logger for messages about one host."""
    return HostAdapter(logger, {"host": host})
