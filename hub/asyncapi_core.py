"""The parts of the AsyncAPI document (hub/asyncapi.py) that every hub has: the error and close codes, the document
under construction (``_Document``), the core schemas (``err``, ``ok``, ``RequestId``...), the ``socket`` channel and
the client ops not described one by one."""

from __future__ import annotations

import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema

from hub.protocol import (
    PROTOCOL_VERSION,
    ROOM_RE,
    AuthRequest,
    CloseCode,
    ErrorCode,
    PingRequest,
    PongReply,
)

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
