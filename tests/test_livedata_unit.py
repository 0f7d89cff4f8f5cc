"""livedata's pure logic: the random walk and simulated market, the quote book and its history ring, the
coalescing store writer, settings and source loading."""

from __future__ import annotations

import asyncio
import math
import random
import re
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import ValidationError

from hub_realtime_plugins.livedata import LivedataSettings, Quote, SimulatedMarket, Tick
from hub_realtime_plugins.livedata.book import QuoteBook
from hub_realtime_plugins.livedata.source import DataSource, RandomWalk, initial_price, load_source, round_price
from hub_realtime_plugins.livedata.writer import LatestWriter

# ---- random walk and the simulated market ---------------------------------------------------------------


def test_a_seeded_walk_is_reproducible_and_stays_positive() -> None:
    def prices(seed: int) -> list[float]:
        walk = RandomWalk(100.0, 0.05, random.Random(seed))
        return [walk.step() for _ in range(2000)]

    assert prices(1) == prices(1)
    assert prices(1) != prices(2)
    assert all(price > 0 for price in prices(3))
    assert all(price == round(price, 2) for price in prices(4) if price >= 1)  # cents


def test_the_walk_has_no_drift_and_the_configured_volatility() -> None:
    walk = RandomWalk(100.0, 0.01, random.Random(42))
    before = walk.price
    returns = []
    for _ in range(20_000):
        walk.step()
        returns.append(math.log(walk.price / before))
        before = walk.price
    mean = sum(returns) / len(returns)
    std = math.sqrt(sum((r - mean) ** 2 for r in returns) / len(returns))
    assert std == pytest.approx(0.01, rel=0.05)
    assert abs(mean) < 0.0005


def test_a_walk_needs_a_positive_start() -> None:
    with pytest.raises(ValueError, match="positive"):
        RandomWalk(0.0, 0.01, random.Random())


def test_prices_round_to_cents_above_one_and_four_decimals_below() -> None:
    assert round_price(12.3456) == 12.35
    assert round_price(0.123456) == 0.1235


def test_initial_prices_are_stable_per_symbol_and_in_range() -> None:
    assert initial_price("ACME") == initial_price("ACME")
    assert initial_price("ACME") != initial_price("GLOBX")
    assert all(10 <= initial_price(f"S{n}") <= 500 for n in range(200))


async def first_prices(market: SimulatedMarket, symbol: str, count: int, last: Quote | None = None) -> list[float]:
    stream = market.stream(symbol, last)
    prices = [(await anext(stream)).price for _ in range(count)]
    await stream.aclose()  # type: ignore[attr-defined]
    return prices


async def test_the_simulated_market_is_seeded_per_symbol() -> None:
    seeded = SimulatedMarket(["A", "B"], interval=0.0001, volatility=0.01, seed=7)
    again = SimulatedMarket(["B", "A", "C"], interval=0.0001, volatility=0.01, seed=7)  # other symbols: same A
    assert await first_prices(seeded, "A", 20) == await first_prices(again, "A", 20)
    assert await first_prices(seeded, "A", 20) != await first_prices(seeded, "B", 20)
    other_seed = SimulatedMarket(["A"], interval=0.0001, volatility=0.01, seed=8)
    assert await first_prices(seeded, "A", 20) != await first_prices(other_seed, "A", 20)
    assert seeded.symbols() == ("A", "B")


async def test_the_simulated_market_continues_from_the_last_quote() -> None:
    market = SimulatedMarket(["A"], interval=0.0001, volatility=0.001, seed=1)
    last = Quote(symbol="A", price=1234.5, change=0, ts=0, seq=99)
    [price] = await first_prices(market, "A", 1, last)
    assert price == pytest.approx(1234.5, rel=0.01)


def test_the_simulated_market_is_a_data_source() -> None:
    assert isinstance(SimulatedMarket(["A"], interval=1, volatility=0.01), DataSource)


# ---- the quote book and its history ring -----------------------------------------------------------------


