"""make_plugin(settings): docedit's hook implementations around one settings object, and its metrics."""

from __future__ import annotations

from types import ModuleType

from fastapi import APIRouter

from hub import Channel, Hub, hookimpl
from plugins.docedit.documents import Documents, attach, detach, documents_for
from plugins.docedit.handlers import make_channel
from plugins.docedit.settings import DoceditSettings
from plugins.docedit.yws import make_router


def make_plugin(settings: DoceditSettings | None = None) -> ModuleType:
    """The plugin as a module of hook implementations; ``settings`` default to HUB_DOCEDIT_* variables."""
    settings = settings or DoceditSettings()
    channel = make_channel(settings)

    def hub_channels() -> list[Channel]:
        return [channel]

    def hub_http_routes(hub: Hub) -> APIRouter:
        hub.limit_websocket_frames("/yjs/", settings.yjs_message_limit())
        return make_router(hub, settings)

    async def hub_startup(hub: Hub) -> None:
        documents = Documents(hub, settings)
        attach(hub, documents)
        metrics = hub.metrics
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
            lambda: documents.compactions,
        )
        metrics.gauge(
            "hub_docedit_open_documents", "Documents held in memory on this node.", lambda: documents.open_count
        )
        metrics.gauge(
            "hub_docedit_yjs_sockets", "Open /yjs/{document} sockets on this node.", lambda: len(documents.closers)
        )
        documents.start()

    async def hub_shutdown(hub: Hub) -> None:
        try:
            documents = documents_for(hub)
        except Exception:  # never started (startup failed before attach)
            return
        await documents.stop()
        detach(hub)

    module = ModuleType("docedit_plugin")
    module.__file__ = __file__.replace("plugin.py", "__init__.py")  # the hub serves static/ beside it
    for hook in (hub_channels, hub_http_routes, hub_startup, hub_shutdown):
        setattr(module, hook.__name__, hookimpl(hook))
    module.settings = settings  # type: ignore[attr-defined]
    return module
