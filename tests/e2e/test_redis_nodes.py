"""Several hub nodes on one real Redis: fan-out, recovery, dedup, presence, outages, a killed node."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

import hub_realtime_plugins.chat
from hub.testing import TEST_SECRET, HubClient, ReplyError, wait_until
from tests.e2e.feed_plugin import make_feed_plugin

HUB = Path(sys.executable).with_name("hub")


def node_settings(redis_url: str, prefix: str, **overrides: object) -> dict[str, object]:
    settings: dict[str, object] = {
        "redis_url": redis_url,
        "redis_prefix": prefix,
        "probe_interval": 0.1,
        "probe_timeout": 0.6,
        "presence_ttl": 0.6,
    }
    settings.update(overrides)
    return settings


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def two_nodes(hub_server, redis_url, prefix):
    plugins_here = {"feed": make_feed_plugin(history_size=50), "chat": hub_realtime_plugins.chat.Chat}
    node_a = hub_server(plugins=plugins_here, **node_settings(redis_url, prefix))
    node_b = hub_server(plugins=plugins_here, **node_settings(redis_url, prefix))
    return node_a, node_b


async def ready_url(url: str) -> bool:
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            return (await http.get("/readyz")).status_code == 200
    except httpx.TransportError:
        return False


async def ready(node) -> bool:
    return await ready_url(node.url)


async def test_every_message_arrives_once_and_in_order_on_both_nodes(two_nodes, hub_client):
    node_a, node_b = two_nodes
    subscribers = [await hub_client(node, user=f"s{i}") for i, node in enumerate([node_a, node_b] * 3)]
    for subscriber in subscribers:
        await subscriber.sub("feed:room")
    publisher_a = await hub_client(node_a, user="pa")
    publisher_b = await hub_client(node_b, user="pb")

    async def publish(client: HubClient, source: str) -> None:
        for n in range(30):
            await client.pub("feed:room", "feed.post", {"n": n, "source": source})

    await asyncio.gather(publish(publisher_a, "A"), publish(publisher_b, "B"))

    for subscriber in subscribers:
        events = [await subscriber.next_event("feed:room", "feed.posted") for _ in range(60)]
        await subscriber.no_event("feed:room", "feed.posted", wait=0.1)
        for source in "AB":
            assert [e["data"]["n"] for e in events if e["data"]["source"] == source] == list(range(30))
        assert [e["offset"] for e in events] == list(range(1, 61))  # one stream, in offset order on every node


async def test_one_redis_subscription_per_channel_per_node(two_nodes, hub_client, redis_url, prefix):
    node_a, node_b = two_nodes
    on_a = [await hub_client(node_a, user=f"a{i}") for i in range(4)]
    on_b = [await hub_client(node_b, user=f"b{i}") for i in range(4)]
    for client in on_a + on_b:
        await client.sub("chat:shared")
    redis = aioredis.Redis.from_url(redis_url)

    async def subscriptions() -> int:
        [(_name, count)] = await redis.pubsub_numsub(f"{prefix}:{{chat:shared}}:ch")
        return int(count)

    async def subscriptions_are(expected: int) -> bool:
        return await subscriptions() == expected

    try:
        await wait_until(lambda: subscriptions_are(2))
        for client in on_b:
            await client.unsub("chat:shared")
        await wait_until(lambda: subscriptions_are(1))
        for client in on_a[:3]:
            await client.unsub("chat:shared")
        await wait_until(lambda: subscriptions_are(1))  # one client left on A keeps the node subscribed
        await on_a[3].unsub("chat:shared")
        await wait_until(lambda: subscriptions_are(0))
    finally:
        await redis.aclose()


async def test_recovery_across_nodes_is_exact(two_nodes, hub_client):
    node_a, node_b = two_nodes
    reader = await hub_client(node_a, user="reader")
    first = await reader.sub("feed:news")
    await reader.close()

    writer = await hub_client(node_b, user="writer")
    for n in range(3):
        await writer.pub("feed:news", "feed.post", {"n": n})

    again = await hub_client(node_b, user="reader")  # reconnects to the other node
    reply = await again.sub("feed:news", since={"epoch": first["epoch"], "offset": first["offset"]})
    assert reply["recovered"] is True
    assert [e["data"]["n"] for e in reply["missed"]] == [0, 1, 2]
    await writer.pub("feed:news", "feed.post", {"n": 3})
    live = await again.next_event("feed:news", "feed.posted")
    assert (live["data"]["n"], live["offset"]) == (3, first["offset"] + 4)
    await again.no_event("feed:news", "feed.posted", wait=0.1)


async def test_past_the_window_across_nodes_is_recovered_false(hub_server, hub_client, redis_url, prefix):
    plugins_here = {"feed": make_feed_plugin(history_size=3)}
    node_a = hub_server(plugins=plugins_here, **node_settings(redis_url, prefix))
    node_b = hub_server(plugins=plugins_here, **node_settings(redis_url, prefix))
    reader = await hub_client(node_a, user="reader")
    first = await reader.sub("feed:news")
    await reader.close()
    writer = await hub_client(node_b, user="writer")
    for n in range(5):
        await writer.pub("feed:news", "feed.post", {"n": n})
    again = await hub_client(node_a, user="reader")
    reply = await again.sub("feed:news", since={"epoch": first["epoch"], "offset": first["offset"]})
    assert reply["recovered"] is False
    assert "missed" not in reply
    assert reply["snapshot"] == {"note": "full state"}


async def test_a_duplicate_mid_is_delivered_once_across_nodes(two_nodes, hub_client):
    node_a, node_b = two_nodes
    watcher = await hub_client(node_a, user="watcher")
    await watcher.sub("feed:dedup")
    on_a = await hub_client(node_a, user="alice")
    on_b = await hub_client(node_b, user="alice")  # the same user, retrying through another node
    await on_a.pub("feed:dedup", "feed.post", {"n": 1}, mid="m-1")
    assert await on_b.pub("feed:dedup", "feed.post", {"n": 1}, mid="m-1") == {"duplicate": True}
    assert (await watcher.next_event("feed:dedup", "feed.posted"))["data"]["n"] == 1
    await watcher.no_event("feed:dedup", "feed.posted", wait=0.2)


async def test_chat_history_lives_in_redis_and_is_shared(two_nodes, hub_client):
    node_a, node_b = two_nodes
    alice = await hub_client(node_a, user="alice")
    await alice.sub("chat:shared-history")
    await alice.pub("chat:shared-history", "chat.send", {"text": "stored in redis"})
    bob = await hub_client(node_b, user="bob")
    snapshot = (await bob.sub("chat:shared-history"))["snapshot"]
    assert [m["text"] for m in snapshot["messages"]] == ["stored in redis"]


async def test_presence_and_its_events_reach_every_node(two_nodes, hub_client):
    node_a, node_b = two_nodes
    alice = await hub_client(node_a, user="alice")
    await alice.sub("chat:presence")
    bob = await hub_client(node_b, user="bob")
    reply = await bob.sub("chat:presence")
    assert sorted(m["user"] for m in reply["presence"]) == ["alice", "bob"]
    assert (await alice.next_event("chat:presence", "chat.joined"))["data"]["user"] == "bob"
    await bob.close()
    assert (await alice.next_event("chat:presence", "chat.left"))["data"]["user"] == "bob"


async def test_redis_restart_changes_the_epoch_and_delivery_resumes(hub_server, hub_client, redis_server, prefix):
    plugins_here = {"feed": make_feed_plugin(history_size=50)}
    node_a = hub_server(plugins=plugins_here, **node_settings(redis_server.url, prefix))
    node_b = hub_server(plugins=plugins_here, **node_settings(redis_server.url, prefix))
    writer = await hub_client(node_a, user="writer")
    reader = await hub_client(node_b, user="reader")
    before = await reader.sub("feed:live")
    await writer.pub("feed:live", "feed.post", {"n": 1})
    assert (await reader.next_event("feed:live", "feed.posted"))["data"]["n"] == 1
    assert await ready(node_a)

    async def ready_is(node, expected: bool) -> bool:
        return await ready(node) is expected

    redis_server.stop()  # no persistence: it comes back empty
    await wait_until(lambda: ready_is(node_a, False))

    with pytest.raises(ReplyError) as outage:
        await writer.pub("feed:live", "feed.post", {"n": 2})
    assert outage.value.code == "unavailable"
    assert await writer.call({"op": "ping"}) is None  # the socket survives the outage

    redis_server.start()
    await wait_until(lambda: ready_is(node_a, True), timeout=10)
    await wait_until(lambda: ready_is(node_b, True), timeout=10)

    await writer.pub("feed:live", "feed.post", {"n": 3})  # cross-node delivery resumed on the old subscription
    assert (await reader.next_event("feed:live", "feed.posted"))["data"]["n"] == 3

    async def reader_present() -> bool:
        members = (await writer.call({"op": "presence", "ch": "feed:live"}))["presence"]
        return "reader" in [m["user"] for m in members]

    await wait_until(reader_present)  # the nodes re-announce their members to the empty Redis

    late = await hub_client(node_b, user="late")
    position = {"epoch": before["epoch"], "offset": before["offset"] + 1}
    reply = await late.sub("feed:live", since=position)
    assert reply["recovered"] is False  # the stream was lost: never a false recovered=true
    assert reply["epoch"] != before["epoch"]


@pytest.fixture
def serve_node(tmp_path, redis_url, prefix):
    processes: list[subprocess.Popen[bytes]] = []

    def start(*extra: str) -> tuple[subprocess.Popen[bytes], str]:
        port = _free_port()
        env = {
            **os.environ,
            "HUB_SECRET": TEST_SECRET,
            "HUB_REDIS_PREFIX": prefix,
            "HUB_PRESENCE_TTL": "0.6",
            "HUB_LOG_LEVEL": "warning",
        }
        command = [str(HUB), "serve", "--port", str(port), "--redis", redis_url, "--data-dir", str(tmp_path / "node")]
        # A session of its own, so the whole group (uvicorn's workers too) can be killed at once.
        process = subprocess.Popen([*command, *extra], env=env, start_new_session=True)
        processes.append(process)
        return process, f"http://127.0.0.1:{port}"

    yield start
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_killed_nodes_clients_leave_presence_within_the_ttl(
    hub_server, hub_client, redis_url, prefix, serve_node
):
    survivor = hub_server(plugins={"chat": hub_realtime_plugins.chat.Chat}, **node_settings(redis_url, prefix))
    process, url = serve_node()

    await wait_until(lambda: ready_url(url), timeout=15)
    doomed = await HubClient.connect(url.replace("http", "ws") + "/ws")
    await doomed.sub("chat:room")
    watcher = await hub_client(survivor, user="watcher")
    reply = await watcher.sub("chat:room")
    assert doomed.hello["client"] in [m["client"] for m in reply["presence"]]

    os.killpg(process.pid, signal.SIGKILL)  # kill -9: no shutdown, no goodbye to Redis
    process.wait()
    left = await watcher.next_event("chat:room", "chat.left", timeout=5)
    assert left["data"]["client"] == doomed.hello["client"]
    members = (await watcher.call({"op": "presence", "ch": "chat:room"}))["presence"]
    assert [m["user"] for m in members] == ["watcher"]


async def test_workers_share_one_port_and_fan_out_through_redis(serve_node):
    process, url = serve_node("--workers", "2")

    await wait_until(lambda: ready_url(url), timeout=20)
    children = (await asyncio.to_thread(Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text)).split()
    assert len(children) >= 2  # the worker processes (and multiprocessing's resource tracker)

    clients = [await HubClient.connect(url.replace("http", "ws") + "/ws") for _ in range(8)]
    try:
        for client in clients:
            await client.sub("chat:workers")
        await clients[0].pub("chat:workers", "chat.send", {"text": "to every worker"})
        for client in clients:
            event = await client.next_event("chat:workers", "chat.posted")
            assert event["data"]["text"] == "to every worker"
    finally:
        for client in clients:
            await client.close()
