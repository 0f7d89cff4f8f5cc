"""The fallback transport: the same protocol over server-sent events (hub -> client) and HTTP POSTs (client -> hub),
for networks and proxies that refuse the WebSocket upgrade (docs/protocol.md, "Fallback transport").

``GET /sse`` opens a session: a ``text/event-stream`` whose events each carry one server frame (``data: <frame>``),
the ``hello`` first with the session's POST key. ``POST /sse/<key>`` carries client frames, one per line; each goes
through the socket's own path (:meth:`hub.connection.WebSocketEndpoint.handle_frame`: rate limit, size, decode, op),
and the replies come on the stream. The session is the socket's :class:`hub.session.Session`, writing to the stream
instead of a socket: the same queue, the same slow-consumer rule, heartbeats and close codes. SSE has no close code,
so the close is a last event, ``{"op":"close","code":...,"reason":...}``, and then the response ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import MutableMapping
from typing import Any

import orjson

from hub.asgi_extensions import SHUTDOWN_REASON
from hub.auth import AuthError, anonymous_identity, origin_allowed, token_from_handshake
from hub.connection import Receive, Scope, Send, WebSocketEndpoint, _peer
from hub.protocol import CloseCode, close_reason
from hub.session import Session
from hub.types import JSON, Identity

log = logging.getLogger("hub.sse")

STREAM_PATH = "/sse"
POST_PREFIX = "/sse/"
KEY_BYTES = 32  # a session's POST key: 256 random bits, URL-safe base64 (43 characters)
_STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),  # nginx: pass events through as they come
]


def event(text: str) -> bytes:
    """One SSE event holding one frame. (The hub's frames are JSON without raw line breaks; a line break would
    split the data into several ``data:`` lines, which a client joins with ``\\n`` again.)"""
    if "\n" in text or "\r" in text:
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        return b"".join(b"data: " + line.encode() + b"\n" for line in lines) + b"\n"
    return b"data: " + text.encode() + b"\n\n"


def close_event(code: int, reason: str) -> bytes:
    """The last event of a stream: what a WebSocket close frame would say."""
    return event(orjson.dumps({"op": "close", "code": code, "reason": close_reason(reason)}).decode())


class _Stream:
    """An SSE response in the shape a :class:`Session` writes to: ``websocket.send`` becomes an event,
    ``websocket.close`` the last event and the end of the response. ``ended`` is set once the response is over
    (or given up on, :meth:`abort`)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.ended = asyncio.Event()

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "websocket.send":
            await self._send({"type": "http.response.body", "body": event(message["text"]), "more_body": True})
        elif message["type"] == "websocket.close":
            try:
                final = close_event(message.get("code", 1000), message.get("reason", ""))
                await self._send({"type": "http.response.body", "body": final, "more_body": False})
            finally:
                self.ended.set()

    async def send_texts(self, texts: list[str]) -> None:
        body = b"".join(event(text) for text in texts)
        await self._send({"type": "http.response.body", "body": body, "more_body": True})

    def abort(self) -> None:
        """The last event could not be written within the close timeout (a reader that stopped): give up."""
        self.ended.set()


class _Connection:
    """A session served over SSE: its stream's session, its auth/expiry timer, and the lock that makes its POSTs
    run one at a time, in order, and never after the session ended."""

    __slots__ = ("ended", "lock", "session", "timer")

    def __init__(self, session: Session) -> None:
        self.session = session
        self.timer: asyncio.TimerHandle | None = None
        self.lock = asyncio.Lock()
        self.ended = False


