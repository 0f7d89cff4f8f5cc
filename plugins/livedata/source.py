"""Data sources: the ``DataSource`` protocol a feed reads prices from, the built-in simulated market, and
``load_source`` which picks one by the ``HUB_LIVEDATA_SOURCE`` setting."""

from __future__ import annotations

import asyncio
import importlib
import math
import random
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from hub_realtime_plugins.livedata.messages import Quote

if TYPE_CHECKING:
    from hub_realtime_plugins.livedata.settings import LivedataSettings


@dataclass(frozen=True, slots=True)
class Tick:
    """A new price from a source. The feed adds the symbol, the sequence number and the change.

    ``open``: the session's opening price when the source knows it (an exchange's open); without it, the
    first price the hub saw is the open. ``ts``: the source's time of the price; without it, the hub's clock.
    """

    price: float
    ts: float | None = None
    open: float | None = None


@runtime_checkable
class DataSource(Protocol):
    """Where a feed's prices come from. One feed per symbol runs in the whole cluster, on one node at a time.

    ``stream(symbol, last)`` yields the symbol's prices as they happen, for as long as the feed runs (the feed
    stops it with ``aclose()``). ``last`` is the latest quote the cluster published (None for the first feed
    ever), so a source that simulates can continue from it. If the iterator raises, the failure is logged and
    the feed is retried after ``HUB_LIVEDATA_RETRY_DELAY``, on whichever node then wins the lease.
    """

    def symbols(self) -> Sequence[str]:
        """The symbols this source has; subscribing to any other is ``not_found``."""
        ...

    def stream(self, symbol: str, last: Quote | None) -> AsyncIterator[Tick]: ...


def initial_price(symbol: str) -> float:
    """A stable starting price between 10 and 500 for a symbol nobody has quoted yet."""
    return round(10 + zlib.crc32(symbol.encode()) % 49_000 / 100, 2)


def round_price(price: float) -> float:
    """Cents above one, four decimals below (penny stocks)."""
    return round(price, 2) if price >= 1 else round(price, 4)


class RandomWalk:
    """A geometric random walk (no drift): each step multiplies the price by exp(N(-sigma²/2, sigma²))."""

    MIN_PRICE = 0.0001

    def __init__(self, start: float, volatility: float, rng: random.Random) -> None:
        if start <= 0:
            raise ValueError("a random walk needs a positive start price")
        self.price = start
        self._volatility = volatility
        self._rng = rng

    def step(self) -> float:
        sigma = self._volatility
        self.price = max(self.MIN_PRICE, self.price * math.exp(self._rng.gauss(-sigma * sigma / 2, sigma)))
        return round_price(self.price)


class SimulatedMarket:
    """The built-in source: every symbol walks at random, one tick every ``interval`` seconds; no network.

    With a ``seed``, each symbol's walk is seeded with the seed and the symbol, so a symbol's prices are the
    same on every run whatever else is subscribed.
    """

    def __init__(self, symbols: Sequence[str], *, interval: float, volatility: float, seed: int | None = None) -> None:
        self._symbols = tuple(symbols)
        self._interval = interval
        self._volatility = volatility
        self._seed = seed

    def symbols(self) -> Sequence[str]:
        return self._symbols

    def walk(self, symbol: str, start: float | None = None) -> RandomWalk:
        rng = random.Random(f"{self._seed}:{symbol}") if self._seed is not None else random.Random()
        return RandomWalk(start or initial_price(symbol), self._volatility, rng)

    async def stream(self, symbol: str, last: Quote | None) -> AsyncIterator[Tick]:
        walk = self.walk(symbol, last.price if last is not None else None)
        while True:
            await asyncio.sleep(self._interval)
            yield Tick(walk.step())


SourceFactory = Callable[["LivedataSettings"], DataSource]


def simulated_market(settings: LivedataSettings) -> SimulatedMarket:
    return SimulatedMarket(
        settings.symbols, interval=settings.interval, volatility=settings.volatility, seed=settings.seed
    )


def load_source(settings: LivedataSettings) -> DataSource:
    """The source ``settings.source`` names: ``simulated``, or ``package.module:factory`` where ``factory``
    is called with the settings and returns a :class:`DataSource`."""
    spec = settings.source.strip()
    if spec == "simulated":
        return simulated_market(settings)
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"HUB_LIVEDATA_SOURCE={spec!r}: expected 'simulated' or 'package.module:factory'")
    factory = getattr(importlib.import_module(module_name), attribute, None)
    if not callable(factory):
        raise ValueError(f"HUB_LIVEDATA_SOURCE={spec!r}: {attribute!r} is not a callable in {module_name!r}")
    source = factory(settings)
    if not isinstance(source, DataSource):
        raise TypeError(f"HUB_LIVEDATA_SOURCE={spec!r} returned {source!r}, which has no symbols() and stream()")
    return source
