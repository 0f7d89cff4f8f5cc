"""The fallback transport (hub/sse.py) over real HTTP: the stream, POSTs, auth, origin, limits, heartbeats,
recovery, hijack attempts and the slow-consumer close, against a real hub, next to WebSocket clients."""

from __future__ import annotations

import asyncio
import os
import socket

import httpx
import orjson
import pytest

import hub_realtime_plugins.chat
from hub.protocol import CloseCode
from hub.testing import wait_until
from tests.e2e import ticker_plugin
from tests.sse_client import SSEClient

CHAT = {"chat": hub_realtime_plugins.chat.Chat}
TICKER = {"ticker": ticker_plugin.Ticker}


def room() -> str:
    return f"chat:r{os.urandom(4).hex()}"


@pytest.fixture
async def sse_client():
    clients: list[SSEClient] = []

    async def connect(server, user: str | None = None, **kwargs) -> SSEClient:
        if user is not None:
            kwargs["token"] = server.token(user)
        client = await SSEClient.connect(server.url, **kwargs)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        await client.close()


# ---- the session ----------------------------------------------------------------------------------------


async def test_hello_then_the_same_ops_as_the_socket(hub_server, hub_client, sse_client):
    server = hub_server(plugins=CHAT)
    alice = await sse_client(server, "alice")
    assert alice.hello["user"] == {"user": "alice", "name": "alice", "anonymous": False}
    assert alice.hello["transport"] == "sse"
    assert alice.hello["protocol"] == 1
    assert alice.hello["post_limits"] == {"max_bytes": 256 * 1024, "max_frames": 100}
    # the POST key is not the client id, which other members see in presence entries
    assert len(alice.key) >= 43
    assert alice.hello["client"] not in alice.key
    channel = room()
    reply = await alice.request({"op": "sub", "ch": channel})
    assert reply["op"] == "ok"
    assert reply["data"]["presence_count"] == 1
    bob = await hub_client(server, user="bob")
    await bob.sub(channel)
    joined = await alice.next_event(channel, "chat.joined")
    assert joined["data"]["user"] == "bob"

    # alice (SSE) publishes: bob (WebSocket) and alice get the event, alice the ack first
    reply = await alice.request({"op": "pub", "ch": channel, "type": "chat.send", "data": {"text": "over sse"}})
    assert reply["op"] == "ok"
    assert reply["data"]["text"] == "over sse"
    assert (await bob.next_event(channel, "chat.posted"))["data"]["text"] == "over sse"
    assert (await alice.next_event(channel, "chat.posted"))["data"]["text"] == "over sse"
    # bob publishes: alice's stream carries it
    await bob.pub(channel, "chat.send", {"text": "over ws"})
    assert (await alice.next_event(channel, "chat.posted"))["data"]["text"] == "over ws"

    # the same errors as on the socket
    bad = await alice.request({"op": "pub", "ch": channel, "type": "chat.send", "data": {"text": ""}})
    assert (bad["op"], bad["code"]) == ("err", "invalid")
    assert (await alice.request({"op": "nope"}))["code"] == "unknown_op"
    pong = await alice.request({"op": "ping"})
    assert pong["op"] == "pong"

    # leaving: the stream goes, the session ends, bob sees alice leave
    await alice.close()
    left = await bob.next_event(channel, "chat.left")
    assert left["data"]["user"] == "alice"
    hub = server.app.state.hub
    await wait_until(lambda: alice.hello["client"] not in hub.sessions, what="the session ended")


async def test_a_batch_is_handled_in_order_and_replies_come_on_the_stream(hub_server, sse_client):
    server = hub_server(plugins=CHAT)
    client = await sse_client(server, "alice")
    channel = room()
    frames = [{"op": "sub", "ch": channel, "id": 1}]
    frames += [
        {"op": "pub", "ch": channel, "type": "chat.send", "data": {"text": f"m{i}"}, "id": 2 + i} for i in range(5)
    ]
    body = "\n".join(orjson.dumps(frame).decode() for frame in frames) + "\n\n"  # blank lines are skipped
    answer = await client.http.post(f"/sse/{client.key}", content=body)
    assert answer.status_code == 204
    assert answer.content == b""
    replies = []
    while len(replies) < 6:
        frame = await client.next_frame()
        if frame["op"] in ("ok", "err"):
            replies.append(frame["id"])
    assert replies == [1, 2, 3, 4, 5, 6]


