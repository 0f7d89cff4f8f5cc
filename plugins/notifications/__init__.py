"""notifications: per-user notifications (``notifications:<user>``) and "everyone" broadcasts
(``notifications:@all``), stored for offline users, with read state synced across tabs, expiry, an HTTP
publish API, a ``hub publish`` command and ``notify()`` for other plugins. See docs/notifications.md.

The hooks here use HUB_NOTIFICATIONS_* settings; ``make_plugin(settings)`` builds the plugin with others.
"""

from __future__ import annotations

from plugins.notifications.messages import PublishResult
from plugins.notifications.notifier import InvalidRequest, notify
from plugins.notifications.plugin import make_plugin
from plugins.notifications.settings import NotificationsSettings

_plugin = make_plugin()
hub_channels = _plugin.hub_channels
hub_http_routes = _plugin.hub_http_routes
hub_cli_commands = _plugin.hub_cli_commands
hub_startup = _plugin.hub_startup
hub_shutdown = _plugin.hub_shutdown

__all__ = [
    "InvalidRequest",
    "NotificationsSettings",
    "PublishResult",
    "hub_channels",
    "hub_cli_commands",
    "hub_http_routes",
    "hub_shutdown",
    "hub_startup",
    "make_plugin",
    "notify",
]
