"""Docedit: the plugin object — one per hub, built with HUB_DOCEDIT_* settings — holding that hub's documents,
its channel, its /yjs/{document} route and its metrics."""

from __future__ import annotations

from fastapi import APIRouter

from hub import Channel, Hub, Plugin, hookimpl
from hub_realtime_plugins.docedit.documents import Documents
from hub_realtime_plugins.docedit.handlers import DocumentHandlers
from hub_realtime_plugins.docedit.settings import DoceditSettings
from hub_realtime_plugins.docedit.yws import make_router


class Docedit(Plugin):
    """Collaborative documents ``docedit:<doc>`` and ``/yjs/{document}``, with ``HUB_DOCEDIT_*`` settings (or
    ``settings``)."""

    def __init__(self, hub: Hub, settings: DoceditSettings | None = None) -> None:
        super().__init__(hub)
        self.settings = settings or hub.settings(DoceditSettings)
        self.documents = Documents(hub, self.settings)
        self.handlers = DocumentHandlers(self.documents)

    @hookimpl
    def hub_channels(self) -> list[Channel]:
        return [self.handlers.channel]

    @hookimpl
    def hub_http_routes(self) -> APIRouter:
        self.hub.limit_websocket_frames("/yjs/", self.settings.yjs_message_limit())
        return make_router(self.documents)

    @hookimpl
    async def hub_startup(self) -> None:
        documents = self.documents
        metrics = self.hub.metrics
        metrics.counter(
            "hub_docedit_updates_total",
            "Document updates applied and stored by this node.",
            lambda: documents.updates_applied,
        )
        metrics.counter(
            "hub_docedit_rejected_total",
            "Document updates refused by this node: too large, malformed, or from a reader.",
            lambda: documents.rejected,
        )
        metrics.counter(
            "hub_docedit_compactions_total",
            "Compactions of stored updates into snapshots.",
            lambda: documents.compactor.compactions,
        )
        metrics.gauge(
            "hub_docedit_open_documents", "Documents held in memory on this node.", lambda: documents.open_count
        )
        metrics.gauge(
            "hub_docedit_yjs_sockets", "Open /yjs/{document} sockets on this node.", lambda: len(documents.closers)
        )
        documents.start()

    @hookimpl
    async def hub_shutdown(self) -> None:
        await self.documents.stop()
