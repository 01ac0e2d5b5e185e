"""Inventory secrets: which variables hold one, and masking them wherever apssh prints.

A variable is a secret when its name (any case) contains ``password``, ``passwd``,
``passphrase``, ``secret``, ``token`` or ``credential``, or when one of its words
(split at ``_``, ``-``, ``.`` and camelCase) is ``pass``, or its last word is ``key``
(``api_key``, ``private_key``, ``ssh_key``, ``key``). So ``ansible_become_pass``
and ``vault_token`` are secrets; ``keepalive``, ``key_file``, ``monkey`` and
``passenger`` are not. A secret's whole value is masked, table or array
included; inside a table that is not a secret, each key follows the same rule::

    >>> mask_vars({"db": {"user": "app", "password": "hunter2"}, "keepalive": 5})
    {'db': {'user': 'app', 'password': '********'}, 'keepalive': 5}

`SecretMask` masks the secret values themselves in text that apssh renders
(recipe plans, errors, journal events, summaries), where a template may have
put one: every string, number or array item under a secret name, of at least
`MIN_MASKED_LENGTH` characters (a shorter one would mask ordinary text).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from apssh_cli.inventory.model import Host, Inventory

MASK = "********"
MIN_MASKED_LENGTH = 4
_SECRET_PARTS = ("password", "passwd", "passphrase", "secret", "token", "credential")
_WORD_SEPARATORS = re.compile(r"[_.\-]+")


def is_secret_name(name: str) -> bool:
    """Whether a variable called ``name`` holds a secret (the rule in the module docstring)."""
    # camelCase words too: apiKey, sshPass
    lowered = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    if any(part in lowered for part in _SECRET_PARTS):
        return True
    words = [word for word in _WORD_SEPARATORS.split(lowered) if word]
    return bool(words) and ("pass" in words or words[-1] == "key")


def mask_vars(variables: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``variables`` with every secret replaced by `MASK`, at any depth."""
    return {key: _masked(key, value) for key, value in variables.items()}


def _masked(name: str, value: Any) -> Any:
    if is_secret_name(name):
        return MASK
    if isinstance(value, Mapping):
        return mask_vars(value)
    if isinstance(value, list | tuple):
        return [_masked(name, item) for item in value]
    return value


def secret_values(variables: Mapping[str, Any]) -> set[str]:
    """The text of every secret leaf in ``variables`` (strings and numbers), at any depth."""
    found: set[str] = set()

    def walk(value: Any, secret: bool) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                walk(item, secret or is_secret_name(str(key)))
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item, secret)
        elif secret and isinstance(value, str | int | float) and not isinstance(value, bool):
            found.add(str(value))

    walk(variables, False)
    return found


class SecretMask:
    """Replaces known secret values by `MASK` in text and in JSON-like data.

    Build it with `of_inventory` or `of_hosts`; an empty mask changes nothing.
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        kept = {value for value in values if len(value) >= MIN_MASKED_LENGTH}
        # the longest first, so that a secret containing another is masked whole
        self._values = sorted(kept, key=lambda value: (-len(value), value))
        self._pattern = (
            re.compile("|".join(re.escape(value) for value in self._values))
            if self._values
            else None
        )

    @classmethod
    def of_hosts(cls, hosts: Iterable[Host]) -> SecretMask:
        """The secrets in these hosts' variables."""
        values: set[str] = set()
        for host in hosts:
            values |= secret_values(host.vars)
        return cls(values)

    @classmethod
    def of_inventory(cls, inventory: Inventory | None) -> SecretMask:
        """The secrets of every host and group of an inventory (none for None)."""
        if inventory is None:
            return cls()
        mask = cls.of_hosts(inventory)
        values = set(mask._values)
        for group in inventory.groups.values():
            values |= secret_values(group.vars)
        return cls(values)

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        """``text`` with each secret value replaced by `MASK`."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def data(self, value: Any) -> Any:
        """A copy of JSON-like data with the secrets masked in every string (keys too)."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.data(key): self.data(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(item) for item in value]
        return value
