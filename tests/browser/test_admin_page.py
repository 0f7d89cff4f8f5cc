"""The admin page at /admin in a real Chromium against a real hub: it refuses a missing or wrong credential,
signs in with an admin token or an API key (kept in session storage, never in the URL), shows connections and
channels, draws the traffic chart as messages flow, kicks a client (its socket closes with the code), publishes
a test message another socket receives, and shows a channel's presence and events, live while watched."""

from __future__ import annotations

import os

import pytest
from playwright.async_api import Page, expect

import hub_realtime_plugins.chat
from hub.testing import HubServer
from tests.browser.conftest import screenshot, wait_js

pytestmark = pytest.mark.asyncio(loop_scope="session")

API_KEY = "admin-page-test-key-0123456789abcdef"


@pytest.fixture
def server(hub_server) -> HubServer:
    return hub_server(plugins={"chat": hub_realtime_plugins.chat.Chat}, admin_interval=0.1, api_keys=[API_KEY])


def admin_token(server: HubServer) -> str:
    return server.token("root", name="Root", scopes=("admin",))


async def sign_in(page: Page, credential: str) -> None:
    await page.fill("#credential", credential)
    await page.click("#login-submit")


async def signed_in(new_page, server: HubServer, credential: str) -> Page:
    page = await new_page(f"{server.url}/admin")
    await sign_in(page, credential)
    await expect(page.locator("#admin-view")).to_be_visible()
    await wait_js(page, "() => window.hubAdmin.hub?.state === 'open'")
    return page


async def test_a_missing_or_wrong_credential_is_refused(server, new_page, py_client):
    alice = await py_client(server, user="alice")
    await alice.sub("chat:lobby")
    page = await new_page(f"{server.url}/admin")
    await expect(page.locator("#login-view")).to_be_visible()
    await expect(page.locator("#admin-view")).to_be_hidden()
    error = page.locator("#login-error")

    await page.click("#login-submit")
    await expect(error).to_have_text("Paste an admin token or an API key first.")
    await sign_in(page, "not-a-key")
    await expect(error).to_have_text("Unknown API key.")
    await sign_in(page, "a.b.c")
    await expect(error).to_contain_text("Invalid token")
    await sign_in(page, server.token("alice"))  # a valid token, without the admin scope
    await expect(error).to_have_text("The token of alice lacks the 'admin' scope.")
    await screenshot(page, "admin-refused")

    assert await page.evaluate("window.hubAdmin.hub") is None  # no socket was opened
    assert await page.evaluate("sessionStorage.length") == 0
    assert page.url == f"{server.url}/admin"
    await expect(page.locator("#admin-view")).to_be_hidden()
    await alice.no_event(wait=0.2)  # nothing of the admin reached anyone


