"""make_plugin(settings): the plugin's hook implementations, built around one settings object, and the
periodic purge that runs on one node of the cluster at a time (a lease)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import ModuleType

import typer
from fastapi import APIRouter

from hub import Channel, Hub, hookimpl
from plugins.notifications.api import make_router
from plugins.notifications.cli import register as register_cli
from plugins.notifications.handlers import make_channel
from plugins.notifications.notifier import NAMESPACE, Notifier, attach, detach
from plugins.notifications.settings import NotificationsSettings

log = logging.getLogger("hub.notifications")


class Purger:
    """Every purge_interval, on the node holding the ``notifications.purge`` lease: expired notifications
    and forgotten idempotency claims go."""

    def __init__(self, hub: Hub, notifier: Notifier, interval: float) -> None:
        self._notifier = notifier
        self._interval = interval
        self._lease = hub.lease(f"{NAMESPACE}.purge", ttl=interval * 3)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="notifications-purge")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):  # best effort: the lease expires by itself anyway
            await self._lease.release()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                if await self._lease.acquire():
                    notifications, claims = await self._notifier.purge()
                    if notifications or claims:
                        log.info("purged %d expired notification(s), %d old claim(s)", notifications, claims)
            except Exception:  # a failed round (backend down) must not end the loop (task boundary)
                log.exception("notifications purge failed; retrying in %.1f s", self._interval)


def make_plugin(settings: NotificationsSettings | None = None) -> ModuleType:
    """The plugin as a module of hook implementations; ``settings`` default to HUB_NOTIFICATIONS_* variables."""
    settings = settings or NotificationsSettings()
    channel = make_channel(settings)
    purgers: dict[Hub, Purger] = {}

    def hub_channels() -> list[Channel]:
        return [channel]

    def hub_http_routes(hub: Hub) -> APIRouter:
        return make_router(hub)

    def hub_cli_commands(cli: typer.Typer) -> None:
        register_cli(cli)

    async def hub_startup(hub: Hub) -> None:
        notifier = Notifier(hub, settings)
        attach(hub, notifier)
        hub.metrics.counter(
            "hub_notifications_published_total",
            "Notifications published through this node.",
            lambda: notifier.published,
        )
        purgers[hub] = purger = Purger(hub, notifier, settings.purge_interval)
        purger.start()

    async def hub_shutdown(hub: Hub) -> None:
        purger = purgers.pop(hub, None)
        if purger is not None:
            await purger.stop()
        detach(hub)

    module = ModuleType("notifications_plugin")
    module.__file__ = __file__.replace("plugin.py", "__init__.py")  # the hub serves static/ beside it
    for hook in (hub_channels, hub_http_routes, hub_cli_commands, hub_startup, hub_shutdown):
        setattr(module, hook.__name__, hookimpl(hook))
    module.settings = settings  # type: ignore[attr-defined]
    return module
