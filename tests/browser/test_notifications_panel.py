"""The notifications panel in a real Chromium: the unread badge, live delivery from the HTTP API, read state
synced between two tabs of one user, "Mark all read", expiry, and the test-send form (with and without the
publish scope)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from hub_realtime_plugins.notifications import Notifications
from tests.browser.conftest import screenshot

pytestmark = pytest.mark.asyncio(loop_scope="session")

KEY = "browser-key-0123456789"


async def open_demo(new_page: Any, url: str) -> Page:
    page: Page = await new_page(url)
    await expect(page.locator("#panels")).to_have_attribute("data-status", "ready")
    await expect(page.locator(".panel[data-plugin=notifications]")).to_have_attribute("data-status", "mounted")
    return page


async def publish(url: str, payload: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url) as http:
        reply = await http.post("/api/notifications", json=payload, headers={"X-API-Key": KEY})
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def test_badge_live_delivery_and_read_sync_between_tabs(hub_server, new_page, monkeypatch):
    # The class itself (its panel is served from its package), configured as an operator would.
    monkeypatch.setenv("HUB_NOTIFICATIONS_PURGE_INTERVAL", "0.2")
    server = hub_server(plugins={"notifications": Notifications}, api_keys=[KEY])
    waiting = await publish(server.url, {"users": ["alice"], "title": "Waiting for you", "level": "warning"})
    token = server.token("alice", name="Alice")
    tab1 = await open_demo(new_page, f"{server.url}/#token={token}")
    tab2 = await open_demo(new_page, f"{server.url}/#token={token}")

    # the offline one is there, unread, with the badge
    for tab in (tab1, tab2):
        await expect(tab.locator(".ntf-badge")).to_have_text("1")
        await expect(tab.locator(".ntf-live")).to_have_text("1 unread notification")
        item = tab.locator(f".ntf-item[data-id='{waiting['id']}']")
        await expect(item).to_have_class("ntf-item unread")
        await expect(item).to_have_attribute("data-level", "warning")
        await expect(item.locator(".ntf-time")).to_have_text("just now")

    # sent through HTTP: appears live on both tabs, newest first
    deploy = {"title": "Deploy finished", "body": "v1.2 is live", "url": "/x", "level": "success"}
    live = await publish(server.url, {"users": ["alice"], **deploy})
    for tab in (tab1, tab2):
        await expect(tab.locator(".ntf-item .ntf-title")).to_have_text(["Deploy finished", "Waiting for you"])
        await expect(tab.locator(".ntf-badge")).to_have_text("2")
    await expect(tab1.locator(f".ntf-item[data-id='{live['id']}'] .ntf-body")).to_have_text("v1.2 is live")
    await screenshot(tab1, "notifications-two-unread")

    # a click on tab 1 marks it read; tab 2 follows
    await tab1.locator(f".ntf-item[data-id='{live['id']}']").click()
    for tab in (tab1, tab2):
        await expect(tab.locator(".ntf-badge")).to_have_text("1")
        await expect(tab.locator(f".ntf-item[data-id='{live['id']}']")).to_have_class("ntf-item")

    # Enter on tab 2 (keyboard) marks the other one; the badge goes away on both
    await tab2.locator(f".ntf-item[data-id='{waiting['id']}']").focus()
    await tab2.keyboard.press("Enter")
    for tab in (tab1, tab2):
        await expect(tab.locator(".ntf-badge")).to_be_hidden()
        await expect(tab.locator(".ntf-live")).to_have_text("0 unread notifications")
        await expect(tab.locator(".ntf-mark-all")).to_be_disabled()

    # everyone: via @all; then "Mark all read" on tab 2 clears tab 1 too
    await publish(server.url, {"everyone": True, "title": "Maintenance at noon"})
    await publish(server.url, {"users": ["alice"], "title": "One more", "level": "error"})
    await expect(tab1.locator(".ntf-badge")).to_have_text("2")
    await expect(tab1.locator(".ntf-item[data-to=everyone] .ntf-everyone")).to_have_text("everyone")
    await tab2.locator(".ntf-mark-all").click()
    for tab in (tab1, tab2):
        await expect(tab.locator(".ntf-badge")).to_be_hidden()
        await expect(tab.locator(".ntf-item.unread")).to_have_count(0)

    # expiry: an item with a short ttl disappears by itself, and leaves the count
    await publish(server.url, {"users": ["alice"], "title": "Short-lived", "ttl": 3})
    await expect(tab1.locator(".ntf-item .ntf-title").first).to_have_text("Short-lived")
    await expect(tab1.locator(".ntf-badge")).to_have_text("1")
    await expect(tab1.locator(".ntf-item .ntf-title", has_text="Short-lived")).to_have_count(0)
    await expect(tab1.locator(".ntf-badge")).to_be_hidden()
    await expect(tab1.locator(".ntf-item")).to_have_count(4)


async def test_the_test_send_form(hub_server, new_page):
    server = hub_server(plugins={"notifications": Notifications}, api_keys=[KEY])
    alice = await open_demo(new_page, f"{server.url}/#token={server.token('alice', name='Alice')}")
    ops_token = server.token("ops", name="Ops", scopes=("publish",))
    ops = await open_demo(new_page, f"{server.url}/#token={ops_token}")

    # to oneself (the default)
    await alice.get_by_label("Title").fill("Note to self")
    await alice.get_by_label("Body").fill("remember the milk")
    await alice.get_by_label("Level").select_option("success")
    await alice.get_by_role("button", name="Send test notification").click()
    await expect(alice.locator(".ntf-form-status")).to_have_text("Sent to alice.")
    item = alice.locator(".ntf-item").first
    await expect(item.locator(".ntf-title")).to_have_text("Note to self")
    await expect(item).to_have_attribute("data-level", "success")
    await expect(alice.locator(".ntf-badge")).to_have_text("1")
    await expect(alice.get_by_label("Title")).to_have_value("")

    # to another user without the publish scope: refused, and said so
    await alice.get_by_label("Title").fill("Hi Ops")
    await alice.get_by_label("User ids, separated by commas").fill("ops")
    await alice.get_by_role("button", name="Send test notification").click()
    await expect(alice.locator(".ntf-error")).to_contain_text("needs the 'publish' scope")
    await expect(ops.locator(".ntf-item")).to_have_count(0)

    # with the scope: to alice, and to everyone
    await ops.get_by_label("Title").fill("Hello Alice")
    await ops.get_by_label("User ids, separated by commas").fill("alice")
    await ops.get_by_role("button", name="Send test notification").click()
    await expect(ops.locator(".ntf-form-status")).to_have_text("Sent to alice.")
    await expect(alice.locator(".ntf-item .ntf-title").first).to_have_text("Hello Alice")
    await expect(alice.locator(".ntf-badge")).to_have_text("2")
    await ops.get_by_label("Title").fill("Hello everyone")
    await ops.get_by_label("everyone").check()
    await ops.get_by_role("button", name="Send test notification").click()
    await expect(ops.locator(".ntf-form-status")).to_have_text("Sent to everyone.")
    for page in (alice, ops):
        await expect(page.locator(".ntf-item .ntf-title").first).to_have_text("Hello everyone")
    await expect(alice.locator(".ntf-badge")).to_have_text("3")

    # a guest sends to itself; the audience choice is not offered to guests
    guest = await open_demo(new_page, server.url)
    await expect(guest.locator(".ntf-audience")).to_be_hidden()
    await expect(guest.locator(".ntf-item .ntf-title")).to_have_text(["Hello everyone"])
    await guest.get_by_label("Title").fill("Guest note")
    await guest.get_by_role("button", name="Send test notification").click()
    await expect(guest.locator(".ntf-item .ntf-title").first).to_have_text("Guest note")
    await expect(guest.locator(".ntf-badge")).to_have_text("2")
    await screenshot(alice, "notifications-form")