def test_the_book_numbers_quotes_and_measures_change_from_the_open() -> None:
    book = QuoteBook("ACME", history_size=3)
    first = book.apply(Tick(100.0), now=1000.0)
    assert first == Quote(symbol="ACME", price=100.0, change=0.0, ts=1000.0, seq=1)
    second = book.apply(Tick(101.25, ts=1001.5), now=1002.0)
    assert (second.seq, second.change, second.ts) == (2, 1.25, 1001.5)  # the source's time wins
    third = book.apply(Tick(99.1), now=1003.0)
    assert third.change == pytest.approx(-0.9)
    assert book.open == 100.0


def test_a_source_may_give_the_open() -> None:
    book = QuoteBook("ACME", history_size=3)
    assert book.apply(Tick(105.0, open=100.0), now=0).change == 5.0


def test_the_history_is_a_ring_of_the_newest_points() -> None:
    book = QuoteBook("ACME", history_size=4)
    for n in range(10):
        book.apply(Tick(100.0 + n), now=float(n))
    snapshot = book.snapshot()
    assert [point.seq for point in snapshot.history] == [7, 8, 9, 10]
    assert [point.price for point in snapshot.history] == [106.0, 107.0, 108.0, 109.0]
    assert snapshot.last is not None
    assert snapshot.last.seq == 10
    assert snapshot.open == 100.0


def test_a_resumed_book_continues_the_session() -> None:
    book = QuoteBook("ACME", history_size=5)
    for n in range(7):
        book.apply(Tick(50.0 + n), now=float(n))
    resumed = QuoteBook.resume(book.snapshot(), "ACME", history_size=3)  # a smaller ring keeps the newest
    assert [point.seq for point in resumed.history] == [5, 6, 7]
    quote = resumed.apply(Tick(60.0), now=10.0)
    assert (quote.seq, quote.change) == (8, 10.0)
    assert QuoteBook.resume(None, "ACME", 5).seq == 0
    assert QuoteBook.resume(book.snapshot(), "OTHER", 5).seq == 0  # another symbol's session is not ours


@pytest.mark.parametrize("price", [0.0, -1.0, math.nan])
def test_the_book_refuses_prices_that_are_not_positive(price: float) -> None:
    book = QuoteBook("ACME", history_size=3)
    with pytest.raises(ValueError, match="positive"):
        book.apply(Tick(price), now=0)
    assert book.last is None


# ---- the coalescing writer ---------------------------------------------------------------------------------


async def test_the_writer_has_one_write_in_flight_and_always_writes_the_latest() -> None:
    written: list[bytes] = []
    in_flight = 0
    most_in_flight = 0
    release = asyncio.Event()

    async def write(value: bytes) -> None:
        nonlocal in_flight, most_in_flight
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        await release.wait()
        written.append(value)
        in_flight -= 1

    writer = LatestWriter("ACME", write)
    for n in range(100):
        writer.offer(str(n).encode())
        await asyncio.sleep(0)
    assert writer.busy
    release.set()
    assert await writer.flush(timeout=1.0)
    assert written == [b"0", b"99"]  # the first, then only the newest: no backlog
    assert most_in_flight == 1
    assert not writer.busy
    writer.offer(b"100")
    assert await writer.flush(timeout=1.0)
    assert written[-1] == b"100"


async def test_a_failed_write_is_logged_and_the_next_offer_writes_again(caplog: pytest.LogCaptureFixture) -> None:
    attempts: list[bytes] = []

    async def write(value: bytes) -> None:
        attempts.append(value)
        if len(attempts) == 1:
            raise ConnectionError("store down")

    writer = LatestWriter("ACME", write)
    writer.offer(b"a")
    assert await writer.flush(timeout=1.0)
    writer.offer(b"b")
    assert await writer.flush(timeout=1.0)
    assert attempts == [b"a", b"b"]
    assert writer.writes == 1
    assert "storing ACME's snapshot failed" in caplog.text


