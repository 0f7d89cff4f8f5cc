"""The minimal `websockets` peer: rooms as sets of connections, fan-out with `websockets.broadcast()`.

This one is not under uvicorn: it *is* the `websockets` library's own asyncio server
(websockets.asyncio.server.serve) on the default asyncio loop (uvloop with PEER_LOOP=uvloop, as the uvicorn
peers), without per-message deflate, the pattern from the library's broadcast guide. Plain protocol on /ws:

    {"type": "join", "room": R}            -> {"type": "joined", "room": R}
    {"type": "send", "room": R, "text": T} -> {"type": "message", "room": R, "text": T} to room R,
                                              then {"type": "ack"} to the sender
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
from http import HTTPStatus

import websockets
from peer_loop import peer_loop
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

rooms: dict[str, set[ServerConnection]] = {}


def route(connection: ServerConnection, request: Request) -> Response | None:
    if request.path != "/ws":
        return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
    return None


async def handle(connection: ServerConnection) -> None:
    joined: set[str] = set()
    try:
        async for frame in connection:
            try:
                message = json.loads(frame)
            except ValueError:
                continue  # malformed input is ignored
            if not isinstance(message, dict) or not isinstance(message.get("room"), str):
                continue
            room = message["room"]
            if message.get("type") == "join":
                rooms.setdefault(room, set()).add(connection)
                joined.add(room)
                await connection.send(json.dumps({"type": "joined", "room": room}))
            elif message.get("type") == "send" and isinstance(message.get("text"), str):
                event = json.dumps({"type": "message", "room": room, "text": message["text"]})
                websockets.broadcast(rooms.get(room, ()), event)
                await connection.send('{"type": "ack"}')
    finally:
        for room in joined:
            members = rooms[room]
            members.discard(connection)
            if not members:
                del rooms[room]


async def main(host: str, port: int) -> None:
    # compression=None: no per-message deflate, like the hub and the uvicorn peers.
    async with serve(handle, host, port, process_request=route, compression=None) as server:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, server.close)
        await server.wait_closed()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    address = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if peer_loop() == "uvloop":
        import uvloop

        uvloop.run(main(address.host, address.port))  # Python 3.11: asyncio.run has no loop_factory
    else:
        asyncio.run(main(address.host, address.port))
