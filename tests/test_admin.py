"""The admin channel over real sockets: only the admin scope gets in, stats carry the node's true numbers, and the
operator's kick, publish and channel details act through the same checks as any client's request."""

from __future__ import annotations

import os
import time

import orjson
import pytest

import hub_realtime_plugins.chat
from hub import Channel, Plugin, hookimpl
from hub.router import DuplicateNamespace
from hub.testing import HubClient, HubServer, ReplyError, wait_until
from tests.e2e import ticker_plugin
from tests.e2e.test_abuse import RawSocket

OVERVIEW = "admin:overview"
CHAT = {"chat": hub_realtime_plugins.chat.Chat}
FAST = {"admin_interval": 0.05}


@pytest.fixture
def server(hub_server) -> HubServer:
    return hub_server(plugins=CHAT, **FAST)


async def admin_client(hub_client, server: HubServer, user: str = "root") -> HubClient:
    return await hub_client(server, token=server.token(user, name="Root", scopes=("admin",)))


def metrics(server: HubServer):
    return server.app.state.hub.metrics


async def test_identities_without_the_admin_scope_are_refused_and_get_nothing(server, hub_client):
    guest = await hub_client(server)
    alice = await hub_client(server, user="alice")
    publisher = await hub_client(server, token=server.token("backend", scopes=("publish",)))
    for client in (guest, alice, publisher):
        with pytest.raises(ReplyError) as refused:
            await client.sub(OVERVIEW)
        assert refused.value.code == "forbidden"
        for message_type, data in [
            ("admin.kick", {"user": "alice"}),
            ("admin.publish", {"channel": "chat:lobby", "type": "chat.send", "data": {"text": "x"}}),
            ("admin.channel", {"channel": "chat:lobby"}),
        ]:
            with pytest.raises(ReplyError) as refused:
                await client.pub(OVERVIEW, message_type, data)
            assert refused.value.code == "forbidden"
    admin = await admin_client(hub_client, server)
    await admin.sub(OVERVIEW)  # the stats flow while an admin watches ...
    await admin.next_event(OVERVIEW, "admin.stats")
    for client in (guest, alice, publisher):  # ... and never to a refused socket
        await client.no_event(wait=0.2)
    assert (await alice.pub("chat:lobby", "chat.send", {"text": "still here"}))["text"] == "still here"
    # only the one room exists, even for an admin
    with pytest.raises(ReplyError) as refused:
        await admin.sub("admin:other")
    assert refused.value.code == "forbidden"


async def test_stats_carry_the_nodes_true_numbers(server, hub_client):
    before = time.time()
    alice = await hub_client(server, user="alice")
    bob = await hub_client(server, user="bob")
    await alice.sub("chat:lobby")
    await bob.sub("chat:lobby")
    await bob.sub("chat:other")
    for n in range(3):
        await alice.pub("chat:lobby", "chat.send", {"text": f"hi {n}"})
    with pytest.raises(ReplyError):
        await bob.pub("chat:lobby", "chat.send", {"text": 5})
    admin = await admin_client(hub_client, server)
    node = server.app.state.hub.node_id

    snapshot = (await admin.sub(OVERVIEW))["snapshot"]
    assert snapshot["node"] == node
    assert snapshot["connections"] == 3
    assert {c["channel"]: c["subscribers"] for c in snapshot["channels"]} == {"chat:lobby": 2, "chat:other": 1}
    assert snapshot["channel_count"] == 2  # admin:overview is not live yet while its sub is answered
    clients = {c["user"]: c for c in snapshot["clients"]}
    assert set(clients) == {"alice", "bob", "root"}
    assert clients["bob"]["channels"] == ["chat:lobby", "chat:other"]
    assert clients["alice"]["client"] == alice.hello["client"]
    assert clients["alice"]["node"] == node
    assert before <= clients["alice"]["since"] <= clients["bob"]["since"] <= time.time()
    assert [c["user"] for c in snapshot["clients"]] == ["alice", "bob", "root"]  # the oldest first
    assert snapshot["messages_in"]["chat.send"] == 4  # the invalid one counts as received
    assert snapshot["events_out"]["chat.posted"] == 3
    assert snapshot["errors"] == {"invalid": 1}
    [error] = snapshot["recent_errors"]
    assert (error["code"], error["user"], error["channel"], error["client"]) == (
        "invalid", "bob", "chat:lobby", bob.hello["client"],
    )  # fmt: skip

    stats = (await admin.next_event(OVERVIEW, "admin.stats"))["data"]
    assert stats["node"] == node
    assert stats["at"] > snapshot["at"]
    assert stats["interval"] == FAST["admin_interval"]
    assert {c["channel"]: c["subscribers"] for c in stats["channels"]}[OVERVIEW] == 1
    await bob.close()
    await wait_until(lambda: len(server.app.state.hub.sessions) == 2, what="bob gone")
    stats = (await admin.next_event(OVERVIEW, "admin.stats"))["data"]
    assert stats["connections"] == 2
    assert {c["user"] for c in stats["clients"]} == {"alice", "root"}


