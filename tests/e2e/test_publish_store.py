"""Publish and persist (``ctx.publish(..., store_key=...)``, ``Hub.publish(..., store_key=...)``) on real servers:
one Redis round trip per chat message when store and broker share one Redis, the record there no later than its
event (a late joiner's snapshot never misses it), and the usage error of an ephemeral stored event."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import BaseModel

from hub import Channel, Context, HubError, Plugin, hookimpl
from hub.plugin_api import Hub
from hub.testing import ReplyError
from hub_realtime_plugins.chat.plugin import Chat, ChatSettings


class Note(BaseModel):
    key: str
    text: str


class ReadNote(BaseModel):
    key: str


class Notes(Plugin):
    """``notes:<room>``: ``notes.put`` publishes and persists through :meth:`hub.Hub.publish`; ``notes.flash`` asks
    for an ephemeral stored event, which is refused; ``notes.read`` replies with the stored record."""

    static = None

    def __init__(self, hub: Hub) -> None:
        super().__init__(hub)
        self.channel = notes = Channel("notes", recoverable=True, history_size=50)
        notes.event("notes.posted", Note)
        notes.on("notes.put", Note)(self.put)
        notes.on("notes.flash", Note)(self.flash)
        notes.on("notes.read", ReadNote)(self.read)

    @hookimpl
    def hub_channels(self) -> list[Channel]:
        return [self.channel]

    async def put(self, ctx: Context, msg: Note) -> None:
        await self.hub.publish(ctx.channel, "notes.posted", msg, store_key=msg.key)

    async def flash(self, ctx: Context, msg: Note) -> None:
        try:
            await ctx.publish("notes.posted", msg, ephemeral=True, store_key=msg.key)
        except ValueError as exc:
            raise HubError("refused", str(exc)) from None

    async def read(self, ctx: Context, msg: ReadNote) -> Note:
        raw = await ctx.store.get(msg.key)
        if raw is None:
            raise HubError("not_found", msg.key)
        return Note.model_validate_json(raw)


def fast_chat(hub: Hub) -> Chat:
    return Chat(hub, ChatSettings(send_rate=10_000, send_burst=10_000))


def redis_settings(redis_url: str, prefix: str) -> dict[str, object]:
    return {"redis_url": redis_url, "redis_prefix": prefix, "probe_interval": 0.1, "probe_timeout": 0.6}


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


async def evalsha_calls(redis: aioredis.Redis) -> int:
    stats: dict[str, Any] = await redis.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_a_chat_message_is_one_redis_call_when_store_and_broker_share_redis(
    hub_server, hub_client, redis_url, prefix
) -> None:
    """chat.send stores and publishes with one EVALSHA (the store's put and the publish script were two)."""
    node = hub_server(plugins={"chat": fast_chat}, **redis_settings(redis_url, prefix))
    publisher = await hub_client(node, user="alice")
    redis = aioredis.Redis.from_url(redis_url)
    try:
        await publisher.pub("chat:one-call", "chat.send", {"text": "warm-up"})  # scripts loaded, pool connected
        before = await evalsha_calls(redis)
        sent = [await publisher.pub("chat:one-call", "chat.send", {"text": f"m{n}"}) for n in range(20)]
        assert await evalsha_calls(redis) - before == 20  # nothing else here runs scripts (no subscriber, presence)
        records = await redis.hlen(f"{prefix}:store:{{chat}}:values")
        assert records == 21
    finally:
        await redis.aclose()
    reader = await hub_client(node, user="bob")
    reply = await reader.sub("chat:one-call")
    assert [m["id"] for m in reply["snapshot"]["messages"][-20:]] == [m["id"] for m in sent]
    assert reply["offset"] == 21


async def test_a_late_joiner_never_misses_a_message_its_position_covers(
    hub_server, hub_client, redis_url, prefix
) -> None:
    """While messages flood in on one node, clients subscribe on the other: each sub reply's snapshot holds the
    message at the reply's offset (its record was stored no later than its event got that offset)."""
    plugins = {"chat": fast_chat}
    node_a = hub_server(plugins=plugins, **redis_settings(redis_url, prefix))
    node_b = hub_server(plugins=plugins, **redis_settings(redis_url, prefix))
    watcher = await hub_client(node_a, user="watcher")
    await watcher.sub("chat:late")
    publisher = await hub_client(node_a, user="alice")
    sent = 60

    async def flood() -> None:
        for n in range(sent):
            await publisher.pub("chat:late", "chat.send", {"text": f"m{n}"})

    flooding = asyncio.create_task(flood())
    replies = []
    try:
        for n in range(12):
            joiner = await hub_client(node_b, user=f"late{n}")
            replies.append(await joiner.sub("chat:late"))
            await joiner.close()
    finally:
        await flooding
    by_offset = {}
    for _ in range(sent):
        event = await watcher.next_event("chat:late", "chat.posted")
        by_offset[event["offset"]] = event["data"]["id"]
    for reply in replies:
        if reply["offset"]:
            assert by_offset[reply["offset"]] in {m["id"] for m in reply["snapshot"]["messages"]}


async def test_hub_publish_persists_and_an_ephemeral_stored_event_is_refused(hub_server, hub_client) -> None:
    node = hub_server(plugins={"notes": Notes})  # SQLite store, memory broker: the put, then the publish
    writer = await hub_client(node, user="alice")
    await writer.sub("notes:desk")
    await writer.pub("notes:desk", "notes.put", {"key": "desk/1", "text": "kept"})
    event = await writer.next_event("notes:desk", "notes.posted")
    assert (event["data"], event["offset"]) == ({"key": "desk/1", "text": "kept"}, 1)
    assert await writer.pub("notes:desk", "notes.read", {"key": "desk/1"}) == {"key": "desk/1", "text": "kept"}
    with pytest.raises(ReplyError) as refused:
        await writer.pub("notes:desk", "notes.flash", {"key": "desk/2", "text": "gone"})
    assert refused.value.code == "refused"
    await writer.no_event("notes:desk", "notes.posted", wait=0.1)
    with pytest.raises(ReplyError) as missing:
        await writer.pub("notes:desk", "notes.read", {"key": "desk/2"})
    assert missing.value.code == "not_found"
