"""LatestWriter: writes a value that keeps changing to the store, coalesced — one write in flight at a time,
always of the newest value, so a fast feed never builds a backlog of writes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("hub_realtime_plugins.livedata")


class LatestWriter:
    """``offer(value)`` never waits: it starts a write, or replaces the value the next write will take."""

    def __init__(self, name: str, write: Callable[[bytes], Awaitable[None]]) -> None:
        self._name = name
        self._write = write
        self._pending: bytes | None = None
        self._task: asyncio.Task[None] | None = None
        self.writes = 0  # completed writes, for tests and logs

    @property
    def busy(self) -> bool:
        return self._task is not None

    def offer(self, value: bytes) -> None:
        self._pending = value
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name=f"livedata-store-{self._name}")

    async def _drain(self) -> None:
        try:
            while self._pending is not None:
                value, self._pending = self._pending, None
                try:
                    await self._write(value)
                    self.writes += 1
                except Exception:  # a task boundary: the store is down; the next offer writes again
                    log.warning("livedata: storing %s's snapshot failed", self._name, exc_info=True)
        finally:
            self._task = None

    async def flush(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) until every offered value is written; False if time ran out."""
        task = self._task
        if task is None:
            return True
        done, _ = await asyncio.wait({task}, timeout=timeout)
        return bool(done)

    def cancel(self) -> None:
        """Give up the write in flight (the store hangs) and the value waiting, if any."""
        self._pending = None
        if self._task is not None:
            self._task.cancel()
