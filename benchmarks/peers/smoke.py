"""Smoke test of the peer servers: each one started through run.py, 3 subscribers and 1 publisher, 5 messages.

    benchmarks/peers/.venv/bin/python benchmarks/peers/smoke.py [--only ws,fastapi,...] [--redis-server PATH]

For every server: start it on a free port (channels-redis as two processes on a private redis-server, the
subscribers split between them and the publisher on the first), join 3 subscribers to one room, send 5
messages from a publisher that is not in the room, and check that every subscriber got all 5 in order and
nothing more, and that the publisher got 5 acks. Exits non-zero if any server fails.

The Socket.IO client speaks raw Engine.IO v4 over a websocket, as the load generator does: open packet `0`,
namespace connect `40`, events `42[...]`, acks `43<id>[...]`, pings `2` answered with `3`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from run import free_ports
from websockets.asyncio.client import ClientConnection, connect

HERE = Path(__file__).resolve().parent
SERVERS = ["ws", "fastapi", "socketio", "channels", "channels-redis"]
SUBSCRIBERS = 3
MESSAGES = 5
ROOM = "smoke-room"
TIMEOUT = 10.0


class SmokeFailure(Exception):
    """A server did not behave as the protocol says."""


async def receive_json(connection: ClientConnection) -> Any:
    return json.loads(await asyncio.wait_for(connection.recv(), TIMEOUT))


async def expect_silence(receive: Callable[[], Awaitable[Any]], seconds: float = 0.3) -> None:
    with contextlib.suppress(TimeoutError):
        extra = await asyncio.wait_for(receive(), seconds)
        raise SmokeFailure(f"unexpected extra frame {extra!r}")


async def smoke_plain(urls: list[str]) -> str:
    texts = [f"smoke {index}" for index in range(MESSAGES)]
    async with contextlib.AsyncExitStack() as stack:
        subscribers = [
            await stack.enter_async_context(connect(urls[index % len(urls)], compression=None))
            for index in range(SUBSCRIBERS)
        ]
        for subscriber in subscribers:
            await subscriber.send(json.dumps({"type": "join", "room": ROOM}))
            reply = await receive_json(subscriber)
            if reply != {"type": "joined", "room": ROOM}:
                raise SmokeFailure(f"join answered with {reply!r}")
        # Malformed input is ignored or closes that socket only: the server goes on serving the others.
        prober = await stack.enter_async_context(connect(urls[0], compression=None))
        await prober.send("not json")
        publisher = await stack.enter_async_context(connect(urls[0], compression=None))
        acks = 0
        for text in texts:
            await publisher.send(json.dumps({"type": "send", "room": ROOM, "text": text}))
            reply = await receive_json(publisher)
            if reply != {"type": "ack"}:
                raise SmokeFailure(f"send answered with {reply!r}")
            acks += 1
        for number, subscriber in enumerate(subscribers):
            received = [await receive_json(subscriber) for _ in texts]
            expected = [{"type": "message", "room": ROOM, "text": text} for text in texts]
            if received != expected:
                raise SmokeFailure(f"subscriber {number} got {received!r}")
            await expect_silence(lambda subscriber=subscriber: receive_json(subscriber))
        await expect_silence(lambda: receive_json(publisher))
    return f"{SUBSCRIBERS} subscribers x {MESSAGES} messages in order, {acks} acks"


class SocketIOClient:
    """The least of a Socket.IO v5 / Engine.IO v4 client over the websocket transport."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.events: asyncio.Queue[list[Any]] = asyncio.Queue()
        self.acks: dict[int, asyncio.Future[list[Any]]] = {}
        self.next_id = 0
        self.reader: asyncio.Task[None] | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def connected(cls, base_url: str) -> AsyncIterator[SocketIOClient]:
        async with connect(f"{base_url}?EIO=4&transport=websocket", compression=None) as connection:
            client = cls(connection)
            await client.handshake()
            client.reader = asyncio.create_task(client.read())
            try:
                yield client
            finally:
                client.reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await client.reader

    async def handshake(self) -> None:
        opening = await asyncio.wait_for(self.connection.recv(), TIMEOUT)
        if not isinstance(opening, str) or not opening.startswith("0{"):
            raise SmokeFailure(f"expected an Engine.IO open packet, got {opening!r}")
        await self.connection.send("40")
        connected = await asyncio.wait_for(self.connection.recv(), TIMEOUT)
        if not isinstance(connected, str) or not connected.startswith("40{"):
            raise SmokeFailure(f"expected a Socket.IO connect packet, got {connected!r}")

    async def read(self) -> None:
        async for frame in self.connection:
            if not isinstance(frame, str):
                raise SmokeFailure(f"unexpected binary frame {frame!r}")
            if frame == "2":
                await self.connection.send("3")
            elif frame.startswith("42["):
                self.events.put_nowait(json.loads(frame[2:]))
            elif frame.startswith("43"):
                digits = len(frame) - len(frame[2:].lstrip("0123456789"))
                ack_id = int(frame[2:digits])
                self.acks.pop(ack_id).set_result(json.loads(frame[digits:]))
            else:
                raise SmokeFailure(f"unexpected Engine.IO frame {frame!r}")

    async def call(self, event: str, data: Any) -> list[Any]:
        ack_id = self.next_id
        self.next_id += 1
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self.acks[ack_id] = future
        await self.connection.send(f"42{ack_id}{json.dumps([event, data])}")
        return await asyncio.wait_for(future, TIMEOUT)

    async def next_event(self) -> list[Any]:
        return await self.events.get()


