"""hub.client.Client and presence metadata (issue 19, item 4): metadata with the ``sub`` and every resubscribe,
``set_presence`` and its refusals, ``presence_updated`` in ``on_presence``, counts without the list, and the
room's unique display names — against a real hub (chat declares ``{"away": bool}`` as its members' metadata)."""

from __future__ import annotations

from typing import Any

import pytest

from hub.client import Client, ClientError, Member
from tests.client_helpers import CHAT, Calls, Proxy


@pytest.fixture
def chat_hub(hub_server: Any) -> Any:
    return hub_server(plugins=CHAT)


async def test_metadata_rides_the_sub_and_set_presence_updates_every_member(chat_hub: Any) -> None:
    calls = Calls()
    alice = Client(chat_hub.ws_url, token=chat_hub.token("alice", name="Alice"))
    other = Client(chat_hub.ws_url, token=chat_hub.token("alice-2", name="Alice"))
    async with alice, other:
        mine = alice.subscribe("chat:meta", meta={"away": True})
        await mine.ready()
        sub = other.subscribe("chat:meta", on_presence=calls.record("presence"))
        info = await sub.ready()
        assert info.presence is not None
        listed = {m.user: m for m in info.presence}
        assert listed["alice"].meta == {"away": True}
        assert listed["alice-2"].meta is None
        # two users named Alice: the later one is told apart in the room, the same for everyone
        assert (listed["alice"].display, listed["alice-2"].display) == ("Alice", "Alice (2)")
        assert listed["alice-2"].name == "Alice"

        member = await alice.set_presence("chat:meta", {"away": False})
        assert isinstance(member, Member)
        assert (member.user, member.meta) == ("alice", {"away": False})
        members, change = await calls.until("presence", lambda call: call[1].type == "updated")
        assert change.member is not None
        assert (change.member.user, change.member.meta) == ("alice", {"away": False})
        assert {m.user: m.meta for m in members}["alice"] == {"away": False}
        assert mine.meta == {"away": False}  # what the next resubscribe sends

        assert await other.presence_count("chat:meta") == 2
        assert await other.presence_count("chat:nobody") == 0


async def test_set_presence_refusals_are_exceptions(chat_hub: Any) -> None:
    async with Client(chat_hub.ws_url) as guest:
        with pytest.raises(ClientError) as unsubscribed:
            await guest.set_presence("chat:refused", {"away": True})
        assert unsubscribed.value.code == "not_subscribed"
        await guest.subscribe("chat:refused").ready()
        with pytest.raises(ClientError) as invalid:
            await guest.set_presence("chat:refused", {"away": "maybe"})
        assert invalid.value.code == "invalid"
        assert invalid.value.details


async def test_a_resubscribe_after_a_cut_carries_the_latest_metadata(chat_hub: Any) -> None:
    calls = Calls()
    proxy = await Proxy(chat_hub.port).start()
    try:
        watcher = Client(chat_hub.ws_url, token=chat_hub.token("watcher"))
        cut = Client(proxy.ws_url, token=chat_hub.token("bob", name="Bob"), min_delay=0.01, max_delay=0.05)
        async with watcher, cut:
            await cut.subscribe("chat:cut", meta={"away": True}).ready()
            await cut.set_presence("chat:cut", {"away": False})
            assert cut.hello is not None
            before = cut.hello.client
            proxy.cut()
            sub = watcher.subscribe("chat:cut", on_presence=calls.record("presence"))
            await sub.ready()

            def bob_back(call: Any) -> bool:
                members, _change = call
                # bob's new connection (a new client id), joined with the metadata its resubscribe carried
                return any(m.user == "bob" and m.client != before and m.meta == {"away": False} for m in members)

            await calls.until("presence", bob_back)
    finally:
        await proxy.close()
