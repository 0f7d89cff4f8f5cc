"""The hub's HTTP/1.1 protocol for uvicorn: h11 plus the edge rules every connection meets before the app sees a
request — a deadline until the whole request (body included) has arrived, a cap on request bodies, a bound on
requests still sending their body, and a cap on connections per peer address."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import h11
import orjson
from uvicorn.protocols.http.h11_impl import H11Protocol

from hub.admission import Admission

# After an answer that ends the connection while the client may still be sending, its input is read and dropped
# until it closes, until LINGER_QUIET seconds pass without any, or for LINGER_SECONDS in all (both at most the
# request deadline).
LINGER_QUIET = 0.5
LINGER_SECONDS = 2.0
access_log = logging.getLogger("hub.access")


def refusal(status: int, detail: str) -> bytes:
    """A whole HTTP/1.1 response with a one-line JSON body (``{"detail": ...}``, as FastAPI's errors), which
    closes the connection."""
    body = orjson.dumps({"detail": detail})
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


def body_framing(headers: Any) -> tuple[int | None, bool]:
    """The request's ``Content-Length`` (h11 has checked it) and whether its body is chunked."""
    length: int | None = None
    chunked = False
    for name, value in headers:
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = True  # h11 accepts only "chunked"
    return length, chunked


class _EdgeConnection(h11.Connection):
    """h11's server side, letting the protocol look at each request head and body chunk before uvicorn acts on it
    (uvicorn reads events in a loop of its own). A refused event ends that loop as if more data were needed: the
    protocol has answered and is closing."""

    def __init__(self, admit: Callable[[h11.Event], bool], max_incomplete_event_size: int | None) -> None:
        if max_incomplete_event_size is None:
            super().__init__(h11.SERVER)
        else:
            super().__init__(h11.SERVER, max_incomplete_event_size)
        self._admit = admit

    def next_event(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        event = super().next_event()
        if isinstance(event, h11.Request | h11.Data | h11.EndOfMessage) and not self._admit(event):
            return h11.NEED_DATA
        return event


class HubHTTPProtocol(H11Protocol):
    """uvicorn's h11 protocol with the hub's edge rules. A refusal is a one-line JSON answer that closes the
    connection, given before the app sees the request (or, past the body cap, instead of its answer)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Read from the config (not class attributes) so the class stays importable for worker processes.
        config = self.config
        self._timeout: float = getattr(config, "hub_handshake_timeout", 10.0)
        self._max_body: int | None = getattr(config, "hub_max_body_bytes", None)
        self._admission: Admission | None = getattr(config, "hub_admission", None)
        self.conn = _EdgeConnection(self._admit_event, config.h11_max_incomplete_event_size)
        self._deadline: asyncio.TimerHandle | None = None
        self._address: str | None = None  # counted against the per-address cap until the connection ends
        self._body_bytes = 0  # of the current request, as received
        self._waiting_for_body = False  # counted in the admission's pending bodies
        self._draining = False  # answered, and ending: the rest of the input is dropped (see _linger)
        self._linger_until = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        send_buffer = getattr(self.config, "hub_send_buffer", None)
        if send_buffer:
            # A fixed kernel send buffer instead of Linux's autotuning (up to 4 MB), and the transport's own
            # buffer bounded to the same size (asyncio's default is 64 KiB): what a slow reader has not taken
            # waits in the hub's queue, where conflating channels keep only the latest event.
            transport.set_write_buffer_limits(high=send_buffer)
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        self._arm_deadline(self._timeout)
        admission, host = self._admission, self.client[0] if self.client else None
        if admission is not None and host is not None and admission.counts(host):
            if not admission.acquire(host):
                self._refuse(429, f"Too many connections from your address (at most {admission.max_per_address}).")
                return
            self._address = host

    # ---- the request deadline: from a request's first byte until its body is complete ----------------------

    def _arm_deadline(self, seconds: float) -> None:
        self._cancel_deadline()
        self._deadline = self.loop.call_later(seconds, self._deadline_passed)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._draining:
            remaining = self._linger_until - self.loop.time()
            if remaining > 0:
                self._arm_deadline(min(self._timeout, LINGER_QUIET, remaining))
            elif not self.transport.is_closing():
                self.transport.close()
            return
        if self._deadline is None and self.conn.their_state is h11.IDLE:
            self._arm_deadline(self._timeout)  # the first bytes of the next request of a kept-alive connection
        super().data_received(data)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing() or self._draining:
            return
        if self.conn.their_state is h11.SEND_BODY:
            # Answered before the body was read (a 401 from the headers): nothing waits for the rest of it, and a
            # client that never sends it must not keep the connection or its place among the pending bodies.
            self._linger()
        elif self._deadline is None and self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
            # uvicorn has gone on to a pipelined request already buffered, whose head is still incomplete: it is
            # on the clock from now.
            self._arm_deadline(self._timeout)

    # ---- what each request may bring ----------------------------------------------------------------------

    def _admit_event(self, event: h11.Event) -> bool:
        if isinstance(event, h11.Request):
            return self._admit_request(event)
        if isinstance(event, h11.Data):
            self._body_bytes += len(event.data)
            if self._max_body is not None and self._body_bytes > self._max_body:
                self._refuse(413, self._too_large(), during_body=True)
                return False
            return True
        self._end_body()  # EndOfMessage: the request is complete
        self._cancel_deadline()
        return True

    def _admit_request(self, event: h11.Request) -> bool:
        self._body_bytes = 0
        if self._deadline is None:
            self._arm_deadline(self._timeout)
        length, chunked = body_framing(event.headers)
        if self._max_body is not None and length is not None and length > self._max_body:
            self._refuse(413, self._too_large(), event)
            return False
        if chunked or (length and len(self.conn.trailing_data[0]) < length):  # the body is still to come
            admission = self._admission
            if admission is not None and not admission.begin_body(self):
                self._refuse(503, "Too many requests are sending their body right now; retry shortly.", event)
                return False
            self._waiting_for_body = admission is not None
        return True

    def _too_large(self) -> str:
        return f"The request body is larger than {self._max_body} bytes."

    def _end_body(self) -> None:
        if self._waiting_for_body and self._admission is not None:
            self._admission.end_body(self)
        self._waiting_for_body = False

    def _refuse(self, status: int, detail: str, event: h11.Request | None = None, *, during_body: bool = False) -> None:
        """Answer ``status`` instead of the app and end the connection (``_linger``)."""
        method, path = (event.method.decode(), event.target.decode().partition("?")[0]) if event else ("-", "-")
        host = self.client[0] if self.client else "-"
        access_log.info('%s "%s %s" %d refused at the HTTP edge', host, method, path, status)
        cycle = self.cycle if during_body else None
        if cycle is not None:
            if cycle.response_started:  # the app has begun its own answer; it cannot be replaced
                self._draining = True
                self._end_body()
                self.transport.close()
                return
            cycle.disconnected = True  # the app's receive() now says http.disconnect, and its sends go nowhere
            cycle.message_event.set()
        self.transport.write(refusal(status, detail))
        self._linger()

    def _linger(self) -> None:
        """End the connection after an answer while the client may still be sending (a body). Closing with unread
        input would reset the connection, and the client could lose the answer; so the answer goes out with a
        FIN, and what still comes in is dropped (``LINGER_QUIET``, ``LINGER_SECONDS``)."""
        self._draining = True
        self._end_body()
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self._linger_until = self.loop.time() + min(self._timeout, LINGER_SECONDS)
        self._arm_deadline(min(self._timeout, LINGER_QUIET))

    # ---- the end of the connection ------------------------------------------------------------------------

    def handle_websocket_upgrade(self, event: Any) -> None:
        # The socket now belongs to the WebSocket protocol; the request deadline must not close it later.
        self._cancel_deadline()
        super().handle_websocket_upgrade(event)
        if self._address is not None and self._admission is not None:
            self._hand_over_address(self.transport.get_protocol(), self._address, self._admission)
            self._address = None

    @staticmethod
    def _hand_over_address(protocol: asyncio.BaseProtocol, address: str, admission: Admission) -> None:
        """The upgraded connection still counts against its address. The transport reports its end only to the
        WebSocket protocol, so the slot is released from there."""
        lost = protocol.connection_lost

        def connection_lost(exc: Exception | None) -> None:
            admission.release(address)
            lost(exc)

        protocol.connection_lost = connection_lost  # type: ignore[method-assign]

    def shutdown(self) -> None:
        _tell_app_going_away(self.app)  # an SSE stream in progress would not hear of it otherwise
        if self._draining:  # answered and ending already: nothing for uvicorn to finish
            self.transport.close()
            return
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self._end_body()
        if self._address is not None and self._admission is not None:
            self._admission.release(self._address)
            self._address = None
        super().connection_lost(exc)


def _tell_app_going_away(app: Any) -> None:
    """Call the hub app's ``going_away`` (:meth:`hub.app.HubApp.going_away`) through the middleware uvicorn
    wrapped it in (each keeps the next as ``.app``). uvicorn's HTTP side tells a response in progress nothing when
    the server stops, so an SSE stream would otherwise get its close only when the shutdown bound runs out."""
    for _ in range(8):
        hook = getattr(app, "going_away", None)
        if callable(hook):
            hook()
            return
        app = getattr(app, "app", None)
        if app is None:
            return
