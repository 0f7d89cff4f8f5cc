#!/usr/bin/env python3
"""An echo WebSocket endpoint served exactly as ``hub serve`` serves /ws, for the Autobahn fuzzing client.

The hub's /ws speaks its own JSON protocol, so the WebSocket layer's conformance is tested on an echo app
behind the same ``hub.server.uvicorn_config``: ``HubHTTPProtocol`` (handshake deadline) and
``HubWebSocketProtocol`` (its receive queue, flow control and framing), ``ws_max_size`` = the hub's
``max_frame_bytes``, no per-message deflate, no WebSocket pings, the hub's event loop. Every message comes back
as it arrived, text as text and binary as binary; a plain HTTP request gets 404.

    .venv/bin/python benchmarks/autobahn/echo.py --port 9001       # prints "ready <port>" once listening
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def echo_app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
    elif scope["type"] == "http":
        await receive()
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"WebSocket echo only\n"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9001, help="0 picks a free port (printed)")
    args = parser.parse_args()

    import socket

    import uvicorn

    from hub.server import uvicorn_config
    from hub.settings import HubSettings

    # The hub's settings as `hub serve` reads them (HUB_MAX_FRAME_BYTES, HUB_LOOP, ... from the environment).
    settings = HubSettings(host="127.0.0.1", port=args.port, log_level=os.environ.get("HUB_LOG_LEVEL", "warning"))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)  # connections made from now on wait in the backlog until uvicorn serves them
    config = uvicorn_config(echo_app, settings, lifespan="off")
    server = uvicorn.Server(config)
    print(f"ready {sock.getsockname()[1]} max_frame_bytes {settings.max_frame_bytes} loop {config.loop}", flush=True)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
