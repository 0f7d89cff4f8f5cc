"""/readyz: broker and store health together, with the reason; never green while Redis is down."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx

import hub_realtime_plugins.chat
from hub.testing import wait_until


async def readyz(http: httpx.AsyncClient) -> tuple[int, dict[str, object]]:
    response = await http.get("/readyz")
    return response.status_code, response.json()


async def test_readyz_names_the_broker_and_the_store(hub_server) -> None:
    node = hub_server(plugins={"chat": hub_realtime_plugins.chat.Chat})
    async with httpx.AsyncClient(base_url=node.url) as http:
        assert await readyz(http) == (200, {"ready": True, "started": True, "broker": "ok", "store": "ok"})


async def test_readyz_is_never_green_while_redis_is_down(hub_server, redis_server) -> None:
    """The node goes red when it loses its pub/sub connection, and green again only after a probe made the round
    trip through a new one: a reconnect attempt while Redis is down is not a success, however recent the last
    probe was (probe_timeout is long here, so a stale probe would still count)."""
    node = hub_server(
        plugins={"chat": hub_realtime_plugins.chat.Chat},
        broker_url=redis_server.url,
        redis_prefix=f"t{uuid.uuid4().hex[:10]}",
        probe_interval=0.05,
        probe_timeout=1.5,
    )
    async with httpx.AsyncClient(base_url=node.url, timeout=2.0) as http:
        assert (await readyz(http))[0] == 200
        redis_server.stop()
        stopped = time.monotonic()

        async def red() -> bool:
            return (await readyz(http))[0] == 503

        await wait_until(red, timeout=1.0, interval=0.005)
        assert time.monotonic() - stopped < 1.0  # red at once, not after probe_timeout
        statuses: list[int] = []
        while time.monotonic() - stopped < 2.0:  # past three reconnect attempts (every 0.5 s)
            statuses.append((await readyz(http))[0])
            await asyncio.sleep(0.005)
        assert len(statuses) > 50
        assert set(statuses) == {503}

        redis_server.start()

        async def green() -> bool:
            status, body = await readyz(http)
            return status == 200 and body["broker"] == "ok"

        await wait_until(green, timeout=10)


async def test_a_store_on_a_redis_that_is_down_makes_the_node_unready(hub_server, redis_url, redis_server) -> None:
    """Broker and store on two different Redis servers: the store's being down is the node's being unready."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    node = hub_server(
        plugins={"chat": hub_realtime_plugins.chat.Chat},
        broker_url=redis_url,
        store_url=redis_server.url,
        redis_prefix=prefix,
    )
    async with httpx.AsyncClient(base_url=node.url, timeout=5.0) as http:
        assert (await readyz(http))[0] == 200
        redis_server.stop()
        status, body = await readyz(http)
        assert status == 503
        assert body["broker"] == "ok"
        assert body["store"] == "unavailable"
        assert "redis" in str(body["reason"])

        redis_server.start()

        async def green() -> bool:
            return (await readyz(http))[0] == 200

        await wait_until(green, timeout=10)
