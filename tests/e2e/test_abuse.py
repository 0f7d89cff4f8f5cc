"""Abuse over real sockets: floods past the rate limit, a client that never reads, silent clients, oversized
frames and connections that never finish their handshake. Each ends only the offender; the others chat on."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

import hub_realtime_plugins.chat
from hub.protocol import CloseCode
from hub.testing import HubClient, HubServer
from tests.e2e import ticker_plugin

LOBBY = "chat:lobby"
QUIET = {"heartbeat_interval": 30.0, "heartbeat_timeout": 60.0}  # no pings (and no pongs) in the way


# ---- helpers ---------------------------------------------------------------------------------------------


async def next_frame(client: HubClient, timeout: float = 5.0) -> dict[str, Any]:
    """The next frame that answers no ``request()``: skips the server's heartbeat pings."""
    while True:
        frame = await client.next_unsolicited(timeout)
        if frame.get("op") != "ping":
            return frame


async def eventually(condition: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll the hub's own state (it runs in the server thread) until ``condition`` holds."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                if condition():
                    return
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for: {what}") from None


async def assert_chat_goes_on(sender: HubClient, observer: HubClient, text: str) -> None:
    posted = await sender.pub(LOBBY, "chat.send", {"text": text})
    event = await observer.next_event(LOBBY, "chat.posted")
    assert event["data"] == posted


class RawSocket:
    """A WebSocket client done by hand on a plain TCP socket: nothing is read unless the test reads it.

    A small receive buffer keeps the TCP window small, so a client that stops reading backs the server up fast.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.loop = asyncio.get_running_loop()

    @classmethod
    async def connect(cls, port: int, *, rcvbuf: int | None = None) -> RawSocket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        return cls(sock)

    async def handshake(self, port: int) -> bytes:
        """Upgrade to a WebSocket; returns the response head (status line and headers)."""
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            "GET /ws HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: hub.v1\r\n"
            "\r\n"
        )
        await self.loop.sock_sendall(self.sock, request.encode())
        head = b""
        while b"\r\n\r\n" not in head:  # read the response head only, one byte at a time: nothing beyond it
            chunk = await asyncio.wait_for(self.loop.sock_recv(self.sock, 1), 5)
            assert chunk, f"the server closed during the handshake: {head!r}"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        return head

    async def send_text(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            header = bytes([0x81, 0x80 | length])
        elif length < 1 << 16:
            header = bytes([0x81, 0x80 | 126]) + length.to_bytes(2, "big")
        else:
            header = bytes([0x81, 0x80 | 127]) + length.to_bytes(8, "big")
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        await self.loop.sock_sendall(self.sock, header + mask + masked)

    async def read_until_closed(self, timeout: float = 5.0) -> int:
        """Read (and drop) everything until the server ends the TCP connection; returns the bytes read."""
        total = 0
        async with asyncio.timeout(timeout):
            while True:
                try:
                    chunk = await self.loop.sock_recv(self.sock, 1 << 16)
                except ConnectionResetError:
                    return total
                if not chunk:
                    return total
                total += len(chunk)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw_sockets():
    opened: list[RawSocket] = []

    async def connect(port: int, **kwargs: Any) -> RawSocket:
        raw = await RawSocket.connect(port, **kwargs)
        opened.append(raw)
        return raw

    yield connect
    for raw in opened:
        raw.close()


# ---- rate limit ----------------------------------------------------------------------------------------------


async def test_flood_gets_rate_limited_then_closed_4008(hub_server, hub_client):
    server = hub_server(rate_limit=1, rate_burst=5, abuse_strikes=3, abuse_window=10, **QUIET)
    observer = await hub_client(server, user="observer")
    await observer.sub(LOBBY)
    flooder = await hub_client(server, user="mallory")
    for n in range(5):  # the burst is allowed
        await flooder.send_raw(f'{{"op":"ping","id":{n}}}')
        assert await next_frame(flooder) == {"op": "pong", "id": n}
    await flooder.send_raw('{"op":"ping","id":5}')
    refused = await next_frame(flooder)
    assert refused["op"] == "err"
    assert refused["code"] == "rate_limited"
    # a client that keeps flooding after rate_limited errors runs out of strikes and is closed
    with contextlib.suppress(Exception):
        for n in range(6, 50):
            await flooder.send_raw(f'{{"op":"ping","id":{n}}}')
    code, _reason = await flooder.closed()
    assert code == CloseCode.RATE_ABUSE == 4008
    poster = await hub_client(server, user="poster")
    await assert_chat_goes_on(poster, observer, "the flood is gone")


async def test_rate_limited_reply_echoes_the_request_id(hub_server, hub_client):
    """Every request may carry an id and its reply echoes it (DESIGN §3), also when the reply is rate_limited."""
    server = hub_server(rate_limit=1, rate_burst=2, abuse_strikes=10, abuse_window=10, **QUIET)
    client = await hub_client(server, user="mallory")
    for n in (1, 2):
        await client.send_raw(f'{{"op":"ping","id":{n}}}')
        assert await next_frame(client) == {"op": "pong", "id": n}
    await client.send_raw('{"op":"ping","id":3}')
    reply = await next_frame(client)
    assert (reply["op"], reply["code"]) == ("err", "rate_limited")
    assert reply.get("id") == 3, f"the rate_limited reply does not echo the request id: {reply}"


async def test_client_that_backs_off_after_rate_limited_is_not_closed(hub_server, hub_client):
    server = hub_server(rate_limit=10, rate_burst=3, abuse_strikes=2, abuse_window=0.5, **QUIET)
    client = await hub_client(server, user="patient")
    for _round in range(3):
        for n in range(4):  # 3 allowed, the 4th refused: one strike per round
            await client.send_raw(f'{{"op":"ping","id":{n}}}')
        frames = [await next_frame(client) for _ in range(4)]
        assert [f["op"] for f in frames] == ["pong", "pong", "pong", "err"]
        await asyncio.sleep(0.35)  # back off: the frame bucket (10/s) and the strikes (4/s) refill
    assert (await client.request({"op": "ping"}))["op"] == "pong"
    assert client.ws.close_code is None


# ---- oversized frames ------------------------------------------------------------------------------------------


async def test_frame_over_max_frame_bytes_closes_1009(hub_server, hub_client):
    server = hub_server(max_frame_bytes=1024)
    observer = await hub_client(server, user="observer")
    await observer.sub(LOBBY)
    big = await hub_client(server, user="big")
    # just under the limit is fine
    frame = {"op": "pub", "ch": LOBBY, "type": "chat.send", "data": {"text": "x"}, "id": 1}
    frame["data"]["text"] = "x" * (1024 - len(orjson.dumps(frame)) + 1)
    assert len(orjson.dumps(frame)) == 1024
    await big.send_raw(orjson.dumps(frame).decode())
    assert (await next_frame(big))["op"] == "ok"
    assert (await observer.next_event(LOBBY, "chat.posted"))["data"]["author"]["user"] == "big"
    # one byte over is not
    frame["data"]["text"] += "x"
    await big.send_raw(orjson.dumps(frame).decode())
    code, _reason = await big.closed()
    assert code == CloseCode.FRAME_TOO_LARGE == 1009
    poster = await hub_client(server, user="poster")
    await assert_chat_goes_on(poster, observer, "after the big one")  # and the big one was never delivered


async def test_many_small_fragments_over_max_frame_bytes_close_1009(hub_server, hub_client):
    server = hub_server(max_frame_bytes=1024)
    big = await hub_client(server, user="big")
    # One message in 6 fragments, 1100 bytes in all: only the last one crosses the limit, so nothing follows
    # the server's close (fragments sent after it would draw a TCP reset that can swallow the close frame).
    await big.ws.send(iter(["x" * 200] * 5 + ["x" * 100]))
    code, _reason = await big.closed()
    assert code == 1009


# ---- slow consumer -------------------------------------------------------------------------------------------

EVENT_PAD = 2000


@pytest.mark.parametrize(
    "limits",
    [
        {"send_queue_max_frames": 24, "send_queue_max_bytes": 4 * 1024 * 1024},
        {"send_queue_max_frames": 1000, "send_queue_max_bytes": 24 * 1024},
    ],
    ids=["frames bound", "bytes bound"],
)
async def test_slow_consumer_is_dropped_and_the_others_keep_receiving(hub_server, hub_client, raw_sockets, limits):
    server = hub_server(
        plugins={"chat": hub_realtime_plugins.chat.Chat, "ticker": ticker_plugin.Ticker},
        rate_limit=100_000,
        rate_burst=100_000,
        **limits,
        **QUIET,
    )
    hub = server.app.state.hub
    channel = f"ticker:flood{os.urandom(4).hex()}"
    observer = await hub_client(server, user="observer")
    await observer.sub(channel)
    publisher = await hub_client(server, user="publisher")
    known = set(hub.sessions)

    slow = await raw_sockets(server.port, rcvbuf=4096)
    await slow.handshake(server.port)
    await slow.send_text(orjson.dumps({"op": "sub", "ch": channel, "id": 1}).decode())
    await eventually(lambda: hub.fanout.subscriber_count(channel) == 2, what="the raw socket subscribed")
    [slow_id] = set(hub.sessions) - known
    slow_session = hub.sessions[slow_id]
    # it reads nothing from here on

    frame_cap = limits["send_queue_max_frames"]
    byte_cap = limits["send_queue_max_bytes"]
    per_burst = 8  # a reading client's queue never holds more than one burst
    most_queued = 0
    published = 0
    for _ in range(2000):
        await publisher.pub(channel, "ticker.burst", {"count": per_burst, "size": EVENT_PAD})
        published += per_burst
        most_queued = max(most_queued, slow_session.queued_frames)
        if slow_session.close_code is not None:
            break
    assert slow_session.close_code == CloseCode.SLOW_CONSUMER == 4009
    # the queue grew while the client did not read, but never past its bounds
    assert 0 < most_queued <= frame_cap
    assert most_queued * EVENT_PAD <= byte_cap

    # the server drops the socket even though the client cannot take a close frame (the kernel buffers are full)
    await eventually(lambda: slow_id not in hub.sessions, what="the slow session went away")
    assert hub.fanout.subscriber_count(channel) == 1
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/api/info")).json()["connections"] == 2
    # with a reset: the megabytes the kernel still held for it are dropped, not trickled out before a FIN
    # (2.8 MB here before the reset), so the client learns at once that it was dropped
    assert await slow.read_until_closed() < 64 * 1024

    # the reading client got every event, in order, and keeps getting them
    await publisher.pub(channel, "ticker.burst", {"count": per_burst, "size": EVENT_PAD})
    published += per_burst
    seqs = [(await observer.next_event(channel, "ticker.tick"))["data"]["seq"] for _ in range(published)]
    assert seqs == list(range(seqs[0], seqs[0] + published))
    assert observer.ws.close_code is None
    assert publisher.ws.close_code is None


# ---- heartbeats ------------------------------------------------------------------------------------------------

FAST_BEAT = {"heartbeat_interval": 0.1, "heartbeat_timeout": 0.5}


async def test_silent_client_is_closed_4010(hub_server, hub_client):
    server = hub_server(**FAST_BEAT)
    observer = await hub_client(server, user="observer")
    await observer.sub(LOBBY)
    silent = await hub_client(server, user="silent", auto_pong=False)
    assert silent.hello["heartbeat"] == {"interval": 0.1, "timeout": 0.5}
    code, _reason = await silent.closed()
    assert code == CloseCode.HEARTBEAT_TIMEOUT == 4010
    await assert_chat_goes_on(observer, observer, "the observer answered its pings")


async def test_client_answering_pings_stays_connected(hub_server, hub_client):
    server = hub_server(**FAST_BEAT)
    client = await hub_client(server, user="alive")  # auto_pong=True answers every server ping
    pings = 0
    while pings < 12:  # 12 pings at 0.1 s: more than two heartbeat timeouts have passed
        if (await client.next_unsolicited(timeout=2))["op"] == "ping":
            pings += 1
    assert client.ws.close_code is None
    await client.sub(LOBBY)
    await assert_chat_goes_on(client, client, "still alive")


async def test_ping_request_gets_pong_with_the_same_id(hub_server, hub_client):
    server = hub_server(**QUIET)
    client = await hub_client(server, user="pinger")
    await client.send_raw('{"op":"ping","id":7}')
    assert await next_frame(client) == {"op": "pong", "id": 7}
    await client.send_raw('{"op":"ping","id":"abc"}')
    assert await next_frame(client) == {"op": "pong", "id": "abc"}
    await client.send_raw('{"op":"ping"}')
    assert await next_frame(client) == {"op": "pong"}


# ---- handshake deadline ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"],
    ids=["nothing", "half a request"],
)
async def test_connection_that_never_completes_a_handshake_is_closed(hub_server, hub_client, raw_sockets, sent):
    server: HubServer = hub_server(handshake_timeout=0.5)
    raw = await raw_sockets(server.port)
    if sent:
        await asyncio.get_running_loop().sock_sendall(raw.sock, sent)
    await raw.read_until_closed(timeout=3)  # the server ends the connection (else this times out)
    client = await hub_client(server, user="fine")  # the server itself is fine
    assert (await client.request({"op": "ping"}))["op"] == "pong"


async def test_binary_frames_count_against_the_rate_limit(hub_server, hub_client):
    server = hub_server(rate_limit=0.01, rate_burst=2)
    client = await hub_client(server, user="binary")
    for _ in range(3):
        await client.send_raw(b"\x00\x01")
    codes = [(await client.next_unsolicited())["code"] for _ in range(3)]
    assert codes == ["bad_request", "bad_request", "rate_limited"]