async def test_stats_are_published_only_while_an_admin_watches(server, hub_client):
    admin = await admin_client(hub_client, server)
    counts = metrics(server).events_out
    await admin.sub(OVERVIEW)
    await admin.next_event(OVERVIEW, "admin.stats")
    await admin.unsub(OVERVIEW)
    stopped = counts["admin.stats"]
    await admin.sub(OVERVIEW)  # one more watch, then none
    await admin.next_event(OVERVIEW, "admin.stats")
    await admin.unsub(OVERVIEW)
    settled = counts["admin.stats"]
    assert settled > stopped
    await admin.no_event(wait=10 * FAST["admin_interval"])
    assert counts["admin.stats"] <= settled + 1  # at most a tick that was under way


async def test_lists_are_bounded_by_the_list_limit(hub_server, hub_client):
    server = hub_server(plugins=CHAT, admin_list_limit=2, **FAST)
    clients = [await hub_client(server, user=f"u{n}") for n in range(3)]
    for n, client in enumerate(clients):
        await client.sub(f"chat:room{n}")
    await clients[0].sub("chat:room1")
    admin = await admin_client(hub_client, server)
    snapshot = (await admin.sub(OVERVIEW))["snapshot"]
    assert snapshot["connections"] == 4
    assert [c["user"] for c in snapshot["clients"]] == ["u0", "u1"]
    assert snapshot["channel_count"] == 3
    assert snapshot["channels"][0] == {"channel": "chat:room1", "subscribers": 2}
    assert len(snapshot["channels"]) == 2


async def test_kick_closes_the_target_with_its_code_and_reason(server, hub_client):
    admin = await admin_client(hub_client, server)
    await admin.sub(OVERVIEW)
    bob = await hub_client(server, user="bob")
    carol = await hub_client(server, user="carol")
    kicked = await admin.pub(OVERVIEW, "admin.kick", {"client": bob.hello["client"], "code": 4321, "reason": "bye"})
    assert kicked == {"closed": 1, "missing_nodes": []}
    assert await bob.closed() == (4321, "bye")
    assert (await carol.call({"op": "ping"})) is None  # the others stay
    assert (await admin.pub(OVERVIEW, "admin.kick", {"client": bob.hello["client"]}))["closed"] == 0

    carol_again = await hub_client(server, user="carol")
    kicked = await admin.pub(OVERVIEW, "admin.kick", {"user": "carol"})
    assert kicked["closed"] == 2
    assert (await carol.closed())[0] == 4011  # the default: closed by an operator
    assert (await carol_again.closed())[0] == 4011

    async def kick_recorded() -> bool:
        stats = (await admin.next_event(OVERVIEW, "admin.stats"))["data"]
        return [(c["code"], c["user"]) for c in stats["recent_closes"]][:3] == [
            (4011, "carol"), (4011, "carol"), (4321, "bob"),
        ]  # fmt: skip

    await wait_until(kick_recorded, what="the closes in the stats")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, ""),  # no target
        ({"client": "c", "user": "u"}, ""),  # two targets
        ({"client": "c", "code": 1000}, "code"),
        ({"client": "c", "code": 5000}, "code"),
        ({"client": "c", "reason": "x" * 121}, "reason"),
        ({"client": "x" * 65}, "client"),
        ({"client": "c", "extra": 1}, "extra"),
    ],
)
async def test_a_bad_kick_is_invalid_and_closes_nothing(server, hub_client, data, field):
    admin = await admin_client(hub_client, server)
    with pytest.raises(ReplyError) as refused:
        await admin.pub(OVERVIEW, "admin.kick", data)
    assert refused.value.code == "invalid"
    assert [detail["loc"][:1] for detail in refused.value.frame["details"]] == [[field] if field else []]
    assert (await admin.call({"op": "ping"})) is None