async def test_recovery_with_since(hub_server, hub_client, sse_client):
    server = hub_server(plugins=CHAT)
    channel = room()
    publisher = await hub_client(server, user="bob")
    first = await sse_client(server, "alice")
    joined = (await first.request({"op": "sub", "ch": channel}))["data"]
    await publisher.pub(channel, "chat.send", {"text": "seen"})
    seen = await first.next_event(channel, "chat.posted")
    await first.close()
    await publisher.pub(channel, "chat.send", {"text": "missed 1"})
    await publisher.pub(channel, "chat.send", {"text": "missed 2"})
    again = await sse_client(server, "alice")
    since = {"epoch": joined["epoch"], "offset": seen["offset"]}
    data = (await again.request({"op": "sub", "ch": channel, "since": since}))["data"]
    assert data["recovered"] is True
    assert [event["data"]["text"] for event in data["missed"]] == ["missed 1", "missed 2"]


# ---- auth and origin ------------------------------------------------------------------------------------


async def test_tokens_in_the_header_or_the_query_and_guest_resume(hub_server, sse_client):
    server = hub_server(plugins=CHAT)
    by_query = await sse_client(server, query_token=server.token("carol"))
    assert by_query.hello["user"]["user"] == "carol"
    guest = await sse_client(server)
    assert guest.hello["user"]["anonymous"] is True
    resumed = await sse_client(server, token=guest.hello["resume"])
    assert resumed.hello["user"] == guest.hello["user"]


async def test_a_bad_token_ends_the_stream_with_4001(hub_server, sse_client):
    server = hub_server(plugins=CHAT)
    client = await sse_client(server, token="not-a-jwt", expect_hello=False)
    code, reason = await client.closed()
    assert code == CloseCode.AUTH_FAILED
    assert reason
    async with httpx.AsyncClient(base_url=server.url) as http:
        answer = await http.get("/sse", headers={"Authorization": "Basic abc"})
    assert answer.status_code == 401
    assert "Bearer" in answer.json()["detail"]


async def test_without_anonymous_mode_auth_comes_in_a_post(hub_server, sse_client):
    server = hub_server(plugins=CHAT, anonymous=False)
    client = await sse_client(server)
    assert client.hello["user"] is None
    refused = await client.request({"op": "sub", "ch": room()})
    assert refused["code"] == "unauthorized"
    reply = await client.request({"op": "auth", "token": server.token("dave")})
    assert reply["data"]["user"]["user"] == "dave"
    assert (await client.request({"op": "sub", "ch": room()}))["op"] == "ok"


async def test_no_auth_within_the_timeout_closes_with_4002(hub_server, sse_client):
    server = hub_server(plugins=CHAT, anonymous=False, auth_timeout=0.2)
    client = await sse_client(server)
    assert (await client.closed())[0] == CloseCode.AUTH_TIMEOUT


async def test_another_sites_origin_is_refused(hub_server, sse_client):
    server = hub_server(plugins=CHAT)
    client = await sse_client(server, "alice", headers={"Origin": server.url})  # the hub's own page: allowed
    evil = {"Origin": "https://evil.example"}
    async with httpx.AsyncClient(base_url=server.url) as http:
        stream = await http.get("/sse", headers=evil)
    assert stream.status_code == 403
    assert "origin" in stream.json()["detail"]
    answer = await client.post({"op": "ping", "id": "evil"}, headers=evil)
    assert answer.status_code == 403
    assert (await client.request({"op": "ping"}))["op"] == "pong"  # the refused ping was never handled
    assert client.frames.empty()


async def test_wrong_methods(hub_server, sse_client):
    server = hub_server(plugins=CHAT)
    client = await sse_client(server, "alice")
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.post("/sse", content=b"")).status_code == 405
        answer = await http.get(f"/sse/{client.key}")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"


async def test_the_transport_can_be_turned_off(hub_server, hub_client):
    server = hub_server(plugins=CHAT, sse=False)
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/sse")).status_code == 404
        assert (await http.post("/sse/" + "k" * 43, content=b'{"op":"ping"}')).status_code == 404
    client = await hub_client(server, user="alice")  # sockets are unaffected
    assert (await client.request({"op": "ping"}))["op"] == "pong"


# ---- hijacking ------------------------------------------------------------------------------------------


