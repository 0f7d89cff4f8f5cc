"""The admin channel with two hub nodes on one real Redis: an admin on one node sees both nodes' stats, and its
kick, publish and channel details reach connections held by the other node."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import hub_realtime_plugins.chat
from hub.testing import HubClient, HubServer, wait_until

OVERVIEW = "admin:overview"


@pytest.fixture
def two_nodes(hub_server, redis_url) -> tuple[HubServer, HubServer]:
    settings: dict[str, Any] = {
        "redis_url": redis_url,
        "redis_prefix": f"t{uuid.uuid4().hex[:10]}",
        "probe_interval": 0.1,
        "probe_timeout": 0.6,
        "presence_ttl": 0.6,
        "admin_interval": 0.05,
    }
    chat = {"chat": hub_realtime_plugins.chat.Chat}
    return hub_server(plugins=chat, **settings), hub_server(plugins=chat, **settings)


async def stats_of_both(admin: HubClient, nodes: set[str]) -> dict[str, dict[str, Any]]:
    """The first admin.stats of each node (events of the admin's own node may come first)."""
    found: dict[str, dict[str, Any]] = {}
    while set(found) != nodes:
        stats = (await admin.next_event(OVERVIEW, "admin.stats"))["data"]
        found.setdefault(stats["node"], stats)
    return found


async def test_an_admin_on_one_node_sees_and_steers_both(two_nodes, hub_client):
    node_a, node_b = two_nodes
    ids = {node_a.app.state.hub.node_id, node_b.app.state.hub.node_id}
    alice = await hub_client(node_a, user="alice")
    bob = await hub_client(node_b, user="bob")
    await alice.sub("chat:lobby")
    await bob.sub("chat:lobby")
    admin = await hub_client(node_a, token=node_a.token("root", name="Root", scopes=("admin",)))
    await admin.sub(OVERVIEW)

    stats = await stats_of_both(admin, ids)
    on_b = stats[node_b.app.state.hub.node_id]
    assert [(c["user"], c["client"], c["channels"]) for c in on_b["clients"]] == [
        ("bob", bob.hello["client"], ["chat:lobby"]),
    ]
    assert on_b["channels"] == [{"channel": "chat:lobby", "subscribers": 1}]
    assert {c["user"] for c in stats[node_a.app.state.hub.node_id]["clients"]} == {"alice", "root"}

    details = await admin.pub(OVERVIEW, "admin.channel", {"channel": "chat:lobby"})
    assert (details["subscribers"], details["nodes"], details["missing_nodes"]) == (2, 2, [])
    assert sorted(m["user"] for m in details["presence"]) == ["alice", "bob"]

    message = {"channel": "chat:lobby", "type": "chat.send", "data": {"text": "to both nodes"}}
    await admin.pub(OVERVIEW, "admin.publish", message)
    assert (await bob.next_event("chat:lobby", "chat.posted"))["data"]["text"] == "to both nodes"

    kicked = await admin.pub(OVERVIEW, "admin.kick", {"client": bob.hello["client"], "reason": "from node A"})
    assert kicked == {"closed": 1, "missing_nodes": []}
    assert await bob.closed() == (4011, "from node A")
    assert (await alice.next_event("chat:lobby", "chat.left"))["data"]["user"] == "bob"

    async def b_reports_the_kick() -> bool:
        stats = (await admin.next_event(OVERVIEW, "admin.stats"))["data"]
        return (
            stats["node"] == node_b.app.state.hub.node_id
            and stats["connections"] == 0
            and any(close["code"] == 4011 and close["user"] == "bob" for close in stats["recent_closes"])
        )

    await wait_until(b_reports_the_kick, what="node B's stats without bob, and its close")
