"""livedata over real sockets: snapshot then ticks, unknown symbols, conflation for a slow reader, feeds that
stop and restart with their subscribers, a failing source, and one feed per symbol across nodes on Redis
(in-process nodes, and spawned ``hub serve`` nodes of which the feed's owner is killed)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets
from websockets.typing import Subprotocol

from hub import Hub
from hub.protocol import SUBPROTOCOL
from hub.testing import TEST_SECRET, HubClient, ReplyError, wait_until
from hub_realtime_plugins.livedata import Livedata, LivedataSettings, Quote, Tick
from tests.e2e import ticker_plugin

HUB = Path(sys.executable).with_name("hub")

FAST = {"interval": 0.02, "lease_ttl": 0.6, "check_interval": 0.05, "retry_delay": 0.2}


def livedata(source: Any = None, **overrides: Any) -> Callable[[Hub], Livedata]:
    """The plugin as a factory: each hub (each node, each restart) builds its own with these settings."""
    values: dict[str, Any] = {"symbols": ["ACME", "GLOBX"], "seed": 7, **FAST}
    values.update(overrides)
    return lambda hub: Livedata(hub, LivedataSettings(**values), source=source)


async def symbols_of(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.get("/api/livedata/symbols")
        response.raise_for_status()
        return dict(response.json())


async def metric(url: str, name: str) -> float:
    async with httpx.AsyncClient(base_url=url) as http:
        text = (await http.get("/metrics")).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found is not None, f"no metric {name}"
    return float(found.group(1))


async def ticks(client: HubClient, channel: str, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    return [(await client.next_event(channel, "livedata.tick", timeout=timeout))["data"] for _ in range(count)]


# ---- one node ----------------------------------------------------------------------------------------------


async def test_a_subscriber_gets_the_snapshot_then_ticks(hub_server, hub_client):
    server = hub_server(plugins={"livedata": livedata(history_size=5)})
    alice = await hub_client(server, user="alice")
    reply = await alice.sub("livedata:ACME")
    assert reply["snapshot"] == {"symbol": "ACME", "open": None, "last": None, "history": []}  # nothing yet

    first = await ticks(alice, "livedata:ACME", 8)
    assert [tick["seq"] for tick in first] == list(range(1, 9))
    assert {tick["symbol"] for tick in first} == {"ACME"}
    Quote.model_validate(first[0])  # every field of the model, nothing else
    assert set(first[0]) == {"symbol", "price", "change", "ts", "seq"}
    assert first[0]["change"] == 0  # the first price is the session's open
    assert all(tick["price"] > 0 for tick in first)
    for tick in first:
        assert tick["change"] == pytest.approx(tick["price"] - first[0]["price"])

    # a late joiner (a guest) gets the last quote and the recent history, then live ticks after it
    guest = await hub_client(server)
    snapshot = (await guest.sub("livedata:ACME"))["snapshot"]
    last = snapshot["last"]
    assert last["seq"] >= 8
    assert snapshot["open"] == first[0]["price"]
    assert len(snapshot["history"]) == 5  # history_size: a ring of the newest points
    assert [p["seq"] for p in snapshot["history"]] == list(range(last["seq"] - 4, last["seq"] + 1))
    assert snapshot["history"][-1] == {"seq": last["seq"], "ts": last["ts"], "price": last["price"]}
    live = await ticks(guest, "livedata:ACME", 3)
    seqs = [tick["seq"] for tick in live]
    assert seqs == sorted(set(seqs))
    assert seqs[0] >= last["seq"]  # may repeat the snapshot's last (documented)
    # the other symbol is another channel and another feed
    await alice.sub("livedata:GLOBX")
    globx = await ticks(alice, "livedata:GLOBX", 2)
    assert [tick["symbol"] for tick in globx] == ["GLOBX", "GLOBX"]
    await wait_until(lambda: _feeds_here(server.url, 2))


async def _feeds_here(url: str, expected: int) -> bool:
    return (await symbols_of(url))["feeds_here"] == expected


async def test_an_unknown_symbol_is_not_found_and_the_connection_carries_on(hub_server, hub_client):
    server = hub_server(plugins={"livedata": livedata()})
    bob = await hub_client(server, user="bob")
    with pytest.raises(ReplyError) as refused:
        await bob.sub("livedata:NOPE")
    assert refused.value.code == "not_found"
    assert "NOPE" in refused.value.msg
    assert "ACME" in refused.value.msg  # the message names the known symbols
    with pytest.raises(ReplyError) as again:  # the failed sub was undone: not "already_subscribed"
        await bob.sub("livedata:NOPE")
    assert again.value.code == "not_found"
    await bob.sub("livedata:ACME")
    assert (await bob.next_event("livedata:ACME", "livedata.tick"))["data"]["symbol"] == "ACME"
    listing = await symbols_of(server.url)
    assert [s["symbol"] for s in listing["symbols"]] == ["ACME", "GLOBX"]
    assert listing["feeds_here"] == 1  # nothing started for NOPE
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/api/livedata/symbols/NOPE")).status_code == 404
        one = (await http.get("/api/livedata/symbols/ACME")).json()
    assert one["symbol"] == "ACME"
    assert one["last"]["seq"] >= 1
    assert await metric(server.url, 'hub_errors_total{code="not_found"}') == 2


class GatedBurst:
    """A test source: ``FAST`` sends ``count`` ticks as fast as it can once the test opens the gate (a
    threading.Event: the hub runs in another thread), then nothing; ``SLOW`` is never used."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.gate = threading.Event()

    def symbols(self) -> Sequence[str]:
        return ["FAST"]

    async def stream(self, symbol: str, last: Quote | None) -> AsyncIterator[Tick]:
        while not self.gate.is_set():  # noqa: ASYNC110  # a thread's event: polled, the hub's loop is elsewhere
            await asyncio.sleep(0.005)
        for n in range(self.count):
            yield Tick(price=100 + n / 100)
            await asyncio.sleep(0)  # let the hub write to sockets between publishes, as a real feed would
        await asyncio.Event().wait()  # then idle until the feed is stopped


