"""notifications: per-user notifications (``notifications:<user>``) and "everyone" broadcasts
(``notifications:@all``), stored for offline users, with read state synced across tabs, expiry, an HTTP
publish API, a ``hub notify`` command and ``notify()`` for other code on the same hub. See
docs/notifications.md.

The entry point names :class:`Notifications`, which each hub builds for itself with ``HUB_NOTIFICATIONS_*``
settings; tests pass ``lambda hub: Notifications(hub, settings=NotificationsSettings(...))``.
"""

from __future__ import annotations

from hub_realtime_plugins.notifications.messages import PublishResult
from hub_realtime_plugins.notifications.notifier import InvalidRequest
from hub_realtime_plugins.notifications.plugin import Notifications, notify
from hub_realtime_plugins.notifications.settings import NotificationsSettings

__all__ = ["InvalidRequest", "Notifications", "NotificationsSettings", "PublishResult", "notify"]
