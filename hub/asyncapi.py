"""The wire protocol (docs/protocol.md) as an AsyncAPI 3.0.0 document, for code generators and API catalogs:
``hub schema --format asyncapi`` prints it for the installed plugins, ``GET /asyncapi.json`` serves the running
node's.

What it holds:

- one server, the hub's socket (``ws://<host>/ws``), with the three ways to give a token;
- the channel ``socket``: the frames that name no hub channel (``hello``, ``auth``, ``ping``, ``pong``, an ``err``
  without a request), the error codes (``ErrorCode``) and the close codes (``CloseCode``, also as the channel's
  ``x-close-codes``);
- one channel per channel family, address ``<namespace>:{room}``: its ``sub`` and the reply (with the channel's
  snapshot, recovery and presence members), ``unsub``, the hub's own ``unsub`` notice, a ``pub`` per message type
  and its reply (the handler's return value), an ``ev`` per event type, ``presence`` on presence channels, and
  the ``err`` reply;
- operations from the hub's side: it *receives* what clients send and *sends* the rest; every request operation
  names its replies.

Every model's JSON Schema is pydantic's, as ``hub schema`` makes it (hub/schema.py: what the hub accepts for a
message, what it writes for an event, a snapshot or a reply), with its definitions moved under
``components/schemas`` (``<namespace>.in.<Model>`` / ``<namespace>.out.<Model>``) so that every ``$ref`` resolves in
the one document.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema

from hub.channel import Channel
from hub.protocol import (
    PROTOCOL_VERSION,
    ROOM_RE,
    SUBPROTOCOL,
    TOKEN_SUBPROTOCOL_PREFIX,
    AuthRequest,
    ClientFrame,
    CloseCode,
    ErrorCode,
    PingRequest,
    PongReply,
    PresenceRequest,
    PubRequest,
    SubRequest,
    UnsubRequest,
)
from hub.router import Router
from hub.schema import InboundJsonSchema, OutboundJsonSchema, returned_models

ASYNCAPI_VERSION = "3.0.0"
SOCKET = "socket"  # the channel of the frames that name no hub channel
ROOM_PATTERN = ROOM_RE.pattern

ERROR_CODES: dict[str, str] = {
    ErrorCode.BAD_REQUEST: "The frame is not JSON, not an object, nests more than 64 deep, has no op string, or a "
    "member is missing, unknown, of the wrong type or out of bounds (details say which); a binary frame; a "
    "presence request on a channel without presence.",
    ErrorCode.UNKNOWN_OP: "The op is not one the hub knows.",
    ErrorCode.INVALID: "The pub data failed the plugin's model for its type (details carry the field errors), or a "
    "plugin found it unacceptable.",
    ErrorCode.BAD_CHANNEL: "The channel name breaks the naming rules: '<namespace>:<room>'.",
    ErrorCode.UNKNOWN_CHANNEL: "No enabled plugin serves the channel's namespace.",
    ErrorCode.UNKNOWN_TYPE: "The channel has no handler for this message type.",
    ErrorCode.UNAUTHORIZED: "The connection has no identity yet: send auth first.",
    ErrorCode.FORBIDDEN: "A policy or an access rule refused the request.",
    ErrorCode.RATE_LIMITED: "Too many frames, or too many publishes of this type: slow down. Each one is a strike "
    "toward a close with 4008.",
    ErrorCode.TOO_MANY_CHANNELS: "A sub beyond the connection's channel limit (hello limits.max_channels).",
    ErrorCode.ALREADY_SUBSCRIBED: "A sub of a channel this connection already follows.",
    ErrorCode.NOT_SUBSCRIBED: "An unsub of a channel this connection does not follow.",
    ErrorCode.NOT_FOUND: "Not sent by the core; for plugins (what the request names does not exist).",
    ErrorCode.CONFLICT: "Not sent by the core; for plugins (the state does not allow this request now).",
    ErrorCode.UNAVAILABLE: "A backend (broker or store) failed; the socket stays open. Retry shortly.",
    ErrorCode.INTERNAL: "A bug on the server's side; it has been logged.",
}

CLOSE_CODES: dict[int, tuple[str, str]] = {
    CloseCode.NORMAL: ("NORMAL", "Not sent by the core; available to plugins."),
    CloseCode.GOING_AWAY: (
        "GOING_AWAY",
        "The node is stopping: every frame it had read was answered first. Reconnect (to another node) with backoff "
        "and resubscribe with since.",
    ),
    CloseCode.FRAME_TOO_LARGE: ("FRAME_TOO_LARGE", "A frame exceeded max_frame_bytes (sent by the WebSocket layer)."),
    CloseCode.INTERNAL_ERROR: ("INTERNAL_ERROR", "Not sent by the core; available to plugins."),
    1012: ("SERVICE_RESTART", "Not sent by the hub; a proxy in front of it may send it. Treat it like 1001."),
    CloseCode.AUTH_FAILED: ("AUTH_FAILED", "The token is missing, forged, expired or otherwise invalid."),
    CloseCode.AUTH_TIMEOUT: ("AUTH_TIMEOUT", "Anonymous mode is off and no auth succeeded within auth_timeout."),
    CloseCode.TOKEN_EXPIRED: ("TOKEN_EXPIRED", "The token expired and no fresh one came in an auth frame."),
    CloseCode.RATE_ABUSE: ("RATE_ABUSE", "The client kept sending after rate_limited errors."),
    CloseCode.SLOW_CONSUMER: ("SLOW_CONSUMER", "The send queue overflowed: the client does not read fast enough."),
    CloseCode.HEARTBEAT_TIMEOUT: ("HEARTBEAT_TIMEOUT", "Nothing received from the client within heartbeat_timeout."),
    CloseCode.DISCONNECTED: ("DISCONNECTED", "Closed through the server API; reconnecting is allowed."),
}
PLUGIN_CLOSE_CODES = (4500, 4999)

_PLUGIN_ERROR_CODE = r"^[a-z][a-z0-9_]{1,31}$"
_KNOWN_OPS = {"auth", "sub", "unsub", "pub", "presence", "ping", "pong"}


def _ref(*path: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(path)}


def _schema(name: str) -> dict[str, str]:
    return _ref("components", "schemas", name)


class _Document:
    """The document under construction: components first, then the channels and operations that refer to them."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}
        self.messages: dict[str, Any] = {}
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}

    # ---- schemas ----------------------------------------------------------------------------------------------

    def models(
        self,
        models: Iterable[type[BaseModel]],
        *,
        prefix: str,
        mode: JsonSchemaMode,
        generator: type[GenerateJsonSchema],
    ) -> dict[type[BaseModel], dict[str, Any]]:
        """Each model's schema as a reference into ``components/schemas``, its definitions added there under
        ``prefix`` (one pydantic run for all of them, so names that clash are told apart)."""
        unique = list(dict.fromkeys(models))
        if not unique:
            return {}
        mapping, definitions = models_json_schema(
            [(model, mode) for model in unique],
            ref_template=f"#/components/schemas/{prefix}{{model}}",
            schema_generator=generator,
        )
        for name, schema in definitions.get("$defs", {}).items():
            self.schemas[prefix + name] = _asyncapi_schema(schema)
        found: dict[type[BaseModel], dict[str, Any]] = {}
        for (model, _mode), schema in mapping.items():
            if "$ref" not in schema:  # pydantic inlines nothing today; kept whole if it ever does
                name = prefix + model.__name__
                self.schemas[name] = _asyncapi_schema(schema)
                schema = _schema(name)
            found[typing.cast(type[BaseModel], model)] = schema
        return found

    def schema(self, name: str, schema: dict[str, Any]) -> dict[str, str]:
        self.schemas[name] = schema
        return _schema(name)

    # ---- messages, channels, operations -------------------------------------------------------------------------

    def message(self, name: str, title: str, summary: str, payload: dict[str, Any], **extra: Any) -> dict[str, str]:
        self.messages[name] = {
            "name": name,
            "title": title,
            "summary": summary,
            "contentType": "application/json",
            "payload": payload,
            **extra,
        }
        return _ref("components", "messages", name)

    def operation(
        self,
        operation_id: str,
        action: str,
        channel: str,
        messages: list[str],
        summary: str,
        replies: list[str] | None = None,
    ) -> None:
        operation: dict[str, Any] = {
            "action": action,
            "channel": _ref("channels", channel),
            "summary": summary,
            "messages": [_ref("channels", channel, "messages", key) for key in messages],
        }
        if replies:
            operation["reply"] = {
                "channel": _ref("channels", channel),
                "messages": [_ref("channels", channel, "messages", key) for key in replies],
            }
        self.operations[operation_id] = operation


