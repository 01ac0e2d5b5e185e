"""Windows that a job takes together: named ones (a run's, a step's) and its connection's.

A connection carries at most ``per_connection`` jobs at once: with its SFTP session and
a helper channel (script install, kill on timeout) that is at most 8 channels, and sshd
allows 10 by default (MaxSessions). A push of a large file spreads over extra SFTP
sessions: it takes them from the free places of its connection's budget, never waiting
and never from a job in line, and gives them back when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Hashable, Sequence
from typing import Any

from apssh_cli.commands import Command, Push

__all__ = ["TASKS_PER_CONNECTION", "Windows"]

TASKS_PER_CONNECTION = 6


class Windows:
    """Semaphores by name, made on first use; one budget per connection (node).

    Must be used inside one event loop.
    """

    def __init__(self, per_connection: int = TASKS_PER_CONNECTION) -> None:
        self.per_connection = per_connection
        self._slots: dict[Hashable, asyncio.Semaphore] = {}

    def _slot(self, key: Hashable, size: int) -> asyncio.Semaphore:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = asyncio.Semaphore(max(1, size))
        return slot

    @contextlib.asynccontextmanager
    async def hold(
        self,
        named: Sequence[tuple[Hashable, int]],
        node: Any = None,
        commands: Sequence[Command] = (),
    ) -> AsyncIterator[None]:
        """Take each named window (key, size), then ``node``'s budget (None: no
        connection), in that order; spread the pushes among ``commands``."""
        async with contextlib.AsyncExitStack() as stack:
            for key, size in named:
                await stack.enter_async_context(self._slot(key, size))
            budget = None
            if node is not None:
                budget = self._slot(("node", id(node)), self.per_connection)
                await stack.enter_async_context(budget)
            async with self._spare_channels(budget, commands):
                yield

    @contextlib.asynccontextmanager
    async def _spare_channels(
        self, budget: asyncio.Semaphore | None, commands: Sequence[Command]
    ) -> AsyncIterator[None]:
        from apssh_cli.ssh.sftp import SESSIONS, SPREAD_THRESHOLD

        pushes = [command for command in commands if isinstance(command, Push)]
        taken = 0
        spreads = any(push.largest_file() >= SPREAD_THRESHOLD for push in pushes)
        if spreads and budget is not None:
            while taken < SESSIONS - 1 and not budget.locked():  # locked: none free, or a queue
                await budget.acquire()  # free: returns at once
                taken += 1
        for push in pushes:
            push.sessions = 1 + taken
        try:
            yield
        finally:
            for _ in range(taken):
                assert budget is not None
                budget.release()
