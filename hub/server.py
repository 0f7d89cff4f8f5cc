"""Serving with uvicorn, hardened: bounded WebSocket frames without deflate, the HTTP edge's rules
(hub/http_protocol.py), a way to drop sockets whose peer stopped reading; its logs go through hub/logging_config.py,
which keeps query strings (tokens travel there) out of them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
from collections.abc import Sequence
from typing import Any

import uvicorn
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from hub.admission import Admission, TrustedPeers
from hub.aio import Flag, ReceiveQueue
from hub.asgi_extensions import (
    ABORT_EXTENSION,
    FRAME_LIMIT_EXTENSION,
    SEND_TEXTS_EXTENSION,
    SHUTDOWN_EXTENSION,
    SHUTDOWN_MESSAGE,
    SHUTDOWN_REASON,
    Abort,
    FrameLimit,
    GracefulShutdown,
    SendTexts,
)
from hub.http_protocol import HubHTTPProtocol
from hub.logging_config import configure_hub_logging, install_log_redaction, uvicorn_log_config
from hub.settings import HubSettings
from hub.settings_file import PluginLayers, plugin_layers
from hub.startup import StartupError, StartupGuard, bind, log_listening
from hub.worker_metrics import WorkerMetrics, shared_by_workers

_last_text: str | None = None
_last_frame = b""


def text_frame(text: str) -> bytes:
    """The bytes of an unmasked, unfragmented WebSocket text frame (RFC 6455 §5.2) carrying ``text``, as a server
    sends it without extensions. One event goes to every subscriber as the same ``str`` object, one after the
    other, so the frame of the last text is kept: an event is encoded and framed once, not once per subscriber.
    The websockets protocol object is bypassed only for this; it sends nothing else between our writes (every
    other frame it makes is flushed to the transport at once), so the order on the wire is kept."""
    global _last_text, _last_frame
    if text is _last_text:
        return _last_frame
    payload = text.encode()
    length = len(payload)
    if length < 126:
        header = bytes((0x81, length))
    elif length < 65536:
        header = struct.pack("!BBH", 0x81, 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 127, length)
    _last_text, _last_frame = text, header + payload
    return _last_frame


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "-"


RECEIVE_HIGH_WATER = 16  # messages waiting for the app before a socket's reading pauses


class HubWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol plus the hub's scope extensions (hub/asgi_extensions.py).

    A peer that stops reading fills the socket buffer; then even a close frame cannot be written and
    ``transport.close()`` waits for a flush that never comes. The hub calls ``abort`` to drop such a socket.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # websockets logs every frame (tokens in auth frames, chat text) at debug level on uvicorn's logger;
        # frame dumps are not operational logs, so they are never emitted.
        self.conn.debug = False
        # Same behaviour, without the five deques of an asyncio.Queue and an asyncio.Event (hub/aio.py).
        self.queue = ReceiveQueue()  # type: ignore[assignment]
        self._queued_bytes = 0  # received bytes waiting in the queue for the app (an upper bound: see receive)
        self.writable = Flag()  # type: ignore[assignment]
        self.writable.set()
        self._app_closes_on_shutdown = False  # the app enabled hub.shutdown: it closes the socket itself
        self._going_away = False  # the server is stopping: reading stays paused until the app's close
        self._shutdown_deadline: asyncio.TimerHandle | None = None  # then the socket is dropped

    def send_receive_event_to_app(self) -> None:
        """uvicorn's, with one change: reading pauses only once the app falls behind.

        uvicorn pauses the socket after every message and resumes it when the app takes it, which is two
        ``epoll_ctl`` system calls per message (about a sixth of the hub's CPU for a flood of small publishes).
        Here reading pauses once ``RECEIVE_HIGH_WATER`` messages or ``max_size`` bytes wait for the app, and
        resumes when the app has taken them all, so a client that floods still cannot make the hub buffer
        more than that for it."""
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.close_sent:
            return  # past `websocket.close`: discarded, so reads stay active until the peer's close reply arrives
        if self.curr_msg_data_type == "text":
            try:
                self.queue.put_nowait({"type": "websocket.receive", "text": data.decode()})
            except UnicodeDecodeError:
                # The client's bytes, not a fault of the server: one line at debug, never a traceback, since any
                # client could send one frame after another to flood the log.
                self.logger.debug("%s - invalid UTF-8 in a text frame; closing with 1007", _peer(self.client))
                self.conn.send_close(1007)
                self.handle_parser_exception()
                return
        else:
            self.queue.put_nowait({"type": "websocket.receive", "bytes": data})
        self._queued_bytes += len(data)
        if not self.read_paused and (
            self.queue.qsize() >= RECEIVE_HIGH_WATER or self._queued_bytes >= self.config.ws_max_size
        ):
            self.read_paused = True
            self.transport.pause_reading()

    async def receive(self) -> Any:
        message = await self.queue.get()
        if self.queue.empty():
            self._queued_bytes = 0
            if self.read_paused and not self._going_away:
                self.read_paused = False
                self.transport.resume_reading()
        return message

    async def send(self, message: Any) -> None:
        await super().send(message)
        if self.handshake_complete and self.request is not None:
            # The parsed handshake (about 4 KB of header objects) is not read again once the accept is out; the
            # ASGI scope keeps its own copy of the request headers. websockets' parser generator still refers to
            # the request object, so its headers are emptied rather than only dropped here.
            self.request.headers.clear()
            self.request = self.response = None  # type: ignore[assignment]

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # the ASGI task has been created but has not run yet, so this is seen by the app
            extensions = scope["extensions"]
            extensions[ABORT_EXTENSION] = Abort(abort=self.abort_connection)
            extensions[FRAME_LIMIT_EXTENSION] = FrameLimit(set=self.set_max_message_size)
            extensions[SEND_TEXTS_EXTENSION] = SendTexts(send_texts=self.send_texts, try_send=self.try_send_text)
            extensions[SHUTDOWN_EXTENSION] = GracefulShutdown(enable=self._enable_graceful_shutdown)

    def _enable_graceful_shutdown(self) -> None:
        self._app_closes_on_shutdown = True

    def shutdown(self) -> None:
        """uvicorn calls this for every connection when the server stops (SIGINT/SIGTERM), right after it stopped
        accepting. uvicorn's closes an open socket at once with 1012, cutting off whatever the app was answering.

        Here a socket whose app enabled ``hub.shutdown`` (every /ws session) is no longer read, and the app gets
        ``SHUTDOWN_MESSAGE`` after the messages already read: it answers those, sends what it has queued, then
        closes with 1001 and waits ``close_timeout`` at most for the peer's reply. Another app's socket (a plugin's
        own route) gets 1001 at once. Whatever is still open ``shutdown_timeout`` seconds from now is dropped (a
        peer that stopped reading, or a handler that does not end), so the server's wait for its connections ends.
        """
        self._shutdown_deadline = self.loop.call_later(
            getattr(self.config, "hub_shutdown_timeout", self.close_timeout), self.abort_connection
        )
        if self.close_sent or self.disconnected:
            return  # closing already: its close timer, or the deadline, ends it
        if not self.handshake_complete or self.initial_response is not None:
            super().shutdown()  # not accepted yet (uvicorn answers 500), or the app answered with HTTP
            return
        self.close_timeout = getattr(self.config, "hub_close_timeout", self.close_timeout)
        if self._app_closes_on_shutdown:
            self._going_away = True
            if not self.read_paused:
                self.read_paused = True
                self.transport.pause_reading()
            going_away: Any = {"type": SHUTDOWN_MESSAGE}  # not an ASGI event: only for an app that enabled it
            self.queue.put_nowait(going_away)
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": 1001, "reason": SHUTDOWN_REASON})
        self.conn.send_close(1001, SHUTDOWN_REASON)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._shutdown_deadline is not None:
            self._shutdown_deadline.cancel()
            self._shutdown_deadline = None
        super().connection_lost(exc)

    def set_max_message_size(self, max_bytes: int) -> None:
        """This socket's largest message from now on (``hub.frame_limit``: a plugin's route that needs more
        than ``max_frame_bytes``); the parser reads it for every frame."""
        self.conn.max_message_size = max_bytes

    def handle_parser_exception(self) -> None:
        """uvicorn's, with a lingering close: after a protocol error or a message over the limit (1009), the close
        frame is sent, then our side of the connection is half-closed and what the peer still sends is read and
        dropped until it closes (or ``close_timeout``). uvicorn closes the socket at once, with the rest of the
        peer's message unread, so the kernel answers it with a reset and a peer still writing loses the close
        frame (found by the Autobahn run: about 5% of the 9.* cases over the limit under load)."""
        if self.close_sent:
            return
        assert self.conn.close_sent is not None
        code, reason = self.conn.close_sent.code, self.conn.close_sent.reason
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:  # the app will not take more: read (and drop) until the peer's close
            self.read_paused = False
            self.transport.resume_reading()
        if not self.transport.is_closing() and self.transport.can_write_eof():
            self.transport.write_eof()
        timeout = getattr(self.config, "hub_close_timeout", self.close_timeout)
        self.close_timer = self.loop.call_later(timeout, self.transport.close)

    def abort_connection(self) -> None:
        """Drop the connection now (``hub.abort``), with a TCP reset: the kernel throws away what it still
        holds for the peer. A plain abort closes the descriptor, and Linux would go on sending megabytes of
        stale frames to a peer that reads slowly before the FIN, so it would learn of its close minutes late."""
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    def try_send_text(self, text: str) -> bool:
        """Write one text frame now, without a task switch, if the socket can take it (open, handshake done,
        not paused by flow control); False leaves it to the caller's queue and writer task."""
        if (
            not self.writable.is_set()
            or self.disconnected
            or not self.handshake_complete
            or self.close_sent
            or self.initial_response is not None
            or self.conn.state is not State.OPEN
        ):
            return False
        if self.conn.extensions:  # never, as the hub turns per-message deflate off; websockets frames it then
            self.conn.send_text(text.encode())
            self.transport.write(b"".join(self.conn.data_to_send()))
        else:
            self.transport.write(text_frame(text))
        return True

    async def send_texts(self, texts: list[str]) -> None:
        """Send several text frames with one write to the socket (``hub.send_texts`` extension).

        ASGI sends one message per call: one Python round trip through the protocol and one ``write`` system
        call per frame. A session whose queue holds several frames (a busy channel) hands them over at once.
        Only after the handshake and before a close, like a ``websocket.send``.
        """
        await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        if not self.handshake_complete or self.close_sent or self.initial_response is not None:
            raise RuntimeError("send_texts before the handshake or after a close")
        if self.conn.state is not State.OPEN:
            raise ClientDisconnected()
        if self.conn.extensions:
            for text in texts:
                self.conn.send_text(text.encode())
            self.transport.write(b"".join(self.conn.data_to_send()))
        else:
            self.transport.write(b"".join(text_frame(text) for text in texts))


