"""The parts of uvicorn beyond its public API (``uvicorn.run``, ``Config``, ``Server``) that the hub relies on, and of
the websockets protocol object uvicorn builds: one list, checked against the installed versions by
tests/test_uvicorn_contract.py.

hub/server.py and hub/http_protocol.py subclass uvicorn's protocol classes, override their methods and read their
attributes; none of that is a documented interface, so a uvicorn release may change it without notice (hence the
pin in pyproject.toml). A new use of one of these internals goes into ``UVICORN_INTERNALS`` with it; the contract
test finds uses in those two files that are missing here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Internal:
    """One thing the hub relies on. ``where`` is a module, or ``module:Class`` for a class's attribute; ``name`` is
    the attribute. ``params`` (without ``self``) marks a method or class whose parameters must be exactly these;
    ``None`` an attribute that must exist. ``replaced_by`` (``module:Class``) is the hub's object put in the
    attribute's place, which must offer every method uvicorn's class calls on it; ``source_mentions`` are the calls
    the hub relies on uvicorn's method to make (checked in its source)."""

    where: str
    name: str
    why: str
    params: tuple[str, ...] | None = None
    replaced_by: str | None = None
    source_mentions: tuple[str, ...] = ()


WS = "uvicorn.protocols.websockets.websockets_sansio_impl:WebSocketsSansIOProtocol"
H11 = "uvicorn.protocols.http.h11_impl:H11Protocol"
CYCLE = "uvicorn.protocols.http.h11_impl:RequestResponseCycle"
CONFIG = "uvicorn.config:Config"
SERVER = "uvicorn.server:Server"
WS_CONN = "websockets.server:ServerProtocol"  # uvicorn's WebSocketsSansIOProtocol.conn (a websockets ServerProtocol)
PROTOCOL_INIT = ("config", "server_state", "app_state", "_loop")  # H11Protocol.handle_websocket_upgrade passes these

