"""Connections per peer address over real sockets: past ``max_connections_per_address`` a new connection from that
address is answered 429, HTTP and WebSocket handshakes alike, while another address still connects; a slot comes
back when a connection ends, however it ends. Peers uvicorn trusts as proxies (FORWARDED_ALLOW_IPS, 127.0.0.1 and
::1 by default) are not capped. Linux routes all of 127.0.0.0/8 to loopback, so clients bind 127.0.0.2 and
127.0.0.3 as two addresses."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from hub.testing import HubServer, wait_until

CAPPED, OTHER = "127.0.0.2", "127.0.0.3"


async def connected_socket(port: int, source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


@pytest.fixture
async def sockets_from() -> AsyncIterator[Any]:
    """``await sockets_from(server, source)`` -> an open hub WebSocket whose peer address is ``source``."""
    opened: list[ClientConnection] = []

    async def connect(server: HubServer, source: str) -> ClientConnection:
        sock = await connected_socket(server.port, source)
        try:
            ws = await websockets.connect(server.ws_url, sock=sock, subprotocols=["hub.v1"])  # type: ignore[list-item]
        except BaseException:
            sock.close()
            raise
        opened.append(ws)
        assert orjson.loads(await ws.recv())["op"] == "hello"
        return ws

    yield connect
    for ws in opened:
        with contextlib.suppress(Exception):
            await ws.close()


async def refused_handshake(server: HubServer, source: str) -> int:
    """The HTTP status of a WebSocket handshake from ``source`` that the hub refuses."""
    sock = await connected_socket(server.port, source)
    try:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(server.ws_url, sock=sock, subprotocols=["hub.v1"])  # type: ignore[list-item]
    finally:
        sock.close()
    return refused.value.response.status_code


async def pong(ws: ClientConnection, request_id: int) -> None:
    """The socket still works: a ping is answered (the hub's own heartbeat pings in between are skipped)."""
    await ws.send(orjson.dumps({"op": "ping", "id": request_id}).decode())
    while (frame := orjson.loads(await asyncio.wait_for(ws.recv(), 3))).get("op") == "ping":
        pass
    assert frame == {"op": "pong", "id": request_id}


async def healthz_from(server: HubServer, source: str) -> httpx.Response:
    transport = httpx.AsyncHTTPTransport(local_address=source)
    async with httpx.AsyncClient(base_url=server.url, transport=transport) as http:
        return await http.get("/healthz")


async def test_past_the_cap_an_address_gets_429_and_another_address_still_connects(hub_server, sockets_from):
    server = hub_server(max_connections_per_address=3)
    capped = [await sockets_from(server, CAPPED) for _ in range(3)]

    assert await refused_handshake(server, CAPPED) == 429  # before the WebSocket accept
    refused = await healthz_from(server, CAPPED)
    assert refused.status_code == 429
    assert "at most 3" in refused.json()["detail"]
    assert refused.headers["connection"] == "close"

    other = await sockets_from(server, OTHER)
    await pong(other, 1)
    assert (await healthz_from(server, OTHER)).status_code == 200

    await capped[0].close()  # a slot comes back when a connection ends
    await wait_until(lambda: admission(server).connections_from(CAPPED) == 2)
    await sockets_from(server, CAPPED)
    for ws in capped[1:]:  # the ones already open were never disturbed
        await pong(ws, 2)


async def test_kept_alive_http_connections_count_and_an_aborted_socket_gives_its_slot_back(hub_server, sockets_from):
    server = hub_server(max_connections_per_address=2)
    loop = asyncio.get_running_loop()
    http = await connected_socket(server.port, CAPPED)
    try:
        await loop.sock_sendall(http, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await asyncio.wait_for(loop.sock_recv(http, 4096), 3)).startswith(b"HTTP/1.1 200")
        ws = await sockets_from(server, CAPPED)  # the kept-alive HTTP connection holds the other slot
        assert await refused_handshake(server, CAPPED) == 429

        # A reset, not a close: the WebSocket's slot is released all the same.
        sock = ws.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ws.transport.abort()
        await wait_until(lambda: admission(server).connections_from(CAPPED) == 1)
        await sockets_from(server, CAPPED)
    finally:
        http.close()
    await wait_until(lambda: admission(server).connections_from(CAPPED) == 1)


@pytest.mark.parametrize(("source", "cap"), [("127.0.0.1", 2), (CAPPED, 0)], ids=["trusted-proxy-address", "cap-off"])
async def test_a_trusted_proxy_address_or_a_zero_cap_is_never_capped(hub_server, sockets_from, source, cap):
    server = hub_server(max_connections_per_address=cap)
    for _ in range(5):
        await sockets_from(server, source)
    assert (await healthz_from(server, source)).status_code == 200


def admission(server: HubServer) -> Any:
    assert server._server is not None
    return server._server.config.hub_admission  # type: ignore[attr-defined]