def uvicorn_config(app: Any, settings: HubSettings, **overrides: Any) -> uvicorn.Config:
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": settings.resolved_loop(),
        "http": HubHTTPProtocol,
        "ws": HubWebSocketProtocol,
        "ws_max_size": settings.max_frame_bytes,
        # Deflate lets a small frame inflate to hundreds of MB; the hub never negotiates it.
        "ws_per_message_deflate": False,
        # The hub's own heartbeats detect dead peers (and browsers cannot see protocol pings).
        "ws_ping_interval": None,
        "ws_ping_timeout": None,
        "log_level": settings.log_level.lower(),
        "access_log": False,  # replaced by hub.app's access log, which leaves out query strings
        "lifespan": "on",
        # Stopping: every socket is closed or dropped within shutdown_timeout (HubWebSocketProtocol.shutdown); the
        # ASGI tasks of those dropped get close_timeout more to clean up before uvicorn cancels them.
        "timeout_graceful_shutdown": settings.shutdown_timeout + settings.close_timeout,
    }
    log_config = uvicorn_log_config(settings.log_format)
    if log_config is not None:
        options["log_config"] = log_config
    options.update(overrides)
    config = uvicorn.Config(app, **options)
    config.hub_handshake_timeout = settings.handshake_timeout  # type: ignore[attr-defined]
    config.hub_close_timeout = settings.close_timeout  # type: ignore[attr-defined]
    config.hub_shutdown_timeout = settings.shutdown_timeout  # type: ignore[attr-defined]
    config.hub_send_buffer = settings.send_buffer_bytes  # type: ignore[attr-defined]
    config.hub_max_body_bytes = settings.max_body_bytes  # type: ignore[attr-defined]
    # uvicorn trusts X-Forwarded-For from these peers (FORWARDED_ALLOW_IPS, default 127.0.0.1 and ::1): proxies,
    # whose connections carry many clients, so the per-address cap leaves them out.
    trusted = TrustedPeers(config.forwarded_allow_ips if config.proxy_headers else ())
    config.hub_admission = Admission(  # type: ignore[attr-defined]
        max_per_address=settings.max_connections_per_address,
        max_pending_bodies=settings.max_pending_bodies,
        trusted=trusted,
    )
    return config


