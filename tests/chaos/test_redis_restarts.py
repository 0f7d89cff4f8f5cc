"""Redis restarts, found by test_stateful_model.py.

1. Nodes come back after every Redis restart, however many. A node used to stay unready for good: its probe task
   died when redis-py raised AttributeError ('NoneType' object has no attribute 'credential_provider') from a
   pub/sub PING racing the reader's teardown of the lost connection, and nothing was logged. A fast probe and four
   nodes made the race likely: a node was stuck after the first or second restart.
2. A client subscribed before a Redis restart gets the new stream from its first event (protocol §7: "sees
   offsets start again at 1"). The session's floor (events at or below the sub reply's offset are dropped until a
   later one arrives; test_join_race.py) knows no epoch, so it swallowed the new stream's first events.
"""

from __future__ import annotations

import time
import uuid
from functools import partial
from typing import Any

import httpx
import pytest

from hub.testing import HubClient, HubServer, wait_until
from tests.e2e.feed_plugin import make_feed_plugin

pytestmark = pytest.mark.chaos

RESTARTS = 10
READY_WITHIN = 3.0  # seconds after Redis is back (a probe every 10 ms, each node's reconnect delay 0.5 s)


async def ready(http: httpx.AsyncClient, node: HubServer) -> bool:
    try:
        return (await http.get(f"{node.url}/readyz")).status_code == 200
    except httpx.TransportError:
        return False


# A known leak, reported to the lead: a pub/sub PING that races the reader's teardown of a lost connection (the
# race of item 1, now survived) leaves redis-py's new socket unclosed, so about one run in two garbage-collects an
# unclosed StreamWriter here. Remove this filter with its fix.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_every_node_is_ready_again_after_each_of_many_redis_restarts(hub_server: Any, redis_server: Any) -> None:
    settings = {"redis_url": redis_server.url, "redis_prefix": f"rr{uuid.uuid4().hex[:8]}", "probe_interval": 0.01,
                "probe_timeout": 0.5}  # fmt: skip
    nodes = [hub_server(plugins={"feed": make_feed_plugin()}, **settings) for _ in range(4)]
    async with httpx.AsyncClient(timeout=0.5) as http:
        for restart in range(RESTARTS):
            redis_server.restart()
            started = time.monotonic()
            for node in nodes:
                left = max(0.1, READY_WITHIN - (time.monotonic() - started))
                try:
                    await wait_until(partial(ready, http, node), timeout=left, what="readiness")
                except AssertionError:
                    raise AssertionError(
                        f"{node.url} unready after restart {restart + 1}: {probe_state(node)}"
                    ) from None


def probe_state(node: HubServer) -> str:
    """The node's probe task: running, or how it ended (for the failure message)."""
    for task in getattr(node.app.state.hub.broker.pubsub, "_tasks", []):
        if task.get_name() == "hub-redis-probe" and task.done():
            return f"probe task ended: {task.exception()!r}" if not task.cancelled() else "probe task cancelled"
    return "probe task running"


async def test_a_subscriber_from_before_a_redis_restart_gets_the_new_stream_from_offset_1(
    hub_server: Any, hub_client: Any, redis_server: Any
) -> None:
    settings = {"redis_url": redis_server.url, "redis_prefix": f"rr{uuid.uuid4().hex[:8]}", "probe_interval": 0.05,
                "probe_timeout": 0.5}  # fmt: skip
    node = hub_server(plugins={"feed": make_feed_plugin()}, **settings)
    writer: HubClient = await hub_client(node, user="writer")
    reader: HubClient = await hub_client(node, user="reader")
    for n in range(2):
        await writer.pub("feed:restart", "feed.post", {"n": n})
    before = await reader.sub("feed:restart")  # covers offsets 1 and 2; no later event before Redis goes
    redis_server.restart()  # empty: a new epoch, offsets from 1
    async with httpx.AsyncClient(timeout=0.5) as http:
        await wait_until(lambda: ready(http, node), timeout=10, what="readiness after the restart")
    for n in range(2, 5):
        await writer.pub("feed:restart", "feed.post", {"n": n})
    got = []
    for _ in range(3):
        try:
            event = await reader.next_event("feed:restart", "feed.posted", timeout=2)
        except TimeoutError:
            break
        got.append((event["offset"], event["data"]["n"]))
    assert before["offset"] == 2
    assert got == [(1, 2), (2, 3), (3, 4)]
