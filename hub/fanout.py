"""Fanout: this node's channel -> sessions table; hands each event's one encoded frame to every subscriber."""

from __future__ import annotations

import asyncio
from typing import Protocol

from hub.broker import PubSub
from hub.metrics import Metrics


class Subscriber(Protocol):
    """A session, or a plugin's :class:`hub.listener.Listener`."""

    def push_event(self, channel: str, frame: str, offset: int | None, conflate: bool = False) -> None: ...

    def forget_floor(self, channel: str) -> None:
        """``channel``'s offsets started over: none from before means anything now."""


class Fanout:
    def __init__(self, pubsub: PubSub, metrics: Metrics | None = None) -> None:
        self._pubsub = pubsub
        self._metrics = metrics
        self._channels: dict[str, dict[Subscriber, None]] = {}
        self._conflating: set[str] = set()  # channels whose events replace their unsent predecessor
        # channel -> the broker subscription under way: a later subscriber waits for it too, so that every
        # subscriber reads its position after the broker is sure to get every later event
        self._subscribing: dict[str, asyncio.Future[None]] = {}

    async def add(self, channel: str, session: Subscriber, *, conflate: bool = False) -> None:
        sessions = self._channels.get(channel)
        if sessions is None:
            sessions = self._channels[channel] = {}
            sessions[session] = None
            if conflate:
                self._conflating.add(channel)
            # The node's interest in a channel is reference-counted: one broker subscription per channel.
            done = self._subscribing[channel] = asyncio.get_running_loop().create_future()
            try:
                await self._pubsub.subscribe(channel)
            except BaseException as exc:
                await self.remove(channel, session, unsubscribe=False)
                done.set_exception(exc if isinstance(exc, Exception) else RuntimeError("subscribing was cancelled"))
                done.exception()  # retrieved here, so an unawaited failure is not reported as never retrieved
                raise
            else:
                done.set_result(None)
            finally:
                if self._subscribing.get(channel) is done:
                    del self._subscribing[channel]
        else:
            sessions[session] = None
            pending = self._subscribing.get(channel)
            if pending is not None:
                try:
                    await asyncio.shield(pending)
                except BaseException:
                    await self.remove(channel, session, unsubscribe=False)
                    raise

    async def remove(self, channel: str, session: Subscriber, *, unsubscribe: bool = True) -> None:
        sessions = self._channels.get(channel)
        if sessions is None or session not in sessions:
            return
        del sessions[session]
        if not sessions:
            del self._channels[channel]
            self._conflating.discard(channel)
            if unsubscribe:
                await self._pubsub.unsubscribe(channel)

    def deliver(self, channel: str, frame: str, offset: int | None) -> None:
        sessions = self._channels.get(channel)
        if sessions:
            conflate = channel in self._conflating
            subscribers = tuple(sessions)
            for session in subscribers:
                session.push_event(channel, frame, offset, conflate)
            metrics = self._metrics
            if metrics is not None:  # per event, not per subscriber: the frame is the same for every one
                metrics.fanout_size.observe(len(subscribers))
                metrics.frames_out.observe_many(len(frame), len(subscribers))

    def stream_reset(self, channel: str) -> None:
        """The broker's ``on_stream_reset``: a new epoch's offsets start at 1 again, below any subscriber's
        floor (the offset its sub reply covered), so the floors go."""
        for session in tuple(self._channels.get(channel, ())):
            session.forget_floor(channel)

    def subscriber_count(self, channel: str) -> int:
        return len(self._channels.get(channel, ()))

    @property
    def channel_count(self) -> int:
        return len(self._channels)
