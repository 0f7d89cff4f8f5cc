"""One WebSocket to a hub: the URL rules, opening it up to the ``hello``, and how a lost socket is described."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.typing import Subprotocol

from hub.client.types import Cause
from hub.protocol import SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX

ABNORMAL_CLOSURE = 1006  # no close frame: the socket dropped, or could not be opened


def socket_url(url: str) -> str:
    """``url`` as a hub socket URL: ``ws(s)://`` as given, ``http(s)://`` mapped to ``ws(s)://``, ``/ws`` as the path
    when there is none. Raises ValueError for anything else (another scheme, no host)."""
    parts = urlsplit(url.strip())
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme.lower(), parts.scheme.lower())
    if scheme not in ("ws", "wss"):
        raise ValueError(f"{url!r} is not a hub URL: use ws://host:port/ws (or wss://, http://, https://)")
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host")
    try:
        parts.port  # noqa: B018  # urlsplit checks the port only when asked
    except ValueError as exc:
        raise ValueError(f"{url!r}: {exc}") from None
    return urlunsplit((scheme, parts.netloc, parts.path or "/ws", parts.query, ""))


@dataclass(frozen=True, slots=True)
class Loss:
    """Why a socket was lost, or an attempt failed."""

    code: int | None
    reason: str
    cause: Cause
    url: str


@dataclass(frozen=True, slots=True)
class Opened:
    ws: ClientConnection
    hello: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SocketOptions:
    connect_timeout: float
    close_timeout: float
    max_message_bytes: int


def closed_loss(exc: ConnectionClosed, url: str) -> Loss:
    frame = exc.rcvd
    if frame is None:
        return Loss(ABNORMAL_CLOSURE, "The connection dropped without a close frame.", "closed", url)
    return Loss(frame.code, frame.reason, "closed", url)


async def open_socket(url: str, token: str | None, options: SocketOptions) -> Opened | Loss:
    """Open a socket and read the hub's ``hello``, within ``connect_timeout``; or say why that failed."""
    subprotocols = [Subprotocol(SUBPROTOCOL)]
    if token:
        subprotocols.append(Subprotocol(TOKEN_SUBPROTOCOL_PREFIX + token))
    ws: ClientConnection | None = None
    try:
        async with asyncio.timeout(options.connect_timeout):
            ws = await connect(
                url,
                subprotocols=subprotocols,
                compression=None,  # the hub never negotiates per-message deflate
                open_timeout=None,  # connect_timeout covers the whole attempt, hello included
                ping_interval=None,  # the hub's own pings (op "ping") are the heartbeat; it ignores protocol pings
                close_timeout=options.close_timeout,
                max_size=options.max_message_bytes,
            )
            raw = await ws.recv()
    except asyncio.CancelledError:
        abort(ws)  # the client was closed during the attempt: no socket is left behind
        raise
    except TimeoutError:
        abort(ws)
        return Loss(None, f"No hello from the hub within {options.connect_timeout:g} s.", "connect_timeout", url)
    except ConnectionClosed as exc:
        return closed_loss(exc, url)
    except InvalidStatus as exc:
        status = exc.response.status_code
        return Loss(None, f"The hub refused the upgrade with HTTP {status}.", "refused", url)
    except InvalidURI as exc:
        return Loss(None, f"Cannot open {url}: {exc}", "error", url)
    except (OSError, InvalidHandshake) as exc:
        return Loss(ABNORMAL_CLOSURE, f"Could not connect to {url}: {exc or type(exc).__name__}", "closed", url)
    frame = decode(raw)
    if frame is None or frame.get("op") != "hello":
        abort(ws)
        return Loss(None, f"{url} did not answer with the hub's hello.", "protocol", url)
    return Opened(ws, frame)


def decode(raw: str | bytes) -> dict[str, Any] | None:
    """A frame from the hub, or None when it is not a JSON object in a text frame."""
    if not isinstance(raw, str):
        return None
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return frame if isinstance(frame, dict) else None


def abort(ws: ClientConnection | None) -> None:
    """Drop a socket that looks dead without waiting for a close handshake."""
    if ws is not None:
        ws.transport.abort()  # a no-op on a transport that is already closed
