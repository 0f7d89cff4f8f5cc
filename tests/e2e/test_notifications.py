"""notifications over real sockets and HTTP: targeted and "everyone" delivery, offline delivery, read sync across
tabs, the publish API's auth and validation, Idempotency-Key, expiry, the CLI, and two nodes on one Redis."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from pydantic import BaseModel

from hub import Channel, Context, Hub, Plugin, hookimpl
from hub.testing import HubClient, HubServer, ReplyError, wait_until
from hub_realtime_plugins.notifications import Notifications, NotificationsSettings, PublishResult, notify

HUB = Path(sys.executable).with_name("hub")
KEY = "test-key-0123456789"
HEADERS = {"X-API-Key": KEY}


def configured_settings(**overrides: Any) -> NotificationsSettings:
    values: dict[str, Any] = {"purge_interval": 0.1, "send_burst": 20, "send_rate": 20.0}
    values.update(overrides)
    return NotificationsSettings(**values)


def plugin(**overrides: Any) -> dict[str, object]:
    """The plugin as a factory: every hub started with it builds its own Notifications object."""
    configured = configured_settings(**overrides)
    return {"notifications": lambda hub: Notifications(hub, settings=configured)}


@pytest.fixture
def server(hub_server) -> HubServer:
    return hub_server(plugins=plugin(), api_keys=[KEY])


async def post(server: HubServer, payload: dict[str, Any], **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url) as http:
        return await http.post("/api/notifications", json=payload, headers=headers or HEADERS)


async def published(server: HubServer, payload: dict[str, Any], **headers: str) -> dict[str, Any]:
    reply = await post(server, payload, **headers)
    assert reply.status_code in (200, 201), reply.text
    body: dict[str, Any] = reply.json()
    return body


async def events_published(server: HubServer) -> int:
    async with httpx.AsyncClient(base_url=server.url) as http:
        text = (await http.get("/metrics")).text
    match = re.search(r"^hub_events_published_total (\d+)", text, re.M)
    assert match is not None
    return int(match.group(1))


async def test_a_targeted_notification_reaches_only_its_user_on_every_tab(server, hub_client):
    alice_tab1 = await hub_client(server, user="alice")
    alice_tab2 = await hub_client(server, user="alice")
    bob = await hub_client(server, user="bob")
    for client in (alice_tab1, alice_tab2):
        assert (await client.sub("notifications:alice"))["snapshot"] == {"notifications": [], "unread": 0}
    await bob.sub("notifications:bob")
    await bob.sub("notifications:@all")

    result = await published(server, {"users": ["alice"], "title": "Build passed", "level": "success", "url": "/ci/1"})
    assert result["to"] == "user"
    assert result["recipients"] == ["alice"]
    assert result["duplicate"] is False
    for client in (alice_tab1, alice_tab2):
        event = await client.next_event("notifications:alice", "notifications.new")
        assert event["data"] == result["notification"]
        assert event["data"]["title"] == "Build passed"
        assert event["data"]["level"] == "success"
        assert event["data"]["read"] is False
        assert event["data"]["expires_at"] > time.time()
    await bob.no_event()


async def test_an_offline_user_gets_unread_notifications_on_connect(server, hub_client):
    first = await published(server, {"users": ["carol", "dave"], "title": "one", "body": "the body"})
    second = await published(server, {"users": ["carol"], "title": "two", "data": {"build": 7}})
    broadcast = await published(server, {"everyone": True, "title": "maintenance tonight", "level": "warning"})

    carol = await hub_client(server, user="carol")
    snapshot = (await carol.sub("notifications:carol"))["snapshot"]
    assert snapshot["unread"] == 3
    # personal and broadcast merged, newest first, each with its read flag
    assert [n["id"] for n in snapshot["notifications"]] == [broadcast["id"], second["id"], first["id"]]
    assert [n["to"] for n in snapshot["notifications"]] == ["everyone", "user", "user"]
    assert snapshot["notifications"][1]["data"] == {"build": 7}
    assert snapshot["notifications"][2]["body"] == "the body"
    assert not any(n["read"] for n in snapshot["notifications"])

    dave = await hub_client(server, user="dave")
    assert (await dave.sub("notifications:dave"))["snapshot"]["unread"] == 2


async def test_read_state_syncs_across_tabs_and_stays_per_user(server, hub_client):
    ids = [(await published(server, {"users": ["alice", "bob"], "title": f"n{i}"}))["id"] for i in range(3)]
    broadcast = (await published(server, {"everyone": True, "title": "for all"}))["id"]
    tab1 = await hub_client(server, user="alice")
    tab2 = await hub_client(server, user="alice")
    assert (await tab1.sub("notifications:alice"))["snapshot"]["unread"] == 4
    await tab2.sub("notifications:alice")

    # read on tab 1: tab 2 hears of it with the new count; unknown and repeated ids are ignored
    reply = await tab1.pub("notifications:alice", "notifications.read", {"ids": [ids[0], broadcast]})
    assert reply == {"ids": sorted([ids[0], broadcast]), "all": False, "up_to": None, "unread": 2}
    for tab in (tab1, tab2):  # the tab that read it too: every tab applies the same events
        assert (await tab.next_event("notifications:alice", "notifications.marked_read"))["data"] == reply
    unknown = "000000000001-00000000"
    reply = await tab2.pub("notifications:alice", "notifications.read", {"ids": [ids[0], unknown]})
    assert reply == {"ids": [], "all": False, "up_to": None, "unread": 2}
    await tab1.no_event("notifications:alice", "notifications.marked_read", wait=0.2)  # nothing changed

    # a late tab sees the read flags
    tab3 = await hub_client(server, user="alice")
    snapshot = (await tab3.sub("notifications:alice"))["snapshot"]
    assert {n["id"]: n["read"] for n in snapshot["notifications"]} == {
        broadcast: True,
        ids[2]: False,
        ids[1]: False,
        ids[0]: True,
    }

    # read_all on tab 2: every tab gets unread 0
    reply = await tab2.pub("notifications:alice", "notifications.read_all", {})
    assert reply["all"] is True
    assert reply["unread"] == 0
    assert reply["up_to"] == broadcast
    for tab in (tab1, tab2, tab3):
        assert (await tab.next_event("notifications:alice", "notifications.marked_read"))["data"] == reply

    # bob's copy and the broadcast are still unread for him: read state is per user
    bob = await hub_client(server, user="bob")
    assert (await bob.sub("notifications:bob"))["snapshot"]["unread"] == 4

    # a newer notification after read_all is unread again
    await published(server, {"users": ["alice"], "title": "after"})
    tab4 = await hub_client(server, user="alice")
    assert (await tab4.sub("notifications:alice"))["snapshot"]["unread"] == 1


async def test_read_all_up_to_leaves_newer_notifications_unread(server, hub_client):
    older = (await published(server, {"users": ["erin"], "title": "older"}))["id"]
    newer = (await published(server, {"users": ["erin"], "title": "newer"}))["id"]
    erin = await hub_client(server, user="erin")
    await erin.sub("notifications:erin")
    reply = await erin.pub("notifications:erin", "notifications.read_all", {"up_to": older})
    assert reply == {"ids": [], "all": True, "up_to": older, "unread": 1}
    # a bound in the future is clamped to the newest notification: later ones will still be unread
    ahead = await erin.pub("notifications:erin", "notifications.read_all", {"up_to": "ffffffffffff-ffffffff"})
    assert ahead["up_to"] == newer
    assert ahead["unread"] == 0
    later = (await published(server, {"users": ["erin"], "title": "later"}))["id"]
    erin2 = await hub_client(server, user="erin")
    assert (await erin2.sub("notifications:erin"))["snapshot"]["unread"] == 1
    # the watermark never goes down
    reply = await erin.pub("notifications:erin", "notifications.read_all", {"up_to": "000000000001-00000000"})
    assert reply["up_to"] == newer
    assert (await erin.sub("notifications:@all"))["snapshot"] is None  # the personal snapshot has broadcasts
    await erin.unsub("notifications:erin")
    data = await erin.sub("notifications:erin")
    assert {n["id"]: n["read"] for n in data["snapshot"]["notifications"]} == {
        later: False,
        newer: True,
        older: True,
    }


async def test_everyone_is_one_event_to_every_broadcast_subscriber(server, hub_client):
    users = ["u1", "u2", "u3"]
    clients = [await hub_client(server, user=user) for user in users]
    guest = await hub_client(server)
    for user, client in zip(users, clients, strict=True):
        await client.sub(f"notifications:{user}")
        await client.sub("notifications:@all")
    await guest.sub("notifications:@all")

    before = await events_published(server)
    result = await published(server, {"everyone": True, "title": "Hello everyone"})
    assert await events_published(server) == before + 1  # one event, not one per user
    assert result["to"] == "everyone"
    assert result["recipients"] == []
    for client in [*clients, guest]:
        event = await client.next_event("notifications:@all", "notifications.new")
        assert event["data"]["id"] == result["id"]
        assert event["data"]["to"] == "everyone"
    for user, client in zip(users, clients, strict=True):
        await client.no_event(f"notifications:{user}", wait=0.1)


async def test_http_publish_auth_and_validation(server, hub_client):
    payload = {"users": ["alice"], "title": "hi"}
    assert (await post(server, payload, **{"X-API-Key": "wrong-key"})).status_code == 401
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.post("/api/notifications", json=payload)).status_code == 401
        # credentials are checked before the payload: no key and a bad payload is still 401
        assert (await http.post("/api/notifications", json={"title": ""})).status_code == 401
    assert (await post(server, payload, Authorization="Bearer not-a-key")).status_code == 401
    assert (await post(server, payload, Authorization=f"Bearer {KEY}")).status_code == 201

    scoped = server.token("svc", scopes=("publish",))
    assert (await post(server, payload, Authorization=f"Bearer {scoped}")).status_code == 201
    unscoped = server.token("svc")
    reply = await post(server, payload, Authorization=f"Bearer {unscoped}")
    assert reply.status_code == 403
    assert "publish" in reply.json()["detail"]

    def fields(reply: httpx.Response) -> dict[str, str]:
        assert reply.status_code == 422, reply.text
        return {".".join(str(p) for p in error["loc"][1:]): error["msg"] for error in reply.json()["detail"]}

    assert "title" in fields(await post(server, {"users": ["alice"], "title": "   "}))
    assert "users" in fields(await post(server, {"users": ["alice"], "everyone": True, "title": "x"}))
    assert "users" in fields(await post(server, {"title": "x"}))
    assert "users" in fields(await post(server, {"users": ["@all"], "title": "x"}))
    assert "users.0" in fields(await post(server, {"users": ["no spaces"], "title": "x"}))
    assert "users" in fields(await post(server, {"users": [f"u{i}" for i in range(1001)], "title": "x"}))
    assert "url" in fields(await post(server, {"everyone": True, "title": "x", "url": "javascript:alert(1)"}))
    assert "url" in fields(await post(server, {"everyone": True, "title": "x", "url": "//evil.example"}))
    assert "level" in fields(await post(server, {"everyone": True, "title": "x", "level": "fatal"}))
    assert "body" in fields(await post(server, {"everyone": True, "title": "x", "body": "b" * 2001}))
    assert "data" in fields(await post(server, {"everyone": True, "title": "x", "data": {"k": "v" * 5000}}))
    assert "ttl" in fields(await post(server, {"everyone": True, "title": "x", "ttl": 0}))
    assert "ttl" in fields(await post(server, {"everyone": True, "title": "x", "ttl": 31 * 86400}))  # > max_ttl
    assert "extra" in fields(await post(server, {"everyone": True, "title": "x", "extra": 1}))
    # nothing of that was delivered
    watcher = await hub_client(server, user="alice")
    assert (await watcher.sub("notifications:alice"))["snapshot"]["unread"] == 2  # the two accepted ones


async def test_an_idempotency_key_delivers_once(hub_server, hub_client):
    server = hub_server(plugins=plugin(), api_keys=[KEY, "other-key-0123456"])
    alice = await hub_client(server, user="alice")
    await alice.sub("notifications:alice")
    payload = {"users": ["alice"], "title": "once"}
    first = await post(server, payload, **HEADERS, **{"Idempotency-Key": "order-42"})
    assert first.status_code == 201
    retry = await post(server, payload, **HEADERS, **{"Idempotency-Key": "order-42"})
    assert retry.status_code == 200
    assert retry.json() == {**first.json(), "duplicate": True}
    # concurrent retries of a new key: one delivery, the same result for both
    replies = await asyncio.gather(
        *(post(server, {**payload, "title": "burst"}, **HEADERS, **{"Idempotency-Key": "burst-1"}) for _ in range(5))
    )
    assert sorted(reply.status_code for reply in replies) == [200, 200, 200, 200, 201]
    assert len({reply.json()["id"] for reply in replies}) == 1
    titles = [(await alice.next_event("notifications:alice", "notifications.new"))["data"]["title"] for _ in range(2)]
    assert titles == ["once", "burst"]
    await alice.no_event("notifications:alice", "notifications.new", wait=0.3)

    # the same key with another payload is refused; another publisher has its own keys
    reused = await post(server, {**payload, "title": "changed"}, **HEADERS, **{"Idempotency-Key": "order-42"})
    assert reused.status_code == 422
    assert reused.json()["detail"][0]["loc"] == ["header", "idempotency-key"]
    scoped = server.token("svc", scopes=("publish",))
    own = await post(server, payload, Authorization=f"Bearer {scoped}", **{"Idempotency-Key": "order-42"})
    assert own.status_code == 201
    assert own.json()["id"] != first.json()["id"]
    bad = await post(server, payload, **HEADERS, **{"Idempotency-Key": "has space"})
    assert bad.status_code == 422


async def test_channel_rules_and_the_send_form(server, hub_client):
    alice = await hub_client(server, user="alice")
    with pytest.raises(ReplyError) as refused:
        await alice.sub("notifications:bob")
    assert refused.value.code == "forbidden"
    await alice.sub("notifications:@all")
    with pytest.raises(ReplyError) as refused:
        await alice.pub("notifications:@all", "notifications.read_all", {})
    assert refused.value.code == "forbidden"
    with pytest.raises(ReplyError) as refused:
        await alice.pub("notifications:bob", "notifications.read_all", {})
    assert refused.value.code == "forbidden"
    with pytest.raises(ReplyError) as refused:
        await alice.pub("notifications:alice", "notifications.new", {"title": "fake"})
    assert refused.value.code == "unknown_type"  # clients publish no events

    # to oneself: anyone, guests too
    guest = await hub_client(server)
    me = guest.hello["user"]["user"]
    await guest.sub(f"notifications:{me}")
    sent = await guest.pub(f"notifications:{me}", "notifications.send", {"title": "note to self"})
    assert sent["recipients"] == [me]
    assert (await guest.next_event(f"notifications:{me}", "notifications.new"))["data"]["id"] == sent["id"]
    await alice.pub("notifications:alice", "notifications.send", {"title": "me", "users": ["alice"]})

    # to others or everyone: only with the publish scope
    for data in ({"title": "x", "users": ["bob"]}, {"title": "x", "everyone": True}):
        with pytest.raises(ReplyError) as refused:
            await alice.pub("notifications:alice", "notifications.send", data)
        assert refused.value.code == "forbidden"
        assert "publish" in refused.value.msg
    with pytest.raises(ReplyError) as refused:
        await alice.pub("notifications:alice", "notifications.send", {"title": ""})
    assert refused.value.code == "invalid"
    assert refused.value.details is not None
    assert refused.value.details[0]["loc"] == ["title"]
    with pytest.raises(ReplyError) as refused:
        await alice.pub("notifications:alice", "notifications.send", {"title": "x", "ttl": 40 * 86400})
    assert refused.value.code == "invalid"

    publisher = await HubClient.connect(server.ws_url, token=server.token("ops", scopes=("publish",)))
    try:
        await publisher.sub("notifications:ops")
        bob = await hub_client(server, user="bob")
        await bob.sub("notifications:bob")
        sent = await publisher.pub("notifications:ops", "notifications.send", {"title": "hi bob", "users": ["bob"]})
        assert (await bob.next_event("notifications:bob", "notifications.new"))["data"]["id"] == sent["id"]
        await publisher.pub("notifications:ops", "notifications.send", {"title": "all", "everyone": True})
        assert (await alice.next_event("notifications:@all", "notifications.new"))["data"]["title"] == "all"
    finally:
        await publisher.close()


async def test_send_is_rate_limited(hub_server, hub_client):
    server = hub_server(plugins=plugin(send_burst=2, send_rate=0.5))
    alice = await hub_client(server, user="alice")
    await alice.sub("notifications:alice")
    for _ in range(2):
        await alice.pub("notifications:alice", "notifications.send", {"title": "x"})
    with pytest.raises(ReplyError) as refused:
        await alice.pub("notifications:alice", "notifications.send", {"title": "x"})
    assert refused.value.code == "rate_limited"


async def test_expired_notifications_disappear(server, hub_client):
    # long enough to be seen before it expires even on a busy machine (three requests and a connect)
    await published(server, {"users": ["alice"], "title": "brief", "ttl": 1.0})
    await published(server, {"everyone": True, "title": "brief for all", "ttl": 1.0})
    kept = await published(server, {"users": ["alice"], "title": "kept"})
    alice = await hub_client(server, user="alice")
    assert (await alice.sub("notifications:alice"))["snapshot"]["unread"] == 3
    await alice.unsub("notifications:alice")

    async def expired() -> bool:
        snapshot = (await alice.sub("notifications:alice"))["snapshot"]
        await alice.unsub("notifications:alice")
        return bool(snapshot["unread"] == 1 and [n["id"] for n in snapshot["notifications"]] == [kept["id"]])

    await wait_until(expired)


async def test_retention_keeps_the_newest_per_user(hub_server, hub_client):
    server = hub_server(plugins=plugin(retention=3), api_keys=[KEY])
    for i in range(5):
        await published(server, {"users": ["alice"], "title": f"n{i}"})
    alice = await hub_client(server, user="alice")
    snapshot = (await alice.sub("notifications:alice"))["snapshot"]
    assert [n["title"] for n in snapshot["notifications"]] == ["n4", "n3", "n2"]
    assert snapshot["unread"] == 3


class Ship(BaseModel):
    to: str


class Orders(Plugin):
    """Another plugin that sends notifications from its own handler, through the Notifications object of its
    hub, which the code building the hub's plugins hands it (there is no lookup by hub)."""

    def __init__(self, hub: Hub, notifications: Notifications) -> None:
        super().__init__(hub)
        self.notifications = notifications
        self.channel = Channel("orders")
        self.channel.on("orders.ship", Ship)(self.ship)

    @hookimpl
    def hub_channels(self) -> list[Channel]:
        return [self.channel]

    async def ship(self, ctx: Context, msg: Ship) -> PublishResult:
        return await notify(
            self.notifications, users=[msg.to], title="Your order shipped", level="success", url="/orders/1"
        )


