"""The AsyncAPI document's (hub/asyncapi.py) channel per channel family: its sub and the reply, unsub, the hub's
own unsub notice, a pub per message type and its reply, an ev per event type, presence, and the operations."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from hub.asyncapi_core import ROOM_PATTERN, _Document, _frame, _ref, _schema
from hub.channel import Channel
from hub.protocol import PresenceRequest, PubRequest, SubRequest, UnsubRequest
from hub.schema import InboundJsonSchema, OutboundJsonSchema, returned_models


def _channel_name(namespace: str) -> dict[str, Any]:
    return {
        "type": "string",
        "maxLength": 1024,
        "pattern": f"^{namespace}:{ROOM_PATTERN}$",
        "description": f"A channel of this family: '{namespace}:' and a room.",
    }


def _narrowed(base: dict[str, Any], properties: dict[str, Any], required: Iterable[str] = ()) -> dict[str, Any]:
    """A client frame's schema (``base``) with some members narrowed (the channel's own name, a message type)."""
    narrowing: dict[str, Any] = {"properties": properties}
    if required:
        narrowing["required"] = list(required)
    return {"allOf": [base, narrowing]}


def _nullable(schema: dict[str, Any], nullable: bool) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]} if nullable else schema


def _returned(
    models: tuple[list[type[BaseModel]], bool] | None, schemas: dict[type[BaseModel], dict[str, Any]]
) -> dict[str, Any] | None:
    """The schema of what a handler or snapshot provider returns; None when its annotation does not say."""
    if models is None:
        return None
    found, nullable = models
    options = [schemas[model] for model in found]
    if nullable:
        options.append({"type": "null"})
    if not options:
        return {"type": "null"}
    return options[0] if len(options) == 1 else {"anyOf": options}


def _family_channel(
    doc: _Document, namespace: str, plugin: str, channel: Channel, frames: dict[type[BaseModel], dict[str, Any]]
) -> None:
    handlers = {message_type: returned_models(inbound.handler) for message_type, inbound in channel.inbound.items()}
    snapshot_models = returned_models(channel.snapshot_provider)
    inbound = doc.models(
        [spec.model for spec in channel.inbound.values()],
        prefix=f"{namespace}.in.",
        mode="validation",
        generator=InboundJsonSchema,
    )
    returned = [model for found in (*handlers.values(), snapshot_models) if found for model in found[0]]
    outbound = doc.models(
        [*channel.events.values(), *returned],
        prefix=f"{namespace}.out.",
        mode="serialization",
        generator=OutboundJsonSchema,
    )
    name = _channel_name(namespace)
    presence_events = {f"{namespace}.joined", f"{namespace}.left", f"{namespace}.presence"}
    messages: dict[str, Any] = {}
    events: list[str] = []
    for event_type, model in sorted(channel.events.items()):
        properties: dict[str, Any] = {"ch": name, "type": {"const": event_type}, "data": outbound[model]}
        if channel.recoverable and event_type not in presence_events:
            properties["offset"] = {
                "type": "integer",
                "minimum": 1,
                "description": "Its place in the channel's history; absent for an ephemeral event.",
            }
        key = f"ev.{event_type}"
        payload = doc.schema(f"{namespace}.{key}", _frame("ev", properties, ["ch", "type", "data"]))
        messages[key] = doc.message(f"{namespace}.{key}", event_type, f"The event {event_type}.", payload)
        events.append(key)

    subscribed: dict[str, Any] = {}
    if channel.recoverable:
        recorded = [_schema(f"{namespace}.{key}") for key in events if key.removeprefix("ev.") not in presence_events]
        subscribed |= {
            "epoch": {"type": "string", "maxLength": 64, "description": "The name of the channel's event stream."},
            "offset": {"type": "integer", "minimum": 0, "description": "The last event the reply accounts for."},
            "recovered": {"type": "boolean", "description": "Every event after since.offset is in missed."},
            "missed": {"type": "array", "items": {"anyOf": recorded} if recorded else {}},
        }
    if channel.snapshot_provider is not None:
        snapshot = _returned(snapshot_models, outbound)
        subscribed["snapshot"] = snapshot if snapshot is not None else {"description": "The plugin's state (JSON)."}
    if channel.presence:
        subscribed |= {
            "presence": {"type": "array", "items": _schema("PresenceMember")},
            "presence_count": {"type": "integer", "minimum": 0},
        }
    ok = {"id": _schema("RequestId")}
    messages["sub"] = doc.message(
        f"{namespace}.sub",
        "Subscribe",
        f"Follow a {namespace} channel; since asks for recovery.",
        doc.schema(f"{namespace}.sub", _narrowed(frames[SubRequest], {"ch": name})),
    )
    messages["subscribed"] = doc.message(
        f"{namespace}.subscribed",
        "Subscribed",
        "The reply to sub: comes before the channel's first event.",
        doc.schema(
            f"{namespace}.subscribed",
            _frame("ok", {**ok, "data": {"type": "object", "properties": subscribed}}, ["data"]),
        ),
    )
    messages["unsub"] = doc.message(
        f"{namespace}.unsub",
        "Unsubscribe",
        "Stop following a channel.",
        doc.schema(f"{namespace}.unsub", _narrowed(frames[UnsubRequest], {"ch": name})),
    )
    messages["unsubscribed"] = doc.message(
        f"{namespace}.unsubscribed", "Unsubscribed", "The reply to unsub.", _schema("ok")
    )
    messages["revoked"] = doc.message(
        f"{namespace}.revoked",
        "Subscription ended",
        "The hub ended this subscription itself (access withdrawn); no event of it follows.",
        doc.schema(
            f"{namespace}.revoked",
            _frame(
                "unsub",
                {
                    "ch": name,
                    "code": {"anyOf": [_schema("ErrorCode"), _schema("PluginErrorCode")]},
                    "msg": {"type": "string"},
                },
                ["ch", "code", "msg"],
            ),
        ),
    )
    messages["err"] = _ref("components", "messages", "err")
    publishes: list[tuple[str, str, str]] = []
    for message_type, spec in sorted(channel.inbound.items()):
        request = _narrowed(
            frames[PubRequest],
            {"ch": name, "type": {"const": message_type}, "data": inbound[spec.model]},
            ["data"],
        )
        key = f"pub.{message_type}"
        messages[key] = doc.message(
            f"{namespace}.{key}",
            message_type,
            f"Publish {message_type}; mid makes it idempotent.",
            doc.schema(f"{namespace}.{key}", request),
        )
        reply = _returned(handlers[message_type], outbound)
        duplicate = {"type": "object", "properties": {"duplicate": {"const": True}}, "required": ["duplicate"]}
        if reply is None:
            data: dict[str, Any] = {"description": "The handler's result (JSON), or duplicate for a repeated mid."}
        elif reply == {"type": "null"}:
            data = duplicate  # the handler returns nothing: data only says a repeated mid
        else:
            data = {"anyOf": [reply, duplicate]}
        reply_key = f"published.{message_type}"
        messages[reply_key] = doc.message(
            f"{namespace}.{reply_key}",
            f"{message_type} done",
            f"The reply to {message_type}: the handler's result, or duplicate for a repeated mid.",
            doc.schema(f"{namespace}.{reply_key}", _frame("ok", {**ok, "data": data})),
        )
        publishes.append((message_type, key, reply_key))
    if channel.presence:
        messages["presence"] = doc.message(
            f"{namespace}.presence",
            "Presence",
            "One page of the channel's members.",
            doc.schema(f"{namespace}.presence", _narrowed(frames[PresenceRequest], {"ch": name})),
        )
        page = {
            "presence": {"type": "array", "items": _schema("PresenceMember")},
            "count": {"type": "integer", "minimum": 0},
            "cursor": {"type": ["string", "null"], "description": "The next page's cursor; null after the last."},
        }
        messages["presencePage"] = doc.message(
            f"{namespace}.presencePage",
            "Presence page",
            "The reply to presence.",
            doc.schema(f"{namespace}.presencePage", _frame("ok", {**ok, "data": {"properties": page}}, ["data"])),
        )

    description = [channel.description or f"The {namespace} channels.", f"Plugin: {plugin}."]
    features = [
        label
        for label, on in (
            ("recoverable (offsets, since)", channel.recoverable),
            ("presence", channel.presence),
            ("conflating (latest wins)", channel.conflate),
            ("a snapshot for late joiners", channel.snapshot_provider is not None),
        )
        if on
    ]
    if features:
        description.append("Features: " + ", ".join(features) + ".")
    doc.channels[namespace] = {
        "address": f"{namespace}:{{room}}",
        "title": f"{namespace}:<room>",
        "description": " ".join(description),
        "parameters": {
            "room": {"description": f"The room: one or more of A-Z a-z 0-9 _ . @ = + - (pattern {ROOM_PATTERN})."}
        },
        "messages": messages,
    }
    doc.operation(f"{namespace}.subscribe", "receive", namespace, ["sub"], "Subscribe.", ["subscribed", "err"])
    doc.operation(f"{namespace}.unsubscribe", "receive", namespace, ["unsub"], "Unsubscribe.", ["unsubscribed", "err"])
    doc.operation(f"{namespace}.revoke", "send", namespace, ["revoked"], "End a subscription whose access went.")
    if events:
        doc.operation(f"{namespace}.events", "send", namespace, events, "Deliver the channel's events.")
    for message_type, key, reply_key in publishes:
        doc.operation(
            f"{namespace}.publish.{message_type}", "receive", namespace, [key], f"Handle {message_type}.",
            [reply_key, "err"],
        )  # fmt: skip
    if channel.presence:
        doc.operation(
            f"{namespace}.presence", "receive", namespace, ["presence"], "List members.", ["presencePage", "err"]
        )