async def test_a_post_must_name_its_sessions_key(hub_server, hub_client, sse_client):
    server = hub_server(plugins=CHAT)
    victim = await sse_client(server, "alice")
    channel = room()
    await victim.request({"op": "sub", "ch": channel})
    attacker = await hub_client(server, user="mallory")
    await attacker.sub(channel)
    # everything mallory can see of alice's session: its client id (in presence), not its key
    members = await attacker.call({"op": "presence", "ch": channel})
    assert victim.key not in orjson.dumps(members).decode()
    async with httpx.AsyncClient(base_url=server.url) as http:
        for key in (victim.hello["client"], victim.key[:-1], victim.key + "A", "x" * 500):
            answer = await http.post(f"/sse/{key}", content=b'{"op":"unsub","ch":"%s"}' % channel.encode())
            assert answer.status_code == 404, key
            assert "session" in answer.json()["detail"]
        # the key is checked before the body is read: the 404 comes while the declared body has not been sent
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /sse/" + b"y" * 43 + b" HTTP/1.1\r\nHost: hub\r\nContent-Length: 100000\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 404")
        writer.close()
    # alice is still subscribed
    await attacker.pub(channel, "chat.send", {"text": "still there?"})
    assert (await victim.next_event(channel, "chat.posted"))["data"]["text"] == "still there?"


async def test_the_key_of_an_ended_session_is_refused(hub_server, sse_client):
    server = hub_server(plugins=CHAT)
    client = await sse_client(server, "alice")
    key = client.key
    await client.close()
    hub = server.app.state.hub
    await wait_until(lambda: client.hello["client"] not in hub.sessions, what="the session ended")
    async with httpx.AsyncClient(base_url=server.url) as http:
        answer = await http.post(f"/sse/{key}", content=b'{"op":"ping"}')
    assert answer.status_code == 404


# ---- limits ---------------------------------------------------------------------------------------------


async def test_post_bounds(hub_server, sse_client):
    server = hub_server(plugins=CHAT, sse_post_max_bytes=2048, sse_post_max_frames=3, max_frame_bytes=256)
    client = await sse_client(server, "alice")
    too_many = await client.post(*({"op": "ping", "id": i} for i in range(4)))
    assert too_many.status_code == 413
    assert "3 frames" in too_many.json()["detail"]
    too_big = await client.post({"op": "ping", "pad": "x" * 2100})
    assert too_big.status_code == 413
    assert "2048 bytes" in too_big.json()["detail"]

    async def chunks():  # no Content-Length: refused once the body passes the bound
        for _ in range(200):
            yield b'{"op":"ping"}\n'

    chunked = await client.http.post(f"/sse/{client.key}", content=chunks())
    assert chunked.status_code == 413
    not_utf8 = await client.http.post(f"/sse/{client.key}", content=b"\xff")
    assert not_utf8.status_code == 400
    assert "UTF-8" in not_utf8.json()["detail"]
    # none of the refused POSTs was handled; the session is fine
    assert (await client.request({"op": "ping"}))["op"] == "pong"
    assert client.frames.empty()
    # a frame past max_frame_bytes closes the session with 1009, as on the socket
    await client.post({"op": "ping", "pad": "x" * 300})
    assert (await client.closed())[0] == CloseCode.FRAME_TOO_LARGE


async def test_the_rate_limit_counts_every_frame_of_a_batch(hub_server, sse_client):
    server = hub_server(plugins=CHAT, rate_limit=0.01, rate_burst=3)
    client = await sse_client(server, "alice")
    answer = await client.post(*({"op": "ping", "id": i} for i in range(5)))
    assert answer.status_code == 204
    replies = [await client.reply(i) for i in range(5)]
    assert [reply["op"] for reply in replies] == ["pong", "pong", "pong", "err", "err"]
    assert replies[3]["code"] == "rate_limited"


async def test_channels_per_connection(hub_server, sse_client):
    server = hub_server(plugins=CHAT, max_channels_per_connection=1)
    client = await sse_client(server, "alice")
    assert (await client.request({"op": "sub", "ch": room()}))["op"] == "ok"
    refused = await client.request({"op": "sub", "ch": room()})
    assert refused["code"] == "too_many_channels"


# ---- heartbeats -----------------------------------------------------------------------------------------


