"""Wire protocol v1: the frames, their decoding with limits, their encoding, and the code tables. No I/O here."""

from __future__ import annotations

import re
from enum import IntEnum, StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, TypeAdapter, ValidationError

from hub.errors import HubError
from hub.types import JSON, StreamPosition

PROTOCOL_VERSION = 1
MAX_DEPTH = 64  # nesting of arrays/objects in a client frame; orjson reads 1024 levels but writes only 254
SUBPROTOCOL = "hub.v1"
TOKEN_SUBPROTOCOL_PREFIX = "bearer."


class ErrorCode(StrEnum):
    """Codes of ``err`` frames sent by the core. The socket stays open after every one of them."""

    BAD_REQUEST = "bad_request"  # not JSON, not an object, or a malformed envelope
    UNKNOWN_OP = "unknown_op"
    INVALID = "invalid"  # data failed the plugin's model; details carry pydantic's field errors
    BAD_CHANNEL = "bad_channel"  # channel name breaks the naming rules
    UNKNOWN_CHANNEL = "unknown_channel"  # no enabled plugin owns this namespace
    UNKNOWN_TYPE = "unknown_type"  # the channel has no handler for this message type
    UNAUTHORIZED = "unauthorized"  # the connection has no identity yet (send auth first)
    FORBIDDEN = "forbidden"  # authorization refused this subscribe or publish
    RATE_LIMITED = "rate_limited"
    TOO_MANY_CHANNELS = "too_many_channels"
    ALREADY_SUBSCRIBED = "already_subscribed"
    NOT_SUBSCRIBED = "not_subscribed"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    UNAVAILABLE = "unavailable"  # a backend (broker, store) is down; retry later
    INTERNAL = "internal"  # a bug on our side; logged with the request


class CloseCode(IntEnum):
    """Close codes the server uses. 4000-4499 are the core's, 4500-4999 are left to plugins. Every reason sent
    with one goes through :func:`close_reason` (at most 123 bytes)."""

    NORMAL = 1000
    GOING_AWAY = 1001  # the server is shutting down; reconnect elsewhere
    FRAME_TOO_LARGE = 1009  # a frame exceeded max_frame_bytes (sent by the WebSocket layer)
    INTERNAL_ERROR = 1011
    AUTH_FAILED = 4001  # token missing, forged, expired or otherwise invalid
    AUTH_TIMEOUT = 4002  # no successful auth within auth_timeout
    TOKEN_EXPIRED = 4003  # the token expired during the session and was not refreshed
    RATE_ABUSE = 4008  # kept sending past the rate limit after rate_limited errors
    SLOW_CONSUMER = 4009  # the send queue overflowed: the client does not read fast enough
    HEARTBEAT_TIMEOUT = 4010  # nothing received from the client within heartbeat_timeout


MAX_CLOSE_REASON_BYTES = 123  # a close frame's payload is at most 125 bytes: the 2-byte code, then the reason
_ELLIPSIS = "…"


def close_reason(text: str) -> str:
    """``text`` as a close reason: at most 123 bytes of UTF-8, cut on a character boundary with an ellipsis.

    A longer reason makes the WebSocket layer raise instead of closing (the client sees 1006), so every close
    the hub or a plugin sends goes through here. Characters UTF-8 cannot encode (lone surrogates) become "?".
    """
    if len(text) <= MAX_CLOSE_REASON_BYTES and text.isascii():
        return text
    encoded = text.encode("utf-8", "replace")
    if len(encoded) <= MAX_CLOSE_REASON_BYTES:
        return encoded.decode()
    room = MAX_CLOSE_REASON_BYTES - len(_ELLIPSIS.encode())
    return encoded[:room].decode("utf-8", "ignore") + _ELLIPSIS


# Channels are "<namespace>:<room>". Namespaces are a plugin's lower-case name; rooms are a safe ASCII subset.
NAMESPACE_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")  # always used with fullmatch
ROOM_RE = re.compile(r"[A-Za-z0-9_.@=+\-]+")
TYPE_RE = re.compile(r"[a-z][a-z0-9_]{0,31}\.[a-z][a-z0-9_]{0,31}")


def split_channel(channel: str, max_length: int) -> tuple[str, str]:
    """Check a channel name against the naming rules and return (namespace, room)."""
    if len(channel) > max_length:
        raise HubError(ErrorCode.BAD_CHANNEL, f"Channel names are at most {max_length} characters.")
    namespace, sep, room = channel.partition(":")
    if not sep or not NAMESPACE_RE.fullmatch(namespace) or not ROOM_RE.fullmatch(room):
        raise HubError(
            ErrorCode.BAD_CHANNEL,
            "Channel names look like 'plugin:room': a lower-case plugin name, a colon, and a room of "
            "letters, digits and _ . @ = + -.",
        )
    return namespace, room


# ---- client -> server -------------------------------------------------------------------------------------

RequestId = Annotated[StrictInt, Field(ge=0, le=2**53)] | Annotated[StrictStr, Field(max_length=64)]


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Since(_Frame):
    epoch: str = Field(max_length=64)
    offset: int = Field(ge=0, le=2**53)

    def position(self) -> StreamPosition:
        return StreamPosition(self.epoch, self.offset)


class AuthRequest(_Frame):
    op: Literal["auth"]
    id: RequestId | None = None
    token: str = Field(max_length=8192)


class SubRequest(_Frame):
    op: Literal["sub"]
    id: RequestId | None = None
    ch: str = Field(max_length=1024)
    since: Since | None = None


