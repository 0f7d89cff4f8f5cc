"""Two asyncio primitives cut down for one waiter, because every open socket holds them.

``asyncio.Queue`` and ``asyncio.Event`` each keep ``collections.deque`` objects for their waiters; an empty deque
costs 760 bytes, and uvicorn's WebSocket protocol makes a Queue (four deques) and an Event (one) per connection:
about 4 KB of an idle socket's ~30 KB. A WebSocket has exactly one reader (the ASGI app's receive loop) and, in
the hub, one writer at a time, so these keep a plain list and a single future, made only while someone waits.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class ReceiveQueue(Generic[T]):
    """The subset of ``asyncio.Queue`` uvicorn's protocol uses (``put_nowait``, ``get``, ``empty``), for one
    consumer at a time. Items stay in the list until ``get`` returns them, so a cancelled ``get`` loses none."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[T] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: T) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def get(self) -> T:
        while not self._items:
            if self._waiter is not None:
                raise RuntimeError("ReceiveQueue.get() is already awaited by another task")
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)


class Flag:
    """``asyncio.Event`` (``is_set``, ``set``, ``clear``, ``wait``) with its waiters' list made only while
    someone waits: a socket's "writable" flag is set nearly always, and then ``wait`` returns at once."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
