"""Notifications: the plugin object — its settings, its channel ``notifications:<user>`` / ``@all`` with the
read / read_all / send handlers and the inbox snapshot, its HTTP route and command, the purge task — and
``notify()``, the Python API for other code on the same hub."""

from __future__ import annotations

from typing import Any

import typer
from fastapi import APIRouter

from hub import Channel, Context, Hub, HubError, Identity, Plugin, RateLimit, hookimpl
from hub_realtime_plugins.notifications.api import make_router
from hub_realtime_plugins.notifications.cli import register as register_cli
from hub_realtime_plugins.notifications.messages import (
    BROADCAST_ROOM,
    InboxSnapshot,
    Level,
    MarkedRead,
    Notification,
    PublishRequest,
    PublishResult,
    ReadAll,
    ReadNotifications,
    SendNotification,
)
from hub_realtime_plugins.notifications.notifier import MARKED_READ, NAMESPACE, NEW, InvalidRequest, Notifier
from hub_realtime_plugins.notifications.purge import Purger
from hub_realtime_plugins.notifications.settings import NotificationsSettings

PUBLISH_SCOPE = "publish"


def can_subscribe(identity: Identity, room: str) -> bool:
    """One's own channel (guests too: their id is stable through the resume token), and the broadcast one."""
    return room == BROADCAST_ROOM or room == identity.user


def can_publish(identity: Identity, room: str) -> bool:
    """Inbound messages only on one's own channel; nobody writes to @all (publishers use the HTTP API)."""
    return room != BROADCAST_ROOM and room == identity.user


class Notifications(Plugin):
    """Per-user and "everyone" notifications: one per hub, built with ``HUB_NOTIFICATIONS_*`` settings (or
    ``settings``). Its :class:`Notifier` (``.notifier``) is the one publish path of the socket, the HTTP API
    and :func:`notify`."""

    def __init__(self, hub: Hub, settings: NotificationsSettings | None = None) -> None:
        super().__init__(hub)
        self.settings = settings or hub.settings(NotificationsSettings)
        self.notifier = Notifier(hub, self.settings)
        self._purger: Purger | None = None
        self.channel = channel = Channel(
            NAMESPACE,
            description="Per-user notifications with read state and expiry, and 'everyone' broadcasts on @all.",
            can_subscribe=can_subscribe,
            can_publish=can_publish,
        )
        channel.event(NEW, Notification)
        channel.event(MARKED_READ, MarkedRead)
        channel.on("notifications.read", ReadNotifications, rate_limit=RateLimit(rate=10, burst=20))(self.read)
        channel.on("notifications.read_all", ReadAll, rate_limit=RateLimit(rate=2, burst=5))(self.read_all)
        send_limit = RateLimit(rate=self.settings.send_rate, burst=self.settings.send_burst)
        channel.on("notifications.send", SendNotification, rate_limit=send_limit)(self.send)
        channel.snapshot(self.inbox)

    # ---- hooks -------------------------------------------------------------------------------------------

    @hookimpl
    def hub_channels(self) -> list[Channel]:
        return [self.channel]

    @hookimpl
    def hub_http_routes(self) -> APIRouter:
        return make_router(self.hub, self.notifier)

    @staticmethod
    @hookimpl
    def hub_cli_commands(cli: typer.Typer) -> None:
        register_cli(cli)

    @hookimpl
    async def hub_startup(self) -> None:
        notifier = self.notifier
        self.hub.metrics.counter(
            "hub_notifications_published_total",
            "Notifications published through this node.",
            lambda: notifier.published,
        )
        self._purger = Purger(self.hub, notifier, self.settings.purge_interval)
        self._purger.start()

    @hookimpl
    async def hub_shutdown(self) -> None:
        if self._purger is not None:
            await self._purger.stop()
            self._purger = None

    # ---- handlers ----------------------------------------------------------------------------------------

    async def read(self, ctx: Context, msg: ReadNotifications) -> MarkedRead:
        return await self.notifier.read(ctx.room, msg.ids)

    async def read_all(self, ctx: Context, msg: ReadAll) -> MarkedRead:
        return await self.notifier.read_all(ctx.room, msg.up_to)

    async def send(self, ctx: Context, msg: SendNotification) -> PublishResult:
        me = ctx.identity.user
        to_self = msg.users is None and not msg.everyone
        if not to_self and msg.users != [me] and PUBLISH_SCOPE not in ctx.identity.scopes:
            raise HubError("forbidden", f"Sending to other users or to everyone needs the {PUBLISH_SCOPE!r} scope.")
        fields = msg.model_dump()
        if to_self:
            fields["users"] = [me]
        try:
            return await self.notifier.publish(PublishRequest.model_validate(fields))
        except InvalidRequest as exc:
            raise HubError(
                "invalid", f"Invalid data for 'notifications.send': {exc}", [{"loc": [exc.field], "msg": exc.msg}]
            ) from None

    async def inbox(self, ctx: Context) -> InboxSnapshot | None:
        if ctx.room == BROADCAST_ROOM:
            return None  # the personal channel's snapshot already merges the broadcasts in
        return await self.notifier.snapshot(ctx.room)


async def notify(
    notifications: Notifications,
    *,
    users: list[str] | None = None,
    everyone: bool = False,
    title: str,
    body: str = "",
    url: str | None = None,
    level: Level = "info",
    data: dict[str, Any] | None = None,
    ttl: float | None = None,
    idempotency_key: str | None = None,
    publisher: str = "python",
) -> PublishResult:
    """Send a notification through the hub's ``notifications`` plugin object: to ``users`` (a list of user
    ids) or to ``everyone``. Stored and delivered exactly as by the HTTP API, on every node.

    There is no lookup by hub: the caller holds the :class:`Notifications` object (the code that builds the
    hub's plugins hands it along; see docs/notifications.md §8). Validated like the HTTP API
    (pydantic.ValidationError, or InvalidRequest for a ttl above max_ttl); returns the stored notification
    with its id and recipients. Call it from the hub's event loop (a handler, a ``hub_startup`` task).
    """
    request = PublishRequest(
        users=users, everyone=everyone, title=title, body=body, url=url, level=level, data=data, ttl=ttl
    )
    return await notifications.notifier.publish(request, idempotency_key=idempotency_key, publisher=publisher)
