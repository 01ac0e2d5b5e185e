"""Defaults outside the inventory: a config file and ``APSSH_*`` environment variables.

A user who always wants ``-w 50`` or ``--timeout 5m`` writes it once::

    # $XDG_CONFIG_HOME/apssh/config.toml, else ~/.config/apssh/config.toml
    window = 50
    timeout = "5m"
    connect_timeout = 5
    known_hosts = "strict"
    user = "root"
    inventory = "~/lab/inventory.toml"
    color = "never"

or sets ``APSSH_WINDOW``, ``APSSH_TIMEOUT``, ``APSSH_CONNECT_TIMEOUT``,
``APSSH_KNOWN_HOSTS``, ``APSSH_USER``, ``APSSH_INVENTORY``, ``APSSH_COLOR``, ``APSSH_PERSIST``
(``persist = "10m"``: warm connections, docs/persist.md). ``APSSH_CONFIG``
names another file (empty: none). Precedence: the command line, then the
environment, then the config file, then the built-in default. ``user``,
``known_hosts`` and ``connect_timeout`` are defaults for hosts whose inventory
entry (or ``-t user@``) says nothing: an inventory setting is about one host and
wins over them. Values are checked with the command line's own types, so
``timeout = "ten"`` is one clear error naming the file (or the variable) and
the key, before anything runs. ``-v`` says where each setting came from.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from apssh_cli.cli.options import MAX_COUNT, Seconds
from apssh_cli.cli.render import COLOR_CHOICES
from apssh_cli.errors import ConfigError
from apssh_cli.inventory.hostvars import KNOWN_HOSTS_POLICIES

ENV_CONFIG = "APSSH_CONFIG"
BUILT_IN = "built-in"


def _window(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected a whole number from 1 to {MAX_COUNT}, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"expected a whole number from 1 to {MAX_COUNT}, got {value!r}") from None
    if not 1 <= number <= MAX_COUNT:
        raise ValueError(f"expected a whole number from 1 to {MAX_COUNT}, got {value!r}")
    return number


def _seconds(value: Any) -> float:
    try:
        return float(Seconds().convert(value, None, None))
    except click.BadParameter as exc:
        raise ValueError(exc.message) from None


def _seconds_or_off(value: Any) -> float:
    try:
        return float(Seconds(allow_zero=True).convert(value, None, None))
    except click.BadParameter as exc:
        raise ValueError(exc.message) from None


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value.strip()


def _policy(value: Any) -> str:
    if value not in KNOWN_HOSTS_POLICIES:
        raise ValueError(f"expected one of {', '.join(KNOWN_HOSTS_POLICIES)}, got {value!r}")
    return str(value)


def _colour(value: Any) -> str:
    if value not in COLOR_CHOICES:
        raise ValueError(f"expected one of {', '.join(COLOR_CHOICES)}, got {value!r}")
    return str(value)


# config key -> (environment variable, checker)
SETTINGS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "window": ("APSSH_WINDOW", _window),
    "timeout": ("APSSH_TIMEOUT", _seconds),
    "connect_timeout": ("APSSH_CONNECT_TIMEOUT", _seconds),
    "known_hosts": ("APSSH_KNOWN_HOSTS", _policy),
    "user": ("APSSH_USER", _text),
    "inventory": ("APSSH_INVENTORY", _text),
    "color": ("APSSH_COLOR", _colour),
    "persist": ("APSSH_PERSIST", _seconds_or_off),
}


@dataclass(frozen=True)
class Setting:
    value: Any
    source: str  # "APSSH_WINDOW", a config file's path, "command line"


@dataclass
class Defaults:
    """The settings found in the environment and the config file, each with its source."""

    settings: dict[str, Setting] = field(default_factory=dict)
    config_file: Path | None = None

    def get(self, key: str) -> Any:
        setting = self.settings.get(key)
        return setting.value if setting is not None else None


def config_file(environ: Mapping[str, str]) -> Path | None:
    """The config file to read: ``$APSSH_CONFIG``, else the first XDG place that exists."""
    if ENV_CONFIG in environ:
        chosen = environ[ENV_CONFIG]
        return Path(os.path.expanduser(chosen)) if chosen else None
    places = []
    if environ.get("XDG_CONFIG_HOME"):
        places.append(Path(environ["XDG_CONFIG_HOME"]) / "apssh" / "config.toml")
    home = environ.get("HOME")
    if home:
        places.append(Path(home) / ".config" / "apssh" / "config.toml")
    return next((place for place in places if place.is_file()), None)


def load_defaults(environ: Mapping[str, str] | None = None) -> Defaults:
    """Read the config file, then the environment (which wins).

    Raises:
        ConfigError: an unreadable or invalid file, an unknown key, a bad value.
    """
    environ = os.environ if environ is None else environ
    defaults = Defaults(config_file=config_file(environ))
    if defaults.config_file is not None:
        for key, value in _read(defaults.config_file).items():
            defaults.settings[key] = Setting(value, str(defaults.config_file))
    for key, (variable, check) in SETTINGS.items():
        text = environ.get(variable)
        if text is None or text == "":
            continue
        if key == "inventory":
            continue  # APSSH_INVENTORY is the -i option's own envvar (a path list)
        try:
            defaults.settings[key] = Setting(check(text), variable)
        except ValueError as exc:
            raise ConfigError(f"{variable}={text!r}: {exc}") from None
    return defaults


def _read(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file (from ${ENV_CONFIG})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in SETTINGS:
            close = difflib.get_close_matches(key, list(SETTINGS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(SETTINGS)
            raise ConfigError(f"{path}: unknown key {key!r}{hint}; known keys: {known}")
        try:
            values[key] = SETTINGS[key][1](value)
        except ValueError as exc:
            raise ConfigError(f"{path}: {key}: {exc}") from None
    if "inventory" in values:  # relative to the config file, as inventory paths are
        values["inventory"] = str(path.parent / os.path.expanduser(values["inventory"]))
    return values


def apply(params: dict[str, Any], defaults: Defaults, ctx: click.Context | None) -> list[str]:
    """Fill the options not given on the command line; return ``-v``'s lines saying from where.

    ``params`` are a command's click parameters (``window``, ``timeout``,
    ``connect_timeout``, ``known_hosts``, ``login``, ``inventory``); the host
    defaults (``user``, ``known_hosts``, ``connect_timeout``) go to
    ``params["host_defaults"]``, for hosts that set none.
    """
    lines: list[str] = []
    host_defaults: dict[str, Any] = {}
    names = {"window": "window", "timeout": "timeout", "inventory": "inventory", "color": "color"}
    for key in SETTINGS:
        param = {"user": "login"}.get(key, key)
        if param not in params:
            continue
        given = params[param] not in (None, ())
        source = _source(ctx, param) if given else None
        if given:
            lines.append(f"setting {key} = {_show(params[param])} ({source})")
            continue
        setting = defaults.settings.get(key)
        if setting is None:
            lines.append(f"setting {key}: {BUILT_IN} default")
            continue
        lines.append(f"setting {key} = {_show(setting.value)} ({setting.source})")
        if key in names:
            params[names[key]] = (setting.value,) if key == "inventory" else setting.value
        else:
            host_defaults[key] = setting.value
    params["host_defaults"] = host_defaults
    return lines


def _source(ctx: click.Context | None, param: str) -> str:
    if ctx is None:
        return "command line"
    source = ctx.get_parameter_source(param)
    if source is click.core.ParameterSource.ENVIRONMENT:
        return "environment"
    return "command line"


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    return str(value)