def _asyncapi_schema(schema: Any) -> Any:
    """pydantic's JSON Schema as an AsyncAPI Schema Object: a discriminator is a property name there, not an
    OpenAPI object (pydantic writes ``{"propertyName": ..., "mapping": ...}``)."""
    if isinstance(schema, dict):
        converted = {key: _asyncapi_schema(value) for key, value in schema.items()}
        discriminator = converted.get("discriminator")
        if isinstance(discriminator, dict):
            converted["discriminator"] = discriminator["propertyName"]
        return converted
    if isinstance(schema, list):
        return [_asyncapi_schema(item) for item in schema]
    return schema


def _frame(op: str, properties: dict[str, Any], required: Iterable[str] = (), description: str = "") -> dict[str, Any]:
    """A server frame's schema: ``op`` and the members given."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"op": {"const": op}, **properties},
        "required": ["op", *required],
    }
    if description:
        schema["description"] = description
    return schema


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


def asyncapi_document(router: Router, *, host: str = "localhost:8000", secure: bool = False) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of a hub serving ``router``'s channel families, reached at ``host``."""
    doc = _Document()
    frames = doc.models(
        [typing.cast(type[BaseModel], frame) for frame in typing.get_args(ClientFrame)],
        prefix="hub.",
        mode="validation",
        generator=InboundJsonSchema,
    )
    _core_schemas(doc)
    _socket_channel(doc, frames)
    _other_ops(doc, frames)
    for namespace, channel in sorted(router.channels.items()):
        _family_channel(doc, namespace, router.owner(namespace), channel, frames)
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Hub wire protocol",
            "version": str(PROTOCOL_VERSION),
            "description": _DESCRIPTION,
        },
        "defaultContentType": "application/json",
        "servers": asyncapi_servers(host, secure=secure),
        "channels": doc.channels,
        "operations": doc.operations,
        "components": {"schemas": doc.schemas, "messages": doc.messages, "securitySchemes": _SECURITY},
    }


