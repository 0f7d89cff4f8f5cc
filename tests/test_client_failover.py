"""hub.client.Client on two ``hub serve`` nodes sharing one Redis: the node under the client is killed with SIGKILL
while another client publishes; the client fails over to the other node, resubscribes with recovery and misses no
event published meanwhile, or, when those events have dropped out of the history, gets the reset snapshot.

The client stays away until the test lets it back in (its token function waits on a gate), so the events published
"meanwhile" really are published while it is disconnected: no timing is assumed.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.auth import Authenticator
from hub.client import Client, Event, StateChange, SubscriptionInfo
from hub.testing import TEST_SECRET
from tests.chaos.conftest import ServeNode, node_env
from tests.client_helpers import Calls

CHANNEL = "chat:failover"
HISTORY = 8  # events kept for recovery: the first outage stays within it, the second does not


@pytest.fixture
def nodes(tmp_path: Path, redis_url: str) -> Iterator[tuple[ServeNode, ServeNode]]:
    env = node_env(chat_history_size=HISTORY, probe_interval=0.1, probe_timeout=1.0)
    pair = (ServeNode("a", redis_url, env, tmp_path), ServeNode("b", redis_url, env, tmp_path))
    yield pair
    for node in pair:
        node.close()


def texts(events: list[Event]) -> list[str]:
    return [event.data["text"] for event in events]


def reopened(change: StateChange) -> bool:
    return change.state == "open" and change.prev == "reconnecting"


async def test_a_killed_node_is_failed_over_with_recovery_and_with_the_reset_snapshot(
    nodes: tuple[ServeNode, ServeNode],
) -> None:
    node_a, node_b = nodes
    for node in nodes:
        node.start()
    await asyncio.gather(*(node.ready() for node in nodes))
    tokens = Authenticator(TEST_SECRET)
    gate = asyncio.Event()
    gate.set()

    async def token() -> str:
        await gate.wait()  # closed by the test while it publishes: the client is held away
        return tokens.issue("follower")

    calls = Calls()
    follower = Client([node_a.ws_url, node_b.ws_url], token=token, min_delay=0.01, max_delay=0.05)
    follower.on("state", calls.record("state"))
    publishers = {node.name: Client(node.ws_url, token=tokens.issue("publisher")) for node in nodes}

    async def publish(node: ServeNode, *messages: str) -> None:
        for text in messages:
            await publishers[node.name].publish(CHANNEL, "chat.send", {"text": text})

    async with follower, publishers["a"], publishers["b"]:
        sub = follower.subscribe(
            CHANNEL,
            events={"chat.posted": calls.record("posted")},
            on_subscribed=calls.record("subscribed"),
            on_snapshot=calls.record("snapshot"),
        )
        await sub.ready()
        assert follower.url == node_a.ws_url
        await publish(node_b, "b0", "b1")  # from the other node, through Redis
        await calls.wait("posted", 2)

        # 1. Kill the follower's node; publish (within the history) while it is away.
        gate.clear()
        await node_a.signal(signal.SIGKILL)
        lost = await calls.until("state", lambda change: change.state == "reconnecting")
        assert (lost.code, lost.url) == (1006, node_a.ws_url)
        await publish(node_b, "away0", "away1", "away2", "away3", "away4")
        gate.set()
        await calls.until("state", reopened)
        assert follower.url == node_b.ws_url
        info: SubscriptionInfo = (await calls.wait("subscribed", 2))[1]
        assert (info.resubscribed, info.recovered, info.reset, info.missed) == (True, True, False, 5)
        await publish(node_b, "live0")
        posted = await calls.wait("posted", 8)
        assert texts(posted) == ["b0", "b1", "away0", "away1", "away2", "away3", "away4", "live0"]
        assert [event.offset for event in posted] == list(range(1, 9))  # each once, in order, no gap

        # 2. Node a is back; kill node b under the follower and publish more than the history keeps meanwhile.
        node_a.start()
        await node_a.ready()
        gate.clear()
        await node_b.signal(signal.SIGKILL)
        await calls.until("state", lambda change: change.state == "reconnecting" and change.url == node_b.ws_url)
        gone = [f"gone{n}" for n in range(HISTORY + 2)]
        await publish(node_a, *gone)
        gate.set()
        await calls.until("state", lambda change: reopened(change) and change.url == node_a.ws_url)
        info = (await calls.wait("subscribed", 3))[2]
        assert (info.resubscribed, info.recovered, info.reset) == (True, False, True)
        snapshot, snapshot_info = (await calls.wait("snapshot", 2))[1]
        assert snapshot_info is info
        # the snapshot (the chat's last messages, from the store in Redis) holds what the events could not
        assert [message["text"] for message in snapshot["messages"]][-len(gone) :] == gone
        assert len(calls.log["posted"]) == 8  # nothing replayed as events
        await publish(node_a, "live1")
        last = (await calls.wait("posted", 9))[8]
        assert info.offset is not None
        assert (last.data["text"], last.offset) == ("live1", info.offset + 1)  # live again from the reset
