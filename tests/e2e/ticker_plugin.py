"""A test-only plugin: ``ticker:<room>`` carries ``ticker.tick`` events.

- ``ticker.bump`` publishes one tick (driven by the client, so tests can interleave it with chat exactly);
- ``ticker.burst`` publishes ``count`` ticks of ``size`` padding bytes at once (a flood for slow-consumer tests);
- ``ticker.crash`` is a handler with a bug (it raises), to show one plugin's failure stays inside its request;
- a background feed started in ``hub_startup`` ticks ``ticker:clock`` every ``CLOCK_INTERVAL`` seconds and is
  stopped in ``hub_shutdown``.

Registered in tests with ``hub_server(plugins={"chat": plugins.chat, "ticker": tests.e2e.ticker_plugin})``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import defaultdict

from pydantic import BaseModel, ConfigDict, Field

from hub import Channel, Context, hookimpl
from hub.runtime import Hub

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


ticker = Channel("ticker", description="Test-only price ticks.")
ticker.event("ticker.tick", Tick)

# channel -> next sequence number; servers of different tests share the module, so keep it per channel
# name and let each test use its own room when it checks absolute numbers.
_seq: defaultdict[str, itertools.count[int]] = defaultdict(lambda: itertools.count(1))


def next_seq(channel: str) -> int:
    return next(_seq[channel])


@ticker.on("ticker.bump", Bump)
async def bump(ctx: Context, msg: Bump) -> Tick:
    tick = Tick(seq=next_seq(ctx.channel), symbol=msg.symbol, price=msg.price)
    await ctx.publish("ticker.tick", tick)
    return tick


@ticker.on("ticker.burst", Burst)
async def burst(ctx: Context, msg: Burst) -> None:
    pad = "x" * msg.size
    for _ in range(msg.count):
        await ctx.publish("ticker.tick", Tick(seq=next_seq(ctx.channel), symbol="FLOOD", price=0.0, pad=pad))


@ticker.on("ticker.crash", Crash)
async def crash(ctx: Context, msg: Crash) -> None:
    raise RuntimeError("ticker.crash: a deliberate bug in a plugin handler")


_feeds: dict[int, asyncio.Task[None]] = {}


async def _clock(hub: Hub) -> None:
    price = 100.0
    while True:
        await asyncio.sleep(CLOCK_INTERVAL)
        price += 0.25
        await hub.publish(CLOCK_CHANNEL, "ticker.tick", Tick(seq=next_seq(CLOCK_CHANNEL), symbol="CLK", price=price))


@hookimpl
def hub_channels() -> list[Channel]:
    return [ticker]


@hookimpl
async def hub_startup(hub: Hub) -> None:
    _feeds[id(hub)] = asyncio.create_task(_clock(hub), name="ticker-clock")


@hookimpl
async def hub_shutdown(hub: Hub) -> None:
    task = _feeds.pop(id(hub), None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
