"""Presence at scale over real sockets (protocol.md §9): rooms of at most ``presence_list`` members announce
joins and leaves one by one; bigger rooms announce a coalesced member count, list a sample in the ``sub``
reply and page through everyone with the ``presence`` op. On one memory hub and on two nodes on Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

import hub_realtime_plugins.chat
from hub.testing import HubClient, HubServer, ReplyError

LIMIT = 3  # presence_list_limit: rooms above it are big
INTERVAL = 0.05  # presence_count_interval
SETTLE = INTERVAL * 8  # long enough for every node's last count to arrive
PRESENCE_SETTINGS: dict[str, Any] = {"presence_list_limit": LIMIT, "presence_count_interval": INTERVAL}


@pytest.fixture(params=["memory", "redis"])
def nodes(request: pytest.FixtureRequest, hub_server) -> tuple[HubServer, HubServer]:
    """Two places to connect to: the same memory hub twice, or two hub nodes on one Redis."""
    plugins = {"chat": hub_realtime_plugins.chat.Chat}
    if request.param == "memory":
        server = hub_server(plugins=plugins, **PRESENCE_SETTINGS)
        return server, server
    redis = {
        "redis_url": request.getfixturevalue("redis_url"),
        "redis_prefix": f"t{uuid.uuid4().hex[:10]}",
        "probe_interval": 0.1,
        "presence_ttl": 5.0,
    }
    node_a = hub_server(plugins=plugins, **PRESENCE_SETTINGS, **redis)
    node_b = hub_server(plugins=plugins, **PRESENCE_SETTINGS, **redis)
    return node_a, node_b


def drain(client: HubClient, channel: str) -> list[dict[str, Any]]:
    """The events of ``channel`` queued for ``client`` now (others are dropped)."""
    frames = []
    while not client.events.empty():
        frame = client.events.get_nowait()
        if frame["ch"] == channel:
            frames.append(frame)
    return frames


def of_type(frames: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [frame for frame in frames if frame["type"] == event_type]


async def settle_count(client: HubClient, channel: str, expected: int) -> list[dict[str, Any]]:
    """Wait for a ``chat.presence`` saying ``expected``, then for the stragglers; every frame seen, in order.
    The last count the client got must be ``expected``: the room's count after the changes."""
    frames = []
    async with asyncio.timeout(5):
        while not any(f["type"] == "chat.presence" and f["data"]["count"] == expected for f in frames):
            frames.append(await client.next_event(channel))
    await asyncio.sleep(SETTLE)
    frames += drain(client, channel)
    assert of_type(frames, "chat.presence")[-1]["data"] == {"count": expected}
    return frames


async def settle_counts(clients: list[HubClient], channel: str, expected: int) -> list[list[dict[str, Any]]]:
    """:func:`settle_count` for each client, at once."""
    return list(await asyncio.gather(*(settle_count(client, channel, expected) for client in clients)))


async def walk(client: HubClient, channel: str, limit: int) -> tuple[list[list[str]], set[str]]:
    """Every page of the presence op (following cursors), as client id lists, and the deduped client ids."""
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        frame: dict[str, Any] = {"op": "presence", "ch": channel, "limit": limit}
        if cursor is not None:
            frame["cursor"] = cursor
        reply = await client.call(frame)
        pages.append([member["client"] for member in reply["presence"]])
        cursor = reply["cursor"]
        if cursor is None:
            return pages, {client for page in pages for client in page}
        assert len(pages) < 100, "the walk does not end"


