"""Client keys: explicit keys, IdentityFile entries, or the default identity files.

Key files are read with plain (synchronous) calls, so loading works the same
inside a running event loop (a notebook, an async program). Each file is read
once per process (cached until its mtime changes).

- explicit ``keys`` (paths or loaded :class:`asyncssh.SSHKey` objects): only those,
  the ssh-agent is not asked;
- otherwise the ``IdentityFile`` entries of ``~/.ssh/config`` if any, else the
  default files ``~/.ssh/id_ed25519``, ``id_ecdsa``, ``id_rsa``; plus the keys of
  the ssh-agent (``SSH_AUTH_SOCK``).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from apssh_cli.errors import ConfigError
from apssh_cli.log import logger

DEFAULT_IDENTITIES = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")

# an agent's key pair (upstream's load_agent_keys()) is a loaded key too
LoadedKey = asyncssh.SSHKey | asyncssh.SSHKeyPair
KeySpec = str | Path | LoadedKey


@dataclass(frozen=True)
class ClientKeys:
    """What to hand to asyncssh: the key objects, and whether to ask the agent."""

    keys: tuple[LoadedKey, ...]
    use_agent: bool
    agent_path: str | None = None  # None: $SSH_AUTH_SOCK


# the agent's key pairs handed out by keyload.load_agent_keys, and the agent they come from
AGENT_KEYS: weakref.WeakKeyDictionary[asyncssh.SSHKeyPair, str] = weakref.WeakKeyDictionary()


_CACHE: dict[Path, tuple[int, asyncssh.SSHKey]] = {}


def read_key(path: str | Path) -> asyncssh.SSHKey:
    """Read a private key file (cached).

    Raises:
        ConfigError: the file is missing, unreadable, encrypted or not a key.
    """
    resolved = Path(path).expanduser()
    try:
        mtime = resolved.stat().st_mtime_ns
    except OSError as exc:
        raise ConfigError(f"cannot read key file: {exc.strerror}", source=str(resolved)) from exc
    cached = _CACHE.get(resolved)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    try:
        key = asyncssh.read_private_key(resolved)
    except asyncssh.KeyEncryptionError as exc:
        raise ConfigError(
            "key file is encrypted: load it in ssh-agent instead", source=str(resolved)
        ) from exc
    except (OSError, asyncssh.KeyImportError, ValueError) as exc:
        raise ConfigError(f"not a usable private key: {exc}", source=str(resolved)) from exc
    _CACHE[resolved] = (mtime, key)
    return key


def resolve_keys(keys: Sequence[KeySpec] | None, identity_files: Sequence[str] = ()) -> ClientKeys:
    """Decide which keys a connection offers.

    Args:
        keys: explicit keys; when given, nothing else is offered.
        identity_files: IdentityFile entries from ~/.ssh/config (used when keys is None).

    Raises:
        ConfigError: an explicit key file cannot be used.
    """
    if keys is not None:
        if isinstance(keys, str | Path | asyncssh.SSHKey | asyncssh.SSHKeyPair):
            keys = [keys]
        loaded = tuple(
            key if isinstance(key, asyncssh.SSHKey | asyncssh.SSHKeyPair) else read_key(key)
            for key in keys
        )
        agents = {AGENT_KEYS.get(key) for key in loaded if isinstance(key, asyncssh.SSHKeyPair)}
        if loaded and len(agents) == 1 and None not in agents:
            # only an agent's keys: asyncssh asks that agent itself, and closes its
            # connection to it (key pairs handed over would leave it open)
            (agent_path,) = agents
            return ClientKeys((), use_agent=True, agent_path=agent_path)
        return ClientKeys(loaded, use_agent=False)
    candidates = identity_files or DEFAULT_IDENTITIES
    found = []
    for candidate in candidates:
        path = Path(candidate).expanduser()
        if not path.is_file():
            continue
        try:
            found.append(read_key(path))
        except ConfigError as exc:
            # an encrypted default key may still be in the agent
            logger.debug("skipping identity %s: %s", path, exc)
    return ClientKeys(tuple(found), use_agent=True)
