"""MemoryPubSub: fan-out and history rings with epochs inside one process (the embedded default)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import deque
from dataclasses import dataclass, field

from hub.broker.memory_coordination import MemoryCoordination
from hub.broker.protocols import Deliver, HistoryPage, MidDone, StoreRecord, StreamReset
from hub.protocol import encode_event
from hub.types import HistoryPolicy, Recovery, StreamPosition


@dataclass(slots=True)
class _Stream:
    """One recoverable channel's history: a ring of (offset, frame) under an epoch."""

    epoch: str
    size: int
    ttl: float
    expires_at: float
    offset: int = 0
    frames: deque[tuple[int, str]] = field(default_factory=deque)


class MemoryPubSub:
    """Every subscriber is on this node: an event goes straight to ``deliver``. ``publish(mid=...)`` marks the mid
    done in ``coordination`` (the broker's own) in the same step as the event."""

    def __init__(self, coordination: MemoryCoordination, *, sweep_interval: float = 30.0) -> None:
        self._coordination = coordination
        self._deliver: Deliver | None = None
        self._on_stream_reset: StreamReset | None = None
        self._streams: dict[str, _Stream] = {}
        self._subscribed: set[str] = set()
        self._sweep_interval = sweep_interval
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, deliver: Deliver, on_stream_reset: StreamReset | None = None) -> None:
        self._deliver = deliver
        self._on_stream_reset = on_stream_reset
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="hub-memory-broker-sweep")

    @property
    def healthy(self) -> bool:
        return True

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    def _stream(self, channel: str, history: HistoryPolicy, now: float) -> _Stream:
        stream = self._streams.get(channel)
        if stream is None or stream.expires_at <= now:
            # A lost or expired stream starts over under a new epoch, so no client mistakes it for the old one.
            stream = _Stream(
                epoch=secrets.token_hex(6),
                size=history.size,
                ttl=history.ttl,
                expires_at=now + history.ttl,
                frames=deque(maxlen=history.size),
            )
            old = self._streams.get(channel)
            self._streams[channel] = stream
            if old is not None and self._on_stream_reset is not None:
                self._on_stream_reset(channel)
        return stream

    async def publish(
        self,
        channel: str,
        event_type: str,
        data: str,
        history: HistoryPolicy | None,
        *,
        mid: MidDone | None = None,
        record: StoreRecord | None = None,
    ) -> int | None:
        assert self._deliver is not None, "publish before start"
        if record is not None:  # first: durable (a SQLite group commit) before the event exists anywhere
            await record.store.put(record.namespace, record.key, data.encode())
        if mid is not None:
            self._coordination.mark_done(*mid)  # in the same step as the event
        offset: int | None = None
        if history is None:
            frame = encode_event(channel, event_type, data, None)
        else:
            now = time.monotonic()
            stream = self._stream(channel, history, now)
            stream.offset += 1
            offset = stream.offset
            frame = encode_event(channel, event_type, data, offset)
            stream.frames.append((offset, frame))
            stream.expires_at = now + stream.ttl
        self._deliver(channel, frame, offset)
        return offset

    async def subscribe(self, channel: str) -> None:
        """Every subscriber is on this node: only the interest is kept."""
        self._subscribed.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._subscribed.discard(channel)

    async def interest(self, channel: str) -> int:
        return 1 if channel in self._subscribed else 0

    async def position(self, channel: str, history: HistoryPolicy) -> StreamPosition:
        stream = self._stream(channel, history, time.monotonic())
        return StreamPosition(stream.epoch, stream.offset)

    async def recover(self, channel: str, since: StreamPosition, history: HistoryPolicy) -> Recovery:
        stream = self._stream(channel, history, time.monotonic())
        position = StreamPosition(stream.epoch, stream.offset)
        if since.epoch != stream.epoch or since.offset > stream.offset:
            return Recovery(False, position)
        if since.offset == stream.offset:
            return Recovery(True, position)
        oldest = stream.frames[0][0] if stream.frames else stream.offset + 1
        if since.offset + 1 < oldest:
            return Recovery(False, position)
        return Recovery(True, position, tuple(frame for offset, frame in stream.frames if offset > since.offset))

    async def history(self, channel: str, history: HistoryPolicy, *, since: int | None, limit: int) -> HistoryPage:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        stream = self._stream(channel, history, time.monotonic())
        position = StreamPosition(stream.epoch, stream.offset)
        if since is None:
            return HistoryPage(position, tuple(stream.frames)[-limit:])
        frames = tuple(entry for entry in stream.frames if entry[0] > since)[:limit]
        first = frames[0][0] if frames else stream.offset + 1
        return HistoryPage(position, frames, truncated=since > stream.offset or first > since + 1)

    def sweep(self) -> None:
        """Free expired streams (they also expire lazily when touched) and announce each as reset."""
        now = time.monotonic()
        for channel in [ch for ch, stream in self._streams.items() if stream.expires_at <= now]:
            del self._streams[channel]
            if self._on_stream_reset is not None:  # the next event starts a new stream at offset 1
                self._on_stream_reset(channel)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval)
            self.sweep()
