"""The docedit panel in a real Chromium: two people type into one document at the same time and end with the
same text, each sees the other's named cursor; a reader's editor is read-only; a saved version can be
viewed and restored, which changes the text on every page; rename, share and delete go through the panel."""

from __future__ import annotations

import asyncio
import re

import pytest
from playwright.async_api import ConsoleMessage, Locator, Page, expect

from hub.testing import HubServer
from hub_realtime_plugins.docedit import Docedit
from tests.browser.conftest import PageFactory, screenshot, wait_js
from tests.e2e.test_docedit_interop import PyDoc

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Console messages that are not the panel's: the shell has no favicon, and a hub that is down refuses sockets.
EXPECTED_CONSOLE = re.compile(r"favicon\.ico|WebSocket connection to .* failed|ERR_CONNECTION_REFUSED")


class Person:
    """One browser on the demo page, driving the docedit panel with real clicks and key presses."""

    def __init__(self, page: Page, name: str) -> None:
        self.page = page
        self.name = name
        self.console_errors: list[str] = []
        page.on("console", self._on_console)

    def _on_console(self, message: ConsoleMessage) -> None:
        text = f"{message.text} {message.location.get('url', '')}"
        if message.type in ("error", "warning") and not EXPECTED_CONSOLE.search(text):
            self.console_errors.append(text)

    @classmethod
    async def open(cls, new_page: PageFactory, server: HubServer, user: str, name: str) -> Person:
        person = cls(await new_page(), name)  # listening to the console before the page loads
        await person.page.goto(f"{server.url}/#token={server.token(user, name=name)}")
        await expect(person.page.locator("#panels")).to_have_attribute("data-status", "ready")
        await expect(person.page.locator(".panel[data-plugin=docedit]")).to_have_attribute("data-status", "mounted")
        return person

    @property
    def editor(self) -> Locator:
        return self.page.locator(".docedit-editor .cm-content")

    async def open_doc(self, title: str) -> None:
        await self.page.locator(".docedit-doc", has_text=title).click()
        await self.synced()

    async def synced(self) -> None:
        await expect(self.page.locator(".docedit-status")).to_have_attribute("data-status", "synced")

    async def text(self) -> str:
        return str(await self.page.evaluate("hubDocedit.text()"))

    async def wait_text(self, predicate: str, arg: object = None) -> str:
        """Wait until ``predicate`` (a JS function of the document's text and arg) holds; return the text."""
        await wait_js(
            self.page, f"(arg) => {{ const t = hubDocedit.text(); return t !== null && ({predicate})(t, arg); }}", arg
        )
        return await self.text()


