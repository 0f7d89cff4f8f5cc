"""The socket loop: handshake checks, auth, receive -> decode -> limit -> route; every error becomes a frame here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from hub import operations
from hub.asgi_extensions import (
    ABORT_EXTENSION,
    SEND_TEXTS_EXTENSION,
    SHUTDOWN_EXTENSION,
    SHUTDOWN_MESSAGE,
    SHUTDOWN_REASON,
)
from hub.auth import AuthError, anonymous_identity, origin_allowed, token_from_handshake
from hub.broker import BrokerUnavailable
from hub.errors import Disconnect, HubError
from hub.limits import ConnectionLimiter, RateLimit
from hub.protocol import (
    PROTOCOL_VERSION,
    AuthRequest,
    ClientFrame,
    CloseCode,
    ErrorCode,
    FrameError,
    PingRequest,
    PongReply,
    PresenceRequest,
    PresenceSetRequest,
    PubRequest,
    SubRequest,
    UnsubRequest,
    close_reason,
    decode_frame,
    encode_err,
    encode_hello,
    encode_ok,
    encode_pong,
)
from hub.runtime import Runtime
from hub.session import WRITE_BATCH_BYTES, Session
from hub.store import StoreUnavailable
from hub.types import JSON, Identity

log = logging.getLogger("hub.connection")


def _peer(client: Any) -> str | None:
    """The ASGI scope's ``client`` (host, port) as ``host:port``, when the server gave one."""
    if isinstance(client, list | tuple) and len(client) == 2:
        return f"{client[0]}:{client[1]}"
    return None


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class WebSocketEndpoint:
    """The ASGI app at /ws. One instance serves every connection of the node."""

    def __init__(self, hub: Runtime) -> None:
        self.hub = hub
        self._max_frame = hub.settings.max_frame_bytes
        self._ops: dict[type[ClientFrame], Callable[[Session, Any], Awaitable[None]]] = {
            SubRequest: self._sub,
            UnsubRequest: self._unsub,
            PubRequest: self._pub,
            PresenceRequest: self._presence,
            PresenceSetRequest: self._presence_set,
            PingRequest: self._ping,
            PongReply: self._pong,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        settings = self.hub.settings
        headers = dict(scope.get("headers") or [])
        if not origin_allowed(headers, settings.allowed_origins):
            log.warning("refused a socket from origin %r", headers.get(b"origin", b"").decode("latin-1"))
            await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
            return
        token, subprotocol = token_from_handshake(list(scope.get("subprotocols") or []), scope["query_string"])
        await send({"type": "websocket.accept", "subprotocol": subprotocol})

        identity: Identity | None = None
        if token is not None:
            try:
                identity = await self.verify(token)
            except AuthError as exc:
                # The peer may have left while a JWKS refresh was awaited (uvicorn's ClientDisconnected).
                with contextlib.suppress(OSError):
                    await send(
                        {"type": "websocket.close", "code": CloseCode.AUTH_FAILED, "reason": close_reason(str(exc))}
                    )
                return
        elif settings.anonymous:
            identity = anonymous_identity()

        extensions = scope.get("extensions") or {}
        send_texts = extensions.get(SEND_TEXTS_EXTENSION, {})
        session = self.open_session(
            identity,
            send,
            abort=extensions.get(ABORT_EXTENSION, {}).get("abort"),
            send_texts=send_texts.get("send_texts"),
            try_send=send_texts.get("try_send"),
            address=_peer(scope.get("client")),
        )
        enable_graceful_shutdown = extensions.get(SHUTDOWN_EXTENSION, {}).get("enable")
        if enable_graceful_shutdown is not None:
            enable_graceful_shutdown()  # a stopping server hands us SHUTDOWN_MESSAGE: see _receive_loop
        timer = self.greet(session)
        try:
            timer = await self._receive_loop(session, receive, timer)
        finally:
            await self.end_session(session, timer)

    # ---- a session's life, shared by both transports (this socket, and hub/sse.py's stream + POSTs) ----------

    def open_session(
        self,
        identity: Identity | None,
        send: Send,
        *,
        abort: Callable[[], None] | None = None,
        send_texts: Callable[[list[str]], Awaitable[None]] | None = None,
        try_send: Callable[[str], bool] | None = None,
        address: str | None = None,
        batch_bytes: int | None = None,
    ) -> Session:
        """A new session of this node, added to its sessions (and heartbeats); nothing sent yet."""
        settings = self.hub.settings
        session = Session(
            secrets.token_hex(8),
            identity,
            send,
            ConnectionLimiter(
                RateLimit(settings.rate_limit, settings.rate_burst),
                settings.abuse_strikes,
                settings.abuse_window,
                time.monotonic(),
            ),
            max_frames=settings.send_queue_max_frames,
            max_bytes=settings.send_queue_max_bytes,
            close_timeout=settings.close_timeout,
            abort=abort,
            send_texts=send_texts,
            try_send=try_send,
            metrics=self.hub.metrics,
            batch_bytes=batch_bytes or min(settings.send_buffer_bytes or WRITE_BATCH_BYTES, WRITE_BATCH_BYTES),
            address=address,
        )
        self.hub.add_session(session)
        session.start()
        return session

    def greet(self, session: Session, extra: dict[str, JSON] | None = None) -> asyncio.TimerHandle | None:
        """Send the hello (with a transport's ``extra`` members); start the auth or expiry timer, returned."""
        hello = self._hello(session)
        if extra:
            hello.update(extra)
        session.push(encode_hello(hello))
        identity = session.identity
        if identity is None:
            return asyncio.get_running_loop().call_later(
                self.hub.settings.auth_timeout,
                session.close,
                CloseCode.AUTH_TIMEOUT,
                "No auth within the auth timeout.",
            )
        return self._expiry_timer(session, identity)

    async def end_session(self, session: Session, timer: asyncio.TimerHandle | None) -> None:
        """The transport is gone: stop the timer, leave every channel, release the writer."""
        if timer is not None:
            timer.cancel()
        self.hub.remove_session(session)
        await self._leave_all(session)
        await session.stop()

    async def verify(self, token: str) -> Identity:
        """A token's identity (guests only while anonymous mode is on); AuthError when refused."""
        identity = await self.hub.authenticator.verify_async(token)
        if identity.anonymous and not self.hub.settings.anonymous:
            raise AuthError("Guests are not allowed on this hub; sign in.")
        return identity

    def _hello(self, session: Session) -> dict[str, JSON]:
        settings = self.hub.settings
        identity = session.identity
        resume: dict[str, JSON] = {}
        if identity is not None and identity.anonymous:
            resume["resume"] = self.hub.authenticator.issue_guest(identity, ttl=settings.guest_token_ttl)
        return {
            "protocol": PROTOCOL_VERSION,
            "client": session.client_id,
            "user": identity.public() | {"anonymous": identity.anonymous} if identity else None,
            "heartbeat": {"interval": settings.heartbeat_interval, "timeout": settings.heartbeat_timeout},
            "limits": {
                "max_frame_bytes": settings.max_frame_bytes,
                "max_channels": settings.max_channels_per_connection,
                "max_channel_length": settings.max_channel_length,
                "presence_list": settings.presence_list_limit,
            },
            "plugins": self.hub.plugins.names,
            "namespaces": sorted(self.hub.router.channels),
            **resume,
        }

    def _expiry_timer(self, session: Session, identity: Identity) -> asyncio.TimerHandle | None:
        if identity.expires_at is None:
            return None
        delay = max(0.0, identity.expires_at + self.hub.settings.token_leeway - time.time())
        return asyncio.get_running_loop().call_later(
            delay, session.close, CloseCode.TOKEN_EXPIRED, "The token expired; reconnect with a fresh one."
        )

    async def _receive_loop(
        self, session: Session, receive: Receive, timer: asyncio.TimerHandle | None
    ) -> asyncio.TimerHandle | None:
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                if message["type"] == SHUTDOWN_MESSAGE:
                    # The node is stopping. The socket is no longer read, and every frame read before has been
                    # answered: close once those answers are sent, with 1001 (going away).
                    session.close(CloseCode.GOING_AWAY, SHUTDOWN_REASON, flush=True)
                    continue
                return timer  # websocket.disconnect
            timer = await self.handle_frame(session, message.get("text"), timer)

    async def handle_frame(
        self, session: Session, text: str | None, timer: asyncio.TimerHandle | None
    ) -> asyncio.TimerHandle | None:
        """One frame from the client (``None``: a binary one), from either transport: rate limit, size limit,
        decode, op; every error becomes an ``err`` frame or a close. Returns the auth/expiry timer (an ``auth``
        replaces it)."""
        metrics = self.hub.metrics
        now = time.monotonic()
        session.last_seen = now
        metrics.frames_received += 1
        if session.close_code is not None:
            return timer  # closing: drain input until the peer's disconnect arrives
        # Spend a token for every frame (garbage and binary ones too) before looking at it; decode first
        # to echo the request id in the verdict.
        allowed = session.limiter.allow_frame(now)
        request_id: JSON = None
        frame: ClientFrame | None = None
        if text is None:
            if allowed:
                self._error(session, None, ErrorCode.BAD_REQUEST, "Binary frames are not supported; send JSON text.")
            else:
                self._error(session, None, ErrorCode.RATE_LIMITED, "Too many frames; slow down.")
            return timer
        metrics.frames_in.observe(len(text))
        max_frame = self._max_frame
        if len(text) > max_frame:  # uvicorn enforces this too; this covers other ASGI servers (and POSTs)
            session.close(CloseCode.FRAME_TOO_LARGE, f"Frames are limited to {max_frame} bytes.")
            return timer
        try:
            frame = decode_frame(text)
            request_id = frame.id
            if not allowed:
                raise HubError(ErrorCode.RATE_LIMITED, "Too many frames; slow down.")
            if isinstance(frame, AuthRequest):
                timer = await self._auth(session, frame, timer)
            elif isinstance(frame, PubRequest):  # its data validated from the text, in one pass
                await self._pub(session, frame, text)
                metrics.publish_done(frame.type, now)
            else:
                await self._ops[type(frame)](session, frame)
        except FrameError as exc:
            if allowed:
                self._error(session, exc.request_id, exc.code, exc.msg, exc.details)
            else:
                self._error(session, exc.request_id, ErrorCode.RATE_LIMITED, "Too many frames; slow down.")
        except HubError as exc:
            self._error(session, request_id, exc.code, exc.msg, exc.details, channel=_channel(frame))
        except Disconnect as exc:
            session.close(exc.code, exc.reason)
        except (StoreUnavailable, BrokerUnavailable) as exc:
            log.warning("backend unavailable for %r: %s", session, exc)
            self._error(
                session,
                request_id,
                ErrorCode.UNAVAILABLE,
                "A backend is unavailable; retry shortly.",
                channel=_channel(frame),
            )
        except Exception:  # a bug in a handler must not take down the connection (request boundary)
            log.exception("request %r of %r failed", request_id, session)
            internal = "Internal error; it has been logged."
            self._error(session, request_id, ErrorCode.INTERNAL, internal, channel=_channel(frame))
        return timer

    def _error(
        self,
        session: Session,
        request_id: JSON,
        code: str,
        msg: str,
        details: list[JSON] | None = None,
        *,
        channel: str | None = None,
    ) -> None:
        """The one place err frames are made; rate_limited ones count as strikes toward a 4008 close."""
        identity = session.identity
        self.hub.metrics.error_sent(code, session.client_id, identity.user if identity else None, channel, msg)
        session.push(encode_err(request_id, code, msg, details))
        if code == ErrorCode.RATE_LIMITED and session.limiter.strike(time.monotonic()):
            session.close(CloseCode.RATE_ABUSE, "Kept sending past the rate limit.")

    # ---- ops ---------------------------------------------------------------------------------------------

    @staticmethod
    def _identity(session: Session) -> Identity:
        if session.identity is None:
            raise HubError(ErrorCode.UNAUTHORIZED, 'Authenticate first: send {"op":"auth","token":...}.')
        return session.identity

    async def _auth(
        self, session: Session, req: AuthRequest, timer: asyncio.TimerHandle | None
    ) -> asyncio.TimerHandle | None:
        try:
            identity = await self.verify(req.token)
        except AuthError as exc:
            session.close(CloseCode.AUTH_FAILED, str(exc))
            return timer
        current = session.identity
        if current is not None and session.subscriptions and current.user != identity.user:
            raise HubError(ErrorCode.FORBIDDEN, "Unsubscribe everything before switching to another user.")
        session.identity = identity
        if timer is not None:
            timer.cancel()
        session.push(encode_ok(req.id, {"user": identity.public() | {"anonymous": identity.anonymous}}))
        return self._expiry_timer(session, identity)

    async def _sub(self, session: Session, req: SubRequest) -> None:
        data, start_offset = await operations.subscribe(self.hub, session, self._identity(session), req)
        session.push(encode_ok(req.id, data))
        session.finish_join(req.ch, start_offset)

    async def _unsub(self, session: Session, req: UnsubRequest) -> None:
        self._identity(session)
        await operations.unsubscribe(self.hub, session, req.ch)
        session.push(encode_ok(req.id))

    async def _pub(self, session: Session, req: PubRequest, text: str | None = None) -> None:
        result = await operations.publish(self.hub, session, self._identity(session), req, text)
        session.push(encode_ok(req.id, result))

    async def _presence(self, session: Session, req: PresenceRequest) -> None:
        data = await operations.presence(self.hub, session, self._identity(session), req)
        session.push(encode_ok(req.id, data))

    async def _presence_set(self, session: Session, req: PresenceSetRequest) -> None:
        data = await operations.presence_set(self.hub, session, self._identity(session), req)
        session.push(encode_ok(req.id, data))

    async def _ping(self, session: Session, req: PingRequest) -> None:
        session.push(encode_pong(req.id))

    async def _pong(self, session: Session, req: PongReply) -> None:
        """The client answered a server ping; receiving it already refreshed last_seen."""

    async def _leave_all(self, session: Session) -> None:
        for channel in tuple(session.subscriptions):
            try:
                await operations.leave(self.hub, session, channel)
            except Exception:  # one failed cleanup must not stop the others (task boundary)
                log.exception("leaving %r for %r failed", channel, session)


def _channel(frame: ClientFrame | None) -> str | None:
    """The channel a request named, if any (for recent_errors)."""
    channel = getattr(frame, "ch", None)
    return channel if isinstance(channel, str) else None
