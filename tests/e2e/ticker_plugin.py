"""A test-only plugin: ``ticker:<room>`` carries ``ticker.tick`` events.

- ``ticker.bump`` publishes one tick (driven by the client, so tests can interleave it with chat exactly);
- ``ticker.burst`` publishes ``count`` ticks of ``size`` padding bytes at once (a flood for slow-consumer tests);
- ``ticker.crash`` is a handler with a bug (it raises), to show one plugin's failure stays inside its request;
- a background feed started in ``hub_startup`` ticks ``ticker:clock`` every ``CLOCK_INTERVAL`` seconds and is
  stopped in ``hub_shutdown``.

Registered in tests with ``hub_server(plugins={"chat": hub_realtime_plugins.chat.Chat, "ticker": Ticker})``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import defaultdict

from pydantic import BaseModel, ConfigDict, Field

from hub import Channel, Context, Hub, Plugin, hookimpl

CLOCK_CHANNEL = "ticker:clock"
CLOCK_INTERVAL = 0.05


class Bump(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: str = Field(min_length=1, max_length=16)
    price: float


class Burst(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=1, le=500)
    size: int = Field(ge=0, le=16384)


class Crash(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Tick(BaseModel):
    seq: int  # per channel, 1, 2, 3, ... in publish order
    symbol: str
    price: float
    pad: str = ""


class Ticker(Plugin):
    """One per hub: its channel, its sequence numbers and its clock task live on the object."""

    def __init__(self, hub: Hub) -> None:
        super().__init__(hub)
        self.channel = ticker = Channel("ticker", description="Test-only price ticks.")
        ticker.event("ticker.tick", Tick)
        ticker.on("ticker.bump", Bump)(self.bump)
        ticker.on("ticker.burst", Burst)(self.burst)
        ticker.on("ticker.crash", Crash)(self.crash)
        # channel -> next sequence number, 1, 2, 3, ... in publish order
        self._seq: defaultdict[str, itertools.count[int]] = defaultdict(lambda: itertools.count(1))
        self.feed: asyncio.Task[None] | None = None

    def next_seq(self, channel: str) -> int:
        return next(self._seq[channel])

    async def bump(self, ctx: Context, msg: Bump) -> Tick:
        tick = Tick(seq=self.next_seq(ctx.channel), symbol=msg.symbol, price=msg.price)
        await ctx.publish("ticker.tick", tick)
        return tick

    async def burst(self, ctx: Context, msg: Burst) -> None:
        pad = "x" * msg.size
        for _ in range(msg.count):
            await ctx.publish("ticker.tick", Tick(seq=self.next_seq(ctx.channel), symbol="FLOOD", price=0.0, pad=pad))

    async def crash(self, ctx: Context, msg: Crash) -> None:
        raise RuntimeError("ticker.crash: a deliberate bug in a plugin handler")

    async def _clock(self) -> None:
        price = 100.0
        while True:
            await asyncio.sleep(CLOCK_INTERVAL)
            price += 0.25
            tick = Tick(seq=self.next_seq(CLOCK_CHANNEL), symbol="CLK", price=price)
            await self.hub.publish(CLOCK_CHANNEL, "ticker.tick", tick)

    @hookimpl
    def hub_channels(self) -> list[Channel]:
        return [self.channel]

    @hookimpl
    async def hub_startup(self) -> None:
        self.feed = asyncio.create_task(self._clock(), name="ticker-clock")

    @hookimpl
    async def hub_shutdown(self) -> None:
        if self.feed is not None:
            self.feed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.feed
