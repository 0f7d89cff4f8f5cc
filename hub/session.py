"""Session: one client's identity, subscriptions, bounded send queue and the writer task that drains it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from hub.limits import ConnectionLimiter
from hub.metrics import Metrics
from hub.protocol import CloseCode, close_reason
from hub.types import Identity

log = logging.getLogger("hub.session")

ASGISend = Callable[[MutableMapping[str, Any]], Awaitable[None]]

WRITE_BATCH_FRAMES = 256  # at most this many frames, or about this many bytes, per write to the socket
WRITE_BATCH_BYTES = 256 * 1024


class _Latest:
    """A conflating channel's place in the send queue: the frame in it is replaced by newer events of that
    channel until the writer takes it ("latest wins")."""

    __slots__ = ("channel", "frame")

    def __init__(self, channel: str, frame: str) -> None:
        self.channel = channel
        self.frame = frame


class Session:
    """A connected client.

    Every frame to the client goes through :meth:`push`, which never blocks: frames wait in a queue bounded by
    count and bytes, and a client that lets it overflow is closed with 4009 (slow consumer). The writer task
    is the only coroutine that awaits the socket.
    """

    def __init__(
        self,
        client_id: str,
        identity: Identity | None,
        send: ASGISend,
        limiter: ConnectionLimiter,
        *,
        max_frames: int,
        max_bytes: int,
        close_timeout: float = 2.0,
        abort: Callable[[], None] | None = None,
        send_texts: Callable[[list[str]], Awaitable[None]] | None = None,
        try_send: Callable[[str], bool] | None = None,
        metrics: Metrics | None = None,
        batch_bytes: int = WRITE_BATCH_BYTES,
        address: str | None = None,
    ) -> None:
        self.client_id = client_id
        self.identity = identity
        self.address = address  # the peer's "host:port", for the server API's client list
        self.connected_at = time.time()
        self.limiter = limiter
        # channel -> buffered (frame, offset) while its sub reply is being prepared, or None once live
        self.subscriptions: dict[str, list[tuple[str, int | None]] | None] = {}
        self.last_seen = time.monotonic()
        self.close_code: int | None = None
        self._send = send
        self._send_texts = send_texts
        self._try_send = try_send
        self._writing = False  # the writer holds frames it took from the queue and has not written yet
        self._abort = abort
        # Frames waiting for the writer. Made on first use and dropped when drained: an idle connection keeps
        # no deque (an empty one costs 760 bytes).
        self._queue: deque[str | _Latest] | None = None
        # conflating channel -> its frame waiting in the queue (made on first use, like the queue)
        self._latest: dict[str, _Latest] | None = None
        # channel -> the offset its sub reply covered, until the first later event: on Redis, events the reply
        # covered can still be on their way through pub/sub when it is sent (made on first use)
        self._floors: dict[str, int] | None = None
        self._queued_bytes = 0
        self._metrics = metrics
        # A batch goes to the transport whole, past its high-water mark; with a small send buffer it is as small,
        # so frames wait here (where conflation applies) rather than in the transport.
        self._batch_bytes = batch_bytes
        self.conflated = 0  # events of conflating channels replaced by a newer one before they were sent
        self._max_frames = max_frames
        self._max_bytes = max_bytes
        self._close_timeout = close_timeout
        # The writer task exists only while frames wait in the queue: most frames go straight to the socket,
        # and an idle connection carries no task of its own.
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        user = self.identity.user if self.identity else None
        return f"<Session {self.client_id} user={user}>"

    # ---- sending -----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Kept for the connection's life cycle; the writer starts when a frame first has to wait."""

    def push(self, frame: str) -> None:
        """Queue one frame for the client; overflow closes the session as a slow consumer."""
        if self._metrics is not None:  # events are counted once per event by the fan-out, not here
            self._metrics.frames_out.observe(len(frame))
        self._push(frame)

    def _push(self, frame: str) -> None:
        if self.close_code is not None:
            return
        # The fast path: nothing waits before this frame and the socket takes it now; no queue, no task switch.
        queue = self._queue
        if not queue and not self._writing and self._try_send is not None and self._try_send(frame):
            return
        self._enqueue(frame, len(frame))

    def push_latest(self, channel: str, frame: str) -> None:
        """Queue an event of a conflating channel: if one of the channel's events still waits in the queue, this
        one takes its place (a slow client gets the latest value, not a backlog); else like :meth:`push`."""
        if self.close_code is not None:
            return
        queue = self._queue
        if queue:
            waiting = self._latest.get(channel) if self._latest is not None else None
            if waiting is not None:
                self._queued_bytes += len(frame) - len(waiting.frame)
                waiting.frame = frame
                self.conflated += 1
                if self._metrics is not None:
                    self._metrics.conflated += 1
                return
        elif not self._writing and self._try_send is not None and self._try_send(frame):
            return
        slot = _Latest(channel, frame)
        if self._enqueue(slot, len(frame)):
            if self._latest is None:
                self._latest = {}
            self._latest[channel] = slot

    def _enqueue(self, item: str | _Latest, size: int) -> bool:
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        if len(queue) >= self._max_frames or self._queued_bytes + size > self._max_bytes:
            log.warning("closing %r: send queue overflow (%d frames queued)", self, len(queue))
            self.close(CloseCode.SLOW_CONSUMER, "Send queue overflow: the client does not read fast enough.")
            return False
        queue.append(item)
        self._queued_bytes += size
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain(), name=f"hub-writer-{self.client_id}")
        return True

    def push_event(self, channel: str, frame: str, offset: int | None, conflate: bool = False) -> None:
        """Called by the fan-out for each event on a channel this session follows."""
        buffer = self.subscriptions.get(channel)
        if buffer is None:
            floors = self._floors
            if floors is not None and offset is not None and channel in floors:
                if offset <= floors[channel]:
                    return  # the sub reply covered it (in its offset, its missed events or its snapshot)
                self.forget_floor(channel)
            if conflate:
                self.push_latest(channel, frame)
            else:
                self._push(frame)
        elif conflate and buffer:
            buffer[-1] = (frame, offset)  # still subscribing: only the latest is kept
            self.conflated += 1
            if self._metrics is not None:
                self._metrics.conflated += 1
        elif len(buffer) < self._max_frames:
            buffer.append((frame, offset))
        else:
            self.close(CloseCode.SLOW_CONSUMER, "Too many events arrived while subscribing.")

    def begin_join(self, channel: str) -> None:
        """Hold this channel's events until the sub reply has been queued (so ok comes before ev)."""
        self.subscriptions[channel] = []

    def finish_join(self, channel: str, start_offset: int | None) -> None:
        """Release held events, dropping those the reply already covered (offset <= start_offset)."""
        buffer = self.subscriptions.get(channel)
        self.subscriptions[channel] = None
        released = False
        for frame, offset in buffer or ():
            if start_offset is None or offset is None or offset > start_offset:
                self._push(frame)
                released = released or offset is not None
        if start_offset is not None and not released:
            # No later event came yet: one the reply covered may still arrive (Redis pub/sub lags the command
            # connection the offset was read on). Drop those until the first later one.
            if self._floors is None:
                self._floors = {}
            self._floors[channel] = start_offset
        else:
            self.forget_floor(channel)

    def forget_floor(self, channel: str) -> None:
        """The subscription of ``channel`` ended: nothing of it is awaited any more."""
        if self._floors is not None:
            self._floors.pop(channel, None)
            if not self._floors:
                self._floors = None

    @property
    def queued_frames(self) -> int:
        return len(self._queue) if self._queue is not None else 0

    async def _drain(self) -> None:
        """Write the queue out, then end. (No await between the last emptiness check and the end, so a frame
        pushed meanwhile is either seen here or starts a new writer.)"""
        queue = self._queue
        assert queue is not None  # made by push before it started this writer
        send_texts = self._send_texts
        try:
            while queue:
                if send_texts is not None and len(queue) > 1:
                    # Everything queued (up to a batch), in one write to the socket.
                    batch: list[str] = []
                    size = 0
                    while queue and len(batch) < WRITE_BATCH_FRAMES and size < self._batch_bytes:
                        frame = self._take(queue.popleft())
                        size += len(frame)
                        batch.append(frame)
                    self._queued_bytes -= size
                    self._writing = True
                    try:
                        await send_texts(batch)
                    finally:
                        self._writing = False
                    continue
                frame = self._take(queue.popleft())
                self._queued_bytes -= len(frame)
                self._writing = True
                try:
                    await self._send({"type": "websocket.send", "text": frame})
                finally:
                    self._writing = False
        except Exception as exc:  # the socket is gone (the receive loop sees the disconnect and cleans up)
            log.debug("writer of %r stopped: %s", self, exc)
            queue.clear()
            self._latest = None
            self._queued_bytes = 0
        finally:
            if self._writer is asyncio.current_task():
                self._writer = None
                if not queue:
                    self._queue = None

    def _take(self, item: str | _Latest) -> str:
        """The frame of a queue entry; a conflating channel's entry leaves the channel's slot free."""
        if isinstance(item, str):
            return item
        latest = self._latest
        if latest is not None and latest.get(item.channel) is item:
            del latest[item.channel]
            if not latest:
                self._latest = None
        return item.frame

    # ---- closing -----------------------------------------------------------------------------------------

    def close(self, code: int, reason: str, *, flush: bool = False) -> None:
        """Close the socket with a code; idempotent. Pending frames are dropped, or with ``flush`` sent first (a
        stopping node's replies); either way nothing pushed from now on is sent."""
        if self.close_code is not None:
            return
        self.close_code = code
        if self._metrics is not None:
            self._metrics.close_started(code, self.client_id, self.identity.user if self.identity else None, reason)
        if not flush:
            if self._queue is not None:
                self._queue.clear()  # the writer may hold it: it must find nothing more to write
                self._queue = None
            self._latest = None
            self._queued_bytes = 0
            if self._writer is not None:
                self._writer.cancel()
        self._closer = asyncio.create_task(self._send_close(code, reason), name=f"hub-close-{self.client_id}")

    async def _send_close(self, code: int, reason: str) -> None:
        if self._writer is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer
        try:
            # A peer that stopped reading never drains the socket, so the close frame may never be written.
            await asyncio.wait_for(
                self._send({"type": "websocket.close", "code": code, "reason": close_reason(reason)}),
                self._close_timeout,
            )
        except TimeoutError:
            if self._abort is not None:
                self._abort()
        except Exception:  # the peer went away first: nothing left to close (task boundary)
            log.debug("close of %r after the peer left", self, exc_info=True)

    async def wait_closed(self) -> None:
        """Until the close frame started by ``close`` has been sent (or given up on); at once if not closing."""
        if self._closer is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(self._closer)

    async def stop(self) -> None:
        """Release the writer (after the peer disconnected)."""
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer
        if self._closer is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._closer