async def test_the_page_shows_connections_channels_and_a_live_chart(server, new_page, py_client):
    alice = await py_client(server, user="alice", name="Alice")
    bob = await py_client(server, user="bob", name="Bob")
    await alice.sub("chat:lobby")
    await bob.sub("chat:lobby")
    await bob.sub("chat:random")
    token = admin_token(server)
    page = await signed_in(new_page, server, token)
    assert page.url == f"{server.url}/admin"  # the token is in no URL, only in this tab's session storage
    assert await page.evaluate("sessionStorage.getItem('hub.admin.credential')") == token
    await expect(page.locator("#admin-me")).to_have_text("Root")

    await expect(page.locator("#total-connections")).to_have_text("3")
    await expect(page.locator("#total-nodes")).to_have_text("1")
    lobby = page.locator('#channels-table tr[data-channel="chat:lobby"]')
    await expect(lobby.locator("td").nth(1)).to_have_text("2")
    await expect(page.locator('#channels-table tr[data-channel="chat:random"] td').nth(1)).to_have_text("1")
    alice_row = page.locator(f'#clients-table tr[data-client="{alice.hello["client"]}"]')
    await expect(alice_row.locator("td").nth(0)).to_have_text("alice")
    await expect(alice_row.locator("td").nth(4)).to_have_text("chat:lobby")
    node = server.app.state.hub.node_id
    node_row = page.locator(f'#nodes-table tr[data-node="{node}"] td')
    await expect(node_row.nth(1)).to_have_text("3")
    await expect(node_row.nth(0)).to_contain_text(f":{os.getpid()}")  # the hub runs in this process here

    # the chart: no chat traffic yet, then chat.send and chat.posted lines once alice posts
    assert await page.evaluate("window.hubAdmin.charts.in.samples.every(s => !s.has('chat.send'))")
    for n in range(5):  # within chat.send's own rate limit
        await alice.pub("chat:lobby", "chat.send", {"text": f"m{n}"})
    await wait_js(page, "() => window.hubAdmin.charts.in.samples.some(s => s.get('chat.send') > 0)")
    await wait_js(page, "() => window.hubAdmin.charts.out.samples.some(s => s.get('chat.posted') > 0)")
    await expect(page.locator('#legend-in li[data-series="chat.send"]')).to_be_visible()
    await expect(page.locator('#legend-out li[data-series="chat.posted"]')).to_be_visible()
    painted = await page.evaluate(
        """() => {
          const canvas = document.getElementById('chart-in');
          const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
          let coloured = 0;  // the palette's first colour, #3b5bdb: the chat.send line
          for (let i = 0; i < pixels.length; i += 4) {
            if (pixels[i] === 0x3b && pixels[i + 1] === 0x5b && pixels[i + 2] === 0xdb) coloured++;
          }
          return coloured;
        }"""
    )
    assert painted > 20
    # per plugin instead of per type
    await page.select_option("#chart-group", "plugin")
    await bob.pub("chat:lobby", "chat.send", {"text": "one more"})
    await wait_js(page, "() => window.hubAdmin.charts.in.samples.some(s => s.get('chat') > 0)")

    # an error a client got shows among the recent errors
    refused = await bob.request({"op": "pub", "ch": "chat:lobby", "type": "chat.send", "data": {"text": 5}})
    assert refused["code"] == "invalid"
    await expect(page.locator('#errors-table tr[data-code="invalid"] td').nth(2)).to_have_text("bob")
    await screenshot(page, "admin-overview")


async def test_kick_closes_the_clients_socket(server, new_page, py_client):
    bob = await py_client(server, user="bob", name="Bob")
    carol = await py_client(server, user="carol")
    page = await signed_in(new_page, server, admin_token(server))
    row = page.locator(f'#clients-table tr[data-client="{bob.hello["client"]}"]')
    await row.get_by_role("button", name="Kick").click()
    await expect(page.locator("#kick-dialog")).to_be_visible()
    await expect(page.locator("#kick-target")).to_contain_text(bob.hello["client"])
    await page.fill("#kick-code", "4321")
    await page.fill("#kick-reason", "Kicked from the admin page.")
    await screenshot(page, "admin-kick-dialog")
    await page.click("#kick-confirm")
    assert await bob.closed() == (4321, "Kicked from the admin page.")
    await expect(page.locator("#toast")).to_have_text(f"Closed {bob.hello['client']} with 4321.")
    await expect(row).to_have_count(0)  # the next stats no longer list it
    close = page.locator('#closes-table tr[data-code="4321"] td')
    await expect(close.nth(2)).to_have_text("bob")
    await expect(close.nth(4)).to_have_text("Kicked from the admin page.")
    assert (await carol.call({"op": "ping"})) is None  # nobody else was touched