async def test_publish_goes_through_the_plugin_and_reaches_subscribers(server, hub_client):
    admin = await admin_client(hub_client, server)
    bob = await hub_client(server, user="bob")
    await bob.sub("chat:lobby")
    published = await admin.pub(
        OVERVIEW, "admin.publish", {"channel": "chat:lobby", "type": "chat.send", "data": {"text": "maintenance"}}
    )
    event = await bob.next_event("chat:lobby", "chat.posted")
    assert event["data"]["text"] == "maintenance"
    assert event["data"]["author"] == {"user": "root", "name": "Root"}  # the admin's own identity
    assert published["channel"] == "chat:lobby"
    assert published["data"] == event["data"]  # the handler's reply

    again = {"channel": "chat:lobby", "type": "chat.send", "data": {"text": "once"}, "mid": "m-1"}
    await admin.pub(OVERVIEW, "admin.publish", again)
    assert (await admin.pub(OVERVIEW, "admin.publish", again))["data"] == {"duplicate": True}
    assert (await bob.next_event("chat:lobby", "chat.posted"))["data"]["text"] == "once"

    refusals = [
        ({"channel": "chat:lobby", "type": "chat.send", "data": {"text": 5}}, "invalid"),
        ({"channel": "chat:lobby", "type": "chat.shout", "data": {}}, "unknown_type"),
        ({"channel": "nope:lobby", "type": "nope.send", "data": {}}, "unknown_channel"),
        ({"channel": "chat lobby", "type": "chat.send", "data": {}}, "bad_channel"),
        ({"channel": "admin:overview", "type": "admin.kick", "data": {"user": "bob"}}, "bad_request"),
        ({"channel": "chat:lobby", "type": "chat.send"}, "invalid"),  # the chat model needs its text
    ]
    for message, code in refusals:
        with pytest.raises(ReplyError) as refused:
            await admin.pub(OVERVIEW, "admin.publish", message)
        assert refused.value.code == code, message
    await bob.no_event("chat:lobby", "chat.posted", wait=0.2)
    assert (await bob.call({"op": "ping"})) is None  # the admin's kick was refused, not run


async def test_channel_details_show_subscribers_presence_and_last_events(server, hub_client):
    admin = await admin_client(hub_client, server)
    alice = await hub_client(server, user="alice")
    bob = await hub_client(server, user="bob")
    await alice.sub("chat:lobby")
    await bob.sub("chat:lobby")
    for n in range(5):
        await alice.pub("chat:lobby", "chat.send", {"text": f"m{n}"})

    details = await admin.pub(OVERVIEW, "admin.channel", {"channel": "chat:lobby", "events": 3})
    assert (details["channel"], details["plugin"], details["subscribers"], details["nodes"]) == (
        "chat:lobby", "chat", 2, 1,
    )  # fmt: skip
    assert details["recoverable"] is True
    assert sorted(m["user"] for m in details["presence"]) == ["alice", "bob"]
    assert details["presence_count"] == 2
    assert [e["data"]["text"] for e in details["events"] if e["type"] == "chat.posted"][-3:] == ["m2", "m3", "m4"]
    assert len(details["events"]) == 3
    assert details["offset"] == details["events"][-1]["offset"]

    empty = await admin.pub(OVERVIEW, "admin.channel", {"channel": "chat:empty", "events": 0})
    assert (empty["subscribers"], empty["presence"], empty["events"]) == (0, [], None)
    for message, code in [
        ({"channel": "nope:x"}, "unknown_channel"),
        ({"channel": "admin:overview"}, "bad_request"),
        ({"channel": "chat:lobby", "events": 101}, "invalid"),
    ]:
        with pytest.raises(ReplyError) as refused:
            await admin.pub(OVERVIEW, "admin.channel", message)
        assert refused.value.code == code