async def _respond(send: Send, status: int, detail: str | None, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    """A whole answer: 204 without a body, else ``{"detail": ...}`` as the hub's other HTTP errors."""
    body = b"" if detail is None else orjson.dumps({"detail": detail})
    head = list(headers)
    if body:
        head.append((b"content-type", b"application/json"))
    head.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _bearer(headers: dict[bytes, bytes]) -> str | bool | None:
    """The token of an ``Authorization: Bearer <token>`` header; None without one; False when malformed."""
    value = headers.get(b"authorization")
    if value is None:
        return None
    scheme, _, token = value.decode("latin-1").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return False
    return token


class SSEEndpoint:
    """The ASGI app at ``/sse`` and ``/sse/<key>``. One instance serves every SSE session of the node, through the
    node's :class:`WebSocketEndpoint` (the sessions, the hello, the ops are the socket's)."""

    def __init__(self, sockets: WebSocketEndpoint) -> None:
        self.sockets = sockets
        self.hub = sockets.hub
        self._connections: dict[str, _Connection] = {}  # POST key -> its session
        self._going_away = False  # the node is stopping: streams end with 1001, no new stream or POST is taken
        self._ending: set[asyncio.Task[None]] = set()

    def going_away(self) -> None:
        """The node stops (its server's shutdown began; :class:`hub.http_protocol.HubHTTPProtocol` calls this
        through :meth:`hub.app.HubApp.going_away`). Every stream ends as a stopping node ends a socket: the frames of
        POSTs already being handled are answered first, then what is queued, then the 1001 close event. Later
        streams and POSTs are refused with 503. Idempotent."""
        if self._going_away:
            return
        self._going_away = True
        for connection in tuple(self._connections.values()):
            task = asyncio.get_running_loop().create_task(self._go_away(connection))
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)

    @staticmethod
    async def _go_away(connection: _Connection) -> None:
        async with connection.lock:  # a POST being handled finishes its frames first
            if not connection.ended:
                connection.session.close(CloseCode.GOING_AWAY, SHUTDOWN_REASON, flush=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        if path == STREAM_PATH:
            if scope["method"] != "GET":
                await _respond(send, 405, "Open the event stream with GET.", ((b"allow", b"GET"),))
                return
            await self._stream(scope, receive, send)
        else:
            if scope["method"] != "POST":
                await _respond(send, 405, "Send frames with POST.", ((b"allow", b"POST"),))
                return
            await self._post(scope, receive, send, path[len(POST_PREFIX) :])

    # ---- GET /sse: the stream -----------------------------------------------------------------------------

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings = self.hub.settings
        headers = dict(scope.get("headers") or [])
        if self._going_away:
            await _respond(send, 503, SHUTDOWN_REASON)
            return
        if not origin_allowed(headers, settings.allowed_origins):
            log.warning("refused a stream from origin %r", headers.get(b"origin", b"").decode("latin-1"))
            await _respond(send, 403, "This origin may not open a hub connection.")
            return
        token = _bearer(headers)
        if token is False:
            await _respond(send, 401, "The Authorization header must be 'Bearer <token>'.")
            return
        if token is None:
            token, _ = token_from_handshake([], scope.get("query_string") or b"")
        await send({"type": "http.response.start", "status": 200, "headers": _STREAM_HEADERS})
        identity: Identity | None = None
        if isinstance(token, str):
            try:
                identity = await self.sockets.verify(token)
            except AuthError as exc:
                # As on the socket: the stream opens, and its only event is the close (4001).
                with contextlib.suppress(OSError):
                    final = close_event(CloseCode.AUTH_FAILED, str(exc))
                    await send({"type": "http.response.body", "body": final, "more_body": False})
                return
        elif settings.anonymous:
            identity = anonymous_identity()

        stream = _Stream(send)
        session = self.sockets.open_session(
            identity,
            stream.send,
            abort=stream.abort,
            send_texts=stream.send_texts,
            address=_peer(scope.get("client")),
        )
        key = secrets.token_urlsafe(KEY_BYTES)
        connection = _Connection(session)
        self._connections[key] = connection
        try:
            post_limits: dict[str, JSON] = {
                "max_bytes": settings.sse_post_max_bytes,
                "max_frames": settings.sse_post_max_frames,
            }
            extra: dict[str, JSON] = {"transport": "sse", "session": key, "post_limits": post_limits}
            connection.timer = self.sockets.greet(session, extra)
            try:
                await _until_over(receive, stream.ended)
            except asyncio.CancelledError:
                # The server is stopping and gave up waiting for this response (uvicorn's graceful-shutdown bound:
                # its HTTP side cannot tell a stream in progress that the node stops). End the session as a
                # stopping node ends a socket's, with 1001 after what is queued, and the response with it, rather
                # than leave a cancelled ASGI call (a traceback in the log) and a stream without its close.
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
                session.close(CloseCode.GOING_AWAY, SHUTDOWN_REASON, flush=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stream.ended.wait(), settings.close_timeout)
        finally:
            # Under the lock: a POST in progress finishes its frame first, and none runs on the ended session.
            async with connection.lock:
                connection.ended = True
                del self._connections[key]
                await self.sockets.end_session(session, connection.timer)

    # ---- POST /sse/<key>: client frames ----------------------------------------------------------------------

    async def _post(self, scope: Scope, receive: Receive, send: Send, key: str) -> None:
        settings = self.hub.settings
        headers = dict(scope.get("headers") or [])
        # Who may post is settled from the request line and headers, before the body is read.
        if not origin_allowed(headers, settings.allowed_origins):
            log.warning("refused a POST from origin %r", headers.get(b"origin", b"").decode("latin-1"))
            await _respond(send, 403, "This origin may not use a hub connection.")
            return
        connection = self._connections.get(key) if len(key) <= 2 * KEY_BYTES else None
        if connection is None or connection.ended:
            await _respond(
                send,
                404,
                "No such session on this node: it ended, or this request reached another node than its stream "
                "(a load balancer must send a session's POSTs to the node of its stream). Open a new stream.",
            )
            return
        if self._going_away:  # as a stopping socket reads no more frames
            await _respond(send, 503, SHUTDOWN_REASON)
            return
        max_bytes = settings.sse_post_max_bytes
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > max_bytes):
            await _respond(send, 413, f"A POST carries at most {max_bytes} bytes of frames.")
            return
        body = await _read_body(receive, max_bytes)
        if body is None:
            await _respond(send, 413, f"A POST carries at most {max_bytes} bytes of frames.")
            return
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            await _respond(send, 400, "The body must be UTF-8 text: one JSON frame per line.")
            return
        max_frames = settings.sse_post_max_frames
        lines = [line for line in text.split("\n") if line.strip()]  # blank lines (and a final newline) skipped
        if len(lines) > max_frames:
            await _respond(send, 413, f"A POST carries at most {max_frames} frames.")
            return
        async with connection.lock:
            for line in lines:
                if connection.ended:
                    break
                connection.timer = await self.sockets.handle_frame(
                    connection.session, line.removesuffix("\r"), connection.timer
                )
        await _respond(send, 204, None)


async def _read_body(receive: Receive, max_bytes: int) -> bytes | None:
    """The request body, or None once it passes ``max_bytes`` (or the client left before sending it all)."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            return None
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


async def _until_over(receive: Receive, ended: asyncio.Event) -> None:
    """Until the client leaves (``http.disconnect``) or the stream has ended (the hub closed the session)."""
    waiter = asyncio.ensure_future(ended.wait())

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass  # a GET's (empty) body

    reader = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait((waiter, reader), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (waiter, reader):
            task.cancel()
        for task in (waiter, reader):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
