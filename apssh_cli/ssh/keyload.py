"""Upstream apssh's key helpers: import_private_key, load_agent_keys, load_private_keys.

Scripts written for upstream load keys themselves and pass them as
``SshNode(keys=...)``. These functions return what upstream's do (lists of
asyncssh keys) and, unlike upstream's ``load_agent_keys``, also work while an
event loop is running (a notebook, an ``async def main``): the agent is then
asked from a helper thread.

Nodes do not need them: ``SshNode(keys=None)`` already offers the agent's keys
and the default key files (see :mod:`apssh_cli.ssh.keys`).
"""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from collections.abc import Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import asyncssh

from apssh_cli.log import logger
from apssh_cli.ssh.keys import AGENT_KEYS, DEFAULT_IDENTITIES

__all__ = ["import_private_key", "load_agent_keys", "load_private_keys"]

_T = TypeVar("_T")
# a key as asyncssh takes it in client_keys: a key read from a file, or the agent's
AnyKey = asyncssh.SSHKey | asyncssh.SSHKeyPair


def import_private_key(filename: str | Path) -> asyncssh.SSHKey | None:
    """Read a private key file; None if it is missing or cannot be used.

    An encrypted key asks for its passphrase on the terminal (an empty answer
    skips the key); without a terminal it is skipped: load it in ssh-agent.
    """
    path = Path(filename).expanduser()
    if not path.is_file():
        return None
    try:
        return asyncssh.read_private_key(path)
    except asyncssh.KeyEncryptionError:
        pass
    except (OSError, asyncssh.KeyImportError, ValueError) as exc:
        logger.warning("cannot use key %s: %s", path, exc)
        return None
    if not sys.stdin.isatty():
        logger.warning("key %s is encrypted and there is no terminal: skipped", path)
        return None
    while True:
        passphrase = _ask_secret(f"Enter passphrase for key {path.name}: ")
        if not passphrase:
            return None
        try:
            return asyncssh.read_private_key(path, passphrase)
        except (asyncssh.KeyEncryptionError, asyncssh.KeyImportError):
            sys.stderr.write("Wrong passphrase\n")


def _ask_secret(prompt: str) -> str:
    """getpass on the controlling terminal; a run served by the command server
    (apssh_cli.cli.command_server) has none but the caller's terminal as stdin:
    read it there, without echo (getpass would fall back to echoing)."""
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError:
        pass
    else:
        return getpass.getpass(prompt)
    import termios

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    quiet = list(saved)
    quiet[3] &= ~termios.ECHO
    sys.stderr.write(prompt)
    sys.stderr.flush()
    try:
        termios.tcsetattr(fd, termios.TCSAFLUSH, quiet)
        line = sys.stdin.readline()
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)
        sys.stderr.write("\n")
    return line.rstrip("\n")


def load_agent_keys(agent_path: str | None = None) -> list[asyncssh.SSHKeyPair]:
    """The keys the ssh-agent holds; ``[]`` when there is no agent or it fails.

    Args:
        agent_path: the agent's socket; default ``$SSH_AUTH_SOCK``.
    """
    path = agent_path or os.environ.get("SSH_AUTH_SOCK")
    if not path:
        return []
    try:
        return _run_sync(_agent_keys(path))
    except (OSError, asyncssh.Error, ValueError) as exc:
        logger.warning("cannot read the ssh-agent's keys (%s): %s", path, exc)
        return []


def load_private_keys(
    command_line_keys: Iterable[str | Path] | None = None, verbose: bool = False
) -> list[AnyKey]:
    """Keys by upstream's policy: the given files, else the agent's, else the default files.

    Args:
        command_line_keys: key files to load (only those); when empty, the
            agent's keys if it holds any, else ``~/.ssh/id_ed25519``,
            ``id_ecdsa`` and ``id_rsa``, those that exist.
        verbose: log what was loaded (logger ``apssh_cli``, level INFO).
    """
    given = list(command_line_keys or ())
    if not given:
        agent_keys: list[AnyKey] = list(load_agent_keys())
        if agent_keys:
            _report(verbose, "%d key(s) from the ssh-agent", len(agent_keys))
            return agent_keys
    filenames = given or list(DEFAULT_IDENTITIES)
    keys: list[AnyKey] = [key for key in map(import_private_key, filenames) if key is not None]
    _report(verbose, "%d key(s) loaded from %d file(s)", len(keys), len(filenames))
    return keys


async def _agent_keys(path: str) -> list[asyncssh.SSHKeyPair]:
    async with asyncssh.connect_agent(path) as agent:
        keys = list(await agent.get_keys())
    for key in keys:
        AGENT_KEYS[key] = path  # SshNode(keys=these) then asks this agent itself
    return keys


def _run_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to its end, from plain code or from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # a loop runs in this thread: asyncio.run() would refuse, so use a helper thread
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _report(verbose: bool, message: str, *args: object) -> None:
    if verbose:
        logger.info(message, *args)