_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")


def server_host(host_header: str | None, fallback: str) -> str:
    """The host clients reach the hub at: a request's ``Host`` header when it is a plain ``name[:port]``, else
    ``fallback`` (the bound address)."""
    if host_header is not None and _HOST.fullmatch(host_header):
        return host_header
    return fallback


def asyncapi_servers(host: str, *, secure: bool = False) -> dict[str, Any]:
    """The document's ``servers``: the hub's socket at ``host`` (``name:port``), ``wss`` behind TLS."""
    return {
        "hub": {
            "host": host,
            "protocol": "wss" if secure else "ws",
            "pathname": "/ws",
            "title": "The hub's socket",
            "description": f"Offer the subprotocol `{SUBPROTOCOL}`. Frames are WebSocket text frames, one JSON "
            "object each. Give a token in the handshake (the subprotocol "
            f"`{TOKEN_SUBPROTOCOL_PREFIX}<jwt>` or `?token=<jwt>`) or later in an `auth` frame; without one "
            "the connection is a guest, or, with anonymous mode off, has no identity until `auth`.",
            "security": [_ref("components", "securitySchemes", name) for name in _SECURITY],
        }
    }


_DESCRIPTION = (
    "Everything that travels over a hub WebSocket, from the hub's side: it *receives* the frames clients send and "
    "*sends* the rest (a client does the opposite). Every frame is a JSON object with an `op`. Requests may carry "
    "an `id` (an integer 0..2^53 or a string of at most 64 characters), echoed by their one reply: `ok`, `err` "
    "(the socket stays open; `code` is an `ErrorCode` or a plugin's own) or `pong`. A hub channel is "
    "`<namespace>:<room>`; every channel family below is one plugin's, and all of them travel over the one "
    "socket (the `ch` member of each frame names the channel). Close codes: the `CloseCode` schema and "
    "the socket channel's `x-close-codes`."
)