async def test_a_slow_reader_gets_conflated_latest_values_and_a_fast_one_every_tick(hub_server, hub_client):
    burst = GatedBurst(3000)
    # ticker (a test plugin) fills the slow reader's buffers first; a generous heartbeat timeout: the slow
    # reader answers no ping while it does not read
    server = hub_server(
        plugins={"livedata": livedata(source=burst), "ticker": ticker_plugin.Ticker}, heartbeat_timeout=30.0
    )
    fast = await hub_client(server, user="fast")
    await fast.sub("livedata:FAST")

    # the slow reader: a tiny receive buffer, and a client that stops reading (websockets stops taking
    # frames from the socket once max_queue of them wait unread)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    slow = await websockets.connect(
        server.ws_url,
        sock=sock,
        subprotocols=[Subprotocol(SUBPROTOCOL)],
        max_queue=1,
        compression=None,
        close_timeout=0.2,  # it reads nothing more at the end, so it would not see the hub's close frame
    )
    try:
        assert orjson.loads(await slow.recv())["op"] == "hello"
        for request_id, channel in enumerate(["livedata:FAST", "ticker:filler"], start=1):
            await slow.send(orjson.dumps({"op": "sub", "ch": channel, "id": request_id}).decode())
            assert orjson.loads(await slow.recv())["op"] == "ok"
        # The kernel buffers megabytes for a socket that does not read: fill them with big ticker events
        # until frames wait in the hub's send queue, where conflation happens.
        for _ in range(20):
            await fast.pub("ticker:filler", "ticker.burst", {"count": 100, "size": 16384})
            if await metric(server.url, "hub_send_queue_frames") > 0:
                break
        assert await metric(server.url, "hub_send_queue_frames") > 0

        burst.gate.set()
        fast_seqs = [tick["seq"] for tick in await ticks(fast, "livedata:FAST", burst.count, timeout=20)]
        assert fast_seqs == list(range(1, burst.count + 1))  # the fast reader got every tick, in order

        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)  # now read it all, quickly
        slow_seqs: list[int] = []
        while not slow_seqs or slow_seqs[-1] < burst.count:
            frame = orjson.loads(await asyncio.wait_for(slow.recv(), 10))
            if frame["op"] == "ev" and frame["ch"] == "livedata:FAST":
                assert frame["type"] == "livedata.tick"
                slow_seqs.append(frame["data"]["seq"])
        assert slow_seqs[-1] == burst.count  # the last frame is the final tick
        assert all(a < b for a, b in itertools.pairwise(slow_seqs))  # strictly increasing
        assert len(slow_seqs) < burst.count / 10  # far fewer frames than ticks: the rest were conflated
        conflated = await metric(server.url, "hub_conflated_events_total")
        assert conflated >= burst.count - len(slow_seqs)
        assert await metric(server.url, "hub_livedata_ticks_published_total") == burst.count
    finally:
        await slow.close()