SETTINGS_ENV = "HUB_SETTINGS_JSON"
PLUGIN_SETTINGS_ENV = "HUB_PLUGIN_SETTINGS_JSON"  # the config file's plugin tables and --set flags (settings_file.py)


def app_from_environment() -> Any:
    """The app factory each worker process calls: settings travel from the parent as JSON in the env."""
    from hub.app import create_app

    settings = HubSettings.model_validate_json(os.environ[SETTINGS_ENV])
    configure_hub_logging(settings.log_level, settings.log_format)
    install_log_redaction()
    plugins = PluginLayers.from_json(json.loads(os.environ.get(PLUGIN_SETTINGS_ENV) or "{}"))
    with plugin_layers(plugins):  # plugins read their settings while the app is built
        app = create_app(settings)
    # one /metrics for all the workers, through the directory serve() made (hub/worker_metrics.py)
    app.state.hub.metrics.workers = WorkerMetrics.for_worker(settings.data_dir, settings.metrics_interval)
    return app


def serve(
    settings: HubSettings,
    *,
    workers: int = 1,
    plugins: PluginLayers | None = None,
    warnings: Sequence[str] = (),
) -> None:
    """Run the hub in this process, or in ``workers`` processes sharing its listening sockets. The sockets are
    bound first: a port in use raises :class:`StartupError` before anything has started, as does an outage
    that stops the application's start-up. ``plugins``: the config file's plugin tables and ``--set`` flags;
    ``warnings``: logged once logging is set up (unknown ``HUB_*`` variables)."""
    plugins = plugins or PluginLayers()
    sockets = bind(settings.host, settings.port)
    try:
        if workers == 1:
            _serve_here(settings, plugins, warnings, sockets)
        else:
            _serve_workers(settings, plugins, warnings, sockets, workers)
    finally:
        for sock in sockets:
            sock.close()


