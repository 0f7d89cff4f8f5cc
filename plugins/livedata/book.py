"""QuoteBook: one symbol's session as its feed keeps it — the open, the latest quote, a ring of recent points."""

from __future__ import annotations

from collections import deque

from hub_realtime_plugins.livedata.messages import LivedataSnapshot, Point, Quote
from hub_realtime_plugins.livedata.source import Tick


class QuoteBook:
    """Turns a source's ticks into numbered quotes and remembers the last ``history_size`` of them.

    Pure logic (no I/O, no clock of its own): the feed passes the time in, so tests need no sleeping.
    """

    def __init__(self, symbol: str, history_size: int) -> None:
        if history_size < 1:
            raise ValueError("history_size must be >= 1")
        self.symbol = symbol
        self.open: float | None = None
        self.last: Quote | None = None
        self.history: deque[Point] = deque(maxlen=history_size)

    @classmethod
    def resume(cls, snapshot: LivedataSnapshot | None, symbol: str, history_size: int) -> QuoteBook:
        """Continue a session another feed (maybe on another node) kept, from its stored snapshot."""
        book = cls(symbol, history_size)
        if snapshot is not None and snapshot.symbol == symbol:
            book.open = snapshot.open
            book.last = snapshot.last
            book.history.extend(snapshot.history)
        return book

    @property
    def seq(self) -> int:
        return self.last.seq if self.last is not None else 0

    def apply(self, tick: Tick, now: float) -> Quote:
        """Record one tick; returns the quote to publish (seq one more than the last one)."""
        if not tick.price > 0:  # also refuses NaN
            raise ValueError(f"{self.symbol}: a price must be positive, got {tick.price!r}")
        if tick.open is not None:
            self.open = tick.open
        elif self.open is None:
            self.open = tick.price
        quote = Quote(
            symbol=self.symbol,
            price=tick.price,
            change=round(tick.price - self.open, 8),
            ts=round(tick.ts if tick.ts is not None else now, 3),
            seq=self.seq + 1,
        )
        self.last = quote
        self.history.append(Point(seq=quote.seq, ts=quote.ts, price=quote.price))
        return quote

    def snapshot(self) -> LivedataSnapshot:
        return LivedataSnapshot(symbol=self.symbol, open=self.open, last=self.last, history=list(self.history))