def notifications_and_orders() -> dict[str, object]:
    """notifications and orders for one hub: the hub builds its plugins in this order, so the orders factory
    gets the Notifications object built for the same hub."""
    built: list[Notifications] = []

    def notifications(hub: Hub) -> Notifications:
        built.append(Notifications(hub, settings=configured_settings()))
        return built[-1]

    return {"notifications": notifications, "orders": lambda hub: Orders(hub, built[-1])}


async def test_the_python_api(hub_server, hub_client):
    server = hub_server(plugins=notifications_and_orders())
    bob = await hub_client(server, user="bob")
    await bob.sub("notifications:bob")
    shop = await hub_client(server, user="shop")
    result = await shop.pub("orders:main", "orders.ship", {"to": "bob"})
    event = await bob.next_event("notifications:bob", "notifications.new")
    assert event["data"]["id"] == result["id"]
    assert event["data"]["title"] == "Your order shipped"
    with pytest.raises(ReplyError) as refused:  # a bad call from a plugin is that plugin's bug: internal
        await shop.pub("orders:main", "orders.ship", {"to": "not valid"})
    assert refused.value.code == "internal"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    environment = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")} | (env or {})
    return subprocess.run([str(HUB), "notify", *args], capture_output=True, text=True, timeout=30, env=environment)


