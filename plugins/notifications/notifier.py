"""Notifier: the one publish path (socket, HTTP, CLI and Python all end here) and read state.

One per :class:`hub_realtime_plugins.notifications.Notifications` object, so one per running hub (a process may run
several, as the tests do).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from functools import cached_property

from hub import Hub
from hub_realtime_plugins.notifications.idempotency import IdempotencyClaims
from hub_realtime_plugins.notifications.messages import (
    BROADCAST_ROOM,
    InboxSnapshot,
    MarkedRead,
    Notification,
    PublishRequest,
    PublishResult,
)
from hub_realtime_plugins.notifications.settings import NotificationsSettings
from hub_realtime_plugins.notifications.store import NotificationStore, new_notification_id

NAMESPACE = "notifications"
NEW = "notifications.new"
MARKED_READ = "notifications.marked_read"


def channel_of(room: str) -> str:
    return f"{NAMESPACE}:{room}"


class InvalidRequest(ValueError):
    """Well-formed but not acceptable here (a ttl above the max_ttl setting); names the field."""

    def __init__(self, field: str, msg: str) -> None:
        super().__init__(f"{field}: {msg}")
        self.field = field
        self.msg = msg


class Notifier:
    """Publishing, reading and purging over the plugin's store (``hub.store``, opened on first use: a plugin
    object built only to describe its channels never touches it)."""

    def __init__(self, hub: Hub, settings: NotificationsSettings) -> None:
        self.hub = hub
        self.settings = settings
        self.published = 0  # notifications created by this node (a metric)

    @cached_property
    def store(self) -> NotificationStore:
        return NotificationStore(self.hub.store, self.settings)

    @cached_property
    def claims(self) -> IdempotencyClaims:
        return IdempotencyClaims(
            self.hub.store,
            window=self.settings.idempotency_window,
            wait=self.settings.idempotency_wait,
            stale=self.settings.idempotency_stale,
        )

    # ---- publishing --------------------------------------------------------------------------------------

    async def publish(
        self, request: PublishRequest, *, idempotency_key: str | None = None, publisher: str = ""
    ) -> PublishResult:
        """Store and deliver one notification to ``request.users`` or everyone.

        With an ``idempotency_key``, a retry by the same ``publisher`` delivers nothing more and gets the first
        result back (``duplicate=True``); a different request under the same key is an IdempotencyConflict.
        """
        ttl = self.settings.default_ttl if request.ttl is None else request.ttl
        if ttl > self.settings.max_ttl:
            raise InvalidRequest("ttl", f"at most {self.settings.max_ttl:g} seconds on this hub")
        if idempotency_key is None:
            return await self._deliver(request, ttl)
        fingerprint = hashlib.sha256(request.model_dump_json().encode()).hexdigest()
        return await self.claims.run_once(publisher, idempotency_key, fingerprint, lambda: self._deliver(request, ttl))

    async def _deliver(self, request: PublishRequest, ttl: float) -> PublishResult:
        now = time.time()
        notification = Notification(
            id=new_notification_id(now),
            title=request.title,
            body=request.body,
            url=request.url,
            level=request.level,
            data=request.data,
            ts=now,
            expires_at=now + ttl,
            to="everyone" if request.everyone else "user",
        )
        recipients = [] if request.everyone else list(request.users or ())
        if request.everyone:
            await self.store.add_broadcast(notification)
            await self.hub.publish(channel_of(BROADCAST_ROOM), NEW, notification)
        else:
            limit = asyncio.Semaphore(self.settings.publish_concurrency)

            async def deliver_to(user: str) -> None:
                async with limit:
                    await self.store.add_personal(user, notification)  # stored first: a late joiner has it
                    await self.hub.publish(channel_of(user), NEW, notification)

            await asyncio.gather(*(deliver_to(user) for user in recipients))
        self.published += 1
        return PublishResult(
            id=notification.id,
            to=notification.to,
            recipients=recipients,
            expires_at=notification.expires_at,
            notification=notification,
        )

    # ---- reading -----------------------------------------------------------------------------------------

    async def snapshot(self, user: str) -> InboxSnapshot:
        inbox = await self.store.inbox(user)
        return InboxSnapshot(notifications=inbox.with_read_flags(self.settings.snapshot_size), unread=inbox.unread)

    async def read(self, user: str, ids: list[str]) -> MarkedRead:
        """Mark ``ids`` read for ``user``; unknown, expired and already-read ids are ignored. Every tab of the
        user hears of it (``notifications.marked_read``) when something changed."""
        marked = await self.store.mark_read(user, await self.store.inbox(user), ids)
        # Counted again after the write, so of two devices marking at once the later event has the truth.
        event = MarkedRead(ids=marked, all=False, unread=(await self.store.inbox(user)).unread)
        if marked:
            await self.hub.publish(channel_of(user), MARKED_READ, event)
        return event

    async def read_all(self, user: str, up_to: str | None) -> MarkedRead:
        """Everything up to ``up_to`` (default: the newest notification now) is read, in one write."""
        inbox = await self.store.inbox(user)
        newest = inbox.newest_id
        # Never past the newest notification: a bound in the future would mark later ones read before they exist.
        target = newest if up_to is None or newest is None else min(up_to, newest)
        if target is None:  # nothing to read
            return MarkedRead(ids=[], all=True, up_to=inbox.watermark or None, unread=inbox.unread)
        watermark = await self.store.mark_all_read(user, target)
        event = MarkedRead(ids=[], all=True, up_to=watermark, unread=(await self.store.inbox(user)).unread)
        await self.hub.publish(channel_of(user), MARKED_READ, event)
        return event

    # ---- housekeeping ------------------------------------------------------------------------------------

    async def purge(self) -> tuple[int, int]:
        """Delete expired notifications and forgotten idempotency claims; returns (notifications, claims)."""
        return await self.store.purge_expired(), await self.claims.purge()
