"""One load-generator socket (a subscriber, a publisher or an idle connection) and what its process measured.

Each socket is websockets' sans-I/O client protocol under a bare ``asyncio.Protocol``: frames are handled in
``data_received`` as they are parsed, without the task, queue and future per frame of the library's asyncio
client, because the generator shares the machine's cores with the server it measures. A delivery is found by
the marker in its text and parsed with one ``split``; only other frames are decoded as JSON.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import SynchronizedArray
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from hub.bench.adapters import Adapter, Kind

MARKER = b"bq "  # every message text starts with it: "bq <publisher> <sequence> <time_ns> <padding>"
PROGRESS_SLOTS = 4  # per worker in the shared progress array: deliveries, messages sent, publishers done, sockets open


class BenchError(Exception):
    """The run cannot go on (a socket could not connect or join, a worker failed, a phase timed out)."""


def room_name(index: int, prefix: str = "chat:") -> str:
    """``chat:bench-<index>`` on the hub (the chat plugin's namespace); peers get ``bench-<index>``, since
    Django Channels' group names allow no colon."""
    return f"{prefix}bench-{index}"


def message_text(publisher: int, seq: int, size: int) -> str:
    head = f"bq {publisher} {seq} {time.time_ns()} "
    return head + "x" * max(1, size - len(head))  # never empty: the time is always followed by a space


@dataclass(frozen=True)
class WorkerSpec:
    """One client process's share of the load. Subscriber k joins room k % rooms; publisher p sends its
    message i to room (p + i) % rooms."""

    index: int
    urls: tuple[str, ...]  # subscriber k and idle connection k use urls[k % len(urls)]; publishers urls[0]
    protocol: str
    rooms: int
    subscribers: list[int] = field(default_factory=list)  # global subscriber numbers
    publishers: list[int] = field(default_factory=list)  # global publisher numbers
    idle: int = 0
    size: int = 64
    rate: float = 0.0  # per publisher; 0 floods
    messages: int = 0  # per publisher; 0: until ``duration`` ends
    duration: float = 0.0
    timeout: float = 30.0
    connect_concurrency: int = 64


class WorkerState:
    """What one client process has measured so far, over all its sockets."""

    def __init__(self, spec: WorkerSpec, progress: SynchronizedArray[Any]) -> None:
        self.spec = spec
        self.progress = progress
        self.latencies: dict[int, array[float]] = {}  # ms, by the index of the URL the subscriber is on
        self.received = self.duplicates = self.order_violations = self.other_frames = self.pings = 0
        self.first_recv_ns = self.last_recv_ns = 0
        self.errors: dict[str, int] = {}
        self.closes: dict[str, int] = {}
        self.stopping = False
        self.sent = self.replies = self.publishers_done = self.connected = 0
        self.first_send_ns = self.last_send_ns = 0
        self.sent_by_publisher: dict[int, int] = {}

    def flush_progress(self) -> None:
        base = self.spec.index * PROGRESS_SLOTS
        self.progress[base] = self.received
        self.progress[base + 1] = self.sent
        self.progress[base + 2] = self.publishers_done
        self.progress[base + 3] = self.connected


class Client(asyncio.Protocol):
    """One socket: a subscriber (``room`` set), a publisher (``publisher`` set) or an idle connection."""

    def __init__(
        self, state: WorkerState, adapter: Adapter, url: str, url_index: int = 0, room: int = -1, publisher: int = -1
    ) -> None:
        self.state = state
        self.latencies = state.latencies.setdefault(url_index, array("d"))
        self.adapter = adapter
        self.room = room
        self.publisher = publisher
        self.ws = ClientProtocol(
            parse_uri(url), subprotocols=[Subprotocol(p) for p in adapter.subprotocols] or None, max_size=2**22
        )
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.ready: asyncio.Future[None] = loop.create_future()  # session up, and joined for a subscriber
        self.lost: asyncio.Future[None] = loop.create_future()
        self.finished: asyncio.Future[None] = loop.create_future()  # a publisher sent everything
        self.fragments: list[bytes] = []
        self.stage = "handshake"  # -> session -> joining -> live
        # subscriber bookkeeping, by publisher: which sequence numbers arrived, and the highest so far
        self.seen: dict[int, bytearray] = {}
        self.last_seq: dict[int, int] = {}
        self.unique = 0
        # publisher bookkeeping
        self.seq = 0
        self.outstanding = 0
        self.start = 0.0
        self.deadline = 0.0

    # ---- plumbing

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.ws.send_request(self.ws.connect())
        self._flush()

    def _flush(self) -> None:
        assert self.transport is not None
        for data in self.ws.data_to_send():
            if data:
                self.transport.write(data)
            elif self.transport.can_write_eof():
                self.transport.write_eof()

    def _send(self, text: str) -> None:
        self.ws.send_text(text.encode())
        self._flush()

    def _fail(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(BenchError(reason))
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, WsFrame):
                if event.opcode is Opcode.TEXT:
                    if event.fin:
                        self._text(bytes(event.data), now)
                    else:
                        self.fragments = [bytes(event.data)]
                elif event.opcode is Opcode.CONT:
                    self.fragments.append(bytes(event.data))
                    if event.fin:
                        self._text(b"".join(self.fragments), now)
                        self.fragments = []
                elif event.opcode is Opcode.CLOSE and not self.state.stopping:
                    rcvd = self.ws.close_rcvd
                    key = f"{rcvd.code} {rcvd.reason}".strip() if rcvd else "no close code"
                    self.state.closes[key] = self.state.closes.get(key, 0) + 1
            elif isinstance(event, Response):
                if self.ws.handshake_exc is not None:
                    self._fail(f"handshake failed: {self.ws.handshake_exc}")
                    return
                self.stage = "session"
                if not self.adapter.needs_session:
                    self._session_up()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(BenchError(f"connection lost during {self.stage}: {exc}"))
        elif self.stage == "live" and not self.state.stopping and self.ws.close_rcvd is None:
            key = "lost without a close frame"
            self.state.closes[key] = self.state.closes.get(key, 0) + 1
        if self.publisher >= 0 and not self.finished.done():
            self.state.publishers_done += 1  # a publisher closed by the server sends no more
            self.finished.set_result(None)
        if not self.lost.done():
            self.lost.set_result(None)

    def close(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if self.ws.state is State.OPEN:
            self.ws.send_close(1000)
            self._flush()
        else:
            self.transport.close()

    # ---- frames

    def _session_up(self) -> None:
        if self.room >= 0:
            self.stage = "joining"
            self._send(self.adapter.join(room_name(self.room, self.adapter.room_prefix), 1))
        else:
            self.stage = "live"
            self.ready.set_result(None)

    def _text(self, data: bytes, now: int) -> None:
        if self.stage == "live" and self.room >= 0 and MARKER in data:  # a pub reply echoes the text
            self._delivery(data, now)
            return
        frame = self.adapter.classify(data)
        if frame.reply and self.ws.state is State.OPEN:  # no pong once our close is under way
            self.ws.send_text(frame.reply.encode())
        kind = frame.kind
        state = self.state
        if kind is Kind.PING:
            state.pings += 1
        elif kind is Kind.ERROR:
            state.errors[frame.code] = state.errors.get(frame.code, 0) + 1
            if self.stage != "live":
                self._fail(f"{self.stage} refused: {frame.code}")
            elif self.publisher >= 0:
                self._replied()
        elif self.stage == "session" and kind is Kind.SESSION:
            self._session_up()
        elif self.stage == "joining" and kind is Kind.JOINED:
            self.stage = "live"
            self.ready.set_result(None)
        elif self.stage == "live" and self.publisher >= 0 and kind in (Kind.ACK, Kind.JOINED):
            self._replied()
        else:
            state.other_frames += 1

    def _delivery(self, data: bytes, now: int) -> None:
        state = self.state
        start = data.index(MARKER) + len(MARKER)
        publisher_text, seq_text, sent_text, _rest = data[start : start + 64].split(b" ", 3)
        publisher, seq, sent_ns = int(publisher_text), int(seq_text), int(sent_text)
        state.received += 1
        self.latencies.append((now - sent_ns) / 1e6)
        if not state.first_recv_ns:
            state.first_recv_ns = now
        if now > state.last_recv_ns:
            state.last_recv_ns = now
        seen = self.seen.get(publisher)
        if seen is None:
            seen = self.seen[publisher] = bytearray(max(state.spec.messages, 1024))
        if seq >= len(seen):
            seen.extend(bytes(max(seq + 1 - len(seen), len(seen))))
        if seen[seq]:
            state.duplicates += 1
            return
        seen[seq] = 1
        self.unique += 1
        if seq < self.last_seq.get(publisher, -1):
            state.order_violations += 1
        else:
            self.last_seq[publisher] = seq

    # ---- publishing

    def begin(self, start_wall: float) -> None:
        """Start publishing at wall time ``start_wall`` (the same instant in every client process)."""
        delay = max(0.0, start_wall - time.time())
        self.start = self.loop.time() + delay
        spec = self.state.spec
        self.deadline = self.start + spec.duration if spec.duration else float("inf")
        self.loop.call_later(delay, self._next)

    def _more(self) -> bool:
        spec = self.state.spec
        if spec.messages:
            return self.seq < spec.messages
        return self.loop.time() < self.deadline

    def _next(self) -> None:
        if self.finished.done():
            return
        if not self._more():
            self._done()
            return
        spec = self.state.spec
        if spec.rate > 0:
            due = self.start + self.seq / spec.rate
            if due > self.loop.time():
                self.loop.call_at(due, self._next)
                return
        room = (self.publisher + self.seq) % spec.rooms
        if self.transport is None or self.transport.is_closing():
            self._done()
            return
        now = time.time_ns()
        if not self.state.first_send_ns:
            self.state.first_send_ns = now
        self._send(
            self.adapter.send(
                room_name(room, self.adapter.room_prefix),
                message_text(self.publisher, self.seq, spec.size),
                self.seq + 2,
            )
        )
        self.state.last_send_ns = now
        self.seq += 1
        self.state.sent += 1
        self.state.sent_by_publisher[self.publisher] = self.seq
        self.outstanding += 1
        if spec.rate > 0:
            self.loop.call_soon(self._next)

    def _replied(self) -> None:
        self.outstanding -= 1
        self.state.replies += 1
        if self.state.spec.rate == 0:
            self._next()
        elif not self._more() and self.outstanding <= 0:
            self._done()

    def _done(self) -> None:
        if self.state.spec.rate > 0 and self.outstanding > 0 and not self.transport_closed():
            return  # paced: finished once the last reply is in (or the socket is gone)
        if not self.finished.done():
            self.state.publishers_done += 1
            self.finished.set_result(None)

    def transport_closed(self) -> bool:
        return self.transport is None or self.transport.is_closing()
