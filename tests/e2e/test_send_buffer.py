"""HUB_SEND_BUFFER_BYTES: a fixed kernel send buffer keeps what a slow reader has not taken in the hub's queue
(where conflating channels keep only the latest event), instead of megabytes of it in the kernel."""

from __future__ import annotations

import re
import socket
from typing import Any

import httpx
import orjson
import websockets
from websockets.typing import Subprotocol

from hub.protocol import SUBPROTOCOL
from tests.e2e import ticker_plugin

EVENT_BYTES = 4096
EVENTS = 200  # 800 KB: far more than a fixed 8 KB buffer (+64 KB in the transport) holds, far less than 4 MB


async def queued_frames(url: str) -> float:
    async with httpx.AsyncClient(base_url=url) as http:
        text = (await http.get("/metrics")).text
    found = re.search(r"^hub_send_queue_frames (\S+)$", text, re.MULTILINE)
    assert found is not None
    return float(found.group(1))


async def test_a_fixed_send_buffer_keeps_a_slow_readers_backlog_in_the_hub(hub_server: Any, hub_client: Any) -> None:
    server = hub_server(plugins={"ticker": ticker_plugin.Ticker}, send_buffer_bytes=8192, heartbeat_timeout=30.0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    slow = await websockets.connect(
        server.ws_url, sock=sock, subprotocols=[Subprotocol(SUBPROTOCOL)], max_queue=1, close_timeout=0.2
    )
    try:
        assert orjson.loads(await slow.recv())["op"] == "hello"
        await slow.send(orjson.dumps({"op": "sub", "ch": "ticker:buffer", "id": 1}).decode())
        assert orjson.loads(await slow.recv())["op"] == "ok"
        publisher = await hub_client(server, user="pub")
        await publisher.pub("ticker:buffer", "ticker.burst", {"count": EVENTS, "size": EVENT_BYTES})
        # The slow reader takes nothing more: most of the 800 KB must wait in the hub's send queue.
        assert await queued_frames(server.url) > EVENTS / 2
        # And it all arrives once the reader reads again, in order.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        seqs = []
        while len(seqs) < EVENTS:
            frame = orjson.loads(await slow.recv())
            if frame["op"] == "ev":
                seqs.append(frame["data"]["seq"])
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == EVENTS
    finally:
        await slow.close()