async def test_two_people_edit_one_document_with_cursors_readers_and_versions(hub_server, new_page):
    server = hub_server(plugins={"docedit": Docedit})
    alice = await Person.open(new_page, server, "alice", "Alice")
    bob = await Person.open(new_page, server, "bob", "Bob")
    await expect(alice.page.locator(".docedit-no-docs")).to_be_visible()

    # Alice creates a document; it shows up in Bob's list (public: edit, the default)
    await alice.page.locator(".docedit-new-title").fill("Meeting notes")
    await alice.page.locator(".docedit-new-title").press("Enter")
    await alice.synced()
    await expect(alice.page.locator(".docedit-title")).to_have_text("Meeting notes")
    await expect(alice.page.locator(".docedit-role")).to_have_text("Owner")
    await bob.open_doc("Meeting notes")
    await expect(bob.page.locator(".docedit-role")).to_have_text("Editor")
    await expect(bob.page.locator(".docedit-share")).to_be_hidden()  # owner only

    # a first line, then both type at the same time: Alice at the start, Bob at the end
    await alice.editor.click()
    await alice.page.keyboard.type("Agenda\n")
    await bob.wait_text("(t) => t === 'Agenda\\n'")
    await bob.editor.click()
    await bob.page.keyboard.press("ControlOrMeta+End")
    await alice.page.keyboard.press("ControlOrMeta+Home")
    alice_text, bob_text = "Alice opens the meeting. ", "Bob takes the minutes."
    await asyncio.gather(
        alice.page.keyboard.type(alice_text, delay=12),
        bob.page.keyboard.type(bob_text, delay=12),
    )
    expected = f"{alice_text}Agenda\n{bob_text}"
    for person in (alice, bob):
        assert await person.wait_text("(t, want) => t === want", expected) == expected
        await expect(person.editor).to_have_text(re.compile(re.escape(alice_text)))
        assert await person.page.evaluate("hubDocedit.editorText()") == expected

    # each sees the other's cursor, labelled with the name from awareness, and both avatars
    await expect(alice.page.locator(".docedit-editor .cm-ySelectionInfo")).to_have_text(["Bob"])
    await expect(bob.page.locator(".docedit-editor .cm-ySelectionInfo")).to_have_text(["Alice"])
    await expect(alice.page.locator(".docedit-peer")).to_have_count(2)
    await expect(alice.page.locator(".docedit-peer.is-me")).to_have_attribute("title", "Alice (you)")
    await screenshot(alice.page, "docedit-two-editors")

    # Alice shares: Bob edits, Carol reads, nobody else
    await alice.page.locator(".docedit-share").click()
    dialog = alice.page.locator(".docedit-share-dialog")
    await expect(dialog).to_be_visible()
    await dialog.locator(".docedit-share-editors").fill("bob")
    await dialog.locator(".docedit-share-readers").fill("carol")
    await dialog.locator(".docedit-share-public").select_option("none")
    await dialog.locator(".docedit-share-save").click()
    await expect(dialog).to_be_hidden()

    carol = await Person.open(new_page, server, "carol", "Carol")
    await carol.open_doc("Meeting notes")
    await expect(carol.page.locator(".docedit-role")).to_have_text("Read only")
    assert await carol.text() == expected
    await expect(carol.editor).to_have_attribute("contenteditable", "false")
    await expect(carol.page.locator(".docedit-rename")).to_be_hidden()
    await carol.editor.click()
    await carol.page.keyboard.type("zzz")
    await expect(carol.editor).not_to_contain_text("zzz")
    # Carol's cursor-less awareness is there, but her key presses changed nothing anywhere
    await expect(alice.page.locator(".docedit-peer")).to_have_count(3)
    assert await alice.text() == expected
    assert await carol.text() == expected

    # rename: everyone's title and list follow
    await alice.page.locator(".docedit-rename").click()
    await alice.page.locator(".docedit-rename-input").fill("Weekly meeting")
    await alice.page.locator(".docedit-rename-input").press("Enter")
    for person in (alice, bob, carol):
        await expect(person.page.locator(".docedit-title")).to_have_text("Weekly meeting")
        await expect(person.page.locator(".docedit-doc.active .docedit-doc-title")).to_have_text("Weekly meeting")

    # version history: save "first draft", change the text, view the version read-only, restore it
    await alice.page.locator(".docedit-history-toggle").click()
    await alice.page.locator(".docedit-version-name").fill("first draft")
    await alice.page.locator(".docedit-version-name").press("Enter")
    await expect(alice.page.locator(".docedit-version .docedit-version-title")).to_have_text(["first draft"])
    await carol.page.locator(".docedit-history-toggle").click()
    await expect(carol.page.locator(".docedit-version .docedit-version-title")).to_have_text(["first draft"])
    await expect(carol.page.locator(".docedit-save-version")).to_be_hidden()
    await expect(carol.page.locator(".docedit-version-restore")).to_be_hidden()

    await bob.editor.click()
    await bob.page.keyboard.press("ControlOrMeta+End")
    await bob.page.keyboard.type(" Action items follow.")
    changed = expected + " Action items follow."
    for person in (alice, bob, carol):
        await person.wait_text("(t, want) => t === want", changed)

    version = alice.page.locator(".docedit-version", has_text="first draft")
    await version.locator(".docedit-version-view-button").click()
    await expect(alice.page.locator(".docedit-version-banner")).to_contain_text("first draft")
    await expect(alice.page.locator(".docedit-version-view .cm-content")).to_have_attribute("contenteditable", "false")
    assert await alice.page.evaluate("hubDocedit.versionText()") == expected
    await expect(alice.page.locator(".docedit-version-view .cm-content")).not_to_contain_text("Action items")
    await screenshot(alice.page, "docedit-version-view")
    await alice.page.locator(".docedit-banner-restore").click()
    await expect(alice.page.locator(".docedit-version-banner")).to_be_hidden()
    for person in (alice, bob, carol):
        assert await person.wait_text("(t, want) => t === want", expected) == expected
        await expect(person.editor).not_to_contain_text("Action items")
    await expect(bob.page.locator(".docedit-notice")).to_have_text("Alice restored the version “first draft”.")

    # the restored text is a normal edit: Bob can go on typing
    await bob.editor.click()
    await bob.page.keyboard.press("ControlOrMeta+End")
    await bob.page.keyboard.type("!")
    for person in (alice, bob, carol):
        await person.wait_text("(t, want) => t === want", expected + "!")
    await screenshot(bob.page, "docedit-after-restore")

    # Carol leaves: her avatar goes from the others' pages (docedit.left / her awareness goodbye)
    carol_errors = carol.console_errors
    await carol.page.close()
    await expect(alice.page.locator(".docedit-peer")).to_have_count(2)
    await expect(bob.page.locator(".docedit-peer")).to_have_count(2)
    assert carol_errors == []

    for person in (alice, bob):
        assert person.console_errors == [], f"{person.name}: {person.console_errors}"