UVICORN_INTERNALS: tuple[Internal, ...] = (
    # ---- classes and functions imported from uvicorn's modules -------------------------------------------------
    Internal(
        "uvicorn.protocols.websockets.websockets_sansio_impl",
        "WebSocketsSansIOProtocol",
        "HubWebSocketProtocol's base",
        params=PROTOCOL_INIT,
    ),
    Internal("uvicorn.protocols.http.h11_impl", "H11Protocol", "HubHTTPProtocol's base", params=PROTOCOL_INIT),
    Internal("uvicorn.protocols.utils", "ClientDisconnected", "send_texts raises it as uvicorn's send does"),
    Internal(
        "uvicorn.logging",
        "DefaultFormatter",
        "the hub's loggers in uvicorn's format",
        params=("fmt", "datefmt", "style", "use_colors"),
    ),
    Internal("uvicorn.supervisors", "Multiprocess", "serve(workers=N)", params=("config", "sockets")),
    Internal("uvicorn.supervisors:Multiprocess", "run", "serve(workers=N)", params=()),
    # ---- Config ------------------------------------------------------------------------------------------------
    Internal(CONFIG, "ws_max_size", "reading pauses once this many bytes wait for the app"),
    Internal(CONFIG, "h11_max_incomplete_event_size", "HubHTTPProtocol builds its own h11 connection with it"),
    Internal(CONFIG, "proxy_headers", "whether forwarded_allow_ips applies: proxies are left out of the address cap"),
    Internal(CONFIG, "forwarded_allow_ips", "the trusted proxies, left out of the per-address cap"),
    Internal(CONFIG, "bind_socket", "serve(workers=N): the socket the workers share", params=()),
    Internal(SERVER, "started", "hub.testing.HubServer waits for it"),
    Internal(SERVER, "should_exit", "hub.testing.HubServer stops the server with it"),
    Internal(
        SERVER,
        "shutdown",
        "the order a stopping server follows: stop accepting, each connection's shutdown(), a bounded wait for them",
        params=("sockets",),
        source_mentions=(
            "server.close()",
            "connection.shutdown()",
            "self.config.timeout_graceful_shutdown",
            "self.lifespan.shutdown()",
        ),
    ),
    Internal(CONFIG, "timeout_graceful_shutdown", "uvicorn cancels the tasks of connections still open after it"),
    # ---- HubWebSocketProtocol: methods overridden or called ------------------------------------------------------
    Internal(WS, "__init__", "overridden: the hub's queue, flag and debug switch", params=PROTOCOL_INIT),
    Internal(
        WS,
        "send_receive_event_to_app",
        "overridden: reading pauses only once the app falls behind",
        params=(),
        source_mentions=("self.frames", "self.queue.put_nowait"),
    ),
    Internal(
        WS,
        "handle_text",
        "calls send_receive_event_to_app for a whole text message",
        params=("event",),
        source_mentions=("self.send_receive_event_to_app()",),
    ),
    Internal(
        WS,
        "handle_bytes",
        "calls send_receive_event_to_app for a whole binary message",
        params=("event",),
        source_mentions=("self.send_receive_event_to_app()",),
    ),
    Internal(WS, "receive", "overridden: reading resumes once the app has taken every waiting message", params=()),
    Internal(WS, "send", "overridden: drops the parsed handshake after the accept", params=("message",)),
    Internal(
        WS,
        "handle_connect",
        "overridden: adds the hub's scope extensions before the ASGI task runs",
        params=("event",),
        source_mentions=("self.scope", '"extensions"', "create_task"),
    ),
    Internal(WS, "handle_parser_exception", "overridden: a lingering close after a protocol error", params=()),
    Internal(
        WS,
        "shutdown",
        "overridden: the app closes /ws sessions with 1001 after answering what was read; others get 1001 at once",
        params=(),
    ),
    Internal(
        WS,
        "data_received",
        "calls handle_parser_exception after a protocol error",
        params=("data",),
        source_mentions=("self.handle_parser_exception()",),
    ),
    Internal(
        WS,
        "connection_lost",
        "wrapped per connection to release its address slot; overridden to cancel the shutdown deadline",
        params=("exc",),
    ),
    # ---- HubWebSocketProtocol: attributes read or replaced -------------------------------------------------------
    Internal(WS, "conn", "the websockets ServerProtocol: frames written around it, limits changed on it"),
    Internal(WS, "queue", "replaced by a lighter queue", replaced_by="hub.aio:ReceiveQueue"),
    Internal(WS, "writable", "replaced by a lighter flag; waited on before a write", replaced_by="hub.aio:Flag"),
    Internal(WS, "frames", "the parts of the message being received"),
    Internal(WS, "curr_msg_data_type", "whether that message is text or bytes"),
    Internal(WS, "read_paused", "reading paused for the app (flow control of received messages)"),
    Internal(WS, "close_sent", "no more writes once the close frame is out"),
    Internal(WS, "handshake_complete", "no direct write before the accept"),
    Internal(WS, "initial_response", "no direct write after an HTTP response instead of the accept"),
    Internal(WS, "disconnected", "no direct write after the connection is lost"),
    Internal(WS, "close_timer", "the lingering close's timer"),
    Internal(WS, "close_timeout", "the lingering close's default; set to the hub's when stopping"),
    Internal(WS, "request", "the parsed handshake, dropped after the accept"),
    Internal(WS, "response", "the handshake response, dropped after the accept"),
    Internal(WS, "scope", "the connection's ASGI scope, where the extensions go"),
    Internal(WS, "transport", "direct writes, pause and resume of reading, abort"),
    Internal(WS, "config", "ws_max_size and the hub's close timeout"),
    Internal(WS, "client", "the peer's address in log lines"),
    Internal(WS, "logger", "uvicorn's error logger"),
    Internal(WS, "loop", "the lingering close's timer"),
    # ---- the websockets connection uvicorn builds (its conn) -----------------------------------------------------
    Internal(WS_CONN, "debug", "switched off: websockets would log every frame, tokens included"),
    Internal(WS_CONN, "max_message_size", "hub.frame_limit changes it per socket"),
    Internal(WS_CONN, "extensions", "no per-message deflate negotiated: frames are written by the hub"),
    Internal(WS_CONN, "state", "direct writes only while OPEN"),
    Internal(WS_CONN, "close_sent", "the close frame's code and reason after a protocol error"),
    Internal(WS_CONN, "send_text", "frames text when an extension is negotiated", params=("data", "fin")),
    Internal(WS_CONN, "send_close", "a 1007 close for invalid UTF-8", params=("code", "reason")),
    Internal(WS_CONN, "data_to_send", "what websockets has framed, written by the hub", params=()),
    # ---- HubHTTPProtocol -------------------------------------------------------------------------------------------
    Internal(H11, "__init__", "overridden: the edge's state and its own h11 connection", params=PROTOCOL_INIT),
    Internal(
        H11, "connection_made", "overridden: send buffer, request deadline, per-address cap", params=("transport",)
    ),
    Internal(H11, "data_received", "overridden: the request deadline, dropped input while lingering", params=("data",)),
    Internal(
        H11,
        "handle_events",
        "reads requests through conn.next_event, where the edge's checks run",
        params=(),
        source_mentions=("self.conn.next_event()", "self.handle_websocket_upgrade("),
    ),
    Internal(
        H11, "on_response_complete", "overridden: lingering after an early answer, pipelined deadlines", params=()
    ),
    Internal(
        H11,
        "handle_websocket_upgrade",
        "overridden: the address slot goes to the WebSocket protocol",
        params=("event",),
        source_mentions=("self.transport.set_protocol(",),
    ),
    Internal(
        H11,
        "shutdown",
        "overridden: tells the app (SSE streams end with 1001); a connection already ending is closed at once",
        params=(),
    ),
    Internal(
        H11, "connection_lost", "overridden: the deadline, pending body and address slot are released", params=("exc",)
    ),
    Internal(H11, "conn", "replaced by the edge's h11 connection (next_event checks each event)"),
    Internal(H11, "cycle", "the request in progress, ended by a refusal during its body"),
    Internal(H11, "transport", "refusals, lingering, the socket's send buffer"),
    Internal(H11, "config", "the hub's settings carried on uvicorn's Config"),
    Internal(H11, "client", "the peer's address for the per-address cap"),
    Internal(H11, "loop", "the request deadline's timer"),
    Internal(H11, "app", "the loaded app (in uvicorn's middleware), told at shutdown: HubApp.going_away"),
    Internal(CYCLE, "response_started", "a refusal during the body cannot replace an answer already begun"),
    Internal(CYCLE, "disconnected", "set by a refusal: the app's receive says http.disconnect"),
    Internal(CYCLE, "message_event", "set by a refusal: wakes the app's receive"),
)
