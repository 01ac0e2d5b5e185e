"""asyncssh's own log, host by host: what ``-vv`` and ``-vvv`` show.

asyncssh names a connection ``[conn=N]`` in its log lines; each connection made by
:mod:`~apssh_cli.ssh.connection` is registered here with its host's label, and
:func:`asyncssh_log` passes asyncssh's records on to apssh's logger as
``host=LABEL ssh: ...`` lines (INFO), which the command line shows as notes.

- level 2 (``-vv``): the authentication lines only: the keys tried (by type),
  the methods the server offers, success or failure;
- level 3 (``-vvv``): asyncssh's whole debug log (its debug level 2: key
  exchange, channels, SFTP requests...);
- level 4 and more: with packet dumps (asyncssh's debug level 3).
"""

from __future__ import annotations

import contextlib
import logging
import re
import weakref
from collections.abc import Iterator
from typing import Any

import asyncssh

from apssh_cli.log import logger

# "conn=3" -> the host's label, while the connection lives
_LABELS: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_CONTEXT = re.compile(r"^\[(conn=\d+)[^\]]*\] ?")
# asyncssh's authentication lines (auth.py, connection.py): what -vv shows
_AUTH_WORDS = ("auth", "Auth", "key for", "Trying", "Permission denied")


class _Label:
    """A label that lives as long as its connection (the weak dictionary's value)."""

    def __init__(self, text: str) -> None:
        self.text = text


def register(conn: Any, label: str) -> None:
    """Name the host of ``conn`` in asyncssh's log lines."""
    context = getattr(getattr(conn, "logger", None), "_context", "")
    if isinstance(context, str) and context.startswith("conn="):
        holder = _Label(label)
        # the connection keeps its label alive; both go together
        with contextlib.suppress(AttributeError, TypeError):
            conn._apssh_label = holder
            _LABELS[context.split(",")[0]] = holder


class _ToHostLog(logging.Handler):
    def __init__(self, everything: bool) -> None:
        super().__init__(logging.DEBUG)
        self._everything = everything

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except (TypeError, ValueError):
            return
        if not self._everything and not any(word in text for word in _AUTH_WORDS):
            return
        match = _CONTEXT.match(text)
        holder = _LABELS.get(match.group(1)) if match else None
        body = text[match.end() :] if match else text
        if holder is not None:
            logger.info("host=%s ssh: %s", holder.text, body)
        else:
            logger.info("ssh: %s", body)


@contextlib.contextmanager
def asyncssh_log(level: int) -> Iterator[None]:
    """Within the block, pass asyncssh's log to apssh's logger (level 2: authentication
    only; 3: everything; 4: with packets). Below 2: nothing."""
    if level < 2:
        yield
        return
    source = logging.getLogger("asyncssh")
    handler = _ToHostLog(everything=level >= 3)
    saved = (source.level, source.propagate)
    # asyncssh's "debug2" lines (the methods a server offers) need its debug level 2
    asyncssh.set_debug_level(min(max(level - 1, 2), 3))
    source.setLevel(logging.DEBUG)
    source.propagate = False  # shown once, as notes, not again by a root handler
    source.addHandler(handler)
    try:
        yield
    finally:
        source.removeHandler(handler)
        source.setLevel(saved[0])
        source.propagate = saved[1]
        asyncssh.set_debug_level(1)
