"""Livedata: the plugin object — the ``livedata`` channel, its snapshot, the hooks that run this hub's feed
coordinator, and ``GET /api/livedata/symbols``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException

from hub import Channel, Context, Hub, HubError, Plugin, StoreUnavailable, hookimpl
from hub_realtime_plugins.livedata.feed import TICK_EVENT, FeedCoordinator
from hub_realtime_plugins.livedata.messages import LivedataSnapshot, Quote, SymbolInfo, SymbolList
from hub_realtime_plugins.livedata.settings import LivedataSettings
from hub_realtime_plugins.livedata.source import DataSource, load_source

NAMESPACE = "livedata"


class Livedata(Plugin):
    """Live prices on ``livedata:<symbol>``: one per hub, built with ``HUB_LIVEDATA_*`` settings (or ``settings``).

    ``source``: the :class:`DataSource` to use; None loads the one ``settings.source`` names when the hub
    starts. Tests and apps that build their own hub pass one: ``lambda hub: Livedata(hub, source=...)``.
    """

    def __init__(self, hub: Hub, settings: LivedataSettings | None = None, *, source: DataSource | None = None) -> None:
        super().__init__(hub)
        self.settings = settings or hub.settings(LivedataSettings)
        self._source = source
        self._coordinator: FeedCoordinator | None = None  # built in hub_startup, dropped in hub_shutdown
        self.channel = Channel(
            NAMESPACE,
            description="Live prices: one quote per tick, latest wins for slow readers; snapshot with history.",
            conflate=self.settings.conflate,
        )
        self.channel.event(TICK_EVENT, Quote)
        self.channel.snapshot(self.snapshot)

    def source(self) -> DataSource:
        """The data source (loaded on first use from ``settings.source`` unless one was given)."""
        if self._source is None:
            self._source = load_source(self.settings)
        return self._source

    @property
    def coordinator(self) -> FeedCoordinator:
        if self._coordinator is None:
            raise RuntimeError("livedata: this hub has not started")
        return self._coordinator

    def _check_symbol(self, symbol: str) -> None:
        if symbol not in self.source().symbols():
            known = ", ".join(list(self.source().symbols())[:20])
            raise HubError("not_found", f"No symbol {symbol!r} here; known symbols: {known}.")

    async def snapshot(self, ctx: Context) -> LivedataSnapshot:
        """A subscriber's ``sub`` reply: the symbol's last quote and recent history."""
        self._check_symbol(ctx.room)
        coordinator = self.coordinator
        coordinator.kick()  # the first subscriber here: start the feed now, not at the next check
        try:
            return await coordinator.snapshot(ctx.room)
        except StoreUnavailable:
            raise HubError("unavailable", "The store is unavailable; retry shortly.") from None

    # ---- hooks -------------------------------------------------------------------------------------------

    @hookimpl
    def hub_channels(self) -> list[Channel]:
        return [self.channel]

    @hookimpl
    async def hub_startup(self) -> None:
        self._coordinator = coordinator = FeedCoordinator(self.hub, self.channel, self.source(), self.settings)
        metrics = self.hub.metrics
        metrics.gauge(
            "hub_livedata_feeds", "Live data feeds this node runs now (one per symbol in the cluster).",
            lambda: coordinator.running,
        )  # fmt: skip
        metrics.counter(
            "hub_livedata_ticks_published_total",
            "Ticks this node's feeds published.",
            lambda: coordinator.ticks_published,
        )
        metrics.counter(
            "hub_livedata_feed_failures_total",
            "Feeds that failed (their source raised) since this node started.",
            lambda: coordinator.feed_failures,
        )
        coordinator.start()

    @hookimpl
    async def hub_shutdown(self) -> None:
        coordinator, self._coordinator = self._coordinator, None
        if coordinator is not None:
            await coordinator.stop()

    @hookimpl
    def hub_http_routes(self) -> APIRouter:
        router = APIRouter(prefix="/api/livedata", tags=["livedata"])
        hub = self.hub

        @router.get("/symbols")
        async def symbols(authorization: Annotated[str | None, Header()] = None) -> SymbolList:
            """Every symbol with its last quote, and whether this node runs its feed."""
            hub.authenticate(authorization)
            coordinator = self.coordinator
            try:
                stored = {
                    key.removeprefix("snapshot/"): LivedataSnapshot.model_validate_json(value)
                    for key, value in await hub.store.scan("snapshot/")
                }
            except StoreUnavailable:
                raise HTTPException(503, "The store is unavailable; retry shortly.") from None
            listed: list[SymbolInfo] = []
            for symbol in self.source().symbols():
                snapshot = coordinator.local_snapshot(symbol) or stored.get(symbol)
                last = snapshot.last if snapshot is not None else None
                listed.append(SymbolInfo(symbol=symbol, feed_here=coordinator.runs(symbol), last=last))
            return SymbolList(node=hub.node_id, feeds_here=coordinator.running, symbols=listed)

        @router.get("/symbols/{symbol}")
        async def symbol_snapshot(
            symbol: str, authorization: Annotated[str | None, Header()] = None
        ) -> LivedataSnapshot:
            """One symbol's snapshot, as a subscriber would get it (404 for an unknown symbol)."""
            identity = hub.authenticate(authorization)
            hub.authorize_read(identity, f"{NAMESPACE}:{symbol}")
            if symbol not in self.source().symbols():
                raise HTTPException(404, f"No symbol {symbol!r} here.")
            try:
                return await self.coordinator.snapshot(symbol)
            except StoreUnavailable:
                raise HTTPException(503, "The store is unavailable; retry shortly.") from None

        return router