class UnsubRequest(_Frame):
    op: Literal["unsub"]
    id: RequestId | None = None
    ch: str = Field(max_length=1024)


class PubRequest(_Frame):
    op: Literal["pub"]
    id: RequestId | None = None
    ch: str = Field(max_length=1024)
    type: str = Field(max_length=65)
    data: JSON = None
    mid: str | None = Field(default=None, min_length=1, max_length=64)


class PresenceRequest(_Frame):
    op: Literal["presence"]
    id: RequestId | None = None
    ch: str = Field(max_length=1024)
    cursor: str | None = Field(default=None, max_length=64)  # the reply's cursor: the next page
    limit: int | None = Field(default=None, ge=1, le=10_000)  # members per page (at most presence_list_limit)


class PingRequest(_Frame):
    op: Literal["ping"]
    id: RequestId | None = None


class PongReply(_Frame):
    op: Literal["pong"]
    id: RequestId | None = None


ClientFrame = AuthRequest | SubRequest | UnsubRequest | PubRequest | PresenceRequest | PingRequest | PongReply
_CLIENT_FRAME: TypeAdapter[ClientFrame] = TypeAdapter(Annotated[ClientFrame, Field(discriminator="op")])
CLIENT_OPS = frozenset({"auth", "sub", "unsub", "pub", "presence", "ping", "pong"})


class FrameError(HubError):
    """A frame that could not be decoded; carries the request id when one could be read."""

    def __init__(self, code: str, msg: str, request_id: JSON = None, details: list[JSON] | None = None) -> None:
        super().__init__(code, msg, details)
        self.request_id = request_id


def decode_frame(text: str | bytes) -> ClientFrame:
    """Decode one client frame. Raises FrameError with a documented code; never anything else.

    orjson rejects NaN/Infinity and nesting deeper than its recursion limit with a JSONDecodeError, which is
    the strict behaviour we want (``json.loads`` accepts NaN and raises RecursionError instead).
    """
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise FrameError(ErrorCode.BAD_REQUEST, f"Frame is not valid JSON: {exc}.") from None
    if not isinstance(raw, dict):
        raise FrameError(ErrorCode.BAD_REQUEST, "A frame must be a JSON object.")
    if not _within_depth(raw, MAX_DEPTH):
        raise FrameError(ErrorCode.BAD_REQUEST, f"Frames may nest arrays and objects at most {MAX_DEPTH} deep.")
    request_id = raw.get("id")
    if not isinstance(request_id, int | str) or isinstance(request_id, bool):
        request_id = None
    op = raw.get("op")
    if not isinstance(op, str):
        raise FrameError(ErrorCode.BAD_REQUEST, "A frame needs an 'op' string.", request_id)
    if op not in CLIENT_OPS:
        raise FrameError(
            ErrorCode.UNKNOWN_OP,
            f"Unknown op {op[:32]!r}; expected one of {', '.join(sorted(CLIENT_OPS))}.",
            request_id,
        )
    try:
        return _CLIENT_FRAME.validate_python(raw)
    except ValidationError as exc:
        details = validation_details(exc)
        for detail in details:  # drop the discriminator ("pub") that pydantic puts first in every location
            detail["loc"] = detail["loc"][1:]
        raise FrameError(ErrorCode.BAD_REQUEST, f"Malformed {op!r} frame.", request_id, details) from None


def _within_depth(value: JSON, limit: int) -> bool:
    """True when ``value`` nests at most ``limit`` containers deep; iterative, so it cannot overflow."""
    stack: list[tuple[JSON, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return True


def validation_details(exc: ValidationError) -> list[JSON]:
    """pydantic's field errors in a JSON-safe form (no URLs, no echo of the input, no exception objects)."""
    details: list[JSON] = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        details.append({"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]})
    return details


# ---- server -> client -------------------------------------------------------------------------------------

PING_FRAME = '{"op":"ping"}'


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def encode_ok(request_id: JSON, data: JSON = None) -> str:
    frame: dict[str, JSON] = {"op": "ok"}
    if request_id is not None:
        frame["id"] = request_id
    if data is not None:
        frame["data"] = data
    return _dumps(frame)


def encode_err(request_id: JSON, code: str, msg: str, details: list[JSON] | None = None) -> str:
    frame: dict[str, JSON] = {"op": "err"}
    if request_id is not None:
        frame["id"] = request_id
    frame["code"] = code
    frame["msg"] = msg
    if details:
        frame["details"] = details
    return _dumps(frame)


def encode_unsub(channel: str, code: str, msg: str) -> str:
    """The server ended the client's subscription of ``channel`` (access withdrawn); nothing of it follows."""
    return _dumps({"op": "unsub", "ch": channel, "code": code, "msg": msg})


def encode_pong(request_id: JSON) -> str:
    return _dumps({"op": "pong", "id": request_id}) if request_id is not None else '{"op":"pong"}'


def encode_hello(data: dict[str, JSON]) -> str:
    return _dumps({"op": "hello", "data": data})


def encode_event(channel: str, event_type: str, data: str, offset: int | None) -> str:
    """Build an ``ev`` frame around already-encoded JSON data; called once per publish, never per subscriber."""
    head = _dumps({"op": "ev", "ch": channel, "type": event_type})[:-1]
    tail = f',"offset":{offset}}}' if offset is not None else "}"
    return f'{head},"data":{data}{tail}'


def event_fragment(frame: str) -> orjson.Fragment:
    """Embed an already-encoded event frame inside another frame without decoding it."""
    return orjson.Fragment(frame)
