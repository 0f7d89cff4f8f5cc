"""hub.js's presence metadata and names in a real Chromium (protocol.md §9, "Metadata" and "Names"): ``subscribe``
with ``meta``, ``setPresence``, the members ``onPresence`` lists with their ``display`` and ``meta`` (a second
Alice shown as "Alice (2)"), ``updated`` changes from another client, ``presenceCount``, a refused change, and a
resubscribe after a reconnect that carries the latest metadata; and the panels: chat's and docedit's people show
the room's display names, and chat greys those who are away (its presence metadata)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import expect

import hub_realtime_plugins.chat
from hub.testing import HubServer, HubServerFactory
from hub_realtime_plugins.docedit import Docedit
from tests.browser.conftest import PageFactory, screenshot, sdk_page, wait_js
from tests.browser.test_docedit_panel import Person
from tests.test_presence_meta import ClientFactory, Rooms

pytestmark = pytest.mark.asyncio(loop_scope="session")

# onPresence of room:doc as plain data: window.presenceLog[i] = {type, members: {user: [display, meta]}, member}
FOLLOW = """
(meta) => {
  window.presenceLog = [];
  window.hub.subscribe("room:doc", {
    meta,
    onPresence: (members, change) => window.presenceLog.push({
      type: change.type,
      members: Object.fromEntries(members.map((m) => [m.user, [m.display, m.meta]])),
      member: change.member ? change.member.display : null,
    }),
  });
}
"""
LAST = "(type) => { const last = window.presenceLog.at(-1); return last && last.type === type && last; }"


@pytest.fixture
def rooms_server(hub_server: HubServerFactory) -> HubServer:
    return hub_server(plugins={"rooms": Rooms()})


def status(status: str, device: str = "web", typing_in: str | None = None) -> dict[str, Any]:
    return {"status": status, "device": device, "typing_in": typing_in}


async def test_metadata_and_a_suffixed_name_in_hub_js(
    rooms_server: HubServer, new_page: PageFactory, py_client: ClientFactory
) -> None:
    server = rooms_server
    page = await sdk_page(new_page, server.url, token=server.token("alice-1", name="Alice"))
    await wait_js(page, "() => window.hub.state === 'open'")
    await page.evaluate(FOLLOW, {"status": "busy"})
    synced = await wait_js(page, LAST, "sync")
    assert synced["members"] == {"alice-1": ["Alice", status("busy")]}

    # another Alice joins, with metadata of her own: shown as "Alice (2)"
    other = await py_client(server, user="alice-2", name="Alice")
    reply = await other.call({"op": "sub", "ch": "room:doc", "meta": {"device": "phone"}})
    assert {m["user"]: m.get("display", m["name"]) for m in reply["presence"]} == {
        "alice-2": "Alice (2)",
        "alice-1": "Alice",
    }
    joined = await wait_js(page, LAST, "joined")
    assert joined["member"] == "Alice (2)"
    assert joined["members"]["alice-2"] == ["Alice (2)", status("online", "phone")]

    # the page changes its own metadata: the other client sees it, and the page's list has it
    member = await page.evaluate("window.hub.setPresence('room:doc', {status: 'away', typing_in: 'intro'})")
    assert (member["display"], member["meta"]) == ("Alice", status("away", typing_in="intro"))  # filled in
    updated = await other.next_event("room:doc", "room.presence_updated")
    assert updated["data"] == {"client": member["client"], "user": "alice-1", "name": "Alice", "meta": member["meta"]}
    mine = await wait_js(page, LAST, "updated")
    assert mine["members"]["alice-1"] == ["Alice", status("away", typing_in="intro")]

    # the other one changes hers: onPresence says "updated", with her display
    await other.call({"op": "presence_set", "ch": "room:doc", "meta": {"status": "busy", "device": "phone"}})
    theirs = await wait_js(
        page, "() => { const last = window.presenceLog.at(-1); return last.member === 'Alice (2)' && last; }"
    )
    assert theirs["type"] == "updated"
    assert theirs["members"]["alice-2"] == ["Alice (2)", status("busy", "phone")]
    assert await page.evaluate("window.hub.presenceCount('room:doc')") == 2

    # refused metadata rejects with the hub's error; nothing changed
    refused = await page.evaluate("window.settle(window.hub.setPresence('room:doc', {status: 'asleep'}))")
    assert (refused["ok"], refused["code"]) == (False, "invalid")
    plain = await page.evaluate("window.settle(window.hub.setPresence('plain:x', {status: 'away'}))")
    assert (plain["ok"], plain["code"]) == (False, "not_subscribed")

    # metadata set while disconnected rides the resubscribe: the others see it in the join
    await page.evaluate("window.hub.close()")
    left = await other.next_event("room:doc", "room.left")
    assert (left["data"]["name"], "display" in left["data"], left["data"]["meta"]) == (
        "Alice",
        False,
        status("away", typing_in="intro"),
    )
    assert await page.evaluate("window.hub.setPresence('room:doc', {status: 'online', device: 'laptop'})") is None
    await page.evaluate("window.hub.connect()")
    rejoined = await other.next_event("room:doc", "room.joined")
    assert (rejoined["data"]["name"], "display" in rejoined["data"], rejoined["data"]["meta"]) == (
        "Alice",
        False,
        status("online", "laptop"),
    )
    resynced = await wait_js(page, LAST, "sync")
    assert resynced["members"]["alice-1"] == ["Alice", status("online", "laptop")]


async def test_the_chat_panel_shows_two_alices_apart(
    hub_server: HubServerFactory, new_page: PageFactory, py_client: ClientFactory
) -> None:
    server = hub_server(plugins={"chat": hub_realtime_plugins.chat.Chat})
    page = await new_page(f"{server.url}/#token={server.token('alice-1', name='Alice')}")
    await expect(page.locator("#panels")).to_have_attribute("data-status", "ready")
    names = page.locator(".chat-person-name")
    await expect(names).to_have_text(["Alice"])
    other = await py_client(server, user="alice-2", name="Alice")
    await other.sub("chat:lobby")
    await expect(names).to_have_text(["Alice", "Alice (2)"])
    await expect(page.locator(".chat-person.is-me .chat-person-name")).to_have_text("Alice")
    await screenshot(page, "chat-presence-two-alices")


HIDE_TAB = """
(hidden) => {
  const state = hidden ? "hidden" : "visible";
  Object.defineProperty(document, "visibilityState", { configurable: true, get: () => state });
  document.dispatchEvent(new Event("visibilitychange"));
}
"""


async def test_the_chat_panel_shows_who_is_away(
    hub_server: HubServerFactory, new_page: PageFactory, py_client: ClientFactory
) -> None:
    """The chat panel's presence metadata: ``{"away": true}`` while its tab is hidden, shown to the others."""
    server = hub_server(plugins={"chat": hub_realtime_plugins.chat.Chat})
    alice = await new_page(f"{server.url}/#token={server.token('alice', name='Alice')}")
    bob = await new_page(f"{server.url}/#token={server.token('bob', name='Bob')}")
    for page in (alice, bob):
        await expect(page.locator(".chat-person")).to_have_count(2)
    watcher = await py_client(server, user="carol", name="Carol")
    await watcher.sub("chat:lobby")
    bob_on_alices_page = alice.locator(".chat-person[data-user=bob]")
    await expect(bob_on_alices_page).not_to_have_class(re.compile("is-away"))

    await bob.evaluate(HIDE_TAB, True)
    await expect(bob_on_alices_page).to_have_class(re.compile("is-away"))
    await expect(bob_on_alices_page).to_have_attribute("title", "Bob is away")
    updated = await watcher.next_event("chat:lobby", "chat.presence_updated")
    assert (updated["data"]["user"], updated["data"]["meta"]) == ("bob", {"away": True})
    await screenshot(alice, "chat-presence-away")

    await bob.evaluate(HIDE_TAB, False)
    await expect(bob_on_alices_page).not_to_have_class(re.compile("is-away"))
    assert (await watcher.next_event("chat:lobby", "chat.presence_updated"))["data"]["meta"] == {"away": False}


async def test_the_docedit_panel_names_two_alices_apart(hub_server: HubServerFactory, new_page: PageFactory) -> None:
    server = hub_server(plugins={"docedit": Docedit})
    first = await Person.open(new_page, server, "alice-1", "Alice")
    second = await Person.open(new_page, server, "alice-2", "Alice")
    await first.page.locator(".docedit-new-title").fill("Plan")
    await first.page.locator(".docedit-new-title").press("Enter")
    await first.synced()
    await second.open_doc("Plan")
    for person in (first, second):
        await expect(person.page.locator(".docedit-peer")).to_have_count(2)
    peers = first.page.locator(".docedit-peer")
    await expect(first.page.locator(".docedit-peer.is-me")).to_have_attribute("title", "Alice (you)")
    await expect(first.page.locator(".docedit-peer[data-user=alice-2]")).to_have_attribute("title", "Alice (2)")
    await expect(second.page.locator(".docedit-peer.is-me")).to_have_attribute("title", "Alice (2) (you)")
    assert await peers.count() == 2
