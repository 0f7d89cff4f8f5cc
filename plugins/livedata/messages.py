"""livedata's wire models: the ``livedata.tick`` event, the subscribe snapshot, the HTTP symbol list."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Quote(BaseModel):
    """One tick, as sent in ``livedata.tick``: the whole current state of a symbol (so conflation may drop
    any but the latest)."""

    symbol: str
    price: float
    change: float = Field(description="price minus the session's opening price")
    ts: float = Field(description="time of the tick, seconds since the epoch")
    seq: int = Field(description="per symbol: 1, 2, 3, ... one more per tick, continued across feed owners")


class Point(BaseModel):
    """One point of a symbol's recent history (the sparkline)."""

    seq: int
    ts: float
    price: float


class LivedataSnapshot(BaseModel):
    """What a subscriber gets in its ``sub`` reply, and what the feed's owner keeps in the store."""

    symbol: str
    open: float | None = Field(description="the session's opening price; None before the first tick")
    last: Quote | None = Field(description="the latest tick; None before the first one")
    history: list[Point] = Field(description="recent points, oldest first; the last one is ``last``")


class SymbolInfo(BaseModel):
    symbol: str
    feed_here: bool = Field(description="whether this node runs the symbol's feed now")
    last: Quote | None


class SymbolList(BaseModel):
    """``GET /api/livedata/symbols``."""

    node: str = Field(description="the id of the node that answered")
    feeds_here: int = Field(description="feeds this node runs now")
    symbols: list[SymbolInfo]