async def test_delete_closes_the_document_everywhere_and_a_reload_shows_the_same_text(hub_server, new_page):
    server = hub_server(plugins={"docedit": Docedit})
    alice = await Person.open(new_page, server, "alice", "Alice")
    await alice.page.locator(".docedit-new-title").fill("Scratch")
    await alice.page.locator(".docedit-new-title").press("Enter")
    await alice.synced()
    await alice.editor.click()
    await alice.page.keyboard.type("kept across a reload")
    bob = await Person.open(new_page, server, "bob", "Bob")
    await bob.open_doc("Scratch")
    assert await bob.wait_text("(t) => t === 'kept across a reload'")

    # a reload reopens the last document (localStorage) and syncs it from the hub
    await alice.page.reload()
    await expect(alice.page.locator("#panels")).to_have_attribute("data-status", "ready")
    await alice.synced()
    assert await alice.wait_text("(t) => t === 'kept across a reload'")
    await expect(alice.page.locator(".docedit-title")).to_have_text("Scratch")

    # delete, through the confirmation dialog: gone from both lists, Bob's editor closes
    await alice.page.locator(".docedit-delete").click()
    await expect(alice.page.locator(".docedit-delete-dialog")).to_contain_text("Scratch")
    await alice.page.locator(".docedit-delete-confirm").click()
    for person in (alice, bob):
        await expect(person.page.locator(".docedit-doc")).to_have_count(0)
        await expect(person.page.locator(".docedit-empty")).to_be_visible()
        await expect(person.page.locator(".docedit-editor")).to_be_hidden()
    await expect(bob.page.locator(".docedit-notice")).to_have_text("This document was deleted.")
    for person in (alice, bob):
        assert person.console_errors == [], f"{person.name}: {person.console_errors}"


