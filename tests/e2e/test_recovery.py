"""Recovery over real sockets: resubscribe with `since` and get exactly what was missed, or recovered=false."""

from __future__ import annotations

import pytest

import hub_realtime_plugins.chat
from tests.e2e.feed_plugin import make_feed_plugin


@pytest.fixture
def server(hub_server):
    return hub_server(plugins={"feed": make_feed_plugin(), "chat": hub_realtime_plugins.chat.Chat})


async def publish(client, numbers) -> None:
    for n in numbers:
        await client.pub("feed:news", "feed.post", {"n": n})


async def test_resubscribe_with_since_gets_exactly_the_missed_events(server, hub_client):
    writer = await hub_client(server, user="writer")
    reader = await hub_client(server, user="reader")
    first = await reader.sub("feed:news")
    await publish(writer, [1, 2])
    seen = [await reader.next_event("feed:news") for _ in range(2)]
    assert [(e["offset"], e["data"]["n"]) for e in seen] == [(first["offset"] + 1, 1), (first["offset"] + 2, 2)]
    await reader.close()

    await publish(writer, [3, 4, 5])  # missed while away

    again = await hub_client(server, user="reader")
    reply = await again.sub("feed:news", since={"epoch": first["epoch"], "offset": seen[-1]["offset"]})
    assert reply["recovered"] is True
    assert "snapshot" not in reply  # the client has state; the missed events bring it up to date
    assert [e["data"]["n"] for e in reply["missed"]] == [3, 4, 5]
    assert [e["offset"] for e in reply["missed"]] == [3, 4, 5]
    assert reply["offset"] == 5
    assert reply["epoch"] == first["epoch"]

    await publish(writer, [6])
    live = await again.next_event("feed:news")
    assert (live["offset"], live["data"]["n"]) == (6, 6)
    await again.no_event("feed:news")  # nothing twice


async def test_up_to_date_client_recovers_nothing(server, hub_client):
    writer = await hub_client(server, user="writer")
    await publish(writer, [1])
    reader = await hub_client(server, user="reader")
    position = await reader.sub("feed:news")
    await reader.close()
    again = await hub_client(server, user="reader")
    reply = await again.sub("feed:news", since={"epoch": position["epoch"], "offset": position["offset"]})
    assert reply["recovered"] is True
    assert reply["missed"] == []


async def test_missing_more_than_the_window_is_recovered_false_never_partial(server, hub_client):
    writer = await hub_client(server, user="writer")
    reader = await hub_client(server, user="reader")
    first = await reader.sub("feed:news")
    await reader.close()
    await publish(writer, range(1, 8))  # 7 events, the window keeps 5

    again = await hub_client(server, user="reader")
    reply = await again.sub("feed:news", since={"epoch": first["epoch"], "offset": first["offset"]})
    assert reply["recovered"] is False
    assert "missed" not in reply
    assert reply["snapshot"] == {"note": "full state"}  # start over from the snapshot
    assert reply["offset"] == 7


@pytest.mark.parametrize(
    "since",
    [{"epoch": "not-the-epoch", "offset": 0}, {"epoch": None, "offset": 99}],
    ids=["other epoch", "offset from the future"],
)
async def test_a_position_from_another_stream_is_recovered_false(server, hub_client, since):
    writer = await hub_client(server, user="writer")
    await publish(writer, [1, 2])
    reader = await hub_client(server, user="reader")
    epoch = (await reader.sub("feed:news"))["epoch"]
    await reader.unsub("feed:news")
    reply = await reader.sub("feed:news", since={"epoch": since["epoch"] or epoch, "offset": since["offset"]})
    assert reply["recovered"] is False
    assert reply["snapshot"] == {"note": "full state"}


async def test_chat_recovers_missed_messages_after_a_short_disconnect(server, hub_client):
    alice = await hub_client(server, user="alice")
    bob = await hub_client(server, user="bob")
    position = await bob.sub("chat:lobby")
    await alice.sub("chat:lobby")
    await bob.close()
    await alice.pub("chat:lobby", "chat.send", {"text": "while you were away"})

    bob = await hub_client(server, user="bob")
    reply = await bob.sub("chat:lobby", since={"epoch": position["epoch"], "offset": position["offset"]})
    assert reply["recovered"] is True
    assert [e["data"]["text"] for e in reply["missed"]] == ["while you were away"]
    assert [e["type"] for e in reply["missed"]] == ["chat.posted"]  # presence and typing are not history
