"""The ASGI scope extensions the hub's uvicorn protocol adds to each WebSocket scope: their names and what each holds.

``hub.server.HubWebSocketProtocol`` provides all three (under ``hub serve`` and ``hub.testing``); the app finds them
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


class Abort(TypedDict):
    abort: Callable[[], None]


class FrameLimit(TypedDict):
    set: Callable[[int], None]  # the largest message in bytes, from now on


class SendTexts(TypedDict):
    send_texts: Callable[[list[str]], Awaitable[None]]  # raises ClientDisconnected like ``websocket.send``
    try_send: Callable[[str], bool]  # False: not written (paused, closing), the caller queues it
