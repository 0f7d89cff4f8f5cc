"""Livedata: the plugin object — the ``livedata`` channel, its snapshot, the hooks that run one feed
coordinator per hub, and ``GET /api/livedata/symbols``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException

from hub import Channel, Context, Hub, HubError, StoreUnavailable, check_subscribe, hookimpl, request_identity
from plugins.livedata.feed import TICK_EVENT, FeedCoordinator
from plugins.livedata.messages import LivedataSnapshot, Quote, SymbolInfo, SymbolList
from plugins.livedata.settings import LivedataSettings
from plugins.livedata.source import DataSource, load_source

NAMESPACE = "livedata"


class Livedata:
    """One livedata plugin: register it with the hub (``hub_server(plugins={"livedata": Livedata(...)})``, or
    the package module, which holds one built from the environment).

    ``source``: the :class:`DataSource` to use; None loads the one ``settings.source`` names when the hub
    starts. One object may serve several hubs in one process (tests run two nodes so): each hub gets its own
    coordinator.
    """

    # The hub serves static/ next to the plugin's __file__: the panel.
    __file__ = str(Path(__file__).with_name("__init__.py"))

    def __init__(self, settings: LivedataSettings | None = None, *, source: DataSource | None = None) -> None:
        self.settings = settings or LivedataSettings()
        self._source = source
        self._coordinators: dict[Hub, FeedCoordinator] = {}
        self.channel = Channel(
            NAMESPACE,
            description="Live prices: one quote per tick, latest wins for slow readers; snapshot with history.",
            conflate=self.settings.conflate,
        )
        self.channel.event(TICK_EVENT, Quote)
        self.channel.snapshot(self._snapshot)

    def source(self) -> DataSource:
        """The data source (loaded on first use from ``settings.source`` unless one was given)."""
        if self._source is None:
            self._source = load_source(self.settings)
        return self._source

    def use_source(self, source: DataSource) -> None:
        """Replace the data source (another plugin's feed); only before the hub starts."""
        if self._coordinators:
            raise RuntimeError("livedata: the data source cannot change while a hub runs its feeds")
        self._source = source

    def coordinator(self, hub: Hub) -> FeedCoordinator:
        coordinator = self._coordinators.get(hub)
        if coordinator is None:
            raise RuntimeError("livedata: this hub has not started")
        return coordinator

    def _check_symbol(self, symbol: str) -> None:
        if symbol not in self.source().symbols():
            known = ", ".join(list(self.source().symbols())[:20])
            raise HubError("not_found", f"No symbol {symbol!r} here; known symbols: {known}.")

    async def _snapshot(self, ctx: Context) -> LivedataSnapshot:
        self._check_symbol(ctx.room)
        coordinator = self.coordinator(ctx.hub)
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
    async def hub_startup(self, hub: Hub) -> None:
        coordinator = FeedCoordinator(hub, self.channel, self.source(), self.settings, hub.store_for(NAMESPACE))
        self._coordinators[hub] = coordinator
        hub.metrics.gauge(
            "hub_livedata_feeds", "Live data feeds this node runs now (one per symbol in the cluster).",
            lambda: coordinator.running,
        )  # fmt: skip
        hub.metrics.counter(
            "hub_livedata_ticks_published_total",
            "Ticks this node's feeds published.",
            lambda: coordinator.ticks_published,
        )
        hub.metrics.counter(
            "hub_livedata_feed_failures_total",
            "Feeds that failed (their source raised) since this node started.",
            lambda: coordinator.feed_failures,
        )
        coordinator.start()

    @hookimpl
    async def hub_shutdown(self, hub: Hub) -> None:
        coordinator = self._coordinators.pop(hub, None)
        if coordinator is not None:
            await coordinator.stop()

    @hookimpl
    def hub_http_routes(self, hub: Hub) -> APIRouter:
        router = APIRouter(prefix="/api/livedata", tags=["livedata"])

        @router.get("/symbols")
        async def symbols(authorization: Annotated[str | None, Header()] = None) -> SymbolList:
            """Every symbol with its last quote, and whether this node runs its feed."""
            request_identity(hub, authorization)
            coordinator = self.coordinator(hub)
            try:
                stored = {
                    key.removeprefix("snapshot/"): LivedataSnapshot.model_validate_json(value)
                    for key, value in await coordinator.store.scan("snapshot/")
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
            identity = request_identity(hub, authorization)
            check_subscribe(hub, identity, f"{NAMESPACE}:{symbol}")
            if symbol not in self.source().symbols():
                raise HTTPException(404, f"No symbol {symbol!r} here.")
            try:
                return await self.coordinator(hub).snapshot(symbol)
            except StoreUnavailable:
                raise HTTPException(503, "The store is unavailable; retry shortly.") from None

        return router
