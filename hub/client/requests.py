"""Requests waiting for their replies (matched by id, each with a timeout) and the offline queue of publishes."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from hub.client.errors import ClientError

Reply: TypeAlias = dict[str, Any] | ClientError
"""What settles a request: the hub's reply frame (``ok``, ``err`` or ``pong``), or the client's own error."""

Settle: TypeAlias = Callable[[Reply], None]


class Requests:
    """The requests of the current socket that wait for a reply. A settle callback runs in the reader, at once, so
    a ``sub`` reply is applied before the events that follow it on the socket."""

    def __init__(self, max_in_flight: int) -> None:
        self.max_in_flight = max_in_flight
        self._pending: dict[int, tuple[Settle, asyncio.TimerHandle]] = {}
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self._pending)

    def open(self, timeout: float, settle: Settle) -> int:
        """Register a request; returns its id. ``settle`` gets the reply, or ``timeout`` after ``timeout`` s."""
        if len(self._pending) >= self.max_in_flight:
            raise ClientError("too_many_requests", f"{self.max_in_flight} requests already wait for their replies.")
        request_id = next(self._ids)
        timer = asyncio.get_running_loop().call_later(timeout, self._expire, request_id, timeout)
        self._pending[request_id] = (settle, timer)
        return request_id

    def discard(self, request_id: int) -> None:
        """Forget a request that was never sent."""
        entry = self._pending.pop(request_id, None)
        if entry is not None:
            entry[1].cancel()

    def settle(self, frame: dict[str, Any]) -> bool:
        """Hand a reply to its request; False when no request waits for it (no id, an unknown or expired one)."""
        request_id = frame.get("id")
        if type(request_id) is not int:  # not bool, not float: the hub echoes our integers unchanged
            return False
        entry = self._pending.pop(request_id, None)
        if entry is None:
            return False
        settle, timer = entry
        timer.cancel()
        settle(frame)
        return True

    def fail_all(self, error: ClientError) -> None:
        pending, self._pending = self._pending, {}
        for settle, timer in pending.values():
            timer.cancel()
            settle(error)

    def _expire(self, request_id: int, timeout: float) -> None:
        entry = self._pending.pop(request_id, None)
        if entry is not None:
            entry[0](ClientError("timeout", f"No reply from the hub within {timeout:g} s."))


@dataclass(eq=False)
class Queued:
    """A publish waiting for the connection: sent right after the resubscriptions when it opens."""

    frame: dict[str, Any]
    timeout: float | None
    settle: Settle
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)
    deadline: float | None = None  # set when first queued: sent again after a loss, it waits no longer in all


class Outbox:
    """The offline queue: at most ``max_items`` publishes wait, each at most ``window`` seconds."""

    def __init__(self, window: float, max_items: int) -> None:
        self.window = window
        self.max_items = max_items
        self._items: deque[Queued] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: Queued) -> None:
        """Queue ``item``, or settle it at once with ``disconnected`` (no window) or ``offline_queue_full``."""
        loop = asyncio.get_running_loop()
        if item.deadline is None:
            item.deadline = loop.time() + self.window
        if self.window <= 0:
            item.settle(ClientError("disconnected", "Not connected to the hub."))
        elif loop.time() >= item.deadline:
            self._expire(item)
        elif len(self._items) >= self.max_items:
            message = f"{self.max_items} publishes already wait for the connection."
            item.settle(ClientError("offline_queue_full", message))
        else:
            item.timer = loop.call_at(item.deadline, self._expire, item)
            self._items.append(item)

    def take_all(self) -> list[Queued]:
        items = list(self._items)
        self._items.clear()
        for item in items:
            if item.timer is not None:
                item.timer.cancel()
        return items

    def fail_all(self, error: ClientError) -> None:
        for item in self.take_all():
            item.settle(error)

    def _expire(self, item: Queued) -> None:
        if item in self._items:
            self._items.remove(item)
        item.settle(ClientError("disconnected", f"Not connected to the hub within {self.window:g} s."))
