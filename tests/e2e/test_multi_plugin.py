"""Two plugins over one socket: chat and the test-only ticker plugin share a connection, each stream keeps its
own channel name, and one plugin's failures stay inside its own requests."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

import hub_realtime_plugins.chat
from hub.testing import HubClient, ReplyError
from tests.e2e import ticker_plugin

LOBBY = "chat:lobby"
PLUGINS = {"chat": hub_realtime_plugins.chat.Chat, "ticker": ticker_plugin.Ticker}


async def next_any_event(client: HubClient, timeout: float = 5.0) -> dict[str, Any]:
    """The next event in arrival order, whatever its channel (next_event would drop the others)."""
    return await client.next_event(timeout=timeout)


def check_channel_names(events: list[dict[str, Any]]) -> None:
    for event in events:
        namespace = event["ch"].split(":", 1)[0]
        assert event["type"].startswith(namespace + "."), event


async def test_one_socket_gets_both_streams_interleaved(hub_server, hub_client):
    server = hub_server(plugins=PLUGINS)
    prices = "ticker:prices-interleaved"
    both = await hub_client(server, user="both")
    assert both.hello["plugins"] == ["chat", "ticker"]
    chat_only = await hub_client(server, user="chatty")
    await chat_only.sub(LOBBY)
    await both.sub(LOBBY)
    await both.sub(prices)
    assert await chat_only.next_event(LOBBY, "chat.joined")

    replies = []
    for n in range(3):
        replies.append(await chat_only.pub(LOBBY, "chat.send", {"text": f"chat {n}"}))
        replies.append(await both.pub(prices, "ticker.bump", {"symbol": "ACME", "price": 10.0 + n}))

    events = [await next_any_event(both) for _ in range(6)]
    assert [(e["ch"], e["type"]) for e in events] == [(LOBBY, "chat.posted"), (prices, "ticker.tick")] * 3
    assert [e["data"] for e in events] == replies
    check_channel_names(events)
    assert [e["data"]["price"] for e in events[1::2]] == [10.0, 11.0, 12.0]
    assert [e["data"]["seq"] for e in events[1::2]] == [1, 2, 3]

    # the chat-only socket got the chat stream and nothing of the ticker's (in arrival order, up to a last
    # chat message published after the last tick)
    last = await both.pub(LOBBY, "chat.send", {"text": "last"})
    assert [(await next_any_event(chat_only))["data"] for _ in range(4)] == [*replies[0::2], last]


async def test_background_feed_and_chat_share_the_socket(hub_server, hub_client):
    server = hub_server(plugins=PLUGINS)
    client = await hub_client(server, user="watcher")
    await client.sub(ticker_plugin.CLOCK_CHANNEL)
    await client.sub(LOBBY)
    arrived: list[dict[str, Any]] = []

    async def until(predicate) -> None:
        while True:
            event = await next_any_event(client)
            arrived.append(event)
            if predicate(event):
                return

    for n in range(3):
        await until(lambda e: e["ch"] == ticker_plugin.CLOCK_CHANNEL)  # a tick from the hub_startup task
        posted = await client.pub(LOBBY, "chat.send", {"text": f"between ticks {n}"})
        await until(lambda e, posted=posted: e["ch"] == LOBBY and e["data"] == posted)
    await until(lambda e: e["ch"] == ticker_plugin.CLOCK_CHANNEL)

    check_channel_names(arrived)
    kinds = [e["ch"] for e in arrived]
    chat_positions = [i for i, ch in enumerate(kinds) if ch == LOBBY]
    assert len(chat_positions) == 3
    for position in chat_positions:  # every chat message arrived between two clock ticks
        assert ticker_plugin.CLOCK_CHANNEL in kinds[:position]
        assert ticker_plugin.CLOCK_CHANNEL in kinds[position + 1 :]
    ticks = [e["data"]["seq"] for e in arrived if e["ch"] == ticker_plugin.CLOCK_CHANNEL]
    assert ticks == sorted(ticks)
    assert len(set(ticks)) == len(ticks)  # in order, no repeats


async def test_unsubscribing_one_plugin_leaves_the_other_stream(hub_server, hub_client):
    server = hub_server(plugins=PLUGINS)
    prices = "ticker:prices-unsub"
    client = await hub_client(server, user="both")
    await client.sub(LOBBY)
    await client.sub(prices)
    await client.unsub(LOBBY)
    await client.pub(LOBBY, "chat.send", {"text": "not for me any more"})
    tick = await client.pub(prices, "ticker.bump", {"symbol": "ACME", "price": 1.0})
    # events arrive in order: had the chat message been delivered, it would come first
    event = await next_any_event(client)
    assert (event["ch"], event["data"]) == (prices, tick)


async def test_one_plugins_errors_stay_in_their_requests(hub_server, hub_client):
    server = hub_server(plugins=PLUGINS)
    prices = "ticker:prices-errors"
    client = await hub_client(server, user="both")
    observer = await hub_client(server, user="observer")
    await observer.sub(LOBBY)
    await observer.sub(prices)

    with pytest.raises(ReplyError) as crashed:
        await client.pub(prices, "ticker.crash", {})
    assert crashed.value.code == "internal"
    assert "deliberate" not in crashed.value.msg  # the bug's details stay in the server log
    with pytest.raises(ReplyError) as invalid:
        await client.pub(prices, "ticker.bump", {"symbol": "ACME", "price": "cheap"})
    assert invalid.value.code == "invalid"
    assert [d["loc"] for d in invalid.value.details] == [["price"]]
    with pytest.raises(ReplyError) as wrong_type:
        await client.pub(prices, "chat.send", {"text": "chat type on a ticker channel"})
    assert wrong_type.value.code == "unknown_type"

    posted = await client.pub(LOBBY, "chat.send", {"text": "chat is fine"})
    tick = await client.pub(prices, "ticker.bump", {"symbol": "ACME", "price": 2.0})
    assert (await next_any_event(observer))["data"] == posted
    assert (await next_any_event(observer))["data"] == tick


async def test_info_lists_both_plugins_and_shutdown_stops_the_feed(hub_server, hub_client):
    server = hub_server(plugins=PLUGINS)
    hub = server.app.state.hub
    async with httpx.AsyncClient(base_url=server.url) as http:
        info = (await http.get("/api/info")).json()
    assert info["plugins"] == ["chat", "ticker"]
    assert info["channels"]["ticker"] == {
        "plugin": "ticker",
        "messages": ["ticker.bump", "ticker.burst", "ticker.crash"],
        "events": ["ticker.tick"],
        "recoverable": False,
        "presence": False,
        "conflate": False,
    }
    assert info["channels"]["chat"]["plugin"] == "chat"
    assert "chat.send" in info["channels"]["chat"]["messages"]
    ticker = hub.plugins.objects["ticker"]
    assert ticker.feed is not None
    assert not ticker.feed.done()
    server.stop()
    assert ticker.feed.cancelled()  # hub_shutdown stopped the background task


async def test_a_failed_publish_does_not_use_up_its_mid(hub_server, hub_client):
    server = hub_server(plugins=PLUGINS)
    client = await hub_client(server, user="alice")
    for _attempt in range(2):  # the retry runs the handler again instead of answering "duplicate"
        with pytest.raises(ReplyError) as crashed:
            await client.pub("ticker:prices", "ticker.crash", {}, mid="retry-me")
        assert crashed.value.code == "internal"


async def test_hello_names_plugins_and_namespaces(hub_server, hub_client):
    server = hub_server(plugins=PLUGINS)
    client = await hub_client(server, user="alice")
    assert client.hello["plugins"] == ["chat", "ticker"]
    assert client.hello["namespaces"] == ["admin", "chat", "ticker"]  # the core's admin:* (HUB_ADMIN) too
