"""Runs an ASGI peer under uvicorn with the same event loop, HTTP and WebSocket implementation as the hub."""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from peer_loop import peer_loop

# The hub serves with uvicorn's sans-I/O `websockets` protocol over h11 on the default asyncio loop
# (hub/server.py), without per-message deflate and without an access log. Every uvicorn peer uses exactly
# that, so the comparison is between the apps, not between WebSocket stacks. Everything else (ping
# interval, frame size limit, lifespan) stays at uvicorn's defaults, as a user of each project would run it.
# PEER_LOOP=uvloop (benchmarks/compare.py --loop uvloop) runs every peer on uvloop instead, as HUB_LOOP does
# the hub.
UVICORN_OPTIONS: dict[str, Any] = {
    "loop": peer_loop(),
    "http": "h11",
    "ws": "websockets-sansio",
    "ws_per_message_deflate": False,
    "log_level": "warning",
    "access_log": False,
}


def parse_address(description: str) -> argparse.Namespace:
    """Read --host and --port from the command line."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    return parser.parse_args()


def serve(app: Any, description: str) -> None:
    """Serve `app` on the --host/--port given on the command line until SIGINT or SIGTERM."""
    address = parse_address(description)
    uvicorn.run(app, host=address.host, port=address.port, **UVICORN_OPTIONS)
