"""Inbox: the storage layout of notifications, read state, expiry and retention in the plugin's PluginStore.

Keys (every one sorts by time where it matters, because notification ids start with milliseconds)::

    u/<user>/n/<id>   a personal notification (JSON)
    u/<user>/r/<id>   a read mark, for a personal or a broadcast notification newer than the watermark
    u/<user>/wm       the user's read watermark: every notification with an id <= it is read (read_all)
    b/n/<id>          an "everyone" notification, stored once
    x/<ms>/<id>/<to>  the expiry index (<ms>: expires_at in 12 hex digits; <to>: the user or @all)
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from hub import PluginStore, sortable_id
from hub_realtime_plugins.notifications.messages import BROADCAST_ROOM, Notification, is_notification_id
from hub_realtime_plugins.notifications.settings import NotificationsSettings


def new_notification_id(now: float | None = None) -> str:
    """Sortable by time, then random (``hub.sortable_id``)."""
    return sortable_id(now)


def _personal(user: str) -> str:
    return f"u/{user}/n/"


def _marks(user: str) -> str:
    return f"u/{user}/r/"


def _watermark(user: str) -> str:
    return f"u/{user}/wm"


BROADCASTS = "b/n/"
EXPIRY = "x/"


def _expiry_key(notification: Notification, owner: str) -> str:
    return f"{EXPIRY}{int(notification.expires_at * 1000):012x}/{notification.id}/{owner}"


@dataclass(frozen=True, slots=True)
class Inbox:
    """One user's live notifications (personal and broadcast, newest first) and their read state."""

    notifications: tuple[Notification, ...]
    watermark: str
    marks: frozenset[str]

    def is_read(self, notification_id: str) -> bool:
        return notification_id <= self.watermark or notification_id in self.marks

    @property
    def unread(self) -> int:
        return sum(1 for n in self.notifications if not self.is_read(n.id))

    @property
    def newest_id(self) -> str | None:
        return self.notifications[0].id if self.notifications else None

    def with_read_flags(self, limit: int) -> list[Notification]:
        return [n.model_copy(update={"read": self.is_read(n.id)}) for n in self.notifications[:limit]]


class NotificationStore:
    """Every read and write of the plugin's records goes through here."""

    def __init__(self, store: PluginStore, settings: NotificationsSettings) -> None:
        self._store = store
        self._settings = settings

    # ---- writing notifications ---------------------------------------------------------------------------

    async def add_personal(self, user: str, notification: Notification) -> None:
        raw = notification.model_dump_json(exclude={"read"}).encode()
        await self._store.put(_personal(user) + notification.id, raw)
        await self._store.put(_expiry_key(notification, user), b"")
        await self._store.trim(_personal(user), self._settings.retention)

    async def add_broadcast(self, notification: Notification) -> None:
        raw = notification.model_dump_json(exclude={"read"}).encode()
        await self._store.put(BROADCASTS + notification.id, raw)
        await self._store.put(_expiry_key(notification, BROADCAST_ROOM), b"")
        await self._store.trim(BROADCASTS, self._settings.broadcast_retention)

    # ---- reading -----------------------------------------------------------------------------------------

    async def inbox(self, user: str, now: float | None = None) -> Inbox:
        """The user's unexpired notifications, with the watermark and read marks."""
        now = time.time() if now is None else now
        personal = await self._store.scan(_personal(user), limit=self._settings.retention, reverse=True)
        broadcast = await self._store.scan(BROADCASTS, limit=self._settings.broadcast_retention, reverse=True)
        loaded = [Notification.model_validate_json(raw) for _key, raw in (*personal, *broadcast)]
        live = sorted((n for n in loaded if n.expires_at > now), key=lambda n: n.id, reverse=True)
        watermark = (await self._store.get(_watermark(user)) or b"").decode()
        marks = await self._store.scan(_marks(user))
        return Inbox(tuple(live), watermark, frozenset(key.rpartition("/")[2] for key, _raw in marks))

    # ---- read state --------------------------------------------------------------------------------------

    async def mark_read(self, user: str, inbox: Inbox, ids: Iterable[str]) -> list[str]:
        """Mark those of ``ids`` that are in the inbox and unread; returns them. Unknown ids are ignored."""
        known = {n.id for n in inbox.notifications}
        newly = sorted({i for i in ids if i in known and not inbox.is_read(i)})
        for notification_id in newly:
            await self._store.put(_marks(user) + notification_id, b"1")
        if newly:
            # Marks of expired or trimmed notifications are worthless; keep no more than there can be live ones.
            await self._store.trim(_marks(user), self._settings.retention + self._settings.broadcast_retention)
        return newly

    async def mark_all_read(self, user: str, up_to: str) -> str:
        """Raise the user's watermark to ``up_to`` (it never goes down); drop the marks it covers.

        Returns the watermark now in force. A compare-and-set loop, so two devices racing keep the higher one.
        """
        key = _watermark(user)
        while True:
            current = await self._store.get(key)
            if current is not None and current.decode() >= up_to:
                watermark = current.decode()
                break
            if await self._store.compare_and_set(key, current, up_to.encode()):
                watermark = up_to
                break
        for mark, _raw in await self._store.scan(_marks(user)):
            if mark.rpartition("/")[2] <= watermark:
                await self._store.delete(mark)
        return watermark

    # ---- expiry ------------------------------------------------------------------------------------------

    async def purge_expired(self, now: float | None = None, batch: int = 500) -> int:
        """Delete every notification whose expiry has passed (with its read mark); returns how many."""
        now_ms = int((time.time() if now is None else now) * 1000)
        purged = 0
        while True:
            entries = await self._store.scan(EXPIRY, limit=batch)
            due = []
            for key, _raw in entries:
                expires, notification_id, owner = key[len(EXPIRY) :].split("/", 2)
                if int(expires, 16) > now_ms:
                    break
                due.append((key, notification_id, owner))
            for key, notification_id, owner in due:
                if not is_notification_id(notification_id):
                    pass  # a malformed entry: nothing to delete but the entry itself
                elif owner == BROADCAST_ROOM:
                    purged += await self._store.delete(BROADCASTS + notification_id)
                else:
                    purged += await self._store.delete(_personal(owner) + notification_id)
                    await self._store.delete(_marks(owner) + notification_id)
                await self._store.delete(key)
            if len(due) < batch:
                return purged
