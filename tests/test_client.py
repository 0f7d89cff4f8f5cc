"""hub.client.Client against real hubs over real sockets: identity and states, publish with its reply and its
errors as exceptions, subscribe with the snapshot, events and presence, unsubscribe, refused subscriptions,
tokens, and presence in a room bigger than the list limit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hub.client import Client, ClientError, Event, Member, PresenceChange, StateChange, SubscriptionInfo
from tests.client_helpers import CHAT, Calls


@pytest.fixture
def chat_hub(hub_server: Any) -> Any:
    return hub_server(plugins=CHAT)


async def test_a_guest_connects_and_the_states_identity_hello_and_latency_are_reported(chat_hub: Any) -> None:
    calls = Calls()
    client = Client(chat_hub.ws_url)
    client.on("state", calls.record("state"))
    client.on("rtt", calls.record("rtt"))
    async with client:
        await client.wait_open()
        assert client.state == "open"
        assert client.me is not None
        assert client.me.anonymous
        assert client.me.user.startswith("guest-")
        assert client.hello is not None
        assert "chat" in client.hello.namespaces
        assert client.hello.limits["max_frame_bytes"] == chat_hub.settings.max_frame_bytes
        assert client.guest_token  # hello.resume
        (rtt,) = await calls.wait("rtt")  # the first latency ping goes out when the connection opens
        assert 0 < rtt < 5
        assert client.rtt == rtt
    states: list[StateChange] = calls.log["state"]
    assert [(s.prev, s.state) for s in states] == [("closed", "connecting"), ("connecting", "open"), ("open", "closed")]
    assert states[1].client == client.hello.client
    assert states[2].cause == "client"
    assert client.state == "closed"


async def test_a_token_signs_the_user_in(chat_hub: Any) -> None:
    async with Client(chat_hub.ws_url, token=chat_hub.token("alice", name="Alice")) as client:
        await client.wait_open()
        assert client.me is not None
        assert (client.me.user, client.me.name, client.me.anonymous) == ("alice", "Alice", False)
        assert client.guest_token is None


async def test_publish_returns_the_reply_and_subscribers_get_the_event(chat_hub: Any) -> None:
    calls = Calls()
    async with Client(chat_hub.ws_url, token=chat_hub.token("alice")) as alice, Client(chat_hub.ws_url) as guest:
        sub = guest.subscribe(
            "chat:lobby", events={"chat.posted": calls.record("posted")}, on_event=calls.record("any")
        )
        await sub.ready()
        posted = await alice.publish("chat:lobby", "chat.send", {"text": "  hello  "})
        assert posted["text"] == "hello"
        assert posted["author"]["user"] == "alice"
        (event,) = await calls.wait("posted")
        assert event == Event("chat:lobby", "chat.posted", posted, offset=1)
        assert event.as_frame() == {"op": "ev", "ch": "chat:lobby", "type": "chat.posted", "data": posted, "offset": 1}
        assert await calls.wait("any") == [event]  # after its typed handler
        assert await alice.publish("chat:lobby", "chat.typing", {"active": True}) is None  # a handler with no reply


async def test_err_replies_are_raised_with_code_sentence_and_details_and_the_socket_stays(chat_hub: Any) -> None:
    async with Client(chat_hub.ws_url) as client:
        await client.wait_open()
        client_id = client.hello.client if client.hello else None
        with pytest.raises(ClientError) as invalid:
            await client.publish("chat:lobby", "chat.send", {"text": ""})
        assert invalid.value.code == "invalid"
        assert invalid.value.message == "Invalid data for 'chat.send'."
        assert str(invalid.value) == "invalid: Invalid data for 'chat.send'."
        assert invalid.value.details is not None
        assert invalid.value.details[0]["loc"] == ["text"]
        assert invalid.value.frame is not None
        assert invalid.value.frame["op"] == "err"
        for channel, kind, code in [
            ("nope:lobby", "nope.say", "unknown_channel"),
            ("chat:lobby", "chat.shout", "unknown_type"),
            ("Chat lobby", "chat.send", "bad_channel"),
        ]:
            with pytest.raises(ClientError) as refused:
                await client.publish(channel, kind, {"text": "x"})
            assert refused.value.code == code
        assert (await client.publish("chat:lobby", "chat.send", {"text": "still here"}))["text"] == "still here"
        assert client.hello is not None
        assert client.hello.client == client_id  # the same connection throughout


async def test_a_frame_bigger_than_the_hub_takes_is_refused_before_it_is_sent(hub_server: Any) -> None:
    server = hub_server(plugins=CHAT, max_frame_bytes=1024)
    async with Client(server.ws_url) as client:
        await client.wait_open()
        with pytest.raises(ClientError) as too_large:
            await client.publish("chat:lobby", "chat.send", {"text": "x" * 2000})
        assert too_large.value.code == "frame_too_large"
        assert (await client.publish("chat:lobby", "chat.send", {"text": "small"}))["text"] == "small"


async def test_a_late_joiner_gets_the_snapshot_then_the_events_and_an_async_handler_may_publish(chat_hub: Any) -> None:
    calls = Calls()
    async with Client(chat_hub.ws_url, token=chat_hub.token("alice")) as alice, Client(chat_hub.ws_url) as bot:
        for n in range(3):
            await alice.publish("chat:room", "chat.send", {"text": f"before {n}"})

        async def answer(event: Event) -> None:
            if event.data["text"] == "ping?":
                # awaits the hub's reply from inside a handler: the reader keeps reading while handlers run
                calls.record("answered")(await bot.publish("chat:room", "chat.send", {"text": "pong!"}))

        sub = bot.subscribe(
            "chat:room",
            events={"chat.posted": answer},
            on_snapshot=calls.record("snapshot"),
            on_subscribed=calls.record("subscribed"),
        )
        info = await sub.ready()
        assert isinstance(info, SubscriptionInfo)
        assert (info.resubscribed, info.recovered, info.reset, info.offset) == (False, False, False, 3)
        assert info.epoch is not None
        assert info.has_snapshot
        assert [m["text"] for m in info.snapshot["messages"]] == ["before 0", "before 1", "before 2"]
        assert await calls.wait("subscribed") == [info]
        ((snapshot, snapshot_info),) = await calls.wait("snapshot")
        assert snapshot == info.snapshot
        assert snapshot_info is info
        assert (sub.epoch, sub.offset) == (info.epoch, 3)

        await alice.publish("chat:room", "chat.send", {"text": "ping?"})
        (answered,) = await calls.wait("answered")
        assert answered["text"] == "pong!"
        assert sub.offset == 5  # the ping and the bot's own pong

        resumed = bot.subscribe("chat:other", since=("an-epoch-that-never-was", 3))
        info = await resumed.ready()  # a position the hub cannot continue from: start again from the snapshot
        assert (info.resubscribed, info.recovered, info.reset, info.has_snapshot) == (False, False, True, True)
        assert sub.epoch is not None
        later = alice.subscribe("chat:room", since=(sub.epoch, 2))  # resume from a position saved earlier
        info = await later.ready()
        assert (info.recovered, info.reset, info.missed) == (True, False, 3)


async def test_presence_lists_joins_and_leaves_and_the_presence_op(chat_hub: Any) -> None:
    calls = Calls()
    async with Client(chat_hub.ws_url, token=chat_hub.token("alice")) as alice:
        sub = alice.subscribe("chat:room", on_presence=calls.record("presence"))
        info = await sub.ready()
        assert info.presence is not None
        assert [m.user for m in info.presence] == ["alice"]
        assert info.presence_count == 1
        async with Client(chat_hub.ws_url, token=chat_hub.token("bob")) as bob:
            bob_sub = bob.subscribe("chat:room")
            await bob_sub.ready()
            members, change = (await calls.wait("presence", 2))[1]
            assert isinstance(change, PresenceChange)
            assert (change.type, change.count, change.partial) == ("joined", 2, False)
            assert isinstance(change.member, Member)
            assert change.member.user == "bob"
            assert sorted(m.user for m in members) == ["alice", "bob"]
            assert sorted(m.user for m in sub.members) == ["alice", "bob"]
            listed = await alice.presence("chat:room")
            assert sorted(m.user for m in listed) == ["alice", "bob"]
            page = await alice.presence_page("chat:room", limit=1)
            assert (len(page.members), page.count) == (1, 2)
            assert page.cursor is not None
            rest = await alice.presence_page("chat:room", cursor=page.cursor, limit=1)
            assert rest.cursor is None
            assert {m.client for m in page.members + rest.members} == {m.client for m in listed}
            await bob_sub.unsubscribe()
            members, change = (await calls.wait("presence", 3))[2]
            assert (change.type, change.count, [m.user for m in members]) == ("left", 1, ["alice"])
            assert change.member is not None
            assert change.member.user == "bob"
        assert await alice.presence("chat:nobody-here") == []
        with pytest.raises(ClientError) as no_presence:
            await alice.presence("nope:room")
        assert no_presence.value.code == "unknown_channel"


async def test_unsubscribe_stops_the_handlers_and_async_with_unsubscribes(chat_hub: Any) -> None:
    calls = Calls()
    async with Client(chat_hub.ws_url) as client, Client(chat_hub.ws_url) as other:
        other_sub = other.subscribe("chat:room", events={"chat.posted": calls.record("other")})
        await other_sub.ready()
        async with client.subscribe("chat:room", events={"chat.posted": calls.record("mine")}) as sub:
            await sub.ready()
            await client.publish("chat:room", "chat.send", {"text": "one"})
            await calls.wait("mine")
            assert client.channels == ["chat:room"]
        assert not sub.active
        assert client.channels == []
        await sub.unsubscribe()  # harmless when repeated
        await client.publish("chat:room", "chat.send", {"text": "two"})
        await calls.wait("other", 2)  # the other subscriber got "two" …
        assert [e.data["text"] for e in calls.log["mine"]] == ["one"]  # … and the unsubscribed handler did not
        again = client.subscribe("chat:room")  # the channel can be followed again
        await again.ready()


async def test_a_refused_subscription_is_over_and_a_second_one_per_channel_is_refused(chat_hub: Any) -> None:
    calls = Calls()
    async with Client(chat_hub.ws_url) as client:
        sub = client.subscribe("nope:room", on_error=calls.record("error"))
        with pytest.raises(ClientError) as refused:
            await sub.ready()
        assert refused.value.code == "unknown_channel"
        assert refused.value.channel == "nope:room"
        ((error,),) = [await calls.wait("error")]
        assert error is refused.value
        assert (error.retrying, error.revoked) == (False, False)
        assert not sub.active
        assert client.channels == []
        client.subscribe("chat:room")
        with pytest.raises(ClientError) as twice:
            client.subscribe("chat:room")
        assert twice.value.code == "already_subscribed"


async def test_a_bad_fixed_token_stops_the_client_and_a_token_function_is_asked_again(chat_hub: Any) -> None:
    client = Client(chat_hub.ws_url, token="not-a-jwt", min_delay=0.01, max_delay=0.05)
    async with client:
        final = await asyncio.wait_for(client.wait_closed(), 10)
        assert (final.state, final.code, final.cause) == ("closed", 4001, "closed")
        assert "Invalid token" in final.reason
        with pytest.raises(ClientError) as closed:
            await client.publish("chat:x", "chat.send", {"text": "hi"})
        assert closed.value.code == "closed"

    asked: list[int] = []

    async def token() -> str:
        asked.append(1)
        return "expired-or-forged" if len(asked) < 3 else chat_hub.token("carol")

    async with Client(chat_hub.ws_url, token=token, min_delay=0.01, max_delay=0.05) as client:
        await asyncio.wait_for(client.wait_open(), 10)
        assert client.me is not None
        assert client.me.user == "carol"
        assert len(asked) == 3


async def test_no_token_on_a_hub_without_guests_stops_at_the_auth_timeout(hub_server: Any) -> None:
    server = hub_server(plugins=CHAT, anonymous=False, auth_timeout=0.2)
    async with Client(server.ws_url) as client:
        await client.wait_open()
        assert client.me is None  # open, but no identity until auth
        final = await asyncio.wait_for(client.wait_closed(), 10)
        assert final.code == 4002
    async with Client(server.ws_url) as client:
        await client.wait_open()
        user = await client.auth(server.token("dave"))  # sign in on the open connection
        assert user is not None
        assert user.user == "dave"
        assert client.me == user
        await client.subscribe("chat:room").ready()


async def test_presence_in_a_room_bigger_than_the_list_limit_counts_and_fetches_the_list_when_small(
    hub_server: Any,
) -> None:
    server = hub_server(plugins=CHAT, presence_list_limit=2, presence_count_interval=0.05)
    calls = Calls()
    async with Client(server.ws_url, token=server.token("watcher")) as watcher:
        sub = watcher.subscribe("chat:big", on_presence=calls.record("presence"))
        await sub.ready()
        others = [Client(server.ws_url, token=server.token(f"user{n}")) for n in range(3)]
        for other in others:
            await other.start().subscribe("chat:big").ready()
        members, change = await calls.until("presence", lambda call: call[1].count == 4)
        assert change.type == "count"
        assert change.partial
        assert len(members) < 4
        for other in others[:2]:
            await other.close()
        members, change = await calls.until("presence", lambda call: call[1].type == "sync" and call[1].count == 2)
        assert not change.partial
        assert sorted(m.user for m in members) == ["user2", "watcher"]
        await others[2].close()
        members, change = await calls.until("presence", lambda call: call[1].type == "left")
        assert [m.user for m in members] == ["watcher"]
