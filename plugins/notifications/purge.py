"""Purger: the periodic purge of expired notifications and forgotten Idempotency-Key claims, on one node of
the cluster at a time (the node holding the ``notifications.purge`` lease)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from hub import Hub
from hub_realtime_plugins.notifications.notifier import NAMESPACE, Notifier

log = logging.getLogger("hub.notifications")


class Purger:
    """Every purge_interval, on the node holding the ``notifications.purge`` lease: expired notifications
    and forgotten idempotency claims go."""

    def __init__(self, hub: Hub, notifier: Notifier, interval: float) -> None:
        self._notifier = notifier
        self._interval = interval
        self._lease = hub.lease(f"{NAMESPACE}.purge", ttl=interval * 3)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="notifications-purge")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):  # best effort: the lease expires by itself anyway
            await self._lease.release()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                if await self._lease.acquire():
                    notifications, claims = await self._notifier.purge()
                    if notifications or claims:
                        log.info("purged %d expired notification(s), %d old claim(s)", notifications, claims)
            except Exception:  # a failed round (backend down) must not end the loop (task boundary)
                log.exception("notifications purge failed; retrying in %.1f s", self._interval)
