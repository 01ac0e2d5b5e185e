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

import base64
import hashlib
import os
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from apssh_cli.errors import ConfigError
from apssh_cli.log import logger

DEFAULT_IDENTITIES = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")

# an agent's key pair (upstream's load_agent_keys()) is a loaded key too
LoadedKey = asyncssh.SSHKey | asyncssh.SSHKeyPair
KeySpec = str | Path | LoadedKey
_ENCRYPTED = "key file is encrypted and no ssh-agent runs (SSH_AUTH_SOCK): load it with ssh-add"


@dataclass(frozen=True)
class ClientKeys:
    """What to hand to asyncssh: the key objects, and whether to ask the agent."""

    keys: tuple[LoadedKey, ...]
    use_agent: bool
    agent_path: str | None = None  # None: $SSH_AUTH_SOCK
    sources: tuple[str, ...] = ()  # each key as a person knows it: its file, its fingerprint


def describe_key(key: LoadedKey, path: str | Path | None = None) -> str:
    """A key as -v and refusals show it: its file (if any), type and fingerprint."""
    # OpenSSH's fingerprint: SHA256 of the public key blob, base64 without padding
    digest = hashlib.sha256(key.public_data).digest()
    what = f"{key.get_algorithm()} SHA256:{base64.b64encode(digest).decode().rstrip('=')}"
    return f"{path} ({what})" if path is not None else f"a loaded key ({what})"


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
        if not resolved.is_file():
            raise ConfigError("key file is not a regular file", source=str(resolved))
    except OSError as exc:
        raise ConfigError(f"cannot read key file: {exc.strerror}", source=str(resolved)) from exc
    cached = _CACHE.get(resolved)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    try:
        key = asyncssh.read_private_key(resolved)
    except asyncssh.KeyEncryptionError as exc:
        raise _EncryptedKeyError(
            "key file is encrypted and no ssh-agent holds it (SSH_AUTH_SOCK): load it with ssh-add",
            source=str(resolved),
        ) from exc
    except asyncssh.KeyImportError as exc:
        if "passphrase" in str(exc).lower():  # asyncssh's way to say "encrypted"
            raise _EncryptedKeyError(_ENCRYPTED, source=str(resolved)) from exc
        raise ConfigError(f"not a usable private key ({exc})", source=str(resolved)) from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"not a usable private key ({exc})", source=str(resolved)) from exc
    _CACHE[resolved] = (mtime, key)
    return key


def has_agent() -> bool:
    """Whether an ssh-agent socket is there to ask (``SSH_AUTH_SOCK``)."""
    path = os.environ.get("SSH_AUTH_SOCK")
    return path is not None and path != "" and os.path.exists(path)


def check_key_files(paths: Iterable[str | Path]) -> None:
    """Check, before anything runs, that every explicit key file can be used.

    A missing or unreadable file, a file that is not a private key, and an
    encrypted key with no ssh-agent to hold it are refused; an encrypted key is
    accepted when an agent runs (the agent's keys are then offered).

    Raises:
        ConfigError: the first unusable file (one message, naming it).
    """
    for path in dict.fromkeys(str(path) for path in paths):
        try:
            read_key(path)
        except _EncryptedKeyError:
            if not has_agent():
                raise


class _EncryptedKeyError(ConfigError):
    """A passphrase-protected key file (usable only through an ssh-agent)."""


def resolve_keys(keys: Sequence[KeySpec] | None, identity_files: Sequence[str] = ()) -> ClientKeys:
    """Decide which keys a connection offers.

    Args:
        keys: explicit keys; when given, nothing else is offered, but for the
            agent's keys when one of them is an encrypted file and an agent runs.
        identity_files: IdentityFile entries from ~/.ssh/config (used when keys is None).

    Raises:
        ConfigError: an explicit key file cannot be used.
    """
    if keys is not None:
        if isinstance(keys, str | Path | asyncssh.SSHKey | asyncssh.SSHKeyPair):
            keys = [keys]
        loaded: list[LoadedKey] = []
        sources: list[str] = []
        use_agent = False
        for key in keys:
            if isinstance(key, asyncssh.SSHKey | asyncssh.SSHKeyPair):
                loaded.append(key)
                sources.append(describe_key(key))
                continue
            try:
                loaded.append(read_key(key))
                sources.append(describe_key(loaded[-1], Path(key).expanduser()))
            except _EncryptedKeyError:
                if not has_agent():
                    raise
                use_agent = True  # the agent may hold it: offer the agent's keys
        agents = {AGENT_KEYS.get(key) for key in loaded if isinstance(key, asyncssh.SSHKeyPair)}
        only_agent = all(isinstance(key, asyncssh.SSHKeyPair) for key in loaded)
        if loaded and only_agent and len(agents) == 1 and None not in agents:
            # only an agent's keys: asyncssh asks that agent itself, and closes its
            # connection to it (key pairs handed over would leave it open)
            (agent_path,) = agents
            return ClientKeys((), use_agent=True, agent_path=agent_path)
        return ClientKeys(tuple(loaded), use_agent=use_agent, sources=tuple(sources))
    candidates = identity_files or DEFAULT_IDENTITIES
    found = []
    sources = []
    for candidate in candidates:
        path = Path(candidate).expanduser()
        if not path.is_file():
            continue
        try:
            found.append(read_key(path))
            sources.append(describe_key(found[-1], path))
        except ConfigError as exc:
            # an encrypted default key may still be in the agent
            logger.debug("skipping identity %s: %s", path, exc)
    return ClientKeys(tuple(found), use_agent=True, sources=tuple(sources))
