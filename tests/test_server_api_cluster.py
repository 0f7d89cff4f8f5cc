"""The server API across a cluster: two hub nodes on one Redis, and on a Redis Cluster. A call to either node covers
both: a client on node B is disconnected by a call to node A, channels, clients and nodes are counted on both,
a publish on A reaches B's subscribers, an Idempotency-Key holds across nodes. Through hub.api_client.HubAPI."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import hub_realtime_plugins.chat
from hub.api_client import HubAPI
from hub.testing import HubServer, wait_until

KEY = "cluster-api-key-0123456789"


@pytest.fixture(params=["redis", "redis-cluster"])
def two_nodes(request: pytest.FixtureRequest, hub_server: Callable[..., HubServer]) -> tuple[HubServer, HubServer]:
    url = request.getfixturevalue("redis_url" if request.param == "redis" else "redis_cluster_url")
    prefix = f"t{uuid.uuid4().hex[:10]}"
    nodes = tuple(
        hub_server(
            plugins={"chat": hub_realtime_plugins.chat.Chat},
            redis_url=url,
            redis_prefix=prefix,
            api_keys=[KEY],
            probe_interval=0.1,
            presence_ttl=0.6,
        )
        for _ in range(2)
    )
    return nodes[0], nodes[1]


@pytest.fixture
async def apis(two_nodes: tuple[HubServer, HubServer]) -> AsyncIterator[tuple[HubAPI, HubAPI]]:
    a, b = (HubAPI(node.url, api_key=KEY) for node in two_nodes)
    async with a, b:
        yield a, b


def node_id(server: HubServer) -> str:
    return str(server.app.state.hub.node_id)


async def test_a_client_on_node_b_is_disconnected_by_a_call_to_node_a(
    two_nodes: tuple[HubServer, HubServer], apis: tuple[HubAPI, HubAPI], hub_client: Any
) -> None:
    node_a, node_b = two_nodes
    api_a, _api_b = apis
    alice_on_b = await hub_client(node_b, user="alice")
    alice_on_a = await hub_client(node_a, user="alice")
    bob_on_b = await hub_client(node_b, user="bob")
    listed = await api_a.clients(user="alice")
    assert listed.total == 2
    assert listed.missing_nodes == []
    on_b = next(client for client in listed.clients if client.node == node_id(node_b))
    result = await api_a.disconnect(client=on_b.client, reason="Kicked from A.")
    assert (result.closed, result.missing_nodes) == (1, [])
    assert await alice_on_b.closed() == (4011, "Kicked from A.")
    # a user: every connection of it, on both nodes
    result = await api_a.disconnect(user="alice", code=4600, reason="Gone.")
    assert result.closed == 1  # the one on node A is left
    assert await alice_on_a.closed() == (4600, "Gone.")
    await bob_on_b.sub("chat:still-open")
    assert (await api_a.clients()).total == 1


async def test_channels_clients_and_nodes_cover_both_nodes(
    two_nodes: tuple[HubServer, HubServer], apis: tuple[HubAPI, HubAPI], hub_client: Any
) -> None:
    node_a, node_b = two_nodes
    api_a, api_b = apis
    alice = await hub_client(node_a, user="alice")
    bob = await hub_client(node_b, user="bob")
    carol = await hub_client(node_b, user="carol")
    await alice.sub("chat:x")
    await bob.sub("chat:x")
    await bob.sub("chat:y")
    await carol.sub("chat:x")
    for api in (api_a, api_b):
        page = await api.channels(prefix="chat:")
        assert [(c.channel, c.subscribers, c.nodes) for c in page.channels] == [("chat:x", 3, 2), ("chat:y", 1, 1)]
        assert page.missing_nodes == []
        first = await api.channels(limit=1)
        assert [c.channel for c in first.channels] == ["chat:x"]
        assert first.cursor == "chat:x"
        assert [c.channel async for c in api.all_channels(page_size=1)] == ["chat:x", "chat:y"]
        clients = await api.clients()
        assert clients.total == 3
        assert {client.node for client in clients.clients} == {node_id(node_a), node_id(node_b)}
        assert (await api.presence("chat:x")).count == 3
        assert await api.presence_count("chat:y") == 1
        info = await api.info()
        by_node = {node.node: node for node in info.nodes}
        assert set(by_node) == {node_id(node_a), node_id(node_b)}
        assert (by_node[node_id(node_a)].connections, by_node[node_id(node_b)].connections) == (1, 2)
        assert by_node[node_id(node_b)].subscriptions == 3
        assert all(node.reachable for node in info.nodes)
    assert (await api_a.info()).node == node_id(node_a)
    assert (await api_b.info()).node == node_id(node_b)


async def test_a_publish_on_node_a_reaches_node_b_once_per_idempotency_key(
    two_nodes: tuple[HubServer, HubServer], apis: tuple[HubAPI, HubAPI], hub_client: Any
) -> None:
    _node_a, node_b = two_nodes
    api_a, api_b = apis
    bob = await hub_client(node_b, user="bob")
    await bob.sub("chat:news")
    first = await api_a.publish("chat:news", "chat.send", {"text": "from A"}, idempotency_key="news-1")
    assert first.data["text"] == "from A"
    event = await bob.next_event("chat:news", "chat.posted")
    assert event["data"] == first.data
    again = await api_b.publish("chat:news", "chat.send", {"text": "from A"}, idempotency_key="news-1")
    assert again.duplicate
    await bob.no_event("chat:news", "chat.posted")
    history = await api_b.history("chat:news", since=0)
    assert [(e.offset, e.data["text"]) for e in history.events] == [(event["offset"], "from A")]


async def test_a_node_that_stops_leaves_the_list(
    two_nodes: tuple[HubServer, HubServer], apis: tuple[HubAPI, HubAPI]
) -> None:
    node_a, node_b = two_nodes
    api_a, _api_b = apis
    assert len((await api_a.info()).nodes) == 2
    node_b.stop()

    async def one_left() -> bool:
        return [node.node for node in (await api_a.info()).nodes] == [node_id(node_a)]

    await wait_until(one_left, what="node B gone from the list")
    assert (await api_a.channels()).missing_nodes == []