async def test_the_notify_command(server, hub_client):
    alice = await hub_client(server, user="alice")
    await alice.sub("notifications:alice")
    await alice.sub("notifications:@all")
    base = ("--hub", server.url)
    done = await asyncio.to_thread(
        run_cli, *base, "--user", "alice", "--user", "bob", "--title", "From the CLI", "--level", "warning",
        "--body", "b", "--url", "https://example.com/x", "--ttl", "60", "--data", '{"n": 1}',
        "--idempotency-key", "cli-1", env={"HUB_API_KEY": KEY},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    match = re.fullmatch(r"sent ([0-9a-f]{12}-[0-9a-f]{8}) to alice, bob\n", done.stdout)
    assert match is not None, done.stdout
    event = await alice.next_event("notifications:alice", "notifications.new")
    assert event["data"]["id"] == match.group(1)
    assert event["data"]["level"] == "warning"
    assert event["data"]["data"] == {"n": 1}

    again = await asyncio.to_thread(
        run_cli, *base, "--api-key", KEY, "--user", "alice", "--user", "bob", "--title", "From the CLI",
        "--level", "warning", "--body", "b", "--url", "https://example.com/x", "--ttl", "60", "--data", '{"n": 1}',
        "--idempotency-key", "cli-1",
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "duplicate" in again.stdout
    everyone = await asyncio.to_thread(run_cli, *base, "--api-key", KEY, "--everyone", "--title", "all", "--json")
    assert everyone.returncode == 0, everyone.stderr
    assert '"to":"everyone"' in everyone.stdout
    assert (await alice.next_event("notifications:@all", "notifications.new"))["data"]["title"] == "all"
    await alice.no_event("notifications:alice", "notifications.new", wait=0.1)  # the duplicate delivered nothing

    # the failures, run side by side (each is a process start)
    usages = (
        ("--api-key", KEY, "--title", "x"),
        ("--api-key", KEY, "--title", "x", "--user", "a", "--everyone"),
        ("--user", "a", "--title", "x"),
        ("--api-key", KEY, "--user", "a", "--title", "x", "--level", "fatal"),
    )
    refused, invalid, unreachable, *usage_results = await asyncio.gather(
        asyncio.to_thread(run_cli, *base, "--api-key", "wrong-key", "--user", "alice", "--title", "x"),
        asyncio.to_thread(run_cli, *base, "--api-key", KEY, "--user", "alice", "--title", " "),
        asyncio.to_thread(run_cli, "--hub", "http://127.0.0.1:9", "--api-key", KEY, "--user", "a", "--title", "x"),
        *(asyncio.to_thread(run_cli, *base, *usage) for usage in usages),
    )
    assert refused.returncode == 1
    assert "HTTP 401" in refused.stderr
    assert invalid.returncode == 1
    assert "HTTP 422" in invalid.stderr
    assert "title:" in invalid.stderr
    assert unreachable.returncode == 1
    assert "cannot reach the hub" in unreachable.stderr
    for usage, result in zip(usages, usage_results, strict=True):
        assert result.returncode == 2, (usage, result.stderr)


# ---- two nodes on one Redis ---------------------------------------------------------------------------------


@pytest.fixture
def two_nodes(hub_server, redis_url):
    prefix = f"t{uuid.uuid4().hex[:10]}"
    settings = {"redis_url": redis_url, "redis_prefix": prefix, "api_keys": [KEY], "probe_interval": 0.1}
    shared = plugin()  # one plugin object serving both nodes, as one installed package does
    return hub_server(plugins=shared, **settings), hub_server(plugins=shared, **settings), prefix


async def test_two_nodes_on_redis(two_nodes, hub_client, redis_url):
    node_a, node_b, prefix = two_nodes
    alice_b = await hub_client(node_b, user="alice")
    await alice_b.sub("notifications:alice")
    await alice_b.sub("notifications:@all")

    # POSTed to node A, delivered to the tab on node B
    result = await published(node_a, {"users": ["alice"], "title": "across nodes"})
    assert (await alice_b.next_event("notifications:alice", "notifications.new"))["data"]["id"] == result["id"]

    # the same Idempotency-Key sent to both nodes at once: delivered once, the same result on both
    replies = await asyncio.gather(
        *(
            post(node, {"everyone": True, "title": "once"}, **HEADERS, **{"Idempotency-Key": "cross-1"})
            for node in (node_a, node_b, node_a, node_b)
        )
    )
    assert sorted(reply.status_code for reply in replies) == [200, 200, 200, 201]
    assert len({reply.json()["id"] for reply in replies}) == 1
    assert (await alice_b.next_event("notifications:@all", "notifications.new"))["data"]["title"] == "once"
    await alice_b.no_event("notifications:@all", wait=0.3)

    # read on node A, synced to the tab on node B
    alice_a = await hub_client(node_a, user="alice")
    assert (await alice_a.sub("notifications:alice"))["snapshot"]["unread"] == 2
    await alice_a.pub("notifications:alice", "notifications.read", {"ids": [result["id"]]})
    event = await alice_b.next_event("notifications:alice", "notifications.marked_read")
    assert event["data"]["unread"] == 1

    # expiry: the purge (on whichever node holds the lease) deletes the records from Redis
    brief = await published(node_b, {"users": ["zed"], "title": "brief", "ttl": 0.2})
    redis = aioredis.from_url(redis_url)
    keys = f"{prefix}:store:{{notifications}}:keys"
    try:
        assert await redis.zscore(keys, f"u/zed/n/{brief['id']}") is not None

        async def purged() -> bool:
            members = await redis.zrangebylex(keys, "[u/zed/", "(u/zed0")
            return not members

        await wait_until(purged)
    finally:
        await redis.aclose()
