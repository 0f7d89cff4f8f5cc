"""The JSON Schema of what every channel carries — its inbound messages, its events and its snapshot — for
client developers and code generators (``hub schema``)."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from hub.channel import Channel, SnapshotProvider
from hub.protocol import PROTOCOL_VERSION
from hub.router import Router

# The integers the socket's JSON parser (orjson) reads as integers; it reads a longer literal as a float, which
# an integer field refuses. So an integer field without bounds of its own takes this range, and says so.
WIRE_INT_MIN = -(2**63)
WIRE_INT_MAX = 2**64 - 1


class InboundJsonSchema(GenerateJsonSchema):
    """The JSON Schema of what the hub accepts: pydantic's, with every integer bounded to what the wire carries."""

    def int_schema(self, schema: core_schema.IntSchema) -> JsonSchemaValue:
        json_schema = super().int_schema(schema)
        if "minimum" not in json_schema and "exclusiveMinimum" not in json_schema:
            json_schema["minimum"] = WIRE_INT_MIN
        if "maximum" not in json_schema and "exclusiveMaximum" not in json_schema:
            json_schema["maximum"] = WIRE_INT_MAX
        return json_schema


def inbound_schema(model: type[BaseModel]) -> dict[str, Any]:
    """What ``Router.validate`` accepts for a message of this model (strict JSON), as JSON Schema."""
    return model.model_json_schema(schema_generator=InboundJsonSchema)


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
            message_type: inbound_schema(inbound.model) for message_type, inbound in sorted(channel.inbound.items())
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
