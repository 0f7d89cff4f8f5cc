"""The wire protocol (docs/protocol.md) as an AsyncAPI 3.0.0 document, for code generators and API catalogs:
``hub schema --format asyncapi`` prints it for the installed plugins, ``GET /asyncapi.json`` serves the running
node's.

What it holds:

- one server, the hub's socket (``ws://<host>/ws``), with the three ways to give a token;
- the channel ``socket``: the frames that name no hub channel (``hello``, ``auth``, ``ping``, ``pong``, an ``err``
  without a request), the error codes (``ErrorCode``) and the close codes (``CloseCode``, also as the channel's
  ``x-close-codes``);
- one channel per channel family, address ``<namespace>:{room}``: its ``sub`` and the reply (with the channel's
  snapshot, recovery and presence members), ``unsub``, the hub's own ``unsub`` notice, a ``pub`` per message type
  and its reply (the handler's return value), an ``ev`` per event type, ``presence`` on presence channels, and
  the ``err`` reply;
- operations from the hub's side: it *receives* what clients send and *sends* the rest; every request operation
  names its replies.

Every model's JSON Schema is pydantic's, as ``hub schema`` makes it (hub/schema.py: what the hub accepts for a
message, what it writes for an event, a snapshot or a reply), with its definitions moved under
``components/schemas`` (``<namespace>.in.<Model>`` / ``<namespace>.out.<Model>``) so that every ``$ref`` resolves in
the one document.
"""

from __future__ import annotations

import re
import typing
from typing import Any

from pydantic import BaseModel

from hub.asyncapi_channels import _family_channel
from hub.asyncapi_core import ASYNCAPI_VERSION as ASYNCAPI_VERSION
from hub.asyncapi_core import CLOSE_CODES as CLOSE_CODES
from hub.asyncapi_core import ERROR_CODES as ERROR_CODES
from hub.asyncapi_core import PLUGIN_CLOSE_CODES as PLUGIN_CLOSE_CODES
from hub.asyncapi_core import ROOM_PATTERN as ROOM_PATTERN
from hub.asyncapi_core import SOCKET as SOCKET
from hub.asyncapi_core import _core_schemas, _Document, _other_ops, _ref, _socket_channel
from hub.protocol import PROTOCOL_VERSION, SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX, ClientFrame
from hub.router import Router
from hub.schema import InboundJsonSchema


def asyncapi_document(router: Router, *, host: str = "localhost:8000", secure: bool = False) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of a hub serving ``router``'s channel families, reached at ``host``."""
    doc = _Document()
    frames = doc.models(
        [typing.cast(type[BaseModel], frame) for frame in typing.get_args(ClientFrame)],
        prefix="hub.",
        mode="validation",
        generator=InboundJsonSchema,
    )
    _core_schemas(doc)
    _socket_channel(doc, frames)
    _other_ops(doc, frames)
    for namespace, channel in sorted(router.channels.items()):
        _family_channel(doc, namespace, router.owner(namespace), channel, frames)
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Hub wire protocol",
            "version": str(PROTOCOL_VERSION),
            "description": _DESCRIPTION,
        },
        "defaultContentType": "application/json",
        "servers": asyncapi_servers(host, secure=secure),
        "channels": doc.channels,
        "operations": doc.operations,
        "components": {"schemas": doc.schemas, "messages": doc.messages, "securitySchemes": _SECURITY},
    }


_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")


def server_host(host_header: str | None, fallback: str) -> str:
    """The host clients reach the hub at: a request's ``Host`` header when it is a plain ``name[:port]``, else
    ``fallback`` (the bound address)."""
    if host_header is not None and _HOST.fullmatch(host_header):
        return host_header
    return fallback


def asyncapi_servers(host: str, *, secure: bool = False) -> dict[str, Any]:
    """The document's ``servers``: the hub's socket at ``host`` (``name:port``), ``wss`` behind TLS."""
    return {
        "hub": {
            "host": host,
            "protocol": "wss" if secure else "ws",
            "pathname": "/ws",
            "title": "The hub's socket",
            "description": f"Offer the subprotocol `{SUBPROTOCOL}`. Frames are WebSocket text frames, one JSON "
            "object each. Give a token in the handshake (the subprotocol "
            f"`{TOKEN_SUBPROTOCOL_PREFIX}<jwt>` or `?token=<jwt>`) or later in an `auth` frame; without one "
            "the connection is a guest, or, with anonymous mode off, has no identity until `auth`.",
            "security": [_ref("components", "securitySchemes", name) for name in _SECURITY],
        }
    }


_DESCRIPTION = (
    "Everything that travels over a hub WebSocket, from the hub's side: it *receives* the frames clients send and "
    "*sends* the rest (a client does the opposite). Every frame is a JSON object with an `op`. Requests may carry "
    "an `id` (an integer 0..2^53 or a string of at most 64 characters), echoed by their one reply: `ok`, `err` "
    "(the socket stays open; `code` is an `ErrorCode` or a plugin's own) or `pong`. A hub channel is "
    "`<namespace>:<room>`; every channel family below is one plugin's, and all of them travel over the one "
    "socket (the `ch` member of each frame names the channel). Close codes: the `CloseCode` schema and "
    "the socket channel's `x-close-codes`."
)

_SECURITY: dict[str, Any] = {
    "tokenSubprotocol": {
        "type": "httpApiKey",
        "in": "header",
        "name": "Sec-WebSocket-Protocol",
        "description": f"A JWT as the subprotocol `{TOKEN_SUBPROTOCOL_PREFIX}<jwt>`, offered next to "
        f"`{SUBPROTOCOL}` (never echoed). Optional while anonymous mode is on; an `auth` frame may give it "
        "instead.",
    },
    "tokenQuery": {
        "type": "httpApiKey",
        "in": "query",
        "name": "token",
        "description": "A JWT as `?token=<jwt>`, used when no token subprotocol was offered.",
    },
}
