"""Fanout: this node's channel -> sessions table; hands each event's one encoded frame to every subscriber."""

from __future__ import annotations

from typing import Protocol

from hub.broker import Broker


class Subscriber(Protocol):
    """A session, or a plugin's :class:`hub.listener.Listener`."""

    def push_event(self, channel: str, frame: str, offset: int | None, conflate: bool = False) -> None: ...


class Fanout:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._channels: dict[str, dict[Subscriber, None]] = {}
        self._conflating: set[str] = set()  # channels whose events replace their unsent predecessor

    async def add(self, channel: str, session: Subscriber, *, conflate: bool = False) -> None:
        sessions = self._channels.get(channel)
        if sessions is None:
            sessions = self._channels[channel] = {}
            sessions[session] = None
            if conflate:
                self._conflating.add(channel)
            # The node's interest in a channel is reference-counted: one broker subscription per channel.
            try:
                await self._broker.subscribe(channel)
            except BaseException:
                await self.remove(channel, session, unsubscribe=False)
                raise
        else:
            sessions[session] = None

    async def remove(self, channel: str, session: Subscriber, *, unsubscribe: bool = True) -> None:
        sessions = self._channels.get(channel)
        if sessions is None or session not in sessions:
            return
        del sessions[session]
        if not sessions:
            del self._channels[channel]
            self._conflating.discard(channel)
            if unsubscribe:
                await self._broker.unsubscribe(channel)

    def deliver(self, channel: str, frame: str, offset: int | None) -> None:
        sessions = self._channels.get(channel)
        if sessions:
            conflate = channel in self._conflating
            for session in tuple(sessions):
                session.push_event(channel, frame, offset, conflate)

    def subscriber_count(self, channel: str) -> int:
        return len(self._channels.get(channel, ()))

    @property
    def channel_count(self) -> int:
        return len(self._channels)