async def test_keyboard_only_create_type_and_paste_big(hub_server, new_page, py_client):
    """The panel works without a mouse: the title field, Enter creates, Tab reaches the editor. A big paste
    goes to the hub in parts (its base64 is over 32768 characters) and a Python client reads it back."""
    server = hub_server(plugins={"docedit": Docedit})
    alice = await Person.open(new_page, server, "alice", "Alice")
    await alice.page.locator(".docedit-new-title").focus()
    await alice.page.keyboard.type("Typed by keyboard")
    await alice.page.keyboard.press("Enter")
    await alice.synced()
    for _ in range(12):  # title field, Create, the document, Rename, Share, History, Delete, then the editor
        if await alice.page.evaluate("document.activeElement?.classList.contains('cm-content')"):
            break
        await alice.page.keyboard.press("Tab")
    await expect(alice.editor).to_be_focused()
    await alice.page.keyboard.type("hello")
    assert await alice.wait_text("(t) => t === 'hello'") == "hello"
    # undo and redo go through the Yjs undo manager (only this user's changes)
    await alice.page.keyboard.press("ControlOrMeta+z")
    await alice.wait_text("(t) => t === ''")
    await alice.page.keyboard.press("ControlOrMeta+y")
    await alice.wait_text("(t) => t === 'hello'")
    await alice.page.keyboard.insert_text(" " + "0123456789" * 4000)
    await alice.wait_text("(t) => t.length === 40006")
    await alice.synced()
    doc_id = await alice.page.evaluate("hubDocedit.id")
    reader = await PyDoc.open(await py_client(server, user="alice"), doc_id)
    await reader.wait_for(lambda: len(str(reader.text)) == 40006)  # the parts may still be on their way
    assert str(reader.text) == await alice.text()
    await reader.close()
    assert alice.console_errors == []


async def test_edits_made_while_the_hub_is_down_reach_the_others_after_it_restarts(hub_server, new_page):
    server = hub_server(plugins={"docedit": Docedit})
    alice = await Person.open(new_page, server, "alice", "Alice")
    bob = await Person.open(new_page, server, "bob", "Bob")
    await alice.page.locator(".docedit-new-title").fill("Draft")
    await alice.page.locator(".docedit-new-title").press("Enter")
    await alice.synced()
    await bob.open_doc("Draft")
    await alice.editor.click()
    await alice.page.keyboard.type("online. ")
    await bob.wait_text("(t) => t === 'online. '")

    server.stop()
    await expect(alice.page.locator(".docedit-status")).not_to_have_attribute("data-status", "synced")
    await alice.page.keyboard.type("typed offline")  # kept in the page's Y.Doc
    assert await alice.text() == "online. typed offline"
    server.start()

    # both resubscribe: Alice's step 2 carries her offline edit, Bob gets it from the hub
    for person in (alice, bob):
        await person.synced()
        assert await person.wait_text("(t) => t === 'online. typed offline'") == "online. typed offline"
    await bob.editor.click()
    await bob.page.keyboard.press("ControlOrMeta+End")
    await bob.page.keyboard.type(" And back.")
    await alice.wait_text("(t) => t === 'online. typed offline And back.'")
    for person in (alice, bob):
        assert person.console_errors == [], f"{person.name}: {person.console_errors}"


async def test_a_change_over_the_size_limit_is_refused_explained_and_rolled_back(hub_server, new_page, monkeypatch):
    # The setting through the environment, as in production: the panel is served from the static folder of the
    # plugin's own package, which the class given here has and a lambda would not.
    monkeypatch.setenv("HUB_DOCEDIT_MAX_DOC_BYTES", "2048")
    server = hub_server(plugins={"docedit": Docedit})
    alice = await Person.open(new_page, server, "alice", "Alice")
    await alice.page.locator(".docedit-new-title").fill("Small")
    await alice.page.locator(".docedit-new-title").press("Enter")
    await alice.synced()
    await alice.editor.click()
    await alice.page.keyboard.type("fits")
    await alice.wait_text("(t) => t === 'fits'")
    await alice.page.keyboard.insert_text("x" * 3000)  # one paste: one update over the limit
    await expect(alice.page.locator(".docedit-error")).to_contain_text("limited to 2048 bytes")
    # the panel reopens the document: the hub's text, without the refused paste
    await alice.synced()
    assert await alice.wait_text("(t) => t === 'fits'") == "fits"
    await expect(alice.editor).to_have_text("fits")
    assert alice.console_errors == []
