"""The demo app in a real Chromium: the shell mounts the panels of enabled plugins only, and two people
chat through the chat panel (messages, edit/delete, typing, presence, rooms, a hub restart)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

import hub_realtime_plugins.chat
from hub import Plugin
from tests.browser.conftest import screenshot
from tests.e2e.feed_plugin import make_feed_plugin

pytestmark = pytest.mark.asyncio(loop_scope="session")

NOTE_PANEL = """
export default function mount(root, hub, ctx) {
  root.innerHTML = `<p class="note">note panel for ${ctx.me.name}, plugins: ${ctx.info.plugins.join(",")}</p>`;
  window.noteMounted = (window.noteMounted || 0) + 1;
  return () => { window.noteCleanedUp = true; };
}
"""
BROKEN_PANEL = "export default function mount() { throw new Error('this panel is broken'); }"


def panel_plugin(directory: Path, name: str, panel_js: str) -> type[Plugin]:
    """A plugin class with no channels that declares its static folder, whose panel.js is ``panel_js``."""
    static = directory / name / "static"
    static.mkdir(parents=True)
    (static / "panel.js").write_text(panel_js)
    return type(f"{name.title()}Panel", (Plugin,), {"static": str(static)})


async def open_demo(new_page, url: str) -> Page:
    page = await new_page(url)
    await expect(page.locator("#panels")).to_have_attribute("data-status", "ready")
    return page


async def test_the_shell_mounts_the_panels_of_enabled_plugins_only(hub_server, new_page, tmp_path):
    note = panel_plugin(tmp_path, "note", NOTE_PANEL)
    broken = panel_plugin(tmp_path, "broken", BROKEN_PANEL)
    server = hub_server(plugins={"note": note, "broken": broken, "feed": make_feed_plugin()})
    requested: list[str] = []
    page = await new_page()
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(server.url)
    await expect(page.locator("#panels")).to_have_attribute("data-status", "ready")

    # note and broken ship a panel; feed has no static/ dir; chat is installed but not enabled here
    assert await page.locator(".panel").evaluate_all("els => els.map(e => e.dataset.plugin)") == ["note", "broken"]
    assert not any("/plugins/chat/" in url for url in requested)
    me = await page.evaluate("window.hubShell.hub.me.name")
    await expect(page.locator(".panel[data-plugin=note] .note")).to_have_text(
        f"note panel for {me}, plugins: note,broken,feed"
    )
    await expect(page.locator(".panel[data-plugin=note]")).to_have_attribute("data-status", "mounted")
    # a panel that throws is contained: an error in its frame, the others work
    await expect(page.locator(".panel[data-plugin=broken]")).to_have_attribute("data-status", "error")
    await expect(page.locator(".panel[data-plugin=broken] .panel-error")).to_contain_text("this panel is broken")
    assert (await page.request.get(f"{server.url}/plugins/chat/panel.js")).status == 404

    # the header: state, latency, identity
    await expect(page.locator("#hub-state")).to_have_attribute("data-state", "open")
    await expect(page.locator("#hub-rtt")).to_have_text(re.compile(r"^[\d.]+ ms$"))
    await expect(page.locator("#hub-me")).to_contain_text(me)
    await expect(page.locator("#hub-me .badge")).to_have_text("guest")
    assert await page.evaluate("window.noteMounted") == 1
    # all panels over ONE socket
    info = await (await page.request.get(f"{server.url}/api/info")).json()
    assert info["connections"] == 1
    assert info["panels"] == {"note": "/plugins/note/panel.js", "broken": "/plugins/broken/panel.js"}
    await screenshot(page, "shell-enabled-panels-only")


async def test_two_people_chat_through_the_chat_panel(hub_server, new_page):
    server = hub_server(plugins={"chat": hub_realtime_plugins.chat.Chat})
    alice = await open_demo(new_page, f"{server.url}/#token={server.token('alice', name='Alice')}")
    bob = await open_demo(new_page, f"{server.url}/#token={server.token('bob', name='Bob')}")
    assert await alice.locator(".panel").evaluate_all("els => els.map(e => e.dataset.plugin)") == ["chat"]

    # who is here: both, each marked "(you)" on their own page
    for page, me in ((alice, "alice"), (bob, "bob")):
        people = page.locator(".chat-person")
        await expect(people).to_have_count(2)
        await expect(people.locator(".chat-person-name")).to_have_text(["Alice", "Bob"])
        await expect(page.locator(f".chat-person.is-me[data-user={me}] .chat-you")).to_have_text("(you)")

    # Alice writes; Bob sees it with her name and the time
    await alice.locator(".chat-input").fill("Hello Bob!")
    await alice.locator(".chat-input").press("Enter")
    message = bob.locator(".chat-message").first
    await expect(message.locator(".chat-text")).to_have_text("Hello Bob!")
    await expect(message.locator(".chat-author")).to_have_text("Alice")
    await expect(message.locator(".chat-time")).to_have_text(re.compile(r"\d{1,2}:\d{2}"))
    await expect(message.locator(".chat-actions")).to_have_count(0)  # not Bob's to edit

    # Bob types: Alice sees "Bob is typing…" until his message arrives
    await bob.locator(".chat-input").press_sequentially("Hi Al")
    await expect(alice.locator(".chat-typing")).to_have_text("Bob is typing…")
    await expect(bob.locator(".chat-typing")).to_have_text("")  # not shown to oneself
    await screenshot(alice, "chat-alice-sees-bob-typing")
    await bob.locator(".chat-input").press_sequentially("ice, how are you?")
    await bob.locator(".chat-input").press("Enter")
    await expect(alice.locator(".chat-message .chat-text")).to_have_text(["Hello Bob!", "Hi Alice, how are you?"])
    await expect(alice.locator(".chat-typing")).to_have_text("")

    # Alice edits her message; Bob sees the new text and the mark
    own = alice.locator(".chat-message.mine").first
    await own.hover()
    await own.locator(".chat-edit").click()
    await own.locator(".chat-edit-input").fill("Hello Bob, welcome!")
    await own.locator(".chat-edit-input").press("Enter")
    edited = bob.locator(".chat-message").first
    await expect(edited.locator(".chat-text")).to_have_text("Hello Bob, welcome!")
    await expect(edited.locator(".chat-edited")).to_have_text("(edited)")
    await screenshot(bob, "chat-bob-conversation")

    # Bob deletes his own message; it goes away on both pages
    bobs = bob.locator(".chat-message.mine")
    await bobs.hover()
    await bobs.locator(".chat-delete").click()
    for page in (alice, bob):
        await expect(page.locator(".chat-message .chat-text")).to_have_text(["Hello Bob, welcome!"])

    # rooms: Alice joins #design; she leaves the lobby's presence, and Bob's lobby stays quiet
    await alice.locator(".chat-join-input").fill("design")
    await alice.locator(".chat-join-input").press("Enter")
    await expect(alice.locator(".chat-room.active")).to_have_text("# design")
    await expect(alice.locator(".chat-person-name")).to_have_text(["Alice"])
    await expect(bob.locator(".chat-person-name")).to_have_text(["Bob"])
    await alice.locator(".chat-input").fill("Design review at 3")
    await alice.locator(".chat-input").press("Enter")
    await expect(alice.locator(".chat-message .chat-text")).to_have_text(["Design review at 3"])

    # Bob joins the same room by name and gets its history from the snapshot
    await bob.locator(".chat-join-input").fill("#design")
    await bob.locator(".chat-join-input").press("Enter")
    await expect(bob.locator(".chat-message .chat-text")).to_have_text(["Design review at 3"])
    await expect(bob.locator(".chat-person-name")).to_have_text(["Alice", "Bob"])
    # and back to the lobby with a click on its tab
    await bob.locator(".chat-room[data-room=lobby]").click()
    await expect(bob.locator(".chat-message .chat-text")).to_have_text(["Hello Bob, welcome!"])

    # a room name the hub would refuse is explained before anything is sent
    await alice.locator(".chat-join-input").fill("bad room!")
    await alice.locator(".chat-join-input").press("Enter")
    await expect(alice.locator(".chat-error")).to_contain_text("Room names use letters")
    await screenshot(alice, "chat-alice-rooms")


async def test_both_pages_reconnect_after_a_hub_restart_and_carry_on(hub_server, new_page):
    server = hub_server(plugins={"chat": hub_realtime_plugins.chat.Chat})
    alice = await open_demo(new_page, f"{server.url}/#token={server.token('alice', name='Alice')}")
    bob = await open_demo(new_page, f"{server.url}/#token={server.token('bob', name='Bob')}")
    await alice.locator(".chat-input").fill("before the restart")
    await alice.locator(".chat-input").press("Enter")
    await expect(bob.locator(".chat-message .chat-text")).to_have_text(["before the restart"])

    server.restart()

    for page in (alice, bob):
        await expect(page.locator("#hub-state")).to_have_attribute("data-state", "open")
        # a new stream after the restart (memory broker): the panel reloads from the snapshot
        await expect(page.locator(".chat-notice")).to_have_text("Reconnected: messages reloaded.")
        await expect(page.locator(".chat-message .chat-text")).to_have_text(["before the restart"])
        await expect(page.locator(".chat-person-name")).to_have_text(["Alice", "Bob"])

    await bob.locator(".chat-input").fill("after the restart")
    await bob.locator(".chat-input").press("Enter")
    await expect(alice.locator(".chat-message .chat-text")).to_have_text(["before the restart", "after the restart"])
    # Alice still owns her message after reconnecting with the same token
    await expect(alice.locator(".chat-message.mine .chat-text")).to_have_text(["before the restart"])
    await screenshot(alice, "chat-after-restart")