async def test_the_feed_stops_with_its_last_subscriber_and_restarts_on_a_new_one(hub_server, hub_client):
    server = hub_server(plugins={"livedata": livedata()})
    alice = await hub_client(server, user="alice")
    bob = await hub_client(server, user="bob")
    await alice.sub("livedata:ACME")
    await bob.sub("livedata:ACME")
    before = await ticks(alice, "livedata:ACME", 3)
    assert await metric(server.url, "hub_livedata_feeds") == 1

    await alice.unsub("livedata:ACME")
    await ticks(bob, "livedata:ACME", 3)  # one subscriber left: the feed goes on
    assert (await symbols_of(server.url))["feeds_here"] == 1
    await bob.close()  # the last one leaves (by closing the socket)
    await wait_until(lambda: _feeds_here(server.url, 0))
    assert await metric(server.url, "hub_livedata_feeds") == 0
    published = await metric(server.url, "hub_livedata_ticks_published_total")
    await asyncio.sleep(FAST["interval"] * 5)  # no feed, so no ticks: the count stands still
    assert await metric(server.url, "hub_livedata_ticks_published_total") == published

    carol = await hub_client(server, user="carol")
    snapshot = (await carol.sub("livedata:ACME"))["snapshot"]
    assert snapshot["last"]["seq"] >= before[-1]["seq"] + 3  # stored by the stopped feed
    resumed = await ticks(carol, "livedata:ACME", 2, timeout=2)
    assert resumed[0]["seq"] >= snapshot["last"]["seq"]  # the session goes on: seq continues
    assert resumed[1]["seq"] == resumed[0]["seq"] + 1
    assert snapshot["open"] is not None
    assert resumed[0]["change"] == pytest.approx(resumed[0]["price"] - snapshot["open"])
    assert (await symbols_of(server.url))["feeds_here"] == 1


class FlakySource:
    """Raises once after three ticks, then works; counts how often a stream was opened."""

    def __init__(self) -> None:
        self.opened = 0

    def symbols(self) -> Sequence[str]:
        return ["FLAKY"]

    async def stream(self, symbol: str, last: Quote | None) -> AsyncIterator[Tick]:
        self.opened += 1
        price = last.price if last is not None else 50.0
        for n in range(1_000_000):
            await asyncio.sleep(0.01)
            if self.opened == 1 and n == 3:
                raise RuntimeError("the upstream feed broke")
            price += 0.01
            yield Tick(price=round(price, 2))


async def test_a_failing_source_is_logged_retried_and_does_not_stop_the_coordinator(hub_server, hub_client, caplog):
    source = FlakySource()
    server = hub_server(plugins={"livedata": livedata(source=source)})
    dave = await hub_client(server, user="dave")
    await dave.sub("livedata:FLAKY")
    got = await ticks(dave, "livedata:FLAKY", 6, timeout=5)
    assert [tick["seq"] for tick in got] == list(range(1, 7))  # the retried feed continues the numbering
    assert source.opened == 2
    assert await metric(server.url, "hub_livedata_feed_failures_total") == 1
    assert any("the feed of FLAKY failed" in record.getMessage() for record in caplog.records)


# ---- several nodes on Redis ------------------------------------------------------------------------------


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


