"""hub.listen: a plugin follows a channel from inside the hub, on one node and across nodes on Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

import hub_realtime_plugins.chat
from hub import Hub


class Recorder:
    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()

    def __call__(self, channel: str, frame: str) -> None:
        self.frames.append(orjson.loads(frame))
        self.arrived.set()

    async def texts(self, count: int) -> list[str]:
        async with asyncio.timeout(5):
            while len([f for f in self.frames if f["type"] == "chat.posted"]) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return [f["data"]["text"] for f in self.frames if f["type"] == "chat.posted"]


async def test_a_listener_gets_every_event_and_counts_as_a_subscriber(hub_server: Any, hub_client: Any) -> None:
    server = hub_server(plugins={"chat": hub_realtime_plugins.chat.Chat})
    hub: Hub = server.app.state.hub
    recorder = Recorder()
    listener = await server.call(hub.listen("chat:room", recorder))
    assert hub.local_subscribers("chat:room") == 1
    assert await server.call(hub.interest("chat:room")) == 1
    alice = await hub_client(server, user="alice")
    await alice.pub("chat:room", "chat.send", {"text": "one"})
    await alice.pub("chat:room", "chat.send", {"text": "two"})
    assert await recorder.texts(2) == ["one", "two"]
    await server.call(listener.close())
    await server.call(listener.close())  # idempotent
    assert hub.local_subscribers("chat:room") == 0
    await alice.pub("chat:room", "chat.send", {"text": "three"})
    await asyncio.sleep(0.1)
    assert await recorder.texts(2) == ["one", "two"]


async def test_a_failing_listener_does_not_stop_delivery(hub_server: Any, hub_client: Any) -> None:
    server = hub_server(plugins={"chat": hub_realtime_plugins.chat.Chat})
    hub: Hub = server.app.state.hub

    def broken(channel: str, frame: str) -> None:
        raise RuntimeError("a bug in a listener")

    await server.call(hub.listen("chat:room", broken))
    reader = await hub_client(server, user="bob")
    await reader.sub("chat:room")
    alice = await hub_client(server, user="alice")
    await alice.pub("chat:room", "chat.send", {"text": "still here"})
    assert (await reader.next_event("chat:room", "chat.posted"))["data"]["text"] == "still here"


async def test_listening_to_a_channel_nobody_owns_is_an_error(hub_server: Any) -> None:
    server = hub_server(plugins={"chat": hub_realtime_plugins.chat.Chat})
    hub: Hub = server.app.state.hub
    with pytest.raises(Exception, match="nope"):
        await server.call(hub.listen("nope:room", Recorder()))


async def test_a_listener_on_one_node_hears_the_other_node(hub_server: Any, hub_client: Any, redis_url: str) -> None:
    settings = {"redis_url": redis_url, "redis_prefix": f"listen{id(object())}"}
    first = hub_server(plugins={"chat": hub_realtime_plugins.chat.Chat}, **settings)
    second = hub_server(plugins={"chat": hub_realtime_plugins.chat.Chat}, **settings)
    recorder = Recorder()
    await first.call(first.app.state.hub.listen("chat:x", recorder))
    assert await second.call(second.app.state.hub.interest("chat:x")) == 1
    alice = await hub_client(second, user="alice")
    await alice.pub("chat:x", "chat.send", {"text": "across"})
    assert await recorder.texts(1) == ["across"]
