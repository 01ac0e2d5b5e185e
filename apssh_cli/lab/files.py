"""The files that describe a topology to a client: keys, known_hosts, the TOML inventory.

Keys are made with `cryptography` (asyncssh's own dependency, so always installed):
the lab stays out of asyncssh, which only `apssh_cli.ssh` uses.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from apssh_cli.lab.model import DEFAULT_USER, KNOWN_HOSTS_POLICY, Endpoint, HostKey, KeyPair

KEY_COMMENT = "apssh-lab"


def generate_keypair(private_path: Path) -> KeyPair:
    """Write a fresh ed25519 client key pair (no passphrase) at private_path and .pub."""
    private_pem, public_line = _ed25519()
    private_path.parent.mkdir(parents=True, exist_ok=True)
    private_path.write_text(private_pem)
    private_path.chmod(0o600)
    public_path = private_path.with_name(private_path.name + ".pub")
    public_path.write_text(f"{public_line} {KEY_COMMENT}\n")
    return KeyPair(private_path, public_path)


def generate_host_key(kind: str = "ed25519") -> HostKey:
    """Return a fresh host key: ``ed25519``, or ``rsa`` (a server of one type only)."""
    if kind == "rsa":
        return HostKey(*_rsa())
    if kind != "ed25519":
        raise ValueError(f"unknown host key type {kind!r} (ed25519 or rsa)")
    return HostKey(*_ed25519())


def _rsa() -> tuple[str, str]:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return _openssh_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def _ed25519() -> tuple[str, str]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return _openssh_pair(Ed25519PrivateKey.generate())


def _openssh_pair(key: Any) -> tuple[str, str]:
    # OpenSSH's own formats: the private key as ssh-keygen writes it, "ssh-ed25519 AAAA..."
    from cryptography.hazmat.primitives import serialization

    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private.decode(), public.decode()


def known_hosts_text(endpoints: Iterable[Endpoint]) -> str:
    """known_hosts lines for endpoints, as a client names them."""
    return "".join(f"{ep.known_hosts_name} {ep.host_key}\n" for ep in endpoints)


def inventory_text(
    *,
    bastion: Endpoint,
    internal: list[Endpoint],
    direct: list[Endpoint],
    identity_file: Path,
    known_hosts: Path,
    user: str = DEFAULT_USER,
    comment: str = "",
) -> str:
    """The TOML inventory of a topology: groups bastions, nodes (behind it) and direct."""
    out = [f"# {line}\n" for line in comment.splitlines()]
    out += [
        "[all.vars]\n",
        f"user = {_toml_str(user)}\n",
        f"identity_file = {_toml_str(str(identity_file))}\n",
        f"known_hosts = {{ policy = {_toml_str(KNOWN_HOSTS_POLICY)}, "
        f"file = {_toml_str(str(known_hosts))} }}\n",
        "\n",
        f"[bastions.hosts.{bastion.name}]\n",
        f"hostname = {_toml_str(bastion.host)}\n",
        f"port = {bastion.port}\n",
    ]
    if internal:
        out += ["\n[nodes.vars]\n", f"gateway = {_toml_str(bastion.name)}\n"]
        out += [f"[nodes.hosts.{ep.name}]\n" for ep in internal]
    for ep in direct:
        out += [f"\n[direct.hosts.{ep.name}]\n", f"hostname = {_toml_str(ep.host)}\n"]
        out += [f"port = {ep.port}\n"]
    return "".join(out)


def _toml_str(value: str) -> str:
    # a TOML basic string: JSON's escapes are valid TOML escapes
    return json.dumps(value)
