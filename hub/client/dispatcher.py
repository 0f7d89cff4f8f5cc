"""``Dispatcher``: runs the app's callbacks one at a time, in the order things happened, on a task of its own.

The client's reader never runs app code: it only posts it here. So a handler may be a coroutine, may await the
client (``await client.publish(...)`` inside an event handler works: the reader keeps reading its reply), and a
handler that raises is logged without disturbing the others. The queue of events is bounded: when the app falls
``max_events`` behind, ``post_event`` refuses, and the client drops the connection and recovers the rest later.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("hub.client")

Callback = Callable[..., Any]


class Dispatcher:
    def __init__(self, max_events: int) -> None:
        if max_events < 1:
            raise ValueError(f"the event queue needs room for at least one event, got {max_events}")
        self.max_events = max_events
        self._items: deque[tuple[Callback, tuple[Any, ...], bool]] = deque()
        self._events = 0  # items posted by post_event still queued
        self._wakeup = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="hub.client dispatcher")

    @property
    def backlog(self) -> int:
        """Events waiting for their handlers."""
        return self._events

    def post(self, callback: Callback, *args: Any) -> None:
        """Queue a call that is always accepted: state changes, replies, errors (a few per connection attempt)."""
        self._items.append((callback, args, False))
        self._wakeup.set()

    def post_event(self, callback: Callback, *args: Any) -> bool:
        """Queue a call for an event from the hub; False (nothing queued) when ``max_events`` already wait."""
        if self._events >= self.max_events:
            return False
        self._events += 1
        if self._events > self.max_events // 2:
            self._room.clear()
        self._items.append((callback, args, True))
        self._wakeup.set()
        return True

    async def wait_for_room(self) -> None:
        """Until at most half of ``max_events`` wait: the client opens no new connection for an app that is behind."""
        await self._room.wait()

    async def drain(self, timeout: float) -> None:
        """Run what is queued now and stop; after ``timeout`` seconds (a handler that hangs), cancel the rest."""
        task, self._task = self._task, None
        if task is None:
            return
        self._items.append((_stop, (), False))
        self._wakeup.set()
        if task is asyncio.current_task():
            return  # close() from inside a callback: the task ends when this callback returns
        _, pending = await asyncio.wait([task], timeout=timeout)
        if pending:
            await cancel(task)
            self._items.clear()
            self._events = 0
            self._room.set()

    async def _run(self) -> None:
        while True:
            while not self._items:
                self._wakeup.clear()
                await self._wakeup.wait()
            callback, args, is_event = self._items.popleft()
            if is_event:
                self._events -= 1
                if self._events <= self.max_events // 2:
                    self._room.set()
            if callback is _stop:
                return
            await call(callback, *args)


def _stop() -> None:
    """The marker ``drain`` queues last."""


async def call(callback: Callback, *args: Any) -> None:
    """Call one app callback (a function or a coroutine function) and await what it returns, if anything."""
    try:
        result = callback(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        # A task boundary for app code: one handler's bug must not stop the others or the connection.
        logger.exception("hub.client: the callback %r raised", getattr(callback, "__qualname__", callback))


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel a task of the client's own and wait for it, without swallowing the caller's own cancellation."""
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait([task])
