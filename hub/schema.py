"""The JSON Schema of what every channel carries — its inbound messages, its events and its snapshot — for
client developers and code generators (``hub schema``)."""

from __future__ import annotations

import typing
from collections.abc import Callable
from types import NoneType
from typing import Any

from pydantic import BaseModel, TypeAdapter
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


class OutboundJsonSchema(GenerateJsonSchema):
    """The JSON Schema of what the hub sends (events, snapshots): a model as ``model_dump_json`` writes it, so every
    field it serializes is required, those with a default too (only a ``TypedDict``'s optional key or a field with
    ``exclude_if`` may be missing). Used with ``mode="serialization"``, which also leaves out excluded fields."""

    def field_is_required(
        self,
        field: core_schema.ModelField | core_schema.DataclassField | core_schema.TypedDictField,
        total: bool,
    ) -> bool:
        if field["type"] == "typed-dict-field":
            return super().field_is_required(field, total)
        return field.get("serialization_exclude_if") is None


def inbound_schema(model: type[BaseModel]) -> dict[str, Any]:
    """What ``Router.validate`` accepts for a message of this model (strict JSON), as JSON Schema."""
    return model.model_json_schema(schema_generator=InboundJsonSchema)


def outbound_schema(model: type[BaseModel]) -> dict[str, Any]:
    """What a client receives for an event of this model, as JSON Schema."""
    return model.model_json_schema(mode="serialization", schema_generator=OutboundJsonSchema)


def returned_models(function: Callable[..., object] | None) -> tuple[list[type[BaseModel]], bool] | None:
    """What a snapshot provider or a handler returns, from its annotation: its models, and whether it may return
    None (``-> Snapshot``: ([Snapshot], False); ``-> A | B | None``: ([A, B], True); ``-> None``: ([], True)).
    None when the annotation is missing, does not resolve, or names anything else."""
    if function is None:
        return None
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # an annotation that does not resolve: the schema leaves the value out
        return None
    if "return" not in hints:
        return None
    returned: Any = hints["return"]
    members = typing.get_args(returned) or (returned,)
    models = [member for member in members if isinstance(member, type) and issubclass(member, BaseModel)]
    if any(member not in models and member is not NoneType for member in members):
        return None
    return models, NoneType in members


def _snapshot_schema(provider: SnapshotProvider | None) -> dict[str, Any] | None:
    """What a snapshot provider returns, from its annotation: ``-> ChatSnapshot``, or a union of models and None
    (``-> X | None``: a snapshot or ``null``; ``-> A | B``: either). None when the annotation says anything else."""
    found = returned_models(provider)
    if found is None or not found[0]:
        return None
    returned: Any = typing.get_type_hints(provider).get("return")
    return TypeAdapter[Any](returned).json_schema(mode="serialization", schema_generator=OutboundJsonSchema)


def channel_schema(plugin: str, channel: Channel) -> dict[str, Any]:
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
        "events": {event_type: outbound_schema(model) for event_type, model in sorted(channel.events.items())},
        "snapshot": _snapshot_schema(channel.snapshot_provider),
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
