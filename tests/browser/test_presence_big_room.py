"""A room bigger than the hub lists (HUB_PRESENCE_LIST_LIMIT=3) in a real Chromium: the chat panel shows the
count and "and N others"; hub.js keeps count and members from the reply, joined/left and the coalesced
``chat.presence`` counts, and fetches the whole list when the room is small again (protocol.md §9)."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import expect

import hub_realtime_plugins.chat
from tests.browser.conftest import screenshot, sdk_page, wait_js

pytestmark = pytest.mark.asyncio(loop_scope="session")

BIG_ROOM = {"presence_list_limit": 3, "presence_count_interval": 0.05}

# onPresence of one subscription, recorded as plain data: window.presenceLog[i] = {clients, type, count, partial}
RECORD_PRESENCE = """
(channel) => {
  window.presenceLog = [];
  window.hub.subscribe(channel, {
    onPresence: (members, change) => window.presenceLog.push({
      clients: members.map((m) => m.client).sort(), type: change.type, count: change.count, partial: change.partial,
    }),
  });
}
"""
LAST_PRESENCE = "(want) => { const last = window.presenceLog.at(-1); return last && last.count === want && last; }"
LAST_SYNC = "() => { const last = window.presenceLog.at(-1); return last.type === 'sync' && last; }"


@pytest.fixture
def big_room_server(hub_server):
    return hub_server(plugins={"chat": hub_realtime_plugins.chat.Chat}, **BIG_ROOM)


async def test_the_chat_panel_shows_a_big_rooms_count_and_its_list_again_when_it_shrinks(
    big_room_server, new_page, py_client
):
    server = big_room_server
    page = await new_page(f"{server.url}/#token={server.token('alice', name='Alice')}")
    await expect(page.locator("#panels")).to_have_attribute("data-status", "ready")
    count = page.locator(".chat-people-count")
    await expect(count).to_have_text("1 here")
    assert await page.evaluate("window.hubShell.hub.hello.limits.presence_list") == 3

    # six others join the lobby: the first two are announced one by one, the rest only as counts
    others = []
    for n in range(6):
        client = await py_client(server, user=f"user{n}", name=f"User {n}")
        await client.sub("chat:lobby")
        others.append(client)
    await expect(count).to_have_text("7 here")
    await expect(page.locator(".chat-person-name")).to_have_text(["Alice", "User 0", "User 1"])
    await expect(page.locator(".chat-people-more")).to_have_text("and 4 others")
    await screenshot(page, "chat-presence-big-room")

    # the SDK pages through everyone with presencePage (limit 2, following cursors)
    walked = await page.evaluate(
        """async () => {
          const hub = window.hubShell.hub;
          const clients = new Set();
          let cursor = null, pages = 0, count = 0;
          do {
            const page = await hub.presencePage("chat:lobby", { cursor, limit: 2 });
            page.presence.forEach((m) => clients.add(m.client));
            ({ cursor, count } = page);
            pages += 1;
          } while (cursor !== null && pages < 50);
          return { clients: [...clients].sort(), pages, count };
        }"""
    )
    me = await page.evaluate("window.hubShell.hub.hello.client")
    assert walked["clients"] == sorted([me, *(client.hello["client"] for client in others)])
    assert (walked["count"], walked["pages"]) == (7, 4)
    assert len(await page.evaluate("window.hubShell.hub.presence('chat:lobby')")) == 3  # the first page

    # the listed ones and two more leave: back to 3, and the panel lists the whole room, fetched by the SDK
    for client in others[:4]:
        await client.close()
    await expect(count).to_have_text("3 here")
    await expect(page.locator(".chat-person-name")).to_have_text(["Alice", "User 4", "User 5"])
    await expect(page.locator(".chat-people-more")).to_have_count(0)
    await screenshot(page, "chat-presence-room-small-again")

    # small again: a leave is announced one by one
    await others[4].close()
    await expect(count).to_have_text("2 here")
    await expect(page.locator(".chat-person-name")).to_have_text(["Alice", "User 5"])


async def test_hub_js_keeps_the_count_and_fetches_the_list_when_the_room_is_small_again(
    big_room_server, new_page, py_client
):
    server = big_room_server
    page = await sdk_page(new_page, server.url)
    await wait_js(page, "() => window.hub.state === 'open'")
    await page.evaluate(RECORD_PRESENCE, "chat:big")
    me = await page.evaluate("window.hub.hello.client")
    sync = await wait_js(page, LAST_PRESENCE, 1)
    assert (sync["type"], sync["clients"], sync["partial"]) == ("sync", [me], False)

    others = [await py_client(server, user=f"user{n}") for n in range(6)]
    for client in others[:2]:
        await client.sub("chat:big")
    await asyncio.gather(*(client.sub("chat:big") for client in others[2:]))  # four at once: coalesced
    big = await wait_js(page, LAST_PRESENCE, 7)
    listed = sorted([me, others[0].hello["client"], others[1].hello["client"]])
    assert (big["type"], big["clients"], big["partial"]) == ("count", listed, True)
    log = await page.evaluate("window.presenceLog")
    assert [entry["type"] for entry in log[:3]] == ["sync", "joined", "joined"]
    assert len(log) < 3 + 4, "the 4th to 7th joins come as fewer, coalesced counts"

    # down to 3: a count, then the whole list fetched with the presence op
    for client in others[:4]:
        await client.close()
    whole = await wait_js(page, LAST_SYNC)
    assert whole == {
        "clients": sorted([me, others[4].hello["client"], others[5].hello["client"]]),
        "type": "sync",
        "count": 3,
        "partial": False,
    }

    # one more join makes it big again: counted, not listed
    newcomer = await py_client(server, user="newcomer")
    await newcomer.sub("chat:big")
    again = await wait_js(page, LAST_PRESENCE, 4)
    assert (again["type"], again["clients"], again["partial"]) == ("count", whole["clients"], True)