async def test_pings_on_the_stream_and_pongs_by_post_keep_it_open(hub_server, sse_client):
    server = hub_server(plugins=CHAT, heartbeat_interval=0.05, heartbeat_timeout=0.5)
    client = await sse_client(server, "alice")
    loop = asyncio.get_running_loop()
    until = loop.time() + 1.5  # three heartbeat timeouts
    pings = 0
    while loop.time() < until:
        frame = await client.next_frame(skip_pings=False)
        assert frame["op"] == "ping"
        pings += 1
        assert (await client.post({"op": "pong"})).status_code == 204
    assert pings >= 10
    assert client.close_frame is None


async def test_a_silent_client_is_closed_with_4004(hub_server, sse_client):
    server = hub_server(plugins=CHAT, heartbeat_interval=0.05, heartbeat_timeout=0.3)
    client = await sse_client(server, "alice")
    assert (await client.closed())[0] == CloseCode.HEARTBEAT_TIMEOUT


# ---- slow consumer --------------------------------------------------------------------------------------


@pytest.mark.parametrize("reads_again", [True, False], ids=["reader-returns", "reader-gone"])
async def test_a_stream_that_does_not_drain_is_closed_with_4009(hub_server, hub_client, reads_again):
    server = hub_server(
        plugins={**CHAT, **TICKER},
        send_queue_max_frames=24,
        send_buffer_bytes=4096,
        rate_limit=100_000,
        rate_burst=100_000,
        heartbeat_interval=30.0,
        heartbeat_timeout=60.0,
        # the reader that comes back does so within it and gets the close; the other one never does: its stream
        # is given up on after it
        close_timeout=10.0 if reads_again else 0.3,
    )
    hub = server.app.state.hub
    channel = f"ticker:flood{os.urandom(4).hex()}"
    publisher = await hub_client(server, user="publisher")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(b"GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        received = b""
        while b"\n\n" not in received.partition(b"data: ")[2]:
            received += await asyncio.wait_for(reader.read(4096), 5)
        hello = orjson.loads(received.partition(b"data: ")[2].partition(b"\n")[0])["data"]
        client_id, key = hello["client"], hello["session"]
        async with httpx.AsyncClient(base_url=server.url) as http:
            sub = orjson.dumps({"op": "sub", "ch": channel, "id": 1})
            assert (await http.post(f"/sse/{key}", content=sub)).status_code == 204
        await wait_until(lambda: hub.fanout.subscriber_count(channel) == 1, what="the stream subscribed")
        for _ in range(2000):  # the stream is not read meanwhile
            await publisher.pub(channel, "ticker.burst", {"count": 8, "size": 2000})
            if client_id not in hub.sessions or hub.sessions[client_id].close_code is not None:
                break
        if not reads_again:
            await wait_until(lambda: client_id not in hub.sessions, what="the session ended without its reader")
            assert hub.metrics.closes[CloseCode.SLOW_CONSUMER] == 1
            assert (await publisher.request({"op": "ping"}))["op"] == "pong"  # nothing else harmed
            return
        # (the close may already have fitted into the socket's buffers, and the session ended)
        assert client_id not in hub.sessions or hub.sessions[client_id].close_code == CloseCode.SLOW_CONSUMER
        # reading again: the events that were in flight, then the close, then the end of the response
        rest = b""
        while b'"op":"close"' not in rest:
            chunk = await asyncio.wait_for(reader.read(65536), 10)
            assert chunk, "the stream ended without a close"
            rest += chunk
        [final] = [line[6:] for line in rest.split(b"\n") if line.startswith(b'data: {"op":"close"')]
        assert orjson.loads(final)["code"] == CloseCode.SLOW_CONSUMER
    finally:
        writer.close()
    await wait_until(lambda: client_id not in hub.sessions, what="the session ended")


# ---- shutdown -------------------------------------------------------------------------------------------


async def test_a_stopping_node_ends_the_stream_with_1001(hub_server, sse_client, server_logs):
    # Bounds far above what the close takes: the stream is told at once, as a socket is, not when they run out.
    server = hub_server(plugins=CHAT, shutdown_timeout=20.0, close_timeout=20.0, heartbeat_timeout=60.0)
    logs = server_logs()
    client = await sse_client(server, "alice")
    loop = asyncio.get_running_loop()
    started = loop.time()
    stopping = loop.run_in_executor(None, server.stop)
    code, reason = await client.closed()
    await stopping
    assert loop.time() - started < 10.0  # not the 20 s bound
    assert code == CloseCode.GOING_AWAY
    assert "shutting down" in reason
    assert "Exception in ASGI application" not in logs.text
    assert "Traceback" not in logs.text
