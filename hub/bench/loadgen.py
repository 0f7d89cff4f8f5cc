"""The load generator's client processes: their share of the sockets, opened, driven through the phases of a
run by the parent's commands over a pipe, and closed."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
import time
from multiprocessing.connection import Connection as Pipe
from multiprocessing.sharedctypes import SynchronizedArray
from typing import Any

from websockets.uri import parse_uri

from hub.bench.adapters import adapter_for
from hub.bench.client import BenchError, Client, WorkerSpec, WorkerState


def worker_main(conn: Pipe, spec: WorkerSpec, progress: SynchronizedArray[Any]) -> None:
    """Entry point of a client process: its sockets, driven by the parent's commands."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and ends this process
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):  # 10,000 idle sockets need more than the usual 1024
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    del soft
    try:
        asyncio.run(_worker(conn, spec, progress))
    except Exception as exc:  # task boundary: reported to the parent, which fails the run with it
        with contextlib.suppress(OSError, ValueError):
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


async def _worker(conn: Pipe, spec: WorkerSpec, progress: SynchronizedArray[Any]) -> None:
    loop = asyncio.get_running_loop()
    state = WorkerState(spec, progress)
    adapter = adapter_for(spec.protocol)
    urls = [adapter.url(url) for url in spec.urls]
    gate = asyncio.Semaphore(spec.connect_concurrency)
    clients: list[Client] = []
    errors: list[str] = []

    async def open_one(label: str, k: int, room: int = -1, publisher: int = -1) -> None:
        index = k % len(urls)
        wsuri = parse_uri(urls[index])
        async with gate:
            try:
                _transport, client = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: Client(state, adapter, urls[index], index, room, publisher), wsuri.host, wsuri.port
                    ),
                    spec.timeout,
                )
                await asyncio.wait_for(client.ready, spec.timeout)
                clients.append(client)
                state.connected += 1
            except (TimeoutError, OSError, BenchError) as exc:
                errors.append(f"{label}: {type(exc).__name__}: {exc}")

    def tick() -> None:
        state.flush_progress()
        if not state.stopping:
            loop.call_later(0.1, tick)

    tick()
    connect_start = time.time()
    openers = [open_one(f"subscriber {k}", k, room=k % spec.rooms) for k in spec.subscribers]
    openers += [open_one(f"publisher {p}", 0, publisher=p) for p in spec.publishers]
    openers += [open_one(f"idle connection {i}", i) for i in range(spec.idle)]
    await asyncio.gather(*openers)
    connect_end = time.time()
    conn.send(
        ("ready", {"connected": len(clients), "errors": errors[:5], "started": connect_start, "ended": connect_end})
    )
    publishers = [client for client in clients if client.publisher >= 0]
    cpu_start = time.process_time()
    while True:
        command, argument = await loop.run_in_executor(None, conn.recv)
        if command == "quiet":
            # joining a presence channel announces every joiner to the others: wait until that traffic is over
            quiet_for, limit = argument
            deadline = time.monotonic() + limit
            last = (state.other_frames, state.pings)
            still = time.monotonic()
            while time.monotonic() - still < quiet_for and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                if (state.other_frames, state.pings) != last:
                    last, still = (state.other_frames, state.pings), time.monotonic()
            cpu_start = time.process_time()
            conn.send(("quiet", None))
        elif command == "go":
            for client in publishers:
                client.begin(argument)
        elif command == "finish":
            for client in publishers:  # a publisher still waiting for replies stops here
                if not client.finished.done():
                    client.finished.set_result(None)
            state.flush_progress()
            conn.send(
                (
                    "result",
                    {
                        "received": state.received,
                        "unique": sum(client.unique for client in clients),
                        "duplicates": state.duplicates,
                        "order_violations": state.order_violations,
                        "other_frames": state.other_frames,
                        "pings": state.pings,
                        "first_recv_ns": state.first_recv_ns,
                        "last_recv_ns": state.last_recv_ns,
                        "first_send_ns": state.first_send_ns,
                        "last_send_ns": state.last_send_ns,
                        "sent_by_publisher": state.sent_by_publisher,
                        "replies": state.replies,
                        "latencies": {index: values.tobytes() for index, values in state.latencies.items()},
                        "errors": state.errors,
                        "closes": state.closes,
                        "open": sum(1 for client in clients if not client.lost.done()),
                        "client_cpu_s": time.process_time() - cpu_start,
                    },
                )
            )
        elif command == "close":
            state.stopping = True

            async def leave(client: Client) -> None:
                async with gate:  # as many closes at once as handshakes
                    client.close()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(client.lost), 5)
                    if client.transport is not None and not client.lost.done():
                        client.transport.abort()

            await asyncio.gather(*(leave(client) for client in clients))
            conn.send(("closed", None))
            return