_SECURITY: dict[str, Any] = {
    "tokenSubprotocol": {
        "type": "httpApiKey",
        "in": "header",
        "name": "Sec-WebSocket-Protocol",
        "description": f"A JWT as the subprotocol `{TOKEN_SUBPROTOCOL_PREFIX}<jwt>`, offered next to "
        f"`{SUBPROTOCOL}` (never echoed). Optional while anonymous mode is on; an `auth` frame may give it "
        "instead.",
    },
    "tokenQuery": {
        "type": "httpApiKey",
        "in": "query",
        "name": "token",
        "description": "A JWT as `?token=<jwt>`, used when no token subprotocol was offered.",
    },
}


def _core_schemas(doc: _Document) -> None:
    doc.schema(
        "ErrorCode",
        {
            "type": "string",
            "title": "ErrorCode",
            "description": "The codes of err frames sent by the core (hub.protocol.ErrorCode).",
            "oneOf": [{"const": str(code), "description": ERROR_CODES[code]} for code in ErrorCode],
        },
    )
    doc.schema(
        "PluginErrorCode",
        {"type": "string", "pattern": _PLUGIN_ERROR_CODE, "description": "A plugin's own lower_snake_case code."},
    )
    doc.schema(
        "CloseCode",
        {
            "type": "integer",
            "title": "CloseCode",
            "description": "WebSocket close codes the hub uses (hub.protocol.CloseCode). The close reason is an "
            "English sentence of at most 123 bytes. HTTP 403 before the upgrade: the Origin was refused.",
            "oneOf": [
                *({"const": code, "title": name, "description": text} for code, (name, text) in CLOSE_CODES.items()),
                {
                    "minimum": PLUGIN_CLOSE_CODES[0],
                    "maximum": PLUGIN_CLOSE_CODES[1],
                    "title": "plugin",
                    "description": "A plugin's own codes (a handler raised hub.Disconnect); see the plugin's docs.",
                },
            ],
        },
    )
    doc.schema(
        "RequestId",
        {
            "description": "Echoed by the reply; absent when the request had none.",
            "anyOf": [{"type": "integer", "minimum": 0, "maximum": 2**53}, {"type": "string", "maxLength": 64}],
        },
    )
    doc.schema(
        "User",
        {
            "type": "object",
            "properties": {"user": {"type": "string"}, "name": {"type": "string"}, "anonymous": {"type": "boolean"}},
            "required": ["user", "name", "anonymous"],
        },
    )
    doc.schema(
        "PresenceMember",
        {
            "type": "object",
            "description": "One connection in a channel's presence.",
            "properties": {"client": {"type": "string"}, "user": {"type": "string"}, "name": {"type": "string"}},
            "required": ["client", "user", "name"],
        },
    )
    doc.schema(
        "err",
        _frame(
            "err",
            {
                "id": _schema("RequestId"),
                "code": {"anyOf": [_schema("ErrorCode"), _schema("PluginErrorCode")]},
                "msg": {"type": "string", "description": "An English sentence for people, not for matching."},
                "details": {
                    "type": "array",
                    "description": "For bad_request and invalid: pydantic's errors, {loc, msg, type} each.",
                    "items": {
                        "type": "object",
                        "properties": {"loc": {"type": "array"}, "msg": {"type": "string"}, "type": {"type": "string"}},
                    },
                },
            },
            ["code", "msg"],
            "A request failed (or a frame could not be read: then without id); the socket stays open.",
        ),
    )
    doc.message("err", "Error", "A request failed; the socket stays open.", _schema("err"))
    doc.schema(
        "ok",
        _frame("ok", {"id": _schema("RequestId"), "data": {}}, description="A request succeeded."),
    )


