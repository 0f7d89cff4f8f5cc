"""The wire protocols ``hub bench`` speaks: the hub's ``hub.v1``, a plain JSON one, and Socket.IO over Engine.IO v4.

An adapter only builds frames and classifies the frames that are not deliveries; deliveries are recognised by
the message text's marker (see ``client.MARKER``) before any adapter sees them, so nothing is parsed twice.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import orjson


class Kind(enum.Enum):
    """What a frame that is not a delivery means to the client."""

    SESSION = "session"  # the session is established (hub: hello; socketio: the 40 reply)
    JOINED = "joined"  # the reply to a join
    ACK = "ack"  # the reply to a send
    ERROR = "error"  # an error reply (``code`` says which)
    PING = "ping"  # a server heartbeat (``reply`` holds the answer)
    OTHER = "other"  # anything else (presence events, ...)


@dataclass(frozen=True)
class Frame:
    """A classified frame: its kind, the error code for ERROR, and a frame to send back (pongs, the 40)."""

    kind: Kind
    code: str = ""
    reply: str = ""


OTHER = Frame(Kind.OTHER)


class Adapter(Protocol):
    """One wire protocol. ``needs_session`` is false when the socket is usable as soon as it is open."""

    name: str
    subprotocols: tuple[str, ...]
    needs_session: bool
    room_prefix: str

    def url(self, base: str) -> str: ...

    def join(self, room: str, request_id: int) -> str: ...

    def send(self, room: str, text: str, request_id: int) -> str: ...

    def classify(self, data: bytes) -> Frame: ...


class HubAdapter:
    """docs/protocol.md: ``sub`` to join, ``pub`` of ``chat.send`` to send, ``chat.posted`` events, ping/pong."""

    name = "hub"
    subprotocols: tuple[str, ...] = ("hub.v1",)
    needs_session = True
    room_prefix = "chat:"

    def url(self, base: str) -> str:
        return base

    def join(self, room: str, request_id: int) -> str:
        return f'{{"op":"sub","ch":{json.dumps(room)},"id":{request_id}}}'

    def send(self, room: str, text: str, request_id: int) -> str:
        return (
            f'{{"op":"pub","ch":{json.dumps(room)},"type":"chat.send","id":{request_id},'
            f'"data":{{"text":{json.dumps(text)}}}}}'
        )

    def classify(self, data: bytes) -> Frame:
        if data == b'{"op":"ping"}':
            return Frame(Kind.PING, reply='{"op":"pong"}')
        if data.startswith(b'{"op":"ev"'):
            return OTHER
        frame = orjson.loads(data)
        op = frame.get("op") if isinstance(frame, dict) else None
        if op == "ok":
            # the sub reply carries a snapshot; the pub reply is an ok with the message
            return Frame(Kind.JOINED if frame.get("id") == 1 else Kind.ACK)
        if op == "err":
            return Frame(Kind.ERROR, code=str(frame.get("code")))
        if op == "hello":
            return Frame(Kind.SESSION)
        if op == "ping":
            return Frame(Kind.PING, reply='{"op":"pong"}')
        return OTHER


class PlainAdapter:
    """The peers' plain protocol: join/joined, send/ack, message broadcasts; no session, no heartbeat."""

    name = "plain"
    subprotocols: tuple[str, ...] = ()
    needs_session = False
    room_prefix = ""

    def url(self, base: str) -> str:
        return base

    def join(self, room: str, request_id: int) -> str:
        return f'{{"type":"join","room":{json.dumps(room)}}}'

    def send(self, room: str, text: str, request_id: int) -> str:
        return f'{{"type":"send","room":{json.dumps(room)},"text":{json.dumps(text)}}}'

    def classify(self, data: bytes) -> Frame:
        frame = orjson.loads(data)
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "ack":
            return Frame(Kind.ACK)
        if kind == "joined":
            return Frame(Kind.JOINED)
        if kind == "error":
            return Frame(Kind.ERROR, code=str(frame.get("code", frame.get("message", "error"))))
        return OTHER


class SocketIOAdapter:
    """Socket.IO over Engine.IO v4 on a raw WebSocket: ``0{..}`` open, ``40`` connect, ``2``/``3`` ping/pong,
    ``42[event,data]`` events and ``42<id>[..]`` / ``43<id>[..]`` acknowledged emits."""

    name = "socketio"
    subprotocols: tuple[str, ...] = ()
    needs_session = True
    room_prefix = ""

    def url(self, base: str) -> str:
        parts = urlsplit(base)
        path = parts.path if "socket.io" in parts.path else "/socket.io/"
        query = parts.query if "EIO=" in parts.query else "EIO=4&transport=websocket"
        return urlunsplit((parts.scheme, parts.netloc, path, query, ""))

    def join(self, room: str, request_id: int) -> str:
        return f'42{request_id}["join",{{"room":{json.dumps(room)}}}]'

    def send(self, room: str, text: str, request_id: int) -> str:
        return f'42{request_id}["send",{{"room":{json.dumps(room)},"text":{json.dumps(text)}}}]'

    def classify(self, data: bytes) -> Frame:
        if data == b"2":
            return Frame(Kind.PING, reply="3")
        if data.startswith(b"43"):
            return Frame(Kind.JOINED if data.startswith(b"431[") else Kind.ACK)
        if data.startswith(b"40"):
            return Frame(Kind.SESSION)
        if data.startswith(b"0{"):
            return Frame(Kind.OTHER, reply="40")  # the Engine.IO open: connect to the default namespace
        if data.startswith(b"44"):
            return Frame(Kind.ERROR, code=data[2:80].decode(errors="replace"))
        if data.startswith(b"41"):
            return Frame(Kind.ERROR, code="disconnected by the server")
        return OTHER


ADAPTERS: dict[str, Callable[[], Adapter]] = {
    "hub": HubAdapter,
    "plain": PlainAdapter,
    "socketio": SocketIOAdapter,
}


def adapter_for(name: str) -> Adapter:
    try:
        return ADAPTERS[name]()
    except KeyError:
        raise ValueError(f"unknown protocol {name!r}; choose from {', '.join(ADAPTERS)}") from None
