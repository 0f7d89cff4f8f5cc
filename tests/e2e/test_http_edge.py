"""The HTTP edge over real sockets: credentials before bodies, a cap on every request body, strict JSON, errors
that never echo their input, a deadline until the whole request (body included) has arrived, a bound on
requests still sending their body, and no traceback in the log for anything a client sends."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets
from fastapi import APIRouter
from websockets.typing import Subprotocol

import hub_realtime_plugins.chat
import hub_realtime_plugins.notifications
from hub import hookimpl
from hub.testing import HubServer

KEY = "edge-test-key-0123456789abcdefghij"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- helpers ---------------------------------------------------------------------------------------------


class RawHTTP:
    """One TCP connection written by hand: nothing is sent unless the test sends it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> RawHTTP:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, timeout: float = 3.0) -> tuple[int, dict[str, str], bytes]:
        """The next response: status, headers (lower-case names), body (by Content-Length)."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines if line)}
        body = await asyncio.wait_for(self.reader.readexactly(int(headers.get("content-length", "0"))), timeout)
        return int(status_line.split()[1]), headers, body

    async def closed_within(self, timeout: float) -> bool:
        """Does the server end the connection within ``timeout`` (reading and dropping whatever comes)?"""
        try:
            async with asyncio.timeout(timeout):
                while await self.reader.read(65536):
                    pass
        except TimeoutError:
            return False
        except ConnectionError:
            pass
        return True

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def raw_http() -> AsyncIterator[Any]:
    opened: list[RawHTTP] = []

    async def open_(port: int) -> RawHTTP:
        connection = await RawHTTP.open(port)
        opened.append(connection)
        return connection

    yield open_
    for connection in opened:
        connection.close()
    for connection in opened:
        with contextlib.suppress(Exception):
            await connection.writer.wait_closed()


def post_head(length: int | None, path: str = "/api/notifications", **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines.append("Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    bad = [(r.name, r.levelname, r.getMessage()) for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, bad


def notifications_hub(hub_server: Any, **overrides: Any) -> HubServer:
    enabled = {
        "chat": hub_realtime_plugins.chat.Chat,
        "notifications": hub_realtime_plugins.notifications.Notifications,
    }
    return hub_server(plugins=enabled, api_keys=[KEY], **overrides)


# ---- credentials before the body -------------------------------------------------------------------------


async def test_a_request_without_credentials_gets_401_whatever_its_body(hub_server):
    server = notifications_hub(hub_server)
    async with httpx.AsyncClient(base_url=server.url) as http:
        for body in (b"{not json", b'{"title": NaN}', b"[" * 5000, b""):
            reply = await http.post("/api/notifications", content=body, headers={"Content-Type": "application/json"})
            assert reply.status_code == 401, (body[:20], reply.text)
            assert reply.headers["www-authenticate"] == "Bearer"


async def test_an_unauthenticated_body_is_never_read(hub_server, raw_http):
    # Headers only, the 900 KB body never sent: the 401 comes from the headers alone, at once.
    server = notifications_hub(hub_server)
    connection = await raw_http(server.port)
    await connection.send(post_head(900_000))
    status, _, body = await connection.response(timeout=2)
    assert status == 401, body


# ---- the body cap ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("credentials", [{}, {"X_API_Key": KEY}], ids=["anonymous", "with-key"])
async def test_a_body_over_the_cap_is_refused_413_from_its_content_length(hub_server, raw_http, credentials):
    server = notifications_hub(hub_server, max_body_bytes=4096)
    connection = await raw_http(server.port)
    await connection.send(post_head(4097, **credentials))  # the body never comes: 413 from the head alone
    status, headers, body = await connection.response(timeout=2)
    assert status == 413
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert "4096" in orjson.loads(body)["detail"]
    assert await connection.closed_within(2)


async def test_a_chunked_body_is_refused_413_once_it_passes_the_cap(hub_server, raw_http):
    server = notifications_hub(hub_server, max_body_bytes=4096)
    connection = await raw_http(server.port)
    await connection.send(post_head(None, X_API_Key=KEY))
    chunk = b"1000\r\n" + b" " * 4096 + b"\r\n"
    await connection.send(chunk)  # exactly the cap: still accepted
    await asyncio.sleep(0.1)
    await connection.send(chunk)  # past it
    status, _, body = await connection.response(timeout=2)
    assert status == 413, body
    assert await connection.closed_within(2)


async def test_a_body_at_the_cap_is_read(hub_server):
    server = notifications_hub(hub_server, max_body_bytes=4096)
    payload = orjson.dumps({"everyone": True, "title": "fits", "body": "b" * 1000})
    payload += b" " * (4096 - len(payload))
    async with httpx.AsyncClient(base_url=server.url, headers={"X-API-Key": KEY}) as http:
        reply = await http.post("/api/notifications", content=payload, headers={"Content-Type": "application/json"})
    assert reply.status_code == 201, reply.text


# ---- errors never echo their input -----------------------------------------------------------------------


async def test_validation_errors_never_echo_the_input(hub_server):
    server = notifications_hub(hub_server)
    secretish = "Z" * 300_000
    bodies = [
        {"everyone": True, "title": secretish},  # one field too long
        {"everyone": True, "title": "x", secretish[:5000]: 1},  # an extra field named by the client
        {"users": [f"bad user {secretish[:100]} {i}" for i in range(2000)], "title": "x"},  # 2,000 errors
    ]
    async with httpx.AsyncClient(base_url=server.url, headers={"X-API-Key": KEY}) as http:
        for payload in bodies:
            reply = await http.post("/api/notifications", json=payload)
            assert reply.status_code == 422, reply.text[:200]
            assert len(reply.content) < 8192, len(reply.content)
            echoed = "Z" * 64 in reply.text  # an unknown field's name is in its loc, cut to 64 characters
            assert not echoed
            detail = reply.json()["detail"]
            assert detail
            assert all(set(error) == {"type", "loc", "msg"} for error in detail), detail[0]


# ---- strict JSON -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"everyone": true, "title": "x", "ttl": NaN}',
        b'{"everyone": true, "title": "x", "ttl": Infinity}',
        b'{"everyone": true, "title": "x", "ttl": -Infinity}',
        b'{"everyone": true, "title": "x", "ttl": 1e400}',
        b'{"everyone": true, "title": "x", "data": {"x": NaN}}',
        b'{"everyone": true, "title": "\\ud800"}',
        b'{"everyone": true, "title": "x"} trailing',
    ],
    ids=["nan", "infinity", "-infinity", "1e400", "nested-nan", "lone-surrogate", "trailing"],
)
async def test_non_json_numbers_are_refused_with_422_and_no_traceback(hub_server, server_logs, body):
    server = notifications_hub(hub_server)
    logs = server_logs(logging.DEBUG)
    async with httpx.AsyncClient(base_url=server.url, headers={"X-API-Key": KEY}) as http:
        reply = await http.post("/api/notifications", content=body, headers={"Content-Type": "application/json"})
    assert reply.status_code == 422, reply.text
    [error] = reply.json()["detail"]
    assert error["type"] == "json_invalid"
    assert error["loc"][0] == "body"
    assert_no_traceback(logs)


async def test_every_route_with_a_json_body_parses_it_strictly(hub_server, server_logs):
    # A plugin route with a plain FastAPI body parameter gets the same strict JSON as the hub's own.
    router = APIRouter()

    @router.post("/api/echo")
    async def echo(payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    class EchoPlugin:
        @hookimpl
        def hub_http_routes(self, hub):
            return router

    server = hub_server(plugins={"chat": hub_realtime_plugins.chat.Chat, "echo": EchoPlugin()})
    logs = server_logs(logging.DEBUG)
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.post("/api/echo", json={"x": 1.5})).json() == {"x": 1.5}
        for body in (b'{"x": NaN}', b'{"x": 1e400}', b'{"x": [Infinity]}'):
            reply = await http.post("/api/echo", content=body, headers={"Content-Type": "application/json"})
            assert reply.status_code == 422, (body, reply.text)
            assert reply.json()["detail"][0]["type"] == "json_invalid"
    assert_no_traceback(logs)


# ---- the request deadline covers the body ----------------------------------------------------------------


async def status_within(connection: RawHTTP, timeout: float) -> int | None:
    with contextlib.suppress(TimeoutError, asyncio.IncompleteReadError):
        return (await connection.response(timeout))[0]
    return None


async def test_slow_bodies_are_bounded_closed_at_the_deadline_and_never_starve_the_rest(
    hub_server, hub_client, raw_http
):
    # Requests send their head and never their body. Without credentials: 401 from the headers, and the connection
    # ends without waiting for the body. With a key: 8 may wait for their body at once, the others are told 503,
    # and the 8 are dropped at the 1 s deadline. Meanwhile /healthz and new sockets work.
    server = notifications_hub(hub_server, handshake_timeout=1.0, max_pending_bodies=8)
    anonymous = [await raw_http(server.port) for _ in range(6)]
    for connection in anonymous:
        await connection.send(post_head(100_000))
        assert await status_within(connection, 2) == 401
    keyed = [await raw_http(server.port) for _ in range(10)]
    for connection in keyed:
        await connection.send(post_head(100_000, X_API_Key=KEY))
    statuses = await asyncio.gather(*(status_within(connection, 0.5) for connection in keyed))
    assert sorted(statuses, key=str) == [503, 503] + [None] * 8, statuses  # the 401s gave their places back

    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/healthz")).status_code == 200
    client = await hub_client(server, user="fine")
    assert (await client.request({"op": "ping"}))["op"] == "pong"

    closed = await asyncio.gather(*(connection.closed_within(3.0) for connection in anonymous + keyed))
    assert all(closed), closed
    assert (await client.request({"op": "ping"}))["op"] == "pong"  # the upgraded socket outlives the deadline


@pytest.fixture
def starved_hub(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """`hub serve` with 160 file descriptors, a 3 s request deadline and 64 pending bodies: (port, its log)."""
    port = free_port()
    env = {**os.environ, "HUB_PORT": str(port), "HUB_DATA_DIR": str(tmp_path / "data"), "HUB_API_KEYS": KEY}
    env |= {"HUB_HANDSHAKE_TIMEOUT": "3", "HUB_MAX_PENDING_BODIES": "64", "HUB_PLUGINS": "chat,notifications"}
    hub = Path(sys.executable).with_name("hub")
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["sh", "-c", f"ulimit -n 160 && exec {hub} serve"], stdout=output, stderr=subprocess.STDOUT, env=env
        )
    try:
        deadline = time.monotonic() + 15
        while b"startup complete" not in log.read_bytes():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield port, log
    finally:
        process.terminate()
        process.wait(15)


async def test_slow_bodies_cannot_starve_a_hub_short_of_file_descriptors(starved_hub):
    # The attack as found: `hub serve` with few file descriptors, and more connections than that which send a
    # request head and never its body. All connect first, then all send their heads, so the hub meets them when
    # it is out of descriptors. While they wait, /healthz and a new WebSocket still work; after the 3 s deadline
    # none is left, and nothing in the log is a traceback.
    port, log = starved_hub
    opened: list[asyncio.StreamWriter] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            streams = []
            for _ in range(200):
                sock = socket.socket()
                sock.bind(("127.0.0.2", 0))
                sock.setblocking(False)
                await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
                streams.append(await asyncio.open_connection(sock=sock))
                opened.append(streams[-1][1])
            for _, writer in streams:
                writer.write(post_head(100_000, X_API_Key=KEY))
            started = time.monotonic()

            async def serves() -> bool:
                with contextlib.suppress(httpx.HTTPError, OSError, websockets.WebSocketException, TimeoutError):
                    if (await http.get("/healthz", timeout=0.5)).status_code == 200:
                        ws_url = f"ws://127.0.0.1:{port}/ws"
                        hub_v1 = [Subprotocol("hub.v1")]
                        async with websockets.connect(ws_url, subprotocols=hub_v1, open_timeout=0.5) as ws:
                            return '"hello"' in await asyncio.wait_for(ws.recv(), 0.5)
                return False

            while not await serves():
                assert time.monotonic() - started < 2.8, "no /healthz and WebSocket while the bodies were pending"
            assert time.monotonic() - started < 2.9  # still within the deadline of the pending bodies
            closed = await asyncio.gather(*(RawHTTP(reader, writer).closed_within(4.0) for reader, writer in streams))
            assert all(closed), f"{closed.count(False)} of {len(closed)} still open"
    finally:
        for writer in opened:
            writer.close()
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]


async def test_the_deadline_applies_to_every_request_of_a_keep_alive_connection(hub_server, raw_http):
    server = hub_server(handshake_timeout=0.4)
    connection = await raw_http(server.port)
    await connection.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await connection.response())[0] == 200
    await connection.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # the second request never ends its head
    assert await connection.closed_within(2.0)


async def test_a_body_trickled_past_the_deadline_is_dropped(hub_server, raw_http):
    server = notifications_hub(hub_server, handshake_timeout=0.5)
    connection = await raw_http(server.port)
    await connection.send(post_head(1000, X_API_Key=KEY))
    try:
        for _ in range(30):  # a byte every 0.1 s: each one would restart an idle timer, never this deadline
            await connection.send(b" ")
            await asyncio.sleep(0.1)
    except ConnectionError:
        return  # the server ended it mid-trickle
    assert await connection.closed_within(0.1), "a 3 s trickle outlived a 0.5 s deadline"


# ---- no traceback for client input -----------------------------------------------------------------------


def masked_frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def test_invalid_utf8_closes_1007_without_a_traceback(hub_server, hub_client, server_logs):
    server = hub_server(log_level="debug")
    logs = server_logs(logging.DEBUG)
    for _ in range(3):
        async with websockets.connect(server.ws_url, subprotocols=["hub.v1"]) as ws:  # type: ignore[list-item]
            assert '"hello"' in await ws.recv()
            ws.transport.write(masked_frame(0x1, b'{"op":"ping","x":"\xff\xfe"}'))
            await asyncio.wait_for(ws.wait_closed(), 3)
            assert ws.close_code == 1007
    other = await hub_client(server, user="fine")
    assert (await other.request({"op": "ping"}))["op"] == "pong"
    assert_no_traceback(logs)
    assert not [r for r in logs.records if r.levelno >= logging.WARNING and "UTF-8" in r.getMessage()]


async def test_malformed_http_is_answered_400_in_one_log_line_at_most(hub_server, raw_http, server_logs):
    server = hub_server()
    logs = server_logs(logging.DEBUG)
    for garbage in (b"\x00\x01\x02 nonsense\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"):
        connection = await raw_http(server.port)
        await connection.send(garbage)
        assert (await connection.response())[0] == 400
    key = base64.b64encode(os.urandom(16)).decode()
    connection = await raw_http(server.port)  # a WebSocket handshake websockets cannot parse
    await connection.send(
        f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 99\r\n\r\n".encode()
    )
    assert (await connection.response())[0] in (400, 426)
    assert_no_traceback(logs)


async def test_a_flood_of_malformed_requests_logs_one_warning_per_interval(hub_server, raw_http, server_logs):
    """uvicorn warns once per malformed request: a client must not be able to flood the log with them."""
    server = hub_server()
    logs = server_logs(logging.DEBUG)
    for _ in range(20):
        connection = await raw_http(server.port)
        await connection.send(b"\x00\x01\x02 nonsense\r\n\r\n")
        assert (await connection.response())[0] == 400
    warnings = [r for r in logs.records if "Invalid HTTP request received" in r.getMessage()]
    assert len(warnings) <= 1, [r.getMessage() for r in warnings]
    assert_no_traceback(logs)