def _log_setup(settings: HubSettings, warnings: Sequence[str], sockets: list[socket.socket]) -> None:
    configure_hub_logging(settings.log_level, settings.log_format)
    install_log_redaction()
    for warning in warnings:
        logging.getLogger("hub.config").warning("%s", warning)
    log_listening(sockets)


def _serve_here(
    settings: HubSettings, plugins: PluginLayers, warnings: Sequence[str], sockets: list[socket.socket]
) -> None:
    from hub.app import create_app

    with plugin_layers(plugins):
        guard = StartupGuard(create_app(settings))
        config = uvicorn_config(guard, settings)
        _log_setup(settings, warnings, sockets)
        server = uvicorn.Server(config)
        try:
            server.run(sockets=sockets)
        except SystemExit:
            if guard.failure is None:
                raise
        if guard.failure is not None:
            raise StartupError(f"the hub could not start: {guard.failure}")


def _serve_workers(
    settings: HubSettings,
    plugins: PluginLayers,
    warnings: Sequence[str],
    sockets: list[socket.socket],
    workers: int,
) -> None:
    from uvicorn.supervisors import Multiprocess

    settings.resolved_secret()  # generate it once here, not once per worker
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    os.environ[PLUGIN_SETTINGS_ENV] = json.dumps(plugins.to_json(), default=str)
    config = uvicorn_config("hub.server:app_from_environment", settings, factory=True, workers=workers)
    _log_setup(settings, warnings, sockets)
    with shared_by_workers(settings.data_dir):  # one /metrics for all the workers (hub/worker_metrics.py)
        Multiprocess(config, sockets=sockets).run()