async def test_a_connection_that_loses_the_scope_loses_the_channel(server, hub_client):
    admin = await admin_client(hub_client, server)
    await admin.sub(OVERVIEW)
    await admin.next_event(OVERVIEW, "admin.stats")
    # the same user, another token without the scope: auth accepts it and keeps the subscriptions ...
    await admin.call({"op": "auth", "token": server.token("root", name="Root")})
    # ... and the node's next report ends this one first
    notice = await admin.next_unsolicited()
    assert (notice["op"], notice["ch"], notice["code"]) == ("unsub", OVERVIEW, "forbidden")
    while not admin.events.empty():  # reports sent before the notice
        admin.events.get_nowait()
    await admin.no_event(wait=5 * FAST["admin_interval"])
    with pytest.raises(ReplyError) as refused:
        await admin.pub(OVERVIEW, "admin.kick", {"user": "anyone"})
    assert refused.value.code == "forbidden"


async def test_a_slow_consumer_shows_among_the_closes(hub_server, hub_client):
    server = hub_server(
        plugins={**CHAT, "ticker": ticker_plugin.Ticker},
        send_queue_max_frames=24,
        rate_limit=100_000,
        rate_burst=100_000,
        heartbeat_interval=30.0,  # no pings in the way of the flood
        heartbeat_timeout=60.0,
        close_timeout=0.2,  # the slow socket cannot take its close frame: dropped after this
        **FAST,
    )
    hub = server.app.state.hub
    channel = f"ticker:flood{os.urandom(4).hex()}"
    admin = await admin_client(hub_client, server)
    await admin.sub(OVERVIEW)
    publisher = await hub_client(server, user="publisher")
    known = set(hub.sessions)
    slow = await RawSocket.connect(server.port, rcvbuf=4096)  # reads nothing after its handshake
    try:
        await slow.handshake(server.port)
        await slow.send_text(orjson.dumps({"op": "sub", "ch": channel, "id": 1}).decode())
        await wait_until(lambda: hub.fanout.subscriber_count(channel) == 1, what="the slow socket subscribed")
        [slow_id] = set(hub.sessions) - known
        for _ in range(2000):
            await publisher.pub(channel, "ticker.burst", {"count": 8, "size": 2000})
            if slow_id not in hub.sessions or hub.sessions[slow_id].close_code is not None:
                break

        async def reported() -> bool:
            stats = (await admin.next_event(OVERVIEW, "admin.stats"))["data"]
            closes = [(c["code"], c["client"]) for c in stats["recent_closes"]]
            return stats["closes"].get("4009") == 1 and (4009, slow_id) in closes

        await wait_until(reported, what="the slow consumer's close in the stats")
    finally:
        slow.close()


class AdminLookalike(Plugin):
    """A plugin that wants the admin namespace for itself."""

    @hookimpl
    def hub_channels(self) -> list[Channel]:
        return [Channel("admin")]


def test_the_admin_namespace_is_the_cores_while_admin_is_on(hub_server):
    with pytest.raises(DuplicateNamespace, match="'admin' is declared by both 'lookalike' and 'hub'"):
        hub_server(plugins={"lookalike": AdminLookalike})
    server = hub_server(plugins={"lookalike": AdminLookalike}, admin=False)
    assert server.app.state.hub.router.owner("admin") == "lookalike"
