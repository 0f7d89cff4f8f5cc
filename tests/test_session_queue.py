"""The session's send queue without a socket: conflation ("latest wins" per channel) and its bounds.

The end-to-end proof (a slow reader on a real socket gets conflated ticks, a fast one every tick) is in
tests/e2e/test_livedata.py; this pins the queue's rules exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

from hub.limits import ConnectionLimiter, RateLimit
from hub.metrics import Metrics
from hub.protocol import CloseCode
from hub.session import Session


class Socket:
    """A socket that takes frames only while ``open_``; while closed, the session must queue them."""

    def __init__(self) -> None:
        self.open_ = False
        self.written: list[str] = []
        self.released = asyncio.Event()

    def try_send(self, frame: str) -> bool:
        if self.open_:
            self.written.append(frame)
        return self.open_

    async def send(self, message: MutableMapping[str, Any]) -> None:
        await self.released.wait()
        if message["type"] == "websocket.send":
            self.written.append(message["text"])

    async def send_texts(self, texts: list[str]) -> None:
        await self.released.wait()
        self.written.extend(texts)


def make_session(socket: Socket, metrics: Metrics, *, max_frames: int = 100) -> Session:
    return Session(
        "c1",
        None,
        socket.send,
        ConnectionLimiter(RateLimit(100, 100), 10, 10.0, 0.0),
        max_frames=max_frames,
        max_bytes=1 << 20,
        send_texts=socket.send_texts,
        try_send=socket.try_send,
        metrics=metrics,
    )


async def drained(session: Session) -> None:
    for _ in range(100):
        if session.queued_frames == 0:
            return
        await asyncio.sleep(0)
    raise AssertionError("the queue did not drain")


async def test_a_fast_socket_gets_every_event_of_a_conflating_channel() -> None:
    socket, metrics = Socket(), Metrics()
    socket.open_ = True
    session = make_session(socket, metrics)
    for n in range(5):
        session.push_event("px:a", f"a{n}", None, conflate=True)
    assert socket.written == ["a0", "a1", "a2", "a3", "a4"]
    assert metrics.conflated == 0


async def test_a_blocked_socket_gets_the_latest_event_per_channel_in_its_place() -> None:
    socket, metrics = Socket(), Metrics()
    session = make_session(socket, metrics)
    session.push("hello")
    for n in range(3):
        session.push_event("px:a", f"a{n}", None, conflate=True)
        session.push_event("px:b", f"b{n}", None, conflate=True)
        session.push_event("chat:x", f"c{n}", None)  # not conflating: every one is kept
    assert session.queued_frames == 6
    assert session.conflated == 4
    assert metrics.conflated == 4
    socket.open_ = True
    socket.released.set()
    await drained(session)
    assert socket.written == ["hello", "a2", "b2", "c0", "c1", "c2"]


async def test_an_event_after_the_slot_was_sent_queues_again() -> None:
    socket, metrics = Socket(), Metrics()
    session = make_session(socket, metrics)
    session.push_event("px:a", "a0", None, conflate=True)
    session.push_event("px:a", "a1", None, conflate=True)
    socket.released.set()
    await drained(session)
    assert socket.written == ["a1"]
    socket.released.clear()
    session.push("other")  # the socket is still closed: queued
    session.push_event("px:a", "a2", None, conflate=True)
    session.push_event("px:a", "a3", None, conflate=True)
    socket.released.set()
    await drained(session)
    assert socket.written == ["a1", "other", "a3"]
    assert metrics.conflated == 2


async def test_events_that_arrive_while_subscribing_keep_only_the_latest() -> None:
    socket, metrics = Socket(), Metrics()
    socket.open_ = True
    session = make_session(socket, metrics)
    session.begin_join("px:a")
    for n in range(4):
        session.push_event("px:a", f"a{n}", None, conflate=True)
    session.push("ok")
    session.finish_join("px:a", None)
    assert socket.written == ["ok", "a3"]
    assert metrics.conflated == 3


async def test_conflation_never_grows_the_queue_past_one_frame_per_channel() -> None:
    socket, metrics = Socket(), Metrics()
    session = make_session(socket, metrics, max_frames=3)
    for n in range(10_000):
        session.push_event("px:a", f"a{n}", None, conflate=True)
    assert session.queued_frames == 1
    assert session.close_code is None
    for n in range(3):  # plain frames still count against the bound: the third overflows it
        session.push(f"p{n}")
    assert session.close_code == CloseCode.SLOW_CONSUMER
    await session.stop()
