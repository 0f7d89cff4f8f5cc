"""Heartbeats: one task for all sessions pings each client and closes the ones that have gone silent."""

from __future__ import annotations

import asyncio
import contextlib
import time

from hub.protocol import PING_FRAME, CloseCode
from hub.session import Session


class HeartbeatMonitor:
    """Every ``interval`` seconds: close sessions silent for ``timeout`` seconds, ping the rest.

    A dead peer is therefore closed between ``timeout`` and ``timeout + interval`` after its last frame.
    One task and one pass over the sessions, instead of a timer per connection.
    """

    def __init__(self, interval: float, timeout: float) -> None:
        self.interval = interval
        self.timeout = timeout
        self._sessions: dict[Session, None] = {}
        self._task: asyncio.Task[None] | None = None

    def watch(self, session: Session) -> None:
        self._sessions[session] = None

    def forget(self, session: Session) -> None:
        self._sessions.pop(session, None)

    def start(self) -> None:
        self._task = asyncio.create_task(self._beat_forever(), name="hub-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def beat(self) -> None:
        deadline = time.monotonic() - self.timeout
        for session in tuple(self._sessions):
            if session.last_seen < deadline:
                session.close(CloseCode.HEARTBEAT_TIMEOUT, "No frame from the client within the heartbeat timeout.")
                self.forget(session)
            else:
                session.push(PING_FRAME)

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.beat()
