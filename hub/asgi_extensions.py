"""The ASGI scope extensions the hub's uvicorn protocol adds to each WebSocket scope: their names and what each holds.

``hub.server.HubWebSocketProtocol`` provides all four (under ``hub serve`` and ``hub.testing``); the app finds them
in ``scope["extensions"]`` and does without them under any other ASGI server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypedDict

ABORT_EXTENSION = "hub.abort"
"""Drop the socket now, with a TCP reset, for a peer that stopped reading (a close frame could not be written):
:class:`Abort`. Read by hub/connection.py for each session."""

FRAME_LIMIT_EXTENSION = "hub.frame_limit"
"""Change this socket's largest incoming message (a plugin route's own limit, ``Hub.limit_websocket_frames``):
:class:`FrameLimit`. Read by hub/app.py before a plugin's WebSocket route runs."""

SEND_TEXTS_EXTENSION = "hub.send_texts"
"""Write text frames straight to the socket: several with one write, or one now without a task switch when flow
control allows: :class:`SendTexts`. Read by hub/connection.py for each session (hub/session.py writes with it)."""


SHUTDOWN_EXTENSION = "hub.shutdown"
"""The server is stopping (SIGTERM/SIGINT) and lets the app close this socket itself: :class:`GracefulShutdown`.
Once the app has enabled it, the server stops reading the socket and hands the app one more receive event,
``{"type": SHUTDOWN_MESSAGE}``, after the messages it had already read; the app answers those, then closes with 1001
(``SHUTDOWN_REASON``). A socket whose app has not enabled it is closed by the server with 1001 at once. Enabled by
hub/connection.py for each session."""

SHUTDOWN_MESSAGE = "hub.shutdown"
SHUTDOWN_REASON = "This hub node is shutting down; reconnect."
"""The reason of every close with 1001 (going away) when a node stops."""


class Abort(TypedDict):
    abort: Callable[[], None]


class FrameLimit(TypedDict):
    set: Callable[[int], None]  # the largest message in bytes, from now on


class GracefulShutdown(TypedDict):
    enable: Callable[[], None]  # the app handles SHUTDOWN_MESSAGE on this socket and closes it itself


class SendTexts(TypedDict):
    send_texts: Callable[[list[str]], Awaitable[None]]  # raises ClientDisconnected like ``websocket.send``
    try_send: Callable[[str], bool]  # False: not written (paused, closing), the caller queues it
