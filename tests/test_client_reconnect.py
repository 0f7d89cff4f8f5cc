"""hub.client.Client when connections are lost, over real sockets: the same guest after a restart, recovery of the
missed events, the reset snapshot, the offline queue, a ``mid`` publish sent again across a drop, heartbeats both
ways, an app too slow for its events, subscriptions the hub ends or refuses for a while, and failing over to the
next URL. Connections are cut with a TCP proxy (tests/client_helpers.py); backoff runs in milliseconds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from hub import Channel, Context, HubError, hookimpl
from hub.client import Client, ClientError, Event, StateChange
from hub.testing import HubClient, wait_until
from tests.client_helpers import CHAT, Calls, Proxy

FAST = {"min_delay": 0.01, "max_delay": 0.05}


@pytest.fixture
async def proxy_to() -> AsyncIterator[Callable[[Any], Any]]:
    proxies: list[Proxy] = []

    async def start(server: Any) -> Proxy:
        proxy = await Proxy(server.port).start()
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        await proxy.close()


def texts(events: list[Event]) -> list[str]:
    return [event.data["text"] for event in events]


def is_state(state: str, cause: str | None = None) -> Callable[[StateChange], bool]:
    return lambda change: change.state == state and (cause is None or change.cause == cause)


async def test_a_guest_comes_back_as_the_same_guest_and_rebuilds_from_the_reset_snapshot(hub_server: Any) -> None:
    server = hub_server(plugins=CHAT)
    calls = Calls()
    async with Client(server.ws_url, **FAST) as guest, Client(server.ws_url, token=server.token("alice")) as alice:
        guest.on("state", calls.record("state"))
        sub = guest.subscribe("chat:room", on_subscribed=calls.record("subscribed"), on_snapshot=calls.record("snap"))
        await sub.ready()
        me = guest.me
        assert me is not None
        await alice.publish("chat:room", "chat.send", {"text": "kept in the store"})

        await asyncio.to_thread(server.restart)  # memory:// loses the history, the SQLite store keeps the chat
        lost = await calls.until("state", is_state("reconnecting"))
        assert lost.code in (1001, 1012)  # a hub going away: reconnect
        await calls.until("state", lambda change: change.state == "open" and change.prev == "reconnecting")
        assert guest.me == me  # hello.resume: the same guest user and name
        info = await calls.until("subscribed", lambda info: info.resubscribed)
        assert (info.recovered, info.reset) == (False, True)
        snapshot, snapshot_info = (await calls.wait("snap", 2))[1]
        assert snapshot_info.reset
        assert texts_of(snapshot) == ["kept in the store"]
        assert [m.user for m in await guest.presence("chat:room")] == [me.user]

        token = guest.guest_token
    async with Client(server.ws_url, resume=token) as later:  # a new process may resume the guest too
        await later.wait_open()
        assert later.me == me


def texts_of(snapshot: Any) -> list[str]:
    return [message["text"] for message in snapshot["messages"]]


async def test_a_refused_resume_token_makes_a_new_guest(hub_server: Any, tmp_path: Any) -> None:
    server = hub_server(plugins=CHAT)
    calls = Calls()
    async with Client(server.ws_url, **FAST) as guest:
        guest.on("open", calls.record("open"))
        await guest.wait_open()
        first = guest.me
        assert first is not None
        server.settings = server.settings.model_copy(update={"secret": "another-secret-0123456789abcdefghij"})
        await asyncio.to_thread(server.restart)  # the old resume token is now forged
        await calls.wait("open", 2)
        assert guest.me is not None
        assert guest.me.anonymous
        assert guest.me.user != first.user
        assert guest.state == "open"


async def test_the_events_missed_while_away_are_recovered_once_and_in_order(hub_server: Any, proxy_to: Any) -> None:
    server = hub_server(plugins=CHAT)
    proxy = await proxy_to(server)
    calls = Calls()
    async with (
        Client(proxy.ws_url, **FAST) as follower,
        Client(server.ws_url, token=server.token("alice")) as alice,
    ):
        follower.on("state", calls.record("state"))
        sub = follower.subscribe("chat:room", events={"chat.posted": calls.record("posted")},
                                 on_subscribed=calls.record("subscribed"))  # fmt: skip
        await sub.ready()
        await alice.publish("chat:room", "chat.send", {"text": "m0"})
        await calls.wait("posted")

        proxy.refuse()
        proxy.cut()
        await calls.until("state", is_state("reconnecting"))
        for n in range(1, 6):
            await alice.publish("chat:room", "chat.send", {"text": f"m{n}"})
        proxy.admit()

        _, info = await calls.wait("subscribed", 2)
        assert (info.resubscribed, info.recovered, info.reset, info.missed) == (True, True, False, 5)
        posted = await calls.wait("posted", 6)
        await alice.publish("chat:room", "chat.send", {"text": "live"})
        posted = await calls.wait("posted", 7)
        assert texts(posted) == ["m0", "m1", "m2", "m3", "m4", "m5", "live"]
        assert [event.offset for event in posted] == [1, 2, 3, 4, 5, 6, 7]
        assert (sub.epoch, sub.offset) == (info.epoch, 7)


async def test_a_closed_client_started_again_resubscribes_with_recovery(hub_server: Any) -> None:
    server = hub_server(plugins=CHAT)
    calls = Calls()
    client = Client(server.ws_url, **FAST)
    async with Client(server.ws_url, token=server.token("alice")) as alice:
        async with client:
            await client.subscribe("chat:room", events={"chat.posted": calls.record("posted")},
                                   on_subscribed=calls.record("subscribed")).ready()  # fmt: skip
            await alice.publish("chat:room", "chat.send", {"text": "m0"})
            await calls.wait("posted")
        assert client.state == "closed"
        assert client.channels == ["chat:room"]  # kept for a later start()
        await alice.publish("chat:room", "chat.send", {"text": "m1"})
        async with client:
            info = (await calls.wait("subscribed", 2))[1]
            assert (info.resubscribed, info.recovered, info.missed) == (True, True, 1)
            assert texts(await calls.wait("posted", 2)) == ["m0", "m1"]


async def test_requests_in_flight_are_bounded(hub_server: Any, proxy_to: Any) -> None:
    server = hub_server(plugins=CHAT)
    proxy = await proxy_to(server)
    calls = Calls()
    client = Client(proxy.ws_url, max_in_flight=1, ping_interval=0, request_timeout=30)
    client.on("rtt", calls.record("rtt"))
    async with client:
        await calls.wait("rtt")  # the opening ping has its reply: nothing in flight
        proxy.lose_replies()
        waiting = asyncio.create_task(client.presence("chat:room"))
        await asyncio.sleep(0)  # it is sent, and waits for a reply that will not come
        with pytest.raises(ClientError) as bounded:
            await client.publish("chat:room", "chat.send", {"text": "one too many"})
        assert bounded.value.code == "too_many_requests"
        proxy.cut()
        with pytest.raises(ClientError) as lost:
            await waiting
        assert lost.value.code == "disconnected"


async def test_publishes_made_while_away_wait_in_a_bounded_queue(hub_server: Any, proxy_to: Any) -> None:
    server = hub_server(plugins=CHAT)
    proxy = await proxy_to(server)
    calls = Calls()
    async with (
        Client(proxy.ws_url, offline_queue=30.0, offline_queue_max=1, **FAST) as client,
        Client(proxy.ws_url, offline_queue=0.05, **FAST) as impatient,
    ):
        client.on("state", calls.record("state"))
        await client.wait_open()
        await impatient.wait_open()
        proxy.refuse()
        proxy.cut()
        await calls.until("state", is_state("reconnecting"))
        await wait_until(lambda: impatient.state == "reconnecting")
        queued = asyncio.create_task(client.publish("chat:room", "chat.send", {"text": "typed while away"}))
        await asyncio.sleep(0)  # the publish has started and waits in the queue
        with pytest.raises(ClientError) as full:
            await client.publish("chat:room", "chat.send", {"text": "one too many"})
        assert full.value.code == "offline_queue_full"
        with pytest.raises(ClientError) as late:
            await impatient.publish("chat:room", "chat.send", {"text": "gives up"})
        assert late.value.code == "disconnected"
        assert not queued.done()
        proxy.admit()
        assert (await asyncio.wait_for(queued, 10))["text"] == "typed while away"


async def test_a_publish_with_a_mid_is_sent_again_after_a_drop_and_runs_once(hub_server: Any, proxy_to: Any) -> None:
    server = hub_server(plugins=CHAT)
    proxy = await proxy_to(server)
    calls = Calls()
    async with Client(proxy.ws_url, **FAST) as sender, Client(server.ws_url) as observer:
        await observer.subscribe("chat:room", events={"chat.posted": calls.record("posted")}).ready()
        await sender.wait_open()

        proxy.lose_replies()  # the hub gets the publish and runs it; its reply never arrives
        with_mid = asyncio.create_task(sender.publish("chat:room", "chat.send", {"text": "once"}, mid="m-1"))
        await calls.wait("posted")
        proxy.cut()
        assert await asyncio.wait_for(with_mid, 10) == {"duplicate": True}  # sent again as the same guest

        await sender.wait_open()
        proxy.lose_replies()
        without_mid = asyncio.create_task(sender.publish("chat:room", "chat.send", {"text": "maybe"}))
        await calls.wait("posted", 2)
        proxy.cut()
        with pytest.raises(ClientError) as lost:
            await asyncio.wait_for(without_mid, 10)
        assert lost.value.code == "disconnected"

        await observer.publish("chat:room", "chat.send", {"text": "marker"})
        assert texts(await calls.wait("posted", 3)) == ["once", "maybe", "marker"]  # nothing ran twice


async def test_the_client_answers_the_hubs_pings_and_a_silent_client_is_closed(hub_server: Any) -> None:
    server = hub_server(plugins=CHAT, heartbeat_interval=0.05, heartbeat_timeout=0.3)
    calls = Calls()
    async with Client(server.ws_url, ping_interval=0) as client:  # no latency pings: only pongs keep it alive
        client.on("state", calls.record("state"))
        await client.wait_open()
        assert client.hello is not None
        connection = client.hello.client
        silent = await HubClient.connect(server.ws_url, auto_pong=False)  # the control: never answers
        code, _ = await silent.closed(timeout=5)
        assert code == 4010
        await silent.close()
        # the control lived as long as the client has by now, which is still on its first connection
        assert client.state == "open"
        assert client.hello.client == connection
        assert await client.ping() > 0
        assert [change.state for change in calls.log["state"]] == ["open"]  # and nothing since


async def test_a_silent_connection_is_found_by_the_heartbeat_timeout_and_replaced(
    hub_server: Any, proxy_to: Any
) -> None:
    server = hub_server(plugins=CHAT)
    proxy = await proxy_to(server)
    calls = Calls()
    async with Client(proxy.ws_url, heartbeat_timeout=0.3, **FAST) as client:
        client.on("state", calls.record("state"))
        await client.wait_open()
        assert client.hello is not None
        first = client.hello.client
        proxy.freeze()  # the path dies without a close, as when a network vanishes
        lost = await calls.until("state", is_state("reconnecting"))
        assert (lost.cause, lost.code) == ("heartbeat", None)
        await calls.until("state", lambda change: change.state == "open" and change.prev == "reconnecting")
        assert client.hello.client != first
        assert (await client.publish("chat:room", "chat.send", {"text": "back"}))["text"] == "back"


async def test_an_app_that_falls_behind_is_disconnected_and_recovers_every_event(hub_server: Any) -> None:
    server = hub_server(plugins=CHAT)
    gate = asyncio.Event()
    handled: list[Event] = []

    async def slow(event: Event) -> None:
        handled.append(event)
        await gate.wait()  # the app is stuck on its first event

    calls = Calls()
    async with (
        Client(server.ws_url, max_events=4, **FAST) as client,
        Client(server.ws_url, token=server.token("alice")) as alice,
    ):
        sub = client.subscribe("chat:room", events={"chat.posted": slow}, on_subscribed=calls.record("subscribed"))
        await sub.ready()
        for n in range(10):  # chat's burst: 10 chat.send at once
            await alice.publish("chat:room", "chat.send", {"text": f"m{n}"})
        await wait_until(lambda: client.state == "reconnecting", what="the overflow")
        assert len(handled) == 1
        gate.set()
        await wait_until(lambda: len(handled) == 10, what="every event handled")
        assert texts(handled) == [f"m{n}" for n in range(10)]
        assert [e.offset for e in handled] == list(range(1, 11))
        _, info = await calls.wait("subscribed", 2)
        assert info.recovered
        assert info.missed > 0
        assert client.state == "open"


class Said(BaseModel):
    text: str


class Kick(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str


class Door:
    """``door:<room>``: anyone may come in unless kicked out (``door.kick`` ends their subscription); ``door:flaky``
    answers the first two subscribes of each user with ``unavailable``."""

    def __init__(self) -> None:
        self.kicked: set[tuple[str, str]] = set()
        self.subscribes: list[tuple[str, str]] = []
        channel = Channel("door", presence=True)
        channel.event("door.said", Said)

        @channel.authorize
        async def admit(ctx: Context, action: str, message_type: str | None) -> None:
            if action == "subscribe":
                self.subscribes.append((ctx.identity.user, ctx.channel))
                if ctx.channel == "door:flaky" and self.subscribes.count((ctx.identity.user, ctx.channel)) <= 2:
                    raise HubError("unavailable", "The door is stuck; try again.")
            if (ctx.identity.user, ctx.channel) in self.kicked:
                raise HubError("forbidden", f"{ctx.identity.name} was shown out of {ctx.channel!r}.")

        @channel.on("door.say", Said)
        async def say(ctx: Context, msg: Said) -> None:
            await ctx.publish("door.said", msg)

        @channel.on("door.kick", Kick)
        async def kick(ctx: Context, msg: Kick) -> None:
            self.kicked.add((msg.user, ctx.channel))
            ctx.revoke(lambda identity: identity.user == msg.user, msg="You were shown out.")

        self.channel = channel

    @hookimpl
    def hub_channels(self) -> list[Channel]:
        return [self.channel]


async def test_a_subscription_the_hub_ends_is_reported_and_never_sent_again(hub_server: Any, proxy_to: Any) -> None:
    door = Door()
    server = hub_server(plugins={"door": door})
    proxy = await proxy_to(server)
    calls = Calls()
    async with Client(proxy.ws_url, **FAST) as guest, Client(server.ws_url, token=server.token("keeper")) as keeper:
        guest.on("revoked", calls.record("revoked"))
        guest.on("open", calls.record("open"))
        sub = guest.subscribe("door:hall", events={"door.said": calls.record("said")}, on_error=calls.record("error"))
        await sub.ready()
        await keeper.publish("door:hall", "door.say", {"text": "hello"})
        await calls.wait("said")
        assert guest.me is not None
        await keeper.publish("door:hall", "door.kick", {"user": guest.me.user})
        (error,) = await calls.wait("error")
        assert (error.code, error.message, error.revoked, error.retrying) == (
            "forbidden", "You were shown out.", True, False,
        )  # fmt: skip
        assert await calls.wait("revoked") == [error]
        assert error.channel == "door:hall"
        assert not sub.active
        assert guest.channels == []

        proxy.cut()
        await calls.wait("open", 2)
        await guest.ping()  # a round trip: anything sent on the new connection has reached the hub
        assert [channel for user, channel in door.subscribes if user == guest.me.user] == ["door:hall"]
        assert len(calls.log["said"]) == 1


async def test_a_subscription_refused_for_a_while_is_sent_again_with_backoff(hub_server: Any) -> None:
    server = hub_server(plugins={"door": Door()})
    calls = Calls()
    async with Client(server.ws_url, **FAST) as client:
        sub = client.subscribe("door:flaky", on_error=calls.record("error"))
        info = await asyncio.wait_for(sub.ready(), 10)
        assert not info.resubscribed
        errors = calls.log["error"]
        assert [(e.code, e.retrying) for e in errors] == [("unavailable", True), ("unavailable", True)]
        assert client.channels == ["door:flaky"]


async def test_an_attempt_without_hello_fails_over_to_the_next_url(hub_server: Any) -> None:
    server = hub_server(plugins=CHAT)

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts, and never answers
        writer.close()

    silent = await asyncio.start_server(mute, "127.0.0.1", 0)
    silent_url = f"ws://127.0.0.1:{silent.sockets[0].getsockname()[1]}/ws"
    calls = Calls()
    try:
        async with Client([silent_url, server.ws_url], connect_timeout=0.2, **FAST) as client:
            client.on("state", calls.record("state"))
            await asyncio.wait_for(client.wait_open(), 10)
            assert client.url == server.ws_url
            (failed,) = [c for c in calls.log["state"] if c.state == "reconnecting"]
            assert (failed.cause, failed.url, failed.attempt) == ("connect_timeout", silent_url, 1)
    finally:
        silent.close()
