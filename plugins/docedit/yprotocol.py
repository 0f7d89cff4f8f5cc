"""The Yjs wire formats, with no I/O: lib0 varints, y-protocols sync and awareness messages, the y-websocket
framing, and strict base64. Every decoder rejects malformed input with :class:`ProtocolError`."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from enum import IntEnum

import orjson

EMPTY_UPDATE = b"\x00\x00"  # an update with no structs and an empty delete set


class ProtocolError(ValueError):
    """A message does not follow the Yjs wire format."""


class SyncKind(IntEnum):
    """y-protocols/sync message types."""

    STEP1 = 0  # a state vector: "send me what I lack"
    STEP2 = 1  # the answer to step 1: an update
    UPDATE = 2  # an update


class FrameKind(IntEnum):
    """y-websocket message types (the first varuint of every binary frame)."""

    SYNC = 0
    AWARENESS = 1
    AUTH = 2
    QUERY_AWARENESS = 3


PERMISSION_DENIED = 0  # y-protocols/auth: the only auth message


# ---- lib0 encoding --------------------------------------------------------------------------------------------


def var_uint(number: int) -> bytes:
    if number < 0:
        raise ValueError("varuints are unsigned")
    out = bytearray()
    while number > 0x7F:
        out.append(0x80 | (number & 0x7F))
        number >>= 7
    out.append(number)
    return bytes(out)


def var_bytes(data: bytes) -> bytes:
    return var_uint(len(data)) + data


def var_string(text: str) -> bytes:
    return var_bytes(text.encode())


class Reader:
    """Reads lib0-encoded values from a buffer, bounds-checked."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    @property
    def done(self) -> bool:
        return self.pos >= len(self.data)

    def var_uint(self) -> int:
        number = 0
        shift = 0
        while True:
            if self.pos >= len(self.data):
                raise ProtocolError("the message ends inside a number")
            byte = self.data[self.pos]
            self.pos += 1
            number |= (byte & 0x7F) << shift
            if byte < 0x80:
                return number
            shift += 7
            if shift > 53:  # lib0 numbers are JavaScript safe integers
                raise ProtocolError("a number is longer than 53 bits")

    def var_bytes(self) -> bytes:
        length = self.var_uint()
        end = self.pos + length
        if end > len(self.data):
            raise ProtocolError("a byte array runs past the end of the message")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def var_string(self) -> str:
        try:
            return self.var_bytes().decode()
        except UnicodeDecodeError:
            raise ProtocolError("a string is not valid UTF-8") from None

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk


# ---- base64 -------------------------------------------------------------------------------------------------


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str) -> bytes:
    """Standard base64 with padding (RFC 4648 section 4), nothing else."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ProtocolError("not standard base64 with padding") from None


# ---- y-protocols/sync ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyncMessage:
    kind: SyncKind
    payload: bytes  # a state vector (STEP1) or an update (STEP2, UPDATE)

    def encode(self) -> bytes:
        return var_uint(self.kind) + var_bytes(self.payload)


def parse_sync(data: bytes) -> SyncMessage:
    """One SYNC sub-message, exactly: a type, then one varUint8Array, then nothing."""
    reader = Reader(data)
    return _read_sync(reader, strict=True)


def _read_sync(reader: Reader, *, strict: bool) -> SyncMessage:
    kind = reader.var_uint()
    if kind not in (SyncKind.STEP1, SyncKind.STEP2, SyncKind.UPDATE):
        raise ProtocolError(f"unknown sync message type {kind}")
    payload = reader.var_bytes()
    if strict and not reader.done:
        raise ProtocolError("bytes after the sync message")
    return SyncMessage(SyncKind(kind), payload)


def step1(state_vector: bytes) -> bytes:
    return SyncMessage(SyncKind.STEP1, state_vector).encode()


def step2(update: bytes) -> bytes:
    return SyncMessage(SyncKind.STEP2, update).encode()


def update_message(update: bytes) -> bytes:
    return SyncMessage(SyncKind.UPDATE, update).encode()


# ---- y-protocols/awareness ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AwarenessEntry:
    """One client's awareness state; ``state`` is its JSON text, ``None`` when the client went away."""

    client_id: int
    clock: int
    state: str | None


MAX_AWARENESS_ENTRIES = 256


def parse_awareness(data: bytes) -> list[AwarenessEntry]:
    """An awareness update: varuint count, then per entry varuint clientID, varuint clock, varstring JSON."""
    reader = Reader(data)
    count = reader.var_uint()
    if count > MAX_AWARENESS_ENTRIES:
        raise ProtocolError(f"an awareness update carries at most {MAX_AWARENESS_ENTRIES} states")
    entries: list[AwarenessEntry] = []
    for _ in range(count):
        client_id = reader.var_uint()
        clock = reader.var_uint()
        text = reader.var_string()
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise ProtocolError("an awareness state is not JSON") from None
        entries.append(AwarenessEntry(client_id, clock, None if value is None else text))
    if not reader.done:
        raise ProtocolError("bytes after the awareness update")
    return entries


def encode_awareness(entries: list[AwarenessEntry]) -> bytes:
    out = [var_uint(len(entries))]
    for entry in entries:
        out.append(var_uint(entry.client_id))
        out.append(var_uint(entry.clock))
        out.append(var_string("null" if entry.state is None else entry.state))
    return b"".join(out)


# ---- y-websocket framing ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    """One y-websocket binary frame, decoded: a sync sub-message, an awareness update, or a bare kind."""

    kind: int
    sync: SyncMessage | None = None
    awareness: bytes | None = None


def parse_frame(data: bytes) -> Frame:
    reader = Reader(data)
    kind = reader.var_uint()
    if kind == FrameKind.SYNC:
        return Frame(kind, sync=_read_sync(reader, strict=True))
    if kind == FrameKind.AWARENESS:
        update = reader.var_bytes()
        if not reader.done:
            raise ProtocolError("bytes after the awareness message")
        return Frame(kind, awareness=update)
    return Frame(kind)  # auth, query awareness, or a kind this server does not know (ignored, like y-websocket)


def sync_frame(sync_message: bytes) -> bytes:
    return var_uint(FrameKind.SYNC) + sync_message


def awareness_frame(update: bytes) -> bytes:
    return var_uint(FrameKind.AWARENESS) + var_bytes(update)


def permission_denied_frame(reason: str) -> bytes:
    return var_uint(FrameKind.AUTH) + var_uint(PERMISSION_DENIED) + var_string(reason)