async def test_a_room_past_the_limit_announces_counts_and_pages_its_members(nodes, hub_client):
    channel = "chat:stadium"
    connect_to = [nodes[i % 2] for i in range(100)]
    first = [await hub_client(connect_to[i], user=f"first{i}") for i in range(LIMIT)]
    ids = {client.hello["client"]: client for client in first}

    # up to the limit: one by one, as always
    for n, client in enumerate(first):
        reply = await client.sub(channel)
        assert reply["presence_count"] == n + 1
        assert {m["client"] for m in reply["presence"]} == {c.hello["client"] for c in first[: n + 1]}
        for earlier in first[:n]:
            joined = await earlier.next_event(channel, "chat.joined")
            assert joined["data"] == {"client": client.hello["client"], "user": f"first{n}", "name": f"first{n}"}

    # the 4th joiner: no chat.joined, a count instead; its reply lists LIMIT members, itself included
    fourth = await hub_client(connect_to[LIMIT], user="fourth")
    ids[fourth.hello["client"]] = fourth
    reply = await fourth.sub(channel)
    assert reply["presence_count"] == LIMIT + 1
    assert len(reply["presence"]) == LIMIT
    assert fourth.hello["client"] in {m["client"] for m in reply["presence"]}
    for frames in await settle_counts(first, channel, LIMIT + 1):
        assert of_type(frames, "chat.joined") == []

    # a burst of 10 joins: each member gets a few coalesced counts, not 10 events
    burst = [await hub_client(connect_to[LIMIT + 1 + i], user=f"burst{i}") for i in range(10)]
    started = time.monotonic()
    replies = await asyncio.gather(*(client.sub(channel) for client in burst))
    burst_time = time.monotonic() - started
    ids.update((client.hello["client"], client) for client in burst)
    for client, sub_reply in zip(burst, replies, strict=True):
        assert len(sub_reply["presence"]) == LIMIT
        assert client.hello["client"] in {m["client"] for m in sub_reply["presence"]}
        assert LIMIT + 2 <= sub_reply["presence_count"] <= len(ids)
    for frames in await settle_counts([*first, fourth], channel, len(ids)):
        assert of_type(frames, "chat.joined") == []
        # each node that saw joins sends at most one count per interval (a slow machine stretches the burst;
        # test_filling_a_room_of_60... bounds the frames themselves)
        flushes = len(set(connect_to)) * (burst_time / INTERVAL + 2)
        assert len(of_type(frames, "chat.presence")) <= flushes, "counts are coalesced, not one per joiner"

    # a late joiner of the big room: a sample of LIMIT members (itself included) and the whole count
    late = await hub_client(connect_to[50], user="late")
    reply = await late.sub(channel)
    ids[late.hello["client"]] = late
    assert len(reply["presence"]) == LIMIT
    assert late.hello["client"] in {m["client"] for m in reply["presence"]}
    assert reply["presence_count"] == len(ids) == 15

    # the presence op pages through everyone (deduped by client, as the protocol asks of clients)
    pages, everyone = await walk(late, channel, limit=2)
    assert everyone == set(ids)
    assert len(pages) >= 2
    first_page = await late.call({"op": "presence", "ch": channel})
    assert first_page["count"] == 15
    assert len(first_page["presence"]) <= LIMIT
    assert first_page["cursor"] is not None
    with pytest.raises(ReplyError) as refused:
        await late.call({"op": "presence", "ch": channel, "cursor": "9" * 65})
    assert refused.value.code == "bad_request"

    # leaving back down to the limit: counts only; the last one says LIMIT (clients then fetch the list)
    stay = first
    for client in [fourth, *burst, late]:
        await client.close()
    for frames in await settle_counts(stay, channel, LIMIT):
        assert of_type(frames, "chat.left") == []
    listed = await stay[0].call({"op": "presence", "ch": channel})
    assert {m["client"] for m in listed["presence"]} == {c.hello["client"] for c in stay}
    assert (listed["count"], listed["cursor"]) == (LIMIT, None)

    # a small room again: leaves and joins are announced one by one
    await stay[2].close()
    for client in stay[:2]:
        left = await client.next_event(channel, "chat.left")
        assert left["data"]["client"] == stay[2].hello["client"]
    again = await hub_client(connect_to[7], user="again")
    reply = await again.sub(channel)
    assert (len(reply["presence"]), reply["presence_count"]) == (LIMIT, LIMIT)
    for client in stay[:2]:
        joined = await client.next_event(channel, "chat.joined")
        assert joined["data"]["client"] == again.hello["client"]
        await client.no_event(channel, "chat.presence", wait=SETTLE)


async def test_a_bad_cursor_is_refused(nodes, hub_client):
    client = await hub_client(nodes[0], user="alice")
    await client.sub("chat:cursors")
    for bad in ({"cursor": "x" * 65}, {"cursor": 17}, {"limit": 0}, {"limit": 10_001}):
        with pytest.raises(ReplyError) as refused:
            await client.call({"op": "presence", "ch": "chat:cursors", **bad})
        assert refused.value.code == "bad_request", bad


async def test_filling_a_room_of_60_costs_far_fewer_frames_than_announcing_every_join(hub_server, hub_client):
    server = hub_server(plugins={"chat": hub_realtime_plugins.chat.Chat}, **PRESENCE_SETTINGS)
    channel = "chat:crowd"
    clients = [await hub_client(server, user=f"u{i}") for i in range(60)]
    started = time.monotonic()
    for batch in range(0, 60, 20):  # joiners arrive 20 at a time
        await asyncio.gather(*(client.sub(channel) for client in clients[batch : batch + 20]))
    await asyncio.sleep(SETTLE)
    elapsed = time.monotonic() - started

    frames = {client.hello["client"]: drain(client, channel) for client in clients}
    total = sum(len(received) for received in frames.values())
    joined = sum(len(of_type(received, "chat.joined")) for received in frames.values())
    # one by one, filling the room costs 60*59/2 = 1,770 joined frames; now only the first LIMIT joins are
    # announced, and each member gets at most one count per interval (per node) while the room changes
    assert joined <= LIMIT * (LIMIT - 1) // 2
    flushes = elapsed / INTERVAL + 2
    for received in frames.values():
        assert len(of_type(received, "chat.presence")) <= flushes
        assert of_type(received, "chat.presence")[-1]["data"] == {"count": 60}
    assert total <= 60 * 59 // 2 // 4, f"{total} frames to fill a room of 60"
