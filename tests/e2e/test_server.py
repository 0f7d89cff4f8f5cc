"""hub.server's hardening of uvicorn, seen from outside: deadlines that must not hit healthy sockets."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, WebSocket


async def test_handshake_deadline_never_closes_an_upgraded_socket(hub_server, hub_client):
    server = hub_server(handshake_timeout=0.3, heartbeat_interval=0.1, heartbeat_timeout=1.0)
    alice = await hub_client(server, user="alice")
    await alice.sub("chat:lobby")
    await asyncio.sleep(1.0)  # well past the handshake deadline
    posted = await alice.pub("chat:lobby", "chat.send", {"text": "still here"})
    assert (await alice.next_event("chat:lobby", "chat.posted"))["data"]["id"] == posted["id"]


async def test_http_keep_alive_connection_outlives_the_handshake_deadline(hub_server):
    server = hub_server(handshake_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        assert b"200 OK" in await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(0.6)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        body = await asyncio.wait_for(reader.read(4096), 2)
        assert b'{"status":"ok"}' in body or b"200 OK" in body
    finally:
        writer.close()


async def test_per_message_deflate_is_never_negotiated(hub_server):
    import websockets

    server = hub_server()
    async with websockets.connect(server.ws_url, subprotocols=["hub.v1"], compression="deflate") as ws:
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        assert ws.response.headers["Sec-WebSocket-Protocol"] == "hub.v1"


async def test_metrics_count_connections_errors_and_events(hub_server, hub_client):
    import httpx

    server = hub_server()
    alice = await hub_client(server, user="alice")
    await alice.sub("chat:lobby")
    await alice.pub("chat:lobby", "chat.send", {"text": "counted"})
    await alice.send_raw("not json")
    assert (await alice.next_unsolicited())["code"] == "bad_request"
    async with httpx.AsyncClient(base_url=server.url) as http:
        text = (await http.get("/metrics")).text
    assert "hub_connections 1" in text
    assert 'hub_errors_total{code="bad_request"} 1' in text
    assert "hub_events_published_total 2" in text  # chat.joined and chat.posted
    assert "hub_channels 1" in text


async def test_a_plugin_websocket_route_goes_through_fastapi_beside_the_hub_socket(hub_server, hub_client):
    # /ws is served straight from the ASGI call (hub.app.HubApp); every other socket route is FastAPI's as
    # usual, and keeps its request headers after the accept.
    import websockets

    from hub import hookimpl
    from hub_realtime_plugins.chat import Chat

    router = APIRouter()

    @router.websocket("/echo")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        text = await websocket.receive_text()
        await websocket.send_text(f"{text} from {websocket.headers.get('x-who', '?')}")
        await websocket.close()

    class EchoPlugin:
        @hookimpl
        def hub_http_routes(self, hub):
            return router

    server = hub_server(plugins={"chat": Chat, "echo": EchoPlugin()})
    url = server.ws_url.removesuffix("/ws") + "/echo"
    async with websockets.connect(url, additional_headers={"X-Who": "alice"}) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello from alice"
    alice = await hub_client(server, user="alice")
    await alice.sub("chat:lobby")
    posted = await alice.pub("chat:lobby", "chat.send", {"text": "beside it"})
    assert (await alice.next_event("chat:lobby", "chat.posted"))["data"]["id"] == posted["id"]


async def test_a_burst_past_the_receive_high_water_mark_is_answered_in_order(hub_server, hub_client):
    # 200 pings in one TCP write: the socket's reading pauses once RECEIVE_HIGH_WATER messages wait for the
    # hub and resumes when they are taken, so all of them are answered, in order, and nothing is dropped.
    import websockets

    from hub.server import RECEIVE_HIGH_WATER

    count = 200
    assert count > RECEIVE_HIGH_WATER
    server = hub_server(rate_limit=10_000, rate_burst=10_000)
    async with websockets.connect(server.ws_url, subprotocols=["hub.v1"]) as ws:
        assert '"hello"' in await ws.recv()
        transport = ws.transport
        frames = []
        for i in range(count):
            ws.protocol.send_text(f'{{"op":"ping","id":{i}}}'.encode())
            frames.extend(ws.protocol.data_to_send())
        transport.write(b"".join(frames))
        ids = [json.loads(await asyncio.wait_for(ws.recv(), 5))["id"] for _ in range(count)]
        assert ids == list(range(count))
        await ws.send('{"op":"ping","id":"after"}')  # reading resumed: a later frame is read and answered
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["id"] == "after"