def _socket_channel(doc: _Document, frames: dict[type[BaseModel], dict[str, Any]]) -> None:
    hello = _frame(
        "hello",
        {
            "data": {
                "type": "object",
                "properties": {
                    "protocol": {"const": PROTOCOL_VERSION},
                    "client": {"type": "string", "description": "This connection's id (in presence entries)."},
                    "user": {"anyOf": [_schema("User"), {"type": "null"}]},
                    "heartbeat": {
                        "type": "object",
                        "properties": {"interval": {"type": "number"}, "timeout": {"type": "number"}},
                    },
                    "limits": {
                        "type": "object",
                        "properties": {
                            name: {"type": "integer"}
                            for name in ("max_frame_bytes", "max_channels", "max_channel_length", "presence_list")
                        },
                    },
                    "plugins": {"type": "array", "items": {"type": "string"}},
                    "namespaces": {"type": "array", "items": {"type": "string"}},
                    "resume": {"type": "string", "description": "Guests only: a token that brings them back."},
                },
                "required": ["protocol", "client", "user", "heartbeat", "limits", "plugins", "namespaces"],
            }
        },
        ["data"],
    )
    messages = {
        "hello": doc.message("hello", "Hello", "Sent once, first, after the upgrade.", doc.schema("hello", hello)),
        "auth": doc.message(
            "auth",
            "Authenticate",
            "Give (or refresh) the connection's token. A bad token closes the socket with 4001.",
            frames[AuthRequest],
        ),
        "authenticated": doc.message(
            "authenticated",
            "Authenticated",
            "The reply to auth: the connection's identity now.",
            doc.schema(
                "authenticated",
                _frame("ok", {"id": _schema("RequestId"), "data": {"properties": {"user": _schema("User")}}}),
            ),
        ),
        "ping": doc.message("ping", "Ping", "A client's ping; the reply is pong.", frames[PingRequest]),
        "pong": doc.message(
            "pong",
            "Pong",
            "The reply to a client's ping, with its id.",
            doc.schema("pong", _frame("pong", {"id": _schema("RequestId")})),
        ),
        "heartbeat": doc.message(
            "heartbeat",
            "Heartbeat",
            "The hub's ping, every heartbeat.interval seconds; answer with pong.",
            doc.schema("heartbeat", _frame("ping", {})),
        ),
        "heartbeatAnswer": doc.message(
            "heartbeatAnswer", "Heartbeat answer", "The answer to the hub's ping; no reply.", frames[PongReply]
        ),
        "err": _ref("components", "messages", "err"),
    }
    doc.channels[SOCKET] = {
        "address": None,
        "title": "The connection",
        "description": "Frames that name no hub channel. A connection closes with one of the CloseCode codes "
        "(x-close-codes).",
        "messages": messages,
        "bindings": {
            "ws": {
                "method": "GET",
                "query": {
                    "type": "object",
                    "properties": {"token": {"type": "string", "description": "A JWT, when no subprotocol has one."}},
                },
                "bindingVersion": "0.1.0",
            }
        },
        "x-close-codes": _schema("CloseCode"),
    }
    doc.operation("hello", "send", SOCKET, ["hello"], "Greet a new connection.")
    doc.operation("auth", "receive", SOCKET, ["auth"], "Authenticate.", ["authenticated", "err"])
    doc.operation("ping", "receive", SOCKET, ["ping"], "Answer a client's ping.", ["pong", "err"])
    doc.operation("heartbeat", "send", SOCKET, ["heartbeat"], "Ping the client.")
    doc.operation("heartbeatAnswer", "receive", SOCKET, ["heartbeatAnswer"], "The client answers the ping.")
    doc.operation("error", "send", SOCKET, ["err"], "A frame that could not be read, or any request that failed.")


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


def _other_ops(doc: _Document, frames: dict[type[BaseModel], dict[str, Any]]) -> None:
    """Client ops this module does not describe one by one (one added to hub.protocol later): each on the socket
    channel as its frame's schema, its reply a plain ``ok`` or ``err``."""
    messages = doc.channels[SOCKET]["messages"]
    for model, schema in frames.items():
        op_field = model.model_fields.get("op")
        ops = typing.get_args(op_field.annotation) if op_field is not None else ()
        if not ops or ops[0] in _KNOWN_OPS:
            continue
        op = str(ops[0])
        summary = (model.__doc__ or f"The {op} op.").strip().splitlines()[0]
        messages[op] = doc.message(op, op, summary, schema)
        messages.setdefault("ok", doc.message("ok", "OK", "A request succeeded.", _schema("ok")))
        doc.operation(op, "receive", SOCKET, [op], summary, ["ok", "err"])