async def test_publish_a_test_message_reaches_another_socket(server, new_page, py_client):
    alice = await py_client(server, user="alice")
    await alice.sub("chat:lobby")
    page = await signed_in(new_page, server, admin_token(server))
    await page.fill("#publish-channel", "chat:lobby")
    await page.locator("#publish-channel").dispatch_event("input")
    await page.select_option("#publish-type", "chat.send")
    await page.fill("#publish-data", '{"text": "maintenance at noon"}')
    await page.click("#publish-form button[type=submit]")
    event = await alice.next_event("chat:lobby", "chat.posted")
    assert event["data"]["text"] == "maintenance at noon"
    assert event["data"]["author"] == {"user": "root", "name": "Root"}
    await expect(page.locator("#publish-result")).to_contain_text("Published chat.send on chat:lobby")

    # the plugin's validation answers a bad message, and nothing is sent
    await page.fill("#publish-data", '{"text": 42}')
    await page.click("#publish-form button[type=submit]")
    await expect(page.locator("#publish-result")).to_contain_text("Refused (invalid)")
    await page.fill("#publish-data", "{not json")
    await page.click("#publish-form button[type=submit]")
    await expect(page.locator("#publish-result")).to_contain_text("The data is not JSON")
    await screenshot(page, "admin-publish")
    await alice.no_event("chat:lobby", "chat.posted", wait=0.2)


async def test_a_channels_presence_and_events_live_while_watched(server, new_page, py_client):
    alice = await py_client(server, user="alice", name="Alice")
    await alice.sub("chat:lobby")
    await alice.pub("chat:lobby", "chat.send", {"text": "earlier"})
    page = await signed_in(new_page, server, admin_token(server))
    await page.locator('#channels-table tr[data-channel="chat:lobby"]').get_by_role("button", name="Details").click()
    await expect(page.locator("#channel-title")).to_have_text("chat:lobby")
    await expect(page.locator("#channel-presence li")).to_have_text(["Alice alice"])
    await expect(page.locator("#channel-events li").first).to_contain_text("earlier")

    await page.click("#channel-watch")
    await expect(page.locator("#channel-card")).to_have_attribute("data-watching", "true")
    await expect(page.locator("#channel-presence li")).to_have_count(2)  # the watching admin is present too
    await alice.pub("chat:lobby", "chat.send", {"text": "while watched"})
    await expect(page.locator("#channel-events li.live").first).to_contain_text("while watched")
    await screenshot(page, "admin-channel")
    await page.click("#channel-watch")
    await expect(page.locator("#channel-card")).to_have_attribute("data-watching", "false")
    await alice.next_event("chat:lobby", "chat.left")  # the admin left the room


async def test_an_api_key_signs_in_survives_a_reload_and_signs_out(server, new_page):
    page = await signed_in(new_page, server, API_KEY)
    await expect(page.locator("#admin-me")).to_have_text("API key")
    await page.reload()  # the credential is in this tab's session storage: still signed in
    await expect(page.locator("#admin-view")).to_be_visible()
    await wait_js(page, "() => window.hubAdmin.hub?.state === 'open'")
    await page.click("#sign-out")
    await expect(page.locator("#login-view")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0
    assert await page.evaluate("window.hubAdmin.hub") is None


async def test_two_nodes_on_redis_show_up_and_a_kick_crosses_nodes(hub_server, redis_url, new_page, py_client):
    settings = {
        "redis_url": redis_url,
        "redis_prefix": f"t{os.urandom(5).hex()}",
        "probe_interval": 0.1,
        "probe_timeout": 0.6,
        "presence_ttl": 0.6,
        "admin_interval": 0.1,
    }
    chat = {"chat": hub_realtime_plugins.chat.Chat}
    node_a, node_b = hub_server(plugins=chat, **settings), hub_server(plugins=chat, **settings)
    bob = await py_client(node_b, user="bob", name="Bob")
    await bob.sub("chat:lobby")
    page = await signed_in(new_page, node_a, admin_token(node_a))
    await expect(page.locator("#total-nodes")).to_have_text("2")
    for node in (node_a, node_b):
        await expect(page.locator(f'#nodes-table tr[data-node="{node.app.state.hub.node_id}"]')).to_have_count(1)
    row = page.locator(f'#clients-table tr[data-client="{bob.hello["client"]}"]')
    await expect(row.locator("td").nth(3)).to_have_text(node_b.app.state.hub.node_id)
    await screenshot(page, "admin-two-nodes")
    await row.get_by_role("button", name="Kick").click()
    await page.click("#kick-confirm")
    assert await bob.closed() == (4011, "Disconnected by an operator.")
    await expect(row).to_have_count(0)
