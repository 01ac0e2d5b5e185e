"""``-O Name=value`` options: OpenSSH's names, checked, and the ssh settings of a run.

Standard library only (the command line checks ``-O`` and ``-o`` before importing
asyncssh); :mod:`apssh_cli.ssh.sshconfig` reads the options with asyncssh.

``-O`` options (:class:`SshOptions`) are config lines of the highest precedence, as
``ssh -o``: they are written, as given, to a private file read before the ssh_config
file, so the first value wins as with ssh. Only the options of :data:`HONOURED` are
accepted: any other OpenSSH option is refused by name (:func:`parse_option`), never
silently ignored. :func:`ssh_settings` gives the ``-F`` file and the ``-O`` options
to the nodes created inside it (also in the tasks an ``asyncio.run`` starts there).
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from apssh_cli.errors import ConfigError
from apssh_cli.ssh.early import DEFAULT_SSH_CONFIG

__all__ = [
    "HONOURED",
    "OPENSSH_OPTIONS",
    "SshOptions",
    "SshSettings",
    "current_settings",
    "looks_like_ssh_option",
    "parse_option",
    "ssh_settings",
]

# the options apssh applies, and how (docs/cli.md has the same table); the
# differential test compares each of them with `ssh -G`
HONOURED: dict[str, str] = {
    "Hostname": "the address connected to",
    "User": "the remote user",
    "Port": "the port",
    "IdentityFile": "the keys offered (when no -k)",
    "IdentitiesOnly": "yes: the agent offers only the IdentityFile keys",
    "IdentityAgent": "the agent socket (none: no agent)",
    "ProxyJump": "the gateways (shared nodes)",
    "ServerAliveInterval": "seconds between keepalives",
    "ServerAliveCountMax": "unanswered keepalives before a host is unreachable",
    "Ciphers": "the ciphers offered",
    "StrictHostKeyChecking": "the host key policy: yes, ask: strict; accept-new; no, off: off",
    "UserKnownHostsFile": "the known_hosts files read (new keys go to the first)",
    "GlobalKnownHostsFile": "more known_hosts files, only read",
    "HostKeyAlias": "the name host keys are recorded and looked up under",
    "HostKeyAlgorithms": "the host key types accepted, in order",
}
_HONOURED_LOWER = {name.lower(): name for name in HONOURED}

# every ssh_config(5) client option of OpenSSH 9 (lower case): a `-o DIR` that
# reads "Name=value" with one of these names is an ssh option given to the wrong letter
OPENSSH_OPTIONS = frozenset(
    [
        "addkeystoagent",
        "addressfamily",
        "batchmode",
        "bindaddress",
        "bindinterface",
        "casignaturealgorithms",
        "canonicaldomains",
        "canonicalizefallbacklocal",
        "canonicalizehostname",
        "canonicalizemaxdots",
        "canonicalizepermittedcnames",
        "certificatefile",
        "checkhostip",
        "ciphers",
        "clearallforwardings",
        "compression",
        "connecttimeout",
        "connectionattempts",
        "controlmaster",
        "controlpath",
        "controlpersist",
        "dynamicforward",
        "enableescapecommandline",
        "enablesshkeysign",
        "escapechar",
        "exitonforwardfailure",
        "fingerprinthash",
        "forkafterauthentication",
        "forwardagent",
        "forwardx11",
        "forwardx11timeout",
        "forwardx11trusted",
        "gssapiauthentication",
        "gssapiclientidentity",
        "gssapidelegatecredentials",
        "gssapikexalgorithms",
        "gssapikeyexchange",
        "gssapirenewalforcesrekey",
        "gssapiserveridentity",
        "gssapitrustdns",
        "gatewayports",
        "globalknownhostsfile",
        "hashknownhosts",
        "host",
        "hostkeyalgorithms",
        "hostkeyalias",
        "hostbasedacceptedalgorithms",
        "hostbasedauthentication",
        "hostname",
        "ipqos",
        "identitiesonly",
        "identityagent",
        "identityfile",
        "ignoreunknown",
        "include",
        "kbdinteractiveauthentication",
        "kbdinteractivedevices",
        "kexalgorithms",
        "knownhostscommand",
        "localcommand",
        "localforward",
        "loglevel",
        "logverbose",
        "macs",
        "match",
        "nohostauthenticationforlocalhost",
        "numberofpasswordprompts",
        "pkcs11provider",
        "passwordauthentication",
        "permitlocalcommand",
        "permitremoteopen",
        "port",
        "preferredauthentications",
        "proxycommand",
        "proxyjump",
        "proxyusefdpass",
        "pubkeyacceptedalgorithms",
        "pubkeyauthentication",
        "rekeylimit",
        "remotecommand",
        "remoteforward",
        "requesttty",
        "requiredrsasize",
        "revokedhostkeys",
        "securitykeyprovider",
        "sendenv",
        "serveralivecountmax",
        "serveraliveinterval",
        "sessiontype",
        "setenv",
        "stdinnull",
        "streamlocalbindmask",
        "streamlocalbindunlink",
        "stricthostkeychecking",
        "syslogfacility",
        "tcpkeepalive",
        "tunnel",
        "tunneldevice",
        "updatehostkeys",
        "user",
        "userknownhostsfile",
        "verifyhostkeydns",
        "visualhostkey",
        "xauthlocation",
    ]
)
# what apssh offers instead, for the options people reach for
_INSTEAD = {
    "connecttimeout": "use --connect-timeout",
    "proxycommand": "use ProxyJump, -G or the inventory's gateway",
    "batchmode": "apssh never prompts",
}


def looks_like_ssh_option(value: str) -> str | None:
    """The OpenSSH option name ``value`` starts with (``Name=...``), else None.

    >>> looks_like_ssh_option("StrictHostKeyChecking=no")
    'StrictHostKeyChecking'
    >>> looks_like_ssh_option("out=dir") is None
    True
    """
    name, sep, _ = value.partition("=")
    return name.strip() if sep and name.strip().lower() in OPENSSH_OPTIONS else None


# ---------------------------------------------------------------- -O options


def parse_option(text: str) -> tuple[str, str]:
    """Check one ``-O`` option (``Name=value`` or ``Name value``): (its name as
    :data:`HONOURED` spells it, its value).

    >>> parse_option("stricthostkeychecking=accept-new")
    ('StrictHostKeyChecking', 'accept-new')

    Raises:
        ConfigError: not an OpenSSH option, one apssh does not honour, no value,
            or a line break in it.
    """
    match = re.fullmatch(r"\s*([A-Za-z0-9]+)\s*(?:=|\s)\s*(.*?)\s*", text, re.DOTALL)
    if "\n" in text or "\r" in text:
        raise ConfigError(f"bad -O {text!r}: a line break in an ssh option")
    name = match.group(1) if match else text.strip()
    lower = name.lower()
    if lower not in OPENSSH_OPTIONS:
        raise ConfigError(f"bad -O {text!r}: {name!r} is not an OpenSSH option")
    if lower not in _HONOURED_LOWER:
        instead = f"; {_INSTEAD[lower]}" if lower in _INSTEAD else ""
        raise ConfigError(
            f"-O {name}: apssh does not honour this ssh option{instead} "
            f"(it honours: {', '.join(HONOURED)})"
        )
    if match is None or not match.group(2):
        raise ConfigError(f"bad -O {text!r}: no value (use -O {_HONOURED_LOWER[lower]}=VALUE)")
    return _HONOURED_LOWER[lower], match.group(2)


class SshOptions:
    """``-O`` options, checked, in the order given (the first value of an option wins).

    They are written to a private file (removed when the process exits) that
    asyncssh reads as the first config file, before the ssh_config file; their
    values are checked when read (:func:`apssh_cli.ssh.sshconfig.check_options`).

    Raises:
        ConfigError: an option :func:`parse_option` refuses.
    """

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _files: ClassVar[dict[tuple[str, ...], Path]] = {}  # one file per distinct set, per process
    _directory: ClassVar[Path | None] = None

    def __init__(self, options: Iterable[str] = ()) -> None:
        self.lines = tuple(options)
        for line in self.lines:
            parse_option(line)

    def __bool__(self) -> bool:
        return bool(self.lines)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SshOptions) and other.lines == self.lines

    def __hash__(self) -> int:
        return hash(self.lines)

    def __repr__(self) -> str:
        return f"SshOptions({list(self.lines)!r})"

    def names(self) -> set[str]:
        """The options given, as :data:`HONOURED` spells them."""
        return {parse_option(line)[0] for line in self.lines}

    def redirects(self) -> bool:
        """Whether they may send a host elsewhere than its name (no early connection then)."""
        return bool(self.names() & {"Hostname", "Port", "ProxyJump"})

    @property
    def path(self) -> Path | None:
        """The config file holding the options (None when there are none)."""
        if not self.lines:
            return None
        with self._lock:
            path = self._files.get(self.lines)
            if path is None:
                if SshOptions._directory is None:
                    SshOptions._directory = Path(tempfile.mkdtemp(prefix="apssh-options-"))
                    atexit.register(shutil.rmtree, SshOptions._directory, True)
                path = SshOptions._directory / f"options-{len(self._files)}"
                path.write_text("".join(f"{line}\n" for line in self.lines), encoding="utf-8")
                self._files[self.lines] = path
            return path


_NO_OPTIONS = SshOptions()


@dataclass(frozen=True)
class SshSettings:
    """The ssh configuration of a run: ``-F FILE`` and ``-O`` options."""

    config: str | Path | None = DEFAULT_SSH_CONFIG
    options: SshOptions = _NO_OPTIONS


_DEFAULT_SETTINGS = SshSettings()
_SETTINGS: contextvars.ContextVar[SshSettings] = contextvars.ContextVar(
    "apssh_ssh_settings",
    default=_DEFAULT_SETTINGS,
)


def current_settings() -> SshSettings:
    """The settings nodes created now take by default (:func:`ssh_settings`)."""
    return _SETTINGS.get()


@contextlib.contextmanager
def ssh_settings(
    config: str | Path | None = DEFAULT_SSH_CONFIG, options: Iterable[str] | SshOptions = ()
) -> Iterator[SshSettings]:
    """Nodes created inside the block (also in tasks started there: an ``asyncio.run``)
    honour ``config`` instead of ~/.ssh/config, and the ``-O`` ``options``.

    Raises:
        ConfigError: a bad option (see :class:`SshOptions`).
    """
    checked = options if isinstance(options, SshOptions) else SshOptions(options)
    settings = SshSettings(config, checked)
    token = _SETTINGS.set(settings)
    try:
        yield settings
    finally:
        _SETTINGS.reset(token)
