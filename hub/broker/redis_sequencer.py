"""In-order local delivery of recoverable channels on the Redis broker: one sequencer per followed channel."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from hub.broker.protocols import Deliver, StreamReset

log = logging.getLogger("hub.broker.redis")

ReadStream = Callable[[str, int, int], Awaitable[list[tuple[int, str]]]]
"""(channel, first, last offset) -> the stream's events in that range, as (offset, frame); [] when unreachable."""


@dataclass(slots=True)
class _Sequencer:
    epoch: str  # the stream whose offsets these are
    expected: int  # the next offset to deliver locally
    pending: dict[int, str] = field(default_factory=dict)  # arrived early: offset -> frame
    timer: asyncio.TimerHandle | None = None
    holding: bool = False  # subscribing: everything waits in pending until the position is read


class Sequencers:
    """Deliver each followed recoverable channel's events to local subscribers in offset order.

    This node's own publishes return from Redis sooner than other nodes' reach it through pub/sub, so events can
    arrive 1, 3, 2. Early ones wait; a gap that lasts ``reorder_timeout`` is filled from the stream (the event
    was published while our pub/sub was down), or skipped if it left the window.
    """

    def __init__(
        self,
        reorder_timeout: float,
        read_stream: ReadStream,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self._reorder_timeout = reorder_timeout
        self._read_stream = read_stream
        self._spawn = spawn
        self._sequencers: dict[str, _Sequencer] = {}  # recoverable channels with local subscribers
        self.deliver: Deliver | None = None
        self.on_stream_reset: StreamReset | None = None

    def hold(self, channel: str) -> None:
        """The node is subscribing to ``channel``: events that come through pub/sub before its position is read
        wait here. Delivered at once, they would be delivered again when the sequencer, starting at an older
        offset, fills the "gap"."""
        if channel not in self._sequencers:
            self._sequencers[channel] = _Sequencer(epoch="", expected=0, holding=True)

    def release(self, channel: str, epoch: str, expected: int) -> None:
        """The position is known: deliver what was held from ``expected`` on, in order."""
        sequencer = self._sequencers.get(channel)
        if sequencer is None or not sequencer.holding:
            return
        sequencer.holding = False
        if epoch and sequencer.epoch and sequencer.epoch != epoch:
            sequencer.pending.clear()  # held events of another stream than the one the position belongs to
        elif not epoch:
            epoch, expected = sequencer.epoch, 1  # no stream when the position was read: it began since, at 1
        sequencer.epoch, sequencer.expected = epoch, expected
        for offset in [offset for offset in sequencer.pending if offset < expected]:
            del sequencer.pending[offset]
        self._drain(channel, sequencer)
        self._wait_for_gap(channel, sequencer)

    def unhold(self, channel: str) -> None:
        """No position could be read: deliver what was held, unsequenced, as events without a sequencer are."""
        sequencer = self._sequencers.get(channel)
        if sequencer is None or not sequencer.holding:
            return
        del self._sequencers[channel]
        assert self.deliver is not None
        for offset in sorted(sequencer.pending):
            self.deliver(channel, sequencer.pending[offset], offset)

    def drop(self, channel: str) -> None:
        """The node no longer follows ``channel``."""
        sequencer = self._sequencers.pop(channel, None)
        if sequencer is not None and sequencer.timer is not None:
            sequencer.timer.cancel()

    def sequence(self, channel: str, frame: str, offset: int, epoch: str) -> None:
        assert self.deliver is not None
        sequencer = self._sequencers.get(channel)
        if sequencer is None:
            self.deliver(channel, frame, offset)
            return
        if sequencer.holding:  # subscribing: the position is not known yet
            if epoch != sequencer.epoch:
                sequencer.pending.clear()
                sequencer.epoch = epoch
            sequencer.pending[offset] = frame
            return
        if epoch != sequencer.epoch:
            # A new stream (Redis lost the old one, or it expired): its offsets start over.
            if sequencer.timer is not None:
                sequencer.timer.cancel()
            old_epoch = sequencer.epoch
            sequencer = self._sequencers[channel] = _Sequencer(epoch=epoch, expected=1)  # a new stream starts at 1
            if old_epoch and self.on_stream_reset is not None:
                self.on_stream_reset(channel)
        if offset < sequencer.expected:
            return  # delivered already, or from before this node subscribed
        sequencer.pending[offset] = frame
        self._drain(channel, sequencer)
        self._wait_for_gap(channel, sequencer)

    def _wait_for_gap(self, channel: str, sequencer: _Sequencer) -> None:
        if sequencer.pending and sequencer.timer is None:
            sequencer.timer = asyncio.get_running_loop().call_later(
                self._reorder_timeout, lambda: self._spawn(self._fill_gap(channel, sequencer))
            )

    def _drain(self, channel: str, sequencer: _Sequencer) -> None:
        assert self.deliver is not None
        while sequencer.expected in sequencer.pending:
            self.deliver(channel, sequencer.pending.pop(sequencer.expected), sequencer.expected)
            sequencer.expected += 1
        if not sequencer.pending and sequencer.timer is not None:
            sequencer.timer.cancel()
            sequencer.timer = None

    async def _fill_gap(self, channel: str, sequencer: _Sequencer) -> None:
        sequencer.timer = None
        if self._sequencers.get(channel) is not sequencer or not sequencer.pending:
            return
        first_waiting = min(sequencer.pending)
        for offset, frame in await self._read_stream(channel, sequencer.expected, first_waiting - 1):
            if offset >= sequencer.expected:
                sequencer.pending.setdefault(offset, frame)
        if sequencer.expected not in sequencer.pending:
            log.warning("channel %s: events %d..%d are gone; skipping them", channel, sequencer.expected, first_waiting)
            sequencer.expected = min(sequencer.pending)
        self._drain(channel, sequencer)
        self._wait_for_gap(channel, sequencer)
