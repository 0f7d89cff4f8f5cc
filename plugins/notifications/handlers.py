"""notifications' channel: ``notifications:<user>`` (only that user) and ``notifications:@all`` (everyone reads,
nobody writes), the inbound read / read_all / send messages, and the inbox snapshot."""

from __future__ import annotations

from hub import Channel, Context, HubError, Identity, RateLimit
from plugins.notifications.messages import (
    BROADCAST_ROOM,
    InboxSnapshot,
    MarkedRead,
    Notification,
    PublishRequest,
    PublishResult,
    ReadAll,
    ReadNotifications,
    SendNotification,
)
from plugins.notifications.notifier import MARKED_READ, NAMESPACE, NEW, InvalidRequest, notifier_for
from plugins.notifications.settings import NotificationsSettings

PUBLISH_SCOPE = "publish"


def can_subscribe(identity: Identity, room: str) -> bool:
    """One's own channel (guests too: their id is stable through the resume token), and the broadcast one."""
    return room == BROADCAST_ROOM or room == identity.user


def can_publish(identity: Identity, room: str) -> bool:
    """Inbound messages only on one's own channel; nobody writes to @all (publishers use the HTTP API)."""
    return room != BROADCAST_ROOM and room == identity.user


def make_channel(settings: NotificationsSettings) -> Channel:
    channel = Channel(
        NAMESPACE,
        description="Per-user notifications with read state and expiry, and 'everyone' broadcasts on @all.",
        can_subscribe=can_subscribe,
        can_publish=can_publish,
    )
    channel.event(NEW, Notification)
    channel.event(MARKED_READ, MarkedRead)

    @channel.on("notifications.read", ReadNotifications, rate_limit=RateLimit(rate=10, burst=20))
    async def read(ctx: Context, msg: ReadNotifications) -> MarkedRead:
        return await notifier_for(ctx.hub).read(ctx.room, msg.ids)

    @channel.on("notifications.read_all", ReadAll, rate_limit=RateLimit(rate=2, burst=5))
    async def read_all(ctx: Context, msg: ReadAll) -> MarkedRead:
        return await notifier_for(ctx.hub).read_all(ctx.room, msg.up_to)

    @channel.on(
        "notifications.send", SendNotification, rate_limit=RateLimit(rate=settings.send_rate, burst=settings.send_burst)
    )
    async def send(ctx: Context, msg: SendNotification) -> PublishResult:
        me = ctx.identity.user
        to_self = msg.users is None and not msg.everyone
        if not to_self and msg.users != [me] and PUBLISH_SCOPE not in ctx.identity.scopes:
            raise HubError("forbidden", f"Sending to other users or to everyone needs the {PUBLISH_SCOPE!r} scope.")
        fields = msg.model_dump()
        if to_self:
            fields["users"] = [me]
        try:
            return await notifier_for(ctx.hub).publish(PublishRequest.model_validate(fields))
        except InvalidRequest as exc:
            raise HubError(
                "invalid", f"Invalid data for 'notifications.send': {exc}", [{"loc": [exc.field], "msg": exc.msg}]
            ) from None

    @channel.snapshot
    async def inbox(ctx: Context) -> InboxSnapshot | None:
        if ctx.room == BROADCAST_ROOM:
            return None  # the personal channel's snapshot already merges the broadcasts in
        return await notifier_for(ctx.hub).snapshot(ctx.room)

    return channel
