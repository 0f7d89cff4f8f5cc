"""The fallback transport with two nodes on Redis: a client on SSE at node A gets what is published at node B, and
the POSTs of its session are answered only by node A (docs/operations.md, "Load balancers and the fallback
transport")."""

from __future__ import annotations

import os

import httpx

import hub_realtime_plugins.chat
from tests.sse_client import SSEClient

CHAT = {"chat": hub_realtime_plugins.chat.Chat}


async def test_events_cross_nodes_and_posts_belong_to_the_streams_node(hub_server, hub_client, redis_url):
    prefix = f"sse{os.urandom(4).hex()}"
    node_a = hub_server(plugins=CHAT, redis_url=redis_url, redis_prefix=prefix)
    node_b = hub_server(plugins=CHAT, redis_url=redis_url, redis_prefix=prefix)
    channel = f"chat:r{os.urandom(4).hex()}"
    alice = await SSEClient.connect(node_a.url, token=node_a.token("alice"))
    try:
        subscribed = await alice.request({"op": "sub", "ch": channel})
        assert subscribed["op"] == "ok"
        bob = await hub_client(node_b, user="bob")
        await bob.sub(channel)
        assert (await alice.next_event(channel, "chat.joined"))["data"]["user"] == "bob"

        # published on B (over a socket), delivered on A's stream
        await bob.pub(channel, "chat.send", {"text": "from node B"})
        assert (await bob.next_event(channel, "chat.posted"))["data"]["text"] == "from node B"
        event = await alice.next_event(channel, "chat.posted")
        assert event["data"]["text"] == "from node B"
        assert event["offset"] == 1

        # published from A's stream, delivered on B's socket
        reply = await alice.request({"op": "pub", "ch": channel, "type": "chat.send", "data": {"text": "from A"}})
        assert reply["op"] == "ok"
        assert (await bob.next_event(channel, "chat.posted"))["data"]["text"] == "from A"

        # a POST of alice's session that reaches node B is refused there, and says why
        async with httpx.AsyncClient(base_url=node_b.url) as http:
            answer = await http.post(f"/sse/{alice.key}", content=b'{"op":"ping","id":"lost"}')
        assert answer.status_code == 404
        assert "another node" in answer.json()["detail"]
        assert (await alice.request({"op": "ping"}))["op"] == "pong"  # the session on A is unharmed
    finally:
        await alice.close()
    assert (await bob.next_event(channel, "chat.left"))["data"]["user"] == "alice"
