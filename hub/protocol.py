"""Wire protocol v1: the frames, their decoding with limits, their encoding, and the code tables. No I/O here."""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import IntEnum, StrEnum
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, TypeAdapter, ValidationError

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
    DISCONNECTED = 4011  # closed through the server API (POST /api/v1/disconnect), by default; reconnecting is allowed


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
    meta: JSON = None  # presence metadata (channels whose plugin declares a presence_meta model)


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
    count_only: StrictBool = False  # only the member count, no members


class PresenceSetRequest(_Frame):
    """Set (or, with null, clear) this connection's presence metadata on a channel it follows."""

    op: Literal["presence_set"]
    id: RequestId | None = None
    ch: str = Field(max_length=1024)
    meta: JSON = None


class PingRequest(_Frame):
    op: Literal["ping"]
    id: RequestId | None = None


class PongReply(_Frame):
    op: Literal["pong"]
    id: RequestId | None = None


ClientFrame = (
    AuthRequest
    | SubRequest
    | UnsubRequest
    | PubRequest
    | PresenceRequest
    | PresenceSetRequest
    | PingRequest
    | PongReply
)
_CLIENT_FRAME: TypeAdapter[ClientFrame] = TypeAdapter(Annotated[ClientFrame, Field(discriminator="op")])
CLIENT_OPS = frozenset({"auth", "sub", "unsub", "pub", "presence", "presence_set", "ping", "pong"})


class FrameError(HubError):
    """A frame that could not be decoded; carries the request id when one could be read."""

    def __init__(self, code: str, msg: str, request_id: JSON = None, details: list[JSON] | None = None) -> None:
        super().__init__(code, msg, details)
        self.request_id = request_id


def decode_frame(text: str | bytes) -> ClientFrame:
    """Decode one client frame. Raises FrameError with a documented code; never anything else.

    orjson rejects NaN/Infinity and nesting deeper than its recursion limit with a JSONDecodeError, which is
    the strict behaviour we want (``json.loads`` accepts NaN and raises RecursionError instead).

    A well-formed ``pub``, ``ping`` or ``pong`` (nearly every frame a busy hub reads) is checked member by
    member here and built without pydantic's frame union, which would also walk all of ``data`` as a JSON
    value (265 µs for a 200-point stroke); the payload is validated once, against its message type's model,
    by the router. Any other frame, or one of these that breaks a rule, goes through the union, so its errors
    and their details are the union's.
    """
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise FrameError(ErrorCode.BAD_REQUEST, f"Frame is not valid JSON: {exc}.") from None
    if type(raw) is not dict:
        raise FrameError(ErrorCode.BAD_REQUEST, "A frame must be a JSON object.")
    if not _nests_within(text, raw, MAX_DEPTH):
        raise FrameError(ErrorCode.BAD_REQUEST, f"Frames may nest arrays and objects at most {MAX_DEPTH} deep.")
    op = raw.get("op")
    fast = _FAST_FRAMES.get(op) if type(op) is str else None
    if fast is not None:
        frame = fast(raw)
        if frame is not None:
            return frame
    request_id = raw.get("id")
    if not isinstance(request_id, int | str) or isinstance(request_id, bool):
        request_id = None
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


_MAX_REQUEST_ID = 2**53
FrameT = TypeVar("FrameT", bound=_Frame)
_PUB_MEMBERS = frozenset({"op", "id", "ch", "type", "data", "mid"})
_PING_MEMBERS = frozenset({"op", "id"})


def _valid_id(value: object) -> bool:
    """RequestId's rules: absent/null, an integer 0..2^53 (not a boolean), or a string of at most 64 characters."""
    kind = type(value)
    if kind is int:
        return 0 <= value <= _MAX_REQUEST_ID  # type: ignore[operator]
    if kind is str:
        return len(value) <= 64  # type: ignore[arg-type]
    return value is None


def _built(cls: type[FrameT], values: dict[str, Any], members: set[str]) -> FrameT:
    """A frame model from values already checked against its fields, without validating them again."""
    frame = cls.__new__(cls)
    object.__setattr__(frame, "__dict__", values)
    object.__setattr__(frame, "__pydantic_fields_set__", members)
    object.__setattr__(frame, "__pydantic_extra__", None)
    object.__setattr__(frame, "__pydantic_private__", None)
    return frame


def _fast_pub(raw: dict[str, Any]) -> PubRequest | None:
    """A ``pub`` whose members all keep PubRequest's rules, as a PubRequest; None: let the union say what is wrong."""
    if not raw.keys() <= _PUB_MEMBERS:
        return None
    request_id, ch, message_type, mid = raw.get("id"), raw.get("ch"), raw.get("type"), raw.get("mid")
    if type(ch) is not str or len(ch) > 1024 or type(message_type) is not str or len(message_type) > 65:
        return None
    if not _valid_id(request_id) or (mid is not None and (type(mid) is not str or not 1 <= len(mid) <= 64)):
        return None
    values = {"op": "pub", "id": request_id, "ch": ch, "type": message_type, "data": raw.get("data"), "mid": mid}
    return _built(PubRequest, values, set(raw))


def _fast_ping(raw: dict[str, Any]) -> PingRequest | PongReply | None:
    if not raw.keys() <= _PING_MEMBERS or not _valid_id(request_id := raw.get("id")):
        return None
    if raw["op"] == "ping":
        return _built(PingRequest, {"op": "ping", "id": request_id}, set(raw))
    return _built(PongReply, {"op": "pong", "id": request_id}, set(raw))


FastDecoder = Callable[[dict[str, Any]], ClientFrame | None]
_FAST_FRAMES: dict[str, FastDecoder] = {"pub": _fast_pub, "ping": _fast_ping, "pong": _fast_ping}

# Bytes that are not brackets: deleted, so that what is left of a frame (its strings removed first) is its
# nesting alone, e.g. b"{{[[][]]}}".
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _nests_within(text: str | bytes, value: JSON, limit: int) -> bool:
    """True when the frame ``text`` (already parsed into ``value``) nests at most ``limit`` containers deep.

    A frame with at most ``limit`` opening brackets in all cannot nest deeper (most frames: two counts). Else
    the nesting is read from the text at C speed: the strings cut out (between unescaped quotes), every other
    byte but brackets deleted, then innermost ``[]`` / ``{}`` pairs removed, once per level, until none is left.
    A text with an escaped quote in it is walked as parsed instead.
    """
    if isinstance(text, str):
        if text.count("[") + text.count("{") <= limit:
            return True
        data = text.encode()  # copied only for a frame that might nest too deep
    else:
        if text.count(b"[") + text.count(b"{") <= limit:
            return True
        data = text
    if b'\\"' in data:
        return _within_depth(value, limit)
    brackets = b"".join(data.split(b'"')[::2]).translate(None, _NOT_BRACKETS)
    for _level in range(limit):
        # Marked first, then removed: a pair exposed by removing the one inside it waits for the next level.
        brackets = brackets.replace(b"[]", b".").replace(b"{}", b".").replace(b".", b"")
        if not brackets:
            return True
    return False


def _within_depth(value: JSON, limit: int) -> bool:
    """True when ``value`` nests at most ``limit`` containers deep; level by level, so it cannot overflow."""
    level: list[Any] = [value]
    containers = (dict, list)
    for _depth in range(limit):
        deeper: list[Any] = []
        for item in level:
            deeper += [child for child in (item.values() if type(item) is dict else item) if type(child) in containers]
        if not deeper:
            return True
        level = deeper
    return False


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


def encode_ok(request_id: JSON, data: JSON | orjson.Fragment = None) -> str:
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
