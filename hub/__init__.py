"""Hub's public API: everything a plugin imports comes from here (and hub.testing for its tests)."""

from __future__ import annotations

from hub.auth import origin_allowed
from hub.broker import BrokerUnavailable
from hub.channel import Channel, PresenceChanged, allow_everyone, deny_anonymous, only_room_owner
from hub.context import Context
from hub.errors import Disconnect, HubError
from hub.hookspecs import hookimpl
from hub.http_auth import check_subscribe, request_identity, request_publisher
from hub.http_edge import json_body
from hub.ids import sortable_id
from hub.lease import Lease
from hub.limits import RateLimit
from hub.listener import Listener
from hub.protocol import close_reason
from hub.runtime import Hub
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
    "PluginStore",
    "PresenceChanged",
    "PresenceMember",
    "RateLimit",
    "StoreUnavailable",
    "allow_everyone",
    "check_subscribe",
    "close_reason",
    "deny_anonymous",
    "hookimpl",
    "json_body",
    "only_room_owner",
    "origin_allowed",
    "request_identity",
    "request_publisher",
    "sortable_id",
]
