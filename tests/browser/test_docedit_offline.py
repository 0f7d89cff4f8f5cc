"""docedit offline in a real Chromium (docs/docedit.md, "Offline"): the browser context goes offline
(``context.set_offline``: no network, the hub's socket drops), the user types, the tab is closed, a new tab of the
same browser (the same IndexedDB) shows the edits while still offline, and once online they reach the hub and merge
with what others wrote meanwhile. A document deleted while offline is not brought back, a reader's offline
edits are never sent, two tabs share one copy, and the copies stay bounded.

The demo shell mounts its panels only once the hub has said hello, so the tab opened while offline mounts the
docedit panel itself on a page of the hub's origin (``open_panel_offline``): the same panel.js, provider.js and
offline.js, with a hub.js connection that cannot connect.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, expect

from hub.testing import HubServer
from hub_realtime_plugins.docedit import Docedit
from tests.browser.conftest import PageFactory, wait_js
from tests.browser.test_docedit_panel import Person
from tests.e2e.test_docedit_interop import PyDoc

pytestmark = pytest.mark.asyncio(loop_scope="session")

SAVED_OFFLINE = "Offline · edits are saved on this device"

# Mounts the docedit panel on a page of the hub's origin with its own Hub, as the shell would, but at once,
# before (or without) a connection. `load` fetches the modules while the network is up; `mount` runs offline.
PANEL_HARNESS = """
async () => {
  const { Hub } = await import("/hub.js");
  const { default: mount } = await import("/plugins/docedit/panel.js");
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = new URL("/plugins/docedit/docedit.css", location.href).href;
  document.head.append(link);
  window.mountPanel = (token) => {
    const hub = new Hub({ token });
    hub.connect();
    const root = document.createElement("div");
    document.body.replaceChildren(root);
    window.hubShell = { hub };
    mount(root, hub, { me: null, info: null, name: "docedit", baseUrl: "/plugins/docedit/" });
  };
}
"""


def unexpected(console_errors: list[str]) -> list[str]:
    """Console errors and warnings, less the network's own while the context is offline (a socket or a request
    the browser refused to send: ``net::ERR_INTERNET_DISCONNECTED``)."""
    return [text for text in console_errors if "ERR_INTERNET_DISCONNECTED" not in text]


async def create_document(person: Person, title: str) -> str:
    await person.page.locator(".docedit-new-title").fill(title)
    await person.page.locator(".docedit-new-title").press("Enter")
    await person.synced()
    return str(await person.page.evaluate("hubDocedit.id"))


async def type_at_end(person: Person, text: str) -> None:
    await person.editor.click()
    await person.page.keyboard.press("ControlOrMeta+End")
    await person.page.keyboard.type(text)


async def saved_locally(person: Person) -> None:
    """Until every change typed so far is written to IndexedDB (a user closing the tab a moment later keeps it)."""
    assert await person.page.evaluate("hubDocedit.provider.local.whenSaved()") is True


async def open_panel_offline(context: BrowserContext, server: HubServer, user: str, name: str) -> Person:
    """A new tab of ``context`` (offline) with the docedit panel mounted and no connection to the hub."""
    page = await context.new_page()
    person = Person(page, name)
    await context.set_offline(False)  # only to load the page and the modules; nothing connects meanwhile
    await page.goto(f"{server.url}/healthz")
    await page.evaluate(PANEL_HARNESS)
    await context.set_offline(True)
    assert await page.evaluate("navigator.onLine") is False
    await page.evaluate("(token) => window.mountPanel(token)", server.token(user, name=name))
    return person


async def local_databases(page: Page, doc_id: str) -> list[str]:
    names = await page.evaluate("async () => (await indexedDB.databases()).map((db) => db.name)")
    return [name for name in names if name.endswith(f"/{doc_id}")]


async def no_local_copy(page: Page, doc_id: str) -> None:
    """Until this browser holds no copy of the document (deleting a database takes a moment)."""
    gone = "async (id) => !(await indexedDB.databases()).some((db) => db.name.endsWith('/' + id))"
    await wait_js(page, gone, doc_id)


async def doc_ids(server: HubServer, py_client: Any, user: str) -> list[str]:
    client = await py_client(server, user=user)
    reply = await client.pub("docedit:@index", "docedit.list", {})
    return [doc["id"] for doc in reply["docs"]]


async def test_offline_edits_survive_a_closed_tab_and_merge_on_reconnect(
    hub_server: Any, new_page: PageFactory, py_client: Any
) -> None:
    server = hub_server(plugins={"docedit": Docedit})
    alice = await Person.open(new_page, server, "alice", "Alice")
    doc_id = await create_document(alice, "Trip plan")
    await type_at_end(alice, "Day 1: Lisbon.")
    bob = await PyDoc.open(await py_client(server, user="bob"), doc_id)
    await bob.wait_contains("Day 1: Lisbon.")

    # Alice's browser goes offline: the socket drops, the panel says her edits are kept on this device
    context = alice.page.context
    await context.set_offline(True)
    status = alice.page.locator(".docedit-status")
    await expect(status).to_have_attribute("data-status", "offline")
    await expect(status).to_have_text(SAVED_OFFLINE)
    await type_at_end(alice, " Day 2: Porto.")
    await saved_locally(alice)
    # Bob, online, writes at the start meanwhile; Alice closes her tab before she is back online
    assert await bob.insert(0, "Packing list. ") == {"applied": True}
    alice_errors = alice.console_errors
    await alice.page.close()

    # a new tab, still offline: the document and Alice's edits come from this browser's copy; she types on
    again = await open_panel_offline(context, server, "alice", "Alice")
    assert await again.wait_text("(t) => t === 'Day 1: Lisbon. Day 2: Porto.'")
    await expect(again.page.locator(".docedit-title")).to_have_text("Trip plan")
    await expect(again.page.locator(".docedit-status")).to_have_text(SAVED_OFFLINE)
    await expect(again.editor).to_have_attribute("contenteditable", "true")  # her role, remembered
    await type_at_end(again, " Day 3: Braga.")
    await saved_locally(again)
    assert "Packing list" not in await again.text()  # nothing from the hub yet

    # online: the offline edits reach the hub and merge with Bob's; every client converges
    await context.set_offline(False)
    expected = "Packing list. Day 1: Lisbon. Day 2: Porto. Day 3: Braga."
    await again.synced()
    assert await again.wait_text("(t, want) => t === want", expected) == expected
    await bob.wait_for(lambda: str(bob.text) == expected)
    fresh = await PyDoc.open(await py_client(server, user="carol"), doc_id)
    assert str(fresh.text) == expected
    # once the hub has everything, the copy has nothing pending
    await wait_js(again.page, "() => hubDocedit.provider.local.meta.pending === false")
    await fresh.close()
    await bob.close()
    assert unexpected(alice_errors) == []
    assert unexpected(again.console_errors) == []


async def test_two_tabs_share_the_offline_copy(hub_server: Any, new_page: PageFactory, py_client: Any) -> None:
    server = hub_server(plugins={"docedit": Docedit})
    first = await Person.open(new_page, server, "alice", "Alice")
    doc_id = await create_document(first, "Shared tabs")
    context = first.page.context
    second = Person(await context.new_page(), "Alice")
    await second.page.goto(f"{server.url}/#token={server.token('alice', name='Alice')}")
    await second.synced()
    assert await second.page.evaluate("hubDocedit.id") == doc_id

    await context.set_offline(True)
    await expect(second.page.locator(".docedit-status")).to_have_attribute("data-status", "offline")
    await type_at_end(first, "from the first tab.")
    # the other tab of the same document follows, offline (the tabs' BroadcastChannel)
    assert await second.wait_text("(t) => t === 'from the first tab.'")
    await type_at_end(second, " And the second.")
    assert await first.wait_text("(t) => t === 'from the first tab. And the second.'")
    await saved_locally(first)
    errors = first.console_errors
    await first.page.close()

    # the tab that stays sends what the closed one typed
    await context.set_offline(False)
    await second.synced()
    reader = await PyDoc.open(await py_client(server, user="alice"), doc_id)
    assert str(reader.text) == "from the first tab. And the second."
    await reader.close()
    assert unexpected(errors) == []
    assert unexpected(second.console_errors) == []


@pytest.mark.parametrize("auto_create", ["true", "false"])
async def test_a_document_deleted_while_offline_is_not_brought_back(
    hub_server: Any, new_page: PageFactory, py_client: Any, monkeypatch: pytest.MonkeyPatch, auto_create: str
) -> None:
    """With auto-create on, Bob's resubscribe re-creates the document (empty, his): his panel deletes it again.
    With it off, the resubscribe is refused. Either way his copy is deleted, never sent, and he is told."""
    monkeypatch.setenv("HUB_DOCEDIT_AUTO_CREATE", auto_create)
    server = hub_server(plugins={"docedit": Docedit})
    alice = await Person.open(new_page, server, "alice", "Alice")
    doc_id = await create_document(alice, "Scratch")
    await type_at_end(alice, "soon gone")
    bob = await Person.open(new_page, server, "bob", "Bob")
    await bob.open_doc("Scratch")
    assert await bob.wait_text("(t) => t === 'soon gone'")
    assert await local_databases(bob.page, doc_id)

    await bob.page.context.set_offline(True)
    await expect(bob.page.locator(".docedit-status")).to_have_text(SAVED_OFFLINE)
    await type_at_end(bob, " but Bob wrote on")
    await saved_locally(bob)
    await alice.page.locator(".docedit-delete").click()
    await alice.page.locator(".docedit-delete-confirm").click()
    await expect(alice.page.locator(".docedit-doc")).to_have_count(0)
    await no_local_copy(alice.page, doc_id)  # the owner's copy went with the document

    await bob.page.context.set_offline(False)
    notice = bob.page.locator(".docedit-notice")
    if auto_create == "true":
        await expect(notice).to_have_text(
            "“Scratch” was deleted while you were offline. The changes you made offline could not be saved."
        )
    else:
        await expect(notice).to_have_text(
            f"There is no document '{doc_id}' open to you. The changes you made offline could not be saved."
        )
    await expect(bob.page.locator(".docedit-editor")).to_be_hidden()
    await expect(bob.page.locator(".docedit-empty")).to_be_visible()
    await no_local_copy(bob.page, doc_id)
    # the document stays deleted: in nobody's list, and Bob's reload does not open (or re-create) it
    await expect(bob.page.locator(".docedit-doc")).to_have_count(0)
    assert await doc_ids(server, py_client, "alice") == []
    await bob.page.reload()
    await expect(bob.page.locator("#panels")).to_have_attribute("data-status", "ready")
    await expect(bob.page.locator(".docedit-no-docs")).to_be_visible()
    await expect(alice.page.locator(".docedit-doc")).to_have_count(0)
    assert await doc_ids(server, py_client, "bob") == []
    for person in (alice, bob):
        assert unexpected(person.console_errors) == [], f"{person.name}: {person.console_errors}"


async def test_a_reader_offline_edits_are_never_sent(hub_server: Any, new_page: PageFactory, py_client: Any) -> None:
    server = hub_server(plugins={"docedit": Docedit})
    alice = await Person.open(new_page, server, "alice", "Alice")
    doc_id = await create_document(alice, "Policy")
    await type_at_end(alice, "Approved text.")
    bob = await Person.open(new_page, server, "bob", "Bob")
    await bob.open_doc("Policy")
    await expect(bob.page.locator(".docedit-role")).to_have_text("Editor")
    watcher = await PyDoc.open(await py_client(server, user="alice"), doc_id)
    await watcher.wait_for(lambda: str(watcher.text) == "Approved text.")
    assert await bob.wait_text("(t) => t === 'Approved text.'")

    # Bob edits offline; meanwhile Alice makes him a reader
    await bob.page.context.set_offline(True)
    await expect(bob.page.locator(".docedit-status")).to_have_text(SAVED_OFFLINE)
    await type_at_end(bob, " Bob's offline rewrite.")
    await saved_locally(bob)
    await alice.page.locator(".docedit-share").click()
    dialog = alice.page.locator(".docedit-share-dialog")
    await dialog.locator(".docedit-share-editors").fill("")
    await dialog.locator(".docedit-share-readers").fill("bob")
    await dialog.locator(".docedit-share-public").select_option("none")
    await dialog.locator(".docedit-share-save").click()
    await expect(dialog).to_be_hidden()

    # back online: his copy is dropped, he is told, and his panel shows the hub's text, read-only
    await bob.page.context.set_offline(False)
    await expect(bob.page.locator(".docedit-error")).to_have_text(
        "You can only read “Policy” now; the changes you made offline were not saved. The document is reloaded."
    )
    await bob.synced()
    await expect(bob.page.locator(".docedit-role")).to_have_text("Read only")
    assert await bob.wait_text("(t) => t === 'Approved text.'") == "Approved text."
    await expect(bob.editor).to_have_attribute("contenteditable", "false")
    await wait_js(bob.page, "() => hubDocedit.provider.local.meta.pending !== true")
    # the hub never got it: Alice's text and a live client's are unchanged, a late joiner reads the same
    assert await alice.text() == "Approved text."
    assert str(watcher.text) == "Approved text."
    late = await PyDoc.open(await py_client(server, user="alice"), doc_id)
    assert str(late.text) == "Approved text."
    # a reload (online) does not bring the dropped edits back either
    await bob.page.reload()
    await expect(bob.page.locator("#panels")).to_have_attribute("data-status", "ready")
    await bob.synced()
    assert await bob.text() == "Approved text."
    await watcher.close()
    await late.close()
    for person in (alice, bob):
        assert unexpected(person.console_errors) == [], f"{person.name}: {person.console_errors}"


async def test_local_copies_stay_bounded(hub_server: Any, new_page: PageFactory) -> None:
    """At most ``keep`` copies per page origin: the least recently used ones without pending changes go. A copy's
    update records fold into one."""
    server = hub_server(plugins={"docedit": Docedit})
    page = await new_page(f"{server.url}/healthz")
    await page.evaluate(
        """async () => {
          const { LocalCopy } = await import("/plugins/docedit/offline.js");
          const { Y } = await import("/plugins/docedit/vendor/docedit.mjs");
          window.openCopy = async (id) => {
            const ydoc = new Y.Doc();
            const copy = new LocalCopy("ws://hub.example:8000/ws", id, ydoc, { keep: 5 });
            await copy.whenLoaded;
            return { ydoc, copy };
          };
          window.copyNames = async () =>
            (await indexedDB.databases()).map((db) => db.name).filter((name) => name.includes("hub.example")).sort();
          // the oldest copy holds changes the hub has not seen; eight more documents follow
          const kept = await openCopy("pending-doc");
          kept.ydoc.getText("content").insert(0, "unsent");
          await kept.copy.remember({ pending: true });
          await kept.copy.whenSaved();
          kept.copy.destroy();
          for (let i = 0; i < 8; i++) {
            const { ydoc, copy } = await openCopy(`doc-${i}`);
            ydoc.getText("content").insert(0, `text ${i}`);
            await copy.remember({ created: i, pending: false });
            await copy.whenSaved();
            copy.destroy();
          }
        }"""
    )
    prefix = "hub-docedit/ws://hub.example:8000/"
    # the five most recently used, and the one with pending changes however old it is
    expected = sorted([f"{prefix}pending-doc"] + [f"{prefix}doc-{i}" for i in range(3, 8)])
    await wait_js(page, "async (want) => JSON.stringify(await copyNames()) === JSON.stringify(want)", expected)

    result = await page.evaluate(
        """async () => {
          const { ydoc, copy } = await openCopy("busy");
          const text = ydoc.getText("content");
          for (let i = 0; i < 1200; i++) text.insert(text.length, "x");
          await copy.whenSaved();
          const count = () => new Promise((resolve) => {
            const request = indexedDB.open(copy.name);
            request.onsuccess = () => {
              const db = request.result;
              const counting = db.transaction(["updates"], "readonly").objectStore("updates").count();
              counting.onsuccess = () => { db.close(); resolve(counting.result); };
            };
          });
          copy.compact();
          await copy.whenSaved();
          const after = await count();
          copy.destroy();
          const reopened = await openCopy("busy");  // the whole text, from that one record
          const length = reopened.ydoc.getText("content").length;
          reopened.copy.destroy();
          return { after, length };
        }"""
    )
    assert result == {"after": 1, "length": 1200}


async def test_offline_edits_of_another_account_are_not_sent(
    hub_server: Any, new_page: PageFactory, py_client: Any
) -> None:
    """One browser, two accounts: Alice's pending offline edits are not sent when Bob is the one who connects."""
    server = hub_server(plugins={"docedit": Docedit})
    alice = await Person.open(new_page, server, "alice", "Alice")
    doc_id = await create_document(alice, "Handover")
    await type_at_end(alice, "Agreed.")
    reader = await PyDoc.open(await py_client(server, user="alice"), doc_id)
    await reader.wait_for(lambda: str(reader.text) == "Agreed.")  # on the hub before the network goes
    context = alice.page.context
    await context.set_offline(True)
    await expect(alice.page.locator(".docedit-status")).to_have_text(SAVED_OFFLINE)
    await type_at_end(alice, " Alice's draft.")
    await saved_locally(alice)
    errors = alice.console_errors
    await alice.page.close()

    await context.set_offline(False)
    bob = Person(await context.new_page(), "Bob")
    await bob.page.goto(f"{server.url}/#token={server.token('bob', name='Bob')}")
    await expect(bob.page.locator(".docedit-error")).to_have_text(
        "The changes made offline in “Handover” were made by another account (alice); they were not sent."
        " The document is reloaded."
    )
    await bob.synced()
    assert await bob.wait_text("(t) => t === 'Agreed.'") == "Agreed."
    late = await PyDoc.open(await py_client(server, user="alice"), doc_id)
    assert str(late.text) == "Agreed."
    assert str(reader.text) == "Agreed."
    await late.close()
    await reader.close()
    assert unexpected(errors) == []
    assert unexpected(bob.console_errors) == []
