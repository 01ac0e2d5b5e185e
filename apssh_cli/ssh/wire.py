"""Fewer, larger writes to the network: what a transfer's client CPU goes to otherwise.

asyncssh (2.24) hands each SSH packet to the transport on its own, and asyncio sends
it at once: one ``send()`` per packet, at most 32 KiB each for OpenSSH's sshd. It also
sends an empty ``SSH_MSG_IGNORE`` packet before every packet once encryption is on,
the old countermeasure against chosen-plaintext attacks on CBC ciphers (predictable
IVs), which counter and AEAD modes do not need. A 64 MiB push to one host made about
4,500 ``send()`` calls, half of them for IGNORE packets; profiled, ``send()`` was the
first cost of the client (and of Docker's relays here, which pay per segment).

:func:`tune` changes one connection, with no change to what it sends but the IGNORE
packets: the packets handed over in one turn of the event loop leave in one write,
queued with ``call_soon`` (the order kept; nothing waits for a timer or for more
data), and the IGNORE packets are left out when no CBC cipher is offered (RFC 4251,
9.3.1: the countermeasure is for CBC's chained IVs). asyncssh has no option for
either: both replace attributes of the connection object (``_send``, ``send_packet``);
a connection of an asyncssh without them is left as it is (slower, not wrong), and
tests/unit/test_wire.py fails then.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import asyncssh
from asyncssh.constants import MSG_IGNORE


@dataclass
class WireStats:
    """What :func:`tune` saw on one connection (for tests and benchmarks)."""

    packets: int = 0  # SSH packets asyncssh handed to the transport
    writes: int = 0  # writes the transport got for them
    ignores_left_out: int = 0  # SSH_MSG_IGNORE packets not sent


_STATS: weakref.WeakKeyDictionary[asyncssh.SSHClientConnection, WireStats] = (
    weakref.WeakKeyDictionary()
)


def needs_ignore(ciphers: str | Sequence[str]) -> bool:
    """Whether the IGNORE packets must stay: a CBC cipher may be negotiated.

    ``ciphers``: what asyncssh is given (a list, or ssh_config's ``Ciphers`` line,
    ``+``/``-``/``^`` forms included: any mention of CBC keeps them).

    >>> needs_ignore(["aes128-gcm@openssh.com", "aes128-ctr"]), needs_ignore("+aes256-cbc")
    (False, True)
    """
    text = ciphers if isinstance(ciphers, str) else ",".join(ciphers)
    return "cbc" in text.lower()


def tune(conn: asyncssh.SSHClientConnection, ciphers: str | Sequence[str]) -> bool:
    """Coalesce ``conn``'s writes; leave out its IGNORE packets unless ``ciphers`` (all
    the ciphers offered) name a CBC one. False: this asyncssh has not what it needs."""
    if conn in _STATS:
        return True
    original_send = getattr(conn, "_send", None)
    original_send_packet = getattr(conn, "send_packet", None)
    if not callable(original_send) or not callable(original_send_packet):
        return False
    if not hasattr(conn, "_transport"):
        return False
    loop = asyncio.get_running_loop()
    stats = WireStats()
    pending: list[bytes] = []

    def flush(transport: Any) -> None:
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        stats.writes += 1
        # as asyncssh's own _send: a loss is reported by the connection, not here
        with suppress(ConnectionError):
            transport.write(data)

    def send(data: bytes) -> None:
        # the transport of this moment: a close clears conn._transport at once and
        # aborts the transport later in the turn, after this flush (a DISCONNECT leaves)
        transport = conn._transport
        if transport is None:
            return
        stats.packets += 1
        if not pending:
            loop.call_soon(flush, transport)
        pending.append(data)

    setattr(conn, "_send", send)  # noqa: B010 (mypy: a method cannot be assigned)
    if not needs_ignore(ciphers):

        def send_packet(pkttype: int, *args: bytes, handler: Any = None) -> None:
            if pkttype == MSG_IGNORE:
                stats.ignores_left_out += 1
                return
            original_send_packet(pkttype, *args, handler=handler)

        setattr(conn, "send_packet", send_packet)  # noqa: B010
    _STATS[conn] = stats
    return True


def stats(conn: asyncssh.SSHClientConnection) -> WireStats | None:
    """The counters of a connection :func:`tune` changed; None for any other."""
    return _STATS.get(conn)