async def test_flush_gives_up_after_its_timeout() -> None:
    async def write(value: bytes) -> None:
        await asyncio.Event().wait()

    writer = LatestWriter("ACME", write)
    writer.offer(b"x")
    assert not await writer.flush(timeout=0.01)
    assert writer.busy
    writer.cancel()
    await asyncio.sleep(0)
    assert not writer.busy


# ---- settings and sources ------------------------------------------------------------------------------------


def test_symbols_come_comma_separated_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_LIVEDATA_SYMBOLS", " ACME, BRK.B ,X-1 ")
    monkeypatch.setenv("HUB_LIVEDATA_INTERVAL", "0.25")
    monkeypatch.setenv("HUB_LIVEDATA_SEED", "3")
    settings = LivedataSettings()
    assert settings.symbols == ["ACME", "BRK.B", "X-1"]
    assert (settings.interval, settings.seed) == (0.25, 3)


@pytest.mark.parametrize("symbols", [["bad symbol"], ["A", "A"], ["x" * 33], ["A:B"]])
def test_bad_symbols_are_refused(symbols: list[str]) -> None:
    with pytest.raises(ValidationError):
        LivedataSettings(symbols=symbols)


class OneSymbol:
    def __init__(self, settings: LivedataSettings) -> None:
        self.settings = settings

    def symbols(self) -> Sequence[str]:
        return ["ONE"]

    async def stream(self, symbol: str, last: Quote | None) -> AsyncIterator[Tick]:
        yield Tick(1.0)


def test_a_source_is_loaded_from_an_import_path(monkeypatch: pytest.MonkeyPatch) -> None:
    module = ModuleType("livedata_test_sources")
    module.one = OneSymbol  # type: ignore[attr-defined]
    module.not_a_source = lambda settings: object()  # type: ignore[attr-defined]
    module.value = 3  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "livedata_test_sources", module)

    source = load_source(LivedataSettings(source="livedata_test_sources:one"))
    assert isinstance(source, OneSymbol)
    assert source.symbols() == ["ONE"]
    assert source.settings.source == "livedata_test_sources:one"  # the factory got the settings
    assert isinstance(load_source(LivedataSettings()), SimulatedMarket)
    with pytest.raises(ValueError, match=r"package\.module:factory"):
        load_source(LivedataSettings(source="no_colon"))
    with pytest.raises(ValueError, match="not a callable"):
        load_source(LivedataSettings(source="livedata_test_sources:value"))
    with pytest.raises(TypeError, match=r"no symbols\(\) and stream\(\)"):
        load_source(LivedataSettings(source="livedata_test_sources:not_a_source"))
    with pytest.raises(ModuleNotFoundError):
        load_source(LivedataSettings(source="no_such_module_here:factory"))


# ---- the data source example in docs/livedata.md ---------------------------------------------------------------


async def test_the_documented_data_source_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (Path(__file__).parents[1] / "docs" / "livedata.md").read_text()
    [code] = re.findall(r"```python\n(# myfeeds/replay\.py\n.*?)```", text, re.DOTALL)
    module = ModuleType("myfeeds_replay")
    monkeypatch.setitem(sys.modules, "myfeeds_replay", module)
    exec(compile(code, "docs/livedata.md", "exec"), module.__dict__)  # our own documentation
    (tmp_path / "prices.csv").write_text("ACME,10.5\nACME,11\nGLOBX,3.25\nACME,12\n")
    monkeypatch.setenv("REPLAY_CSV", str(tmp_path / "prices.csv"))

    source = load_source(LivedataSettings(source="myfeeds_replay:factory", interval=0.001))
    assert isinstance(source, DataSource)
    assert list(source.symbols()) == ["ACME", "GLOBX"]
    stream = source.stream("ACME", None)
    assert [(await anext(stream)).price for _ in range(4)] == [10.5, 11.0, 12.0, 10.5]
    resumed = source.stream("ACME", Quote(symbol="ACME", price=11.0, change=0.5, ts=0, seq=2))
    assert (await anext(resumed)).price == 12.0  # continues where the last feed stopped
    book = QuoteBook("ACME", history_size=3)
    assert book.apply(await anext(resumed), now=0).price == 10.5