async def test_two_nodes_run_one_feed_and_both_fan_out(hub_server, hub_client, redis_url, prefix):
    plugin = livedata()  # one factory for two hubs: each node builds its own plugin and coordinator
    redis = {"redis_url": redis_url, "redis_prefix": prefix, "probe_interval": 0.1}
    node_a = hub_server(plugins={"livedata": plugin}, **redis)
    node_b = hub_server(plugins={"livedata": plugin}, **redis)
    on_a = await hub_client(node_a, user="a")
    on_b = await hub_client(node_b, user="b")
    await on_a.sub("livedata:ACME")
    await on_b.sub("livedata:ACME")
    got_a = await ticks(on_a, "livedata:ACME", 10)
    got_b = await ticks(on_b, "livedata:ACME", 10)
    for got in (got_a, got_b):
        seqs = [tick["seq"] for tick in got]
        assert seqs == list(range(seqs[0], seqs[0] + 10))  # one stream: no gaps, no doubles
    assert {tick["seq"]: tick["price"] for tick in got_a}.items() & {t["seq"]: t["price"] for t in got_b}.items()
    owners = [(await symbols_of(node.url))["feeds_here"] for node in (node_a, node_b)]
    assert sorted(owners) == [0, 1]  # exactly one node runs the feed

    # the owner's subscriber leaves; the other node's subscriber keeps the (remote) feed alive
    if owners[0]:
        owner_node, owner_client, remote_client = node_a, on_a, on_b
    else:
        owner_node, owner_client, remote_client = node_b, on_b, on_a
    await owner_client.unsub("livedata:ACME")
    await ticks(remote_client, "livedata:ACME", 5)
    assert (await symbols_of(owner_node.url))["feeds_here"] == 1
    await remote_client.unsub("livedata:ACME")  # nobody anywhere: the feed stops
    await wait_until(lambda: _feeds_here(owner_node.url, 0))


@pytest.fixture
def serve_node(tmp_path, redis_url, prefix):
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> tuple[subprocess.Popen[bytes], str]:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {
            **os.environ,
            "HUB_SECRET": TEST_SECRET,
            "HUB_REDIS_PREFIX": prefix,
            "HUB_LOG_LEVEL": "warning",
            "HUB_PLUGINS": "livedata",
            "HUB_PROBE_INTERVAL": "0.1",
            "HUB_LIVEDATA_SYMBOLS": "ACME",
            "HUB_LIVEDATA_INTERVAL": "0.05",
            "HUB_LIVEDATA_LEASE_TTL": "1.0",
            "HUB_LIVEDATA_CHECK_INTERVAL": "0.1",
        }
        command = [str(HUB), "serve", "--port", str(port), "--redis", redis_url, "--data-dir", str(tmp_path / name)]
        process = subprocess.Popen(command, env=env, start_new_session=True)
        processes.append(process)
        return process, f"http://127.0.0.1:{port}"

    yield start
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


async def _ready(url: str) -> bool:
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            return (await http.get("/readyz")).status_code == 200
    except httpx.TransportError:
        return False


async def test_killing_the_feeds_node_moves_the_feed_to_the_other(serve_node):
    (process_a, url_a), (process_b, url_b) = serve_node("a"), serve_node("b")
    await wait_until(lambda: _ready(url_a), timeout=20)
    await wait_until(lambda: _ready(url_b), timeout=20)
    clients = {url: await HubClient.connect(url.replace("http", "ws") + "/ws") for url in (url_a, url_b)}
    try:
        for client in clients.values():
            await client.sub("livedata:ACME")
        for client in clients.values():
            await ticks(client, "livedata:ACME", 5)
        running = {url: (await symbols_of(url))["feeds_here"] for url in (url_a, url_b)}
        assert sorted(running.values()) == [0, 1]
        owner = url_a if running[url_a] else url_b
        survivor = url_b if owner == url_a else url_a
        doomed_process = process_a if owner == url_a else process_b
        watcher = clients[survivor]
        last_seq = (await ticks(watcher, "livedata:ACME", 1))[0]["seq"]

        os.killpg(doomed_process.pid, signal.SIGKILL)  # no shutdown: the lease is not released, it expires
        killed_at = time.monotonic()
        doomed_process.wait()
        # the next tick comes from the survivor once the lease ran out (ttl 1.0 + check 0.1 + a tick)
        after = (await watcher.next_event("livedata:ACME", "livedata.tick", timeout=4))["data"]
        gap = time.monotonic() - killed_at
        assert gap < 1.0 + 0.1 + 0.6, f"the feed took {gap:.2f} s to move"
        assert after["seq"] > last_seq - 3  # resumed from the stored session (a write in flight may be lost)
        more = await ticks(watcher, "livedata:ACME", 5)
        assert [tick["seq"] for tick in more] == list(range(more[0]["seq"], more[0]["seq"] + 5))
        assert (await symbols_of(survivor))["feeds_here"] == 1
    finally:
        for client in clients.values():
            with contextlib.suppress(Exception):
                await client.close()
