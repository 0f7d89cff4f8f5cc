"""The JSON Schema of what every channel carries — its inbound messages, its events and its snapshot — for
client developers and code generators (``hub schema``)."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel

from hub.channel import Channel, SnapshotProvider
from hub.protocol import PROTOCOL_VERSION
from hub.router import Router


def _snapshot_model(provider: SnapshotProvider | None) -> type[BaseModel] | None:
    """The model a snapshot provider returns, from its annotation (``-> ChatSnapshot`` or ``-> X | None``)."""
    if provider is None:
        return None
    try:
        returned = typing.get_type_hints(provider).get("return")
    except Exception:  # an annotation that does not resolve: the schema leaves the snapshot out
        return None
    candidates = typing.get_args(returned) or (returned,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def channel_schema(plugin: str, channel: Channel) -> dict[str, Any]:
    snapshot = _snapshot_model(channel.snapshot_provider)
    return {
        "plugin": plugin,
        "channel": f"{channel.namespace}:<room>",
        "description": channel.description,
        "recoverable": channel.recoverable,
        "presence": channel.presence,
        "conflate": channel.conflate,
        "messages": {
            message_type: inbound.model.model_json_schema() for message_type, inbound in sorted(channel.inbound.items())
        },
        "events": {event_type: model.model_json_schema() for event_type, model in sorted(channel.events.items())},
        "snapshot": snapshot.model_json_schema() if snapshot is not None else None,
    }


def hub_schema(router: Router) -> dict[str, Any]:
    """Every enabled channel family's schema, by namespace."""
    return {
        "protocol": PROTOCOL_VERSION,
        "channels": {
            namespace: channel_schema(router.owner(namespace), channel)
            for namespace, channel in sorted(router.channels.items())
        },
    }
