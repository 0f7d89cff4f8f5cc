"""Hub's public API: everything a plugin imports comes from here (and hub.testing for its tests).

The list below is the whole plugin API; docs/writing-plugins.md and docs/architecture.md list the same names
(tests/test_public_api.py holds the three together).
"""

from __future__ import annotations

from hub.broker import BrokerUnavailable
from hub.channel import Channel, PresenceChanged, allow_everyone, deny_anonymous, only_room_owner
from hub.context import Context
from hub.errors import Disconnect, HubError
from hub.hookspecs import hookimpl
from hub.http_edge import json_body
from hub.ids import sortable_id
from hub.lease import Lease
from hub.limits import RateLimit
from hub.listener import Listener
from hub.plugin_api import Hub, Plugin, PluginMetrics
from hub.protocol import close_reason
from hub.store import PluginStore, StoreUnavailable
from hub.types import Identity, PresenceMember

__all__ = [
    "BrokerUnavailable",
    "Channel",
    "Context",
    "Disconnect",
    "Hub",
    "HubError",
    "Identity",
    "Lease",
    "Listener",
    "Plugin",
    "PluginMetrics",
    "PluginStore",
    "PresenceChanged",
    "PresenceMember",
    "RateLimit",
    "StoreUnavailable",
    "allow_everyone",
    "close_reason",
    "deny_anonymous",
    "hookimpl",
    "json_body",
    "only_room_owner",
    "sortable_id",
]