async def smoke_socketio(urls: list[str]) -> str:
    texts = [f"smoke {index}" for index in range(MESSAGES)]
    async with contextlib.AsyncExitStack() as stack:
        subscribers = [
            await stack.enter_async_context(SocketIOClient.connected(urls[index % len(urls)]))
            for index in range(SUBSCRIBERS)
        ]
        for subscriber in subscribers:
            reply = await subscriber.call("join", {"room": ROOM})
            if reply != [{"ok": True}]:
                raise SmokeFailure(f"join acknowledged with {reply!r}")
        publisher = await stack.enter_async_context(SocketIOClient.connected(urls[0]))
        acks = 0
        for text in texts:
            reply = await publisher.call("send", {"room": ROOM, "text": text})
            if reply != [{"ok": True}]:
                raise SmokeFailure(f"send acknowledged with {reply!r}")
            acks += 1
        for number, subscriber in enumerate(subscribers):
            received = [await asyncio.wait_for(subscriber.next_event(), TIMEOUT) for _ in texts]
            expected = [["message", {"room": ROOM, "text": text}] for text in texts]
            if received != expected:
                raise SmokeFailure(f"subscriber {number} got {received!r}")
            await expect_silence(subscriber.next_event)
        await expect_silence(publisher.next_event)
    return f"{SUBSCRIBERS} subscribers x {MESSAGES} messages in order, {acks} acks"


@contextlib.asynccontextmanager
async def redis_server(executable: str) -> AsyncIterator[str]:
    port = free_ports(1)
    process = await asyncio.create_subprocess_exec(
        executable,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                if time.monotonic() > deadline or process.returncode is not None:
                    raise SmokeFailure("redis-server did not start") from None
                await asyncio.sleep(0.05)
            else:
                writer.close()
                await writer.wait_closed()
                break
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


@contextlib.asynccontextmanager
async def running(server: str, workers: int, redis_url: str | None) -> AsyncIterator[list[str]]:
    """Start `server` through run.py and yield its URLs once it prints `ready`."""
    port = free_ports(workers)
    command = [sys.executable, str(HERE / "run.py"), server, "--port", str(port), "--workers", str(workers)]
    if redis_url:
        command += ["--redis", redis_url]
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    try:
        urls = []
        while True:
            line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
            if not line:
                raise SmokeFailure(f"run.py exited with {await process.wait()} before it was ready")
            if line.strip() == "ready":
                break
            fields = line.split()
            urls.append(fields[fields.index("url") + 1])
        yield urls
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()
        if process.returncode not in (0, None):
            raise SmokeFailure(f"run.py {server} exited with {process.returncode} when stopped")


async def smoke(server: str, redis_executable: str) -> str:
    check = smoke_socketio if server == "socketio" else smoke_plain
    if server != "channels-redis":
        async with running(server, 1, None) as urls:
            return await check(urls)
    async with redis_server(redis_executable) as redis_url, running(server, 2, redis_url) as urls:
        return await check(urls) + ", subscribers split over 2 processes on Redis"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SERVERS), help="comma-separated servers to test")
    parser.add_argument("--redis-server", default=shutil.which("redis-server") or "redis-server")
    arguments = parser.parse_args()
    servers = [name.strip() for name in arguments.only.split(",") if name.strip()]
    unknown = sorted(set(servers) - set(SERVERS))
    if unknown:
        parser.error(f"unknown servers {unknown}; choose from {SERVERS}")
    failed = []
    for server in servers:
        started = time.monotonic()
        try:
            summary = await smoke(server, arguments.redis_server)
        except (SmokeFailure, OSError, TimeoutError) as error:
            failed.append(server)
            print(f"FAIL {server}: {type(error).__name__}: {error}", flush=True)
        else:
            print(f"ok   {server}: {summary} ({time.monotonic() - started:.1f} s)", flush=True)
    print(f"{len(servers) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
