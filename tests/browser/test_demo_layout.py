"""The demo at ``/`` fits every screen, measured in a real Chromium at 390, 1280 and 1600 px wide.

With every built-in plugin enabled and each panel in use (a document open with a remote cursor on line 1, a
chat message, a notification), every visible control of every panel (buttons, inputs, selects, labels,
headers, titles) must lie inside its panel and the viewport, not be cut by an ancestor's overflow, and show
its whole text; table headers sit over visible columns; docedit's title is shown whole. Panels are also
measured with docedit's version history open and a chat message hovered. On a phone the panels are tabs, so
the page is about one screen tall. Remote caret labels in docedit show for a moment (or on hover), inside
the editor, and otherwise cover no text. The notification form says who will receive a test notification.

Screenshots go to artifacts/screenshots/demo-layout-<width>*.png.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import ConsoleMessage, Page, expect

from hub.testing import HubServer
from hub_realtime_plugins.chat import Chat
from hub_realtime_plugins.docedit import Docedit
from hub_realtime_plugins.draw import Draw
from hub_realtime_plugins.livedata import Livedata
from hub_realtime_plugins.notifications import Notifications
from tests.browser.conftest import PageFactory, screenshot, wait_js

pytestmark = pytest.mark.asyncio(loop_scope="session")

PLUGINS = {"chat": Chat, "docedit": Docedit, "draw": Draw, "livedata": Livedata, "notifications": Notifications}
WIDTHS = {390: 844, 1280: 900, 1600: 900}  # viewport width -> height (a phone, a laptop, a desktop)
SWEEP = (320, 600, 768, 1024, 1366, 1920)  # in between and beyond: the panels' own breakpoints fall elsewhere
PHONE = 390
DOC_TITLE = "Quarterly planning notes"
# Console messages that are not the panels': the shell has no favicon, and a hub that is down refuses sockets.
EXPECTED_CONSOLE = re.compile(r"favicon\.ico|WebSocket connection to .* failed|ERR_CONNECTION_REFUSED")

# Run in the page: one sentence per layout problem among the visible panels (or the one named).
LAYOUT_PROBLEMS = """
(scope) => {
  const CONTROLS = [
    "button", "input:not([type=hidden])", "select", "textarea", "label", "legend", "a[href]", "th", "caption",
    "h1", "h2", "h3", "h4", "output", "[role=tab]", ".docedit-title", ".docedit-role", ".chat-room-title",
    ".chat-person", ".docedit-peers-count", ".draw-people-count", ".livedata-summary", ".ntf-recipients",
  ].join(",");
  const EPS = 1; // px: sub-pixel rounding
  const problems = [];
  const describe = (el) => {
    const text = (el.getAttribute("aria-label") || el.textContent || el.placeholder || "").trim().slice(0, 30);
    const cls = typeof el.className === "string" && el.className.trim()
      ? "." + el.className.trim().split(/\\s+/).join(".") : "";
    return `${el.tagName.toLowerCase()}${cls}${text ? ` "${text}"` : ""}`;
  };
  const box = (r) =>
    `[${Math.round(r.left)}..${Math.round(r.right)}]x[${Math.round(r.top)}..${Math.round(r.bottom)}]`;
  const visible = (el) => {
    if (!el.checkVisibility({ checkOpacityProperty: true, checkVisibilityCSS: true })) return false;
    const r = el.getBoundingClientRect();
    if (r.width <= 1 || r.height <= 1) return false; // visually hidden text for screen readers
    const s = getComputedStyle(el);
    return s.clip === "auto" && !s.clipPath.startsWith("inset(50%");
  };
  const textWidth = (el, text) => {
    const context = (textWidth.canvas ??= document.createElement("canvas")).getContext("2d");
    const s = getComputedStyle(el);
    context.font = `${s.fontStyle} ${s.fontWeight} ${s.fontSize} ${s.fontFamily}`;
    return context.measureText(text).width;
  };
  const panels = [...document.querySelectorAll(".panel")].filter(
    (panel) => visible(panel) && (!scope || panel.dataset.plugin === scope),
  );
  for (const panel of panels) {
    const name = panel.dataset.plugin;
    const pr = panel.getBoundingClientRect();
    for (const el of [...panel.querySelectorAll(CONTROLS)].filter(visible)) {
      const r = el.getBoundingClientRect();
      const what = `${name}: ${describe(el)} ${box(r)}`;
      // a modal dialog's controls belong to the dialog, which is over the page rather than in the panel
      const dialog = el.closest("dialog[open]");
      const fr = dialog ? dialog.getBoundingClientRect() : pr;
      if (r.left < fr.left - EPS || r.right > fr.right + EPS || r.top < fr.top - EPS || r.bottom > fr.bottom + EPS) {
        problems.push(`${what} is outside its ${dialog ? "dialog" : "panel"} ${box(fr)}`);
      }
      if (r.top < -EPS || r.bottom > innerHeight + EPS) {
        if (dialog) problems.push(`${what} is outside the viewport (a dialog)`);
      }
      if (r.left < -EPS || r.right > innerWidth + EPS) problems.push(`${what} is outside the viewport`);
      // cut by an ancestor: any overflow but visible clips sideways (a control scrolled out of sight sideways
      // is as hidden as a cut one); vertically only hidden or clip (a list scrolled down is fine)
      const last = dialog ?? panel;
      for (let a = el.parentElement; a && a !== last.parentElement; a = a.parentElement) {
        const s = getComputedStyle(a);
        const clipsX = s.overflowX !== "visible";
        const clipsY = s.overflowY === "hidden" || s.overflowY === "clip";
        if (!clipsX && !clipsY) continue;
        const ar = a.getBoundingClientRect();
        const left = ar.left + a.clientLeft;
        const top = ar.top + a.clientTop;
        const inner = { left, right: left + a.clientWidth, top, bottom: top + a.clientHeight };
        if (clipsX && (r.left < inner.left - EPS || r.right > inner.right + EPS)) {
          problems.push(`${what} is cut by ${describe(a)} ${box(inner)} (overflow-x: ${s.overflowX})`);
        } else if (clipsY && (r.top < inner.top - EPS || r.bottom > inner.bottom + EPS)) {
          problems.push(`${what} is cut by ${describe(a)} ${box(inner)} (overflow-y: ${s.overflowY})`);
        }
      }
      // its own text: a placeholder or a select's choice fits the field; other controls fit their content
      if (el.matches("input, textarea, select")) {
        const s = getComputedStyle(el);
        const arrow = el.tagName === "SELECT" ? 18 : 0;
        const room = el.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight) - arrow;
        const shown = el.tagName === "SELECT" ? el.selectedOptions[0]?.textContent ?? ""
          : el.value ? "" : el.placeholder;
        const textual = !["range", "color", "radio", "checkbox"].includes(el.type);
        if (textual && shown && textWidth(el, shown) > room + EPS) {
          const needs = Math.round(textWidth(el, shown));
          problems.push(`${what} cuts its text "${shown}" (${needs} px in ${Math.round(room)})`);
        }
      } else if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + EPS) {
        problems.push(`${what} cuts its text (${el.scrollWidth} px in ${el.clientWidth})`);
      }
    }
    // tables: as many visible headers as visible cells in a row, each header over its column
    for (const table of [...panel.querySelectorAll("table")].filter(visible)) {
      const heads = [...table.querySelectorAll("thead th")].filter((cell) => cell.checkVisibility());
      for (const row of table.querySelectorAll("tbody tr")) {
        const cells = [...row.children].filter((cell) => cell.checkVisibility());
        if (cells.length === 1 && cells[0].colSpan > 1) continue;
        if (cells.length !== heads.length) {
          problems.push(`${name}: a table row has ${cells.length} visible cells under ${heads.length} headers`);
          break;
        }
        heads.forEach((head, i) => {
          const a = head.getBoundingClientRect();
          const b = cells[i].getBoundingClientRect();
          if (Math.abs(a.left - b.left) > EPS || Math.abs(a.right - b.right) > EPS) {
            problems.push(`${name}: header ${describe(head)} is not over its column`);
          }
        });
      }
    }
  }
  return problems;
}
"""

# Run in the page: where a remote caret's label is and whether it shows, against the editor's visible box.
CARET_LABEL = """
() => {
  const label = document.querySelector(".docedit-editor .cm-ySelectionInfo");
  if (!label) return null;
  const scroller = document.querySelector(".docedit-editor .cm-scroller");
  const r = label.getBoundingClientRect();
  const s = scroller.getBoundingClientRect();
  const style = getComputedStyle(label);
  const shown = style.visibility === "visible" && Number(style.opacity) > 0.5;
  const top = s.top + scroller.clientTop;
  const inside = r.top >= top - 1 && r.bottom <= top + scroller.clientHeight + 1
    && r.left >= s.left - 1 && r.right <= s.left + scroller.clientWidth + 1;
  const hit = document.elementFromPoint((r.left + r.right) / 2, (r.top + r.bottom) / 2);
  return { shown, inside, covers: Boolean(hit && label.contains(hit)), text: label.textContent,
           box: [r.left, r.top, r.right, r.bottom].map(Math.round),
           editor: [s.left, s.top, s.right, s.bottom].map(Math.round) };
}
"""


class Person:
    """One browser on the demo page, as a signed-in user or a guest."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.console_errors: list[str] = []
        page.on("console", self._on_console)

    def _on_console(self, message: ConsoleMessage) -> None:
        text = f"{message.text} {message.location.get('url', '')}"
        if message.type == "error" and not EXPECTED_CONSOLE.search(text):
            self.console_errors.append(text)

    @classmethod
    async def open(
        cls, new_page: PageFactory, server: HubServer, user: str | None, name: str = "", width: int = 1280
    ) -> Person:
        person = cls(await new_page())  # listening to the console before the page loads
        await person.page.set_viewport_size({"width": width, "height": WIDTHS.get(width, 900)})
        fragment = f"#token={server.token(user, name=name)}" if user is not None else ""
        await person.page.goto(f"{server.url}/{fragment}")
        await expect(person.page.locator("#panels")).to_have_attribute("data-status", "ready")
        await expect(person.page.locator(".panel:not([data-status=mounted])")).to_have_count(0)
        return person

    async def show(self, plugin: str) -> None:
        """On a phone, pick the panel's tab; on a wide screen every panel is shown already."""
        tab = self.page.locator(f".panel-tabs [role=tab][data-plugin={plugin}]")
        if await tab.is_visible():
            await tab.click()
            await expect(tab).to_have_attribute("aria-selected", "true")
        await expect(self.page.locator(f".panel[data-plugin={plugin}]")).to_be_visible()

    async def problems(self, plugin: str | None = None, state: str = "") -> list[str]:
        found = await self.page.evaluate(LAYOUT_PROBLEMS, plugin)
        width = self.page.viewport_size["width"] if self.page.viewport_size else 0
        return [f"{width} px{state}: {problem}" for problem in found]


async def set_the_scene(new_page: PageFactory, server: HubServer) -> Person:
    """Alice opens a document and writes three lines, says hello in chat and sends herself a notification;
    Bob opens the document with his cursor on line 1. Returns Bob (his page stays open)."""
    alice = await Person.open(new_page, server, "alice", "Alice Montgomery")
    page = alice.page
    await page.locator(".docedit-new-title").fill(DOC_TITLE)
    await page.locator(".docedit-new-title").press("Enter")
    await expect(page.locator(".docedit-status")).to_have_attribute("data-status", "synced")
    await page.locator(".docedit-editor .cm-content").click()
    await page.keyboard.type("Agenda for the quarter\nBudget review with finance\nHiring plan")
    await wait_js(page, "() => hubDocedit.text()?.endsWith('Hiring plan')")
    await page.locator(".chat-send input").fill("Hello from the layout test")
    await page.locator(".chat-send input").press("Enter")
    await expect(page.locator(".chat-message")).to_have_count(1)
    await page.locator(".ntf-form input[name=title]").fill("Deploy finished")
    await page.get_by_role("button", name="Send test notification").click()
    await expect(page.locator(".ntf-item")).to_have_count(1)

    bob = await Person.open(new_page, server, "bob", "Bob")
    await expect(bob.page.locator(".docedit-title")).to_have_text(DOC_TITLE)
    await expect(bob.page.locator(".docedit-status")).to_have_attribute("data-status", "synced")
    await bob.page.locator(".docedit-editor .cm-content").click()
    await bob.page.keyboard.press("Control+Home")
    await wait_js(page, "() => document.querySelectorAll('.docedit-editor .cm-ySelectionInfo').length === 1")
    assert alice.console_errors == []
    assert bob.console_errors == []
    return bob


async def test_every_control_fits_its_panel_at_every_width(hub_server, new_page):
    server = hub_server(plugins=PLUGINS)
    bob = await set_the_scene(new_page, server)
    problems: list[str] = []
    for width in WIDTHS:
        alice = await Person.open(new_page, server, "alice", "Alice Montgomery", width=width)
        page = alice.page
        await expect(page.locator(".docedit-title")).to_have_text(DOC_TITLE)
        await expect(page.locator(".docedit-status")).to_have_attribute("data-status", "synced")
        await expect(page.locator(".livedata-table tbody tr").first).to_have_attribute("data-seq", re.compile(r"\d"))
        tabs = page.locator(".panel-tabs [role=tab]")
        phone = width == PHONE
        if phone:
            # a phone shows one panel at a time, picked from tabs: about one screen tall, whichever is shown
            if not await tabs.first.is_visible():
                tall = await page.evaluate("document.documentElement.scrollHeight / innerHeight")
                problems.append(f"{width} px: no panel tabs, and the page is {tall:.1f} screens tall")
        else:
            await expect(tabs.first).to_be_hidden()
        for plugin in PLUGINS:
            await alice.show(plugin)
            if phone and await tabs.first.is_visible():
                shown = await page.locator(".panel").evaluate_all(
                    "(panels) => panels.filter((p) => p.checkVisibility()).map((p) => p.dataset.plugin)"
                )
                assert shown == [plugin], f"{width} px: the {plugin} tab shows {shown}"
                tall = await page.evaluate("document.documentElement.scrollHeight / innerHeight")
                if tall > 1.25:
                    problems.append(f"{width} px: the page is {tall:.1f} screens tall with the {plugin} tab")
                await screenshot(page, f"demo-layout-{width}-{plugin}")
            problems += await alice.problems(plugin)
        wide = await page.evaluate("document.documentElement.scrollWidth - innerWidth")
        if wide > 0:
            problems.append(f"{width} px: the page scrolls sideways by {wide} px")
        if not phone:
            await screenshot(page, f"demo-layout-{width}")
            tall = await page.evaluate("document.documentElement.scrollHeight / innerHeight")
            assert tall < 3, f"{width} px: {tall:.1f} screens tall"

        # docedit's title is readable: whole, or at least 12 characters of a long one
        await alice.show("docedit")
        title = page.locator(".docedit-title")
        shown, whole = await title.evaluate("(el) => [el.clientWidth, el.scrollWidth]")
        if shown < min(whole, 12 * whole / len(DOC_TITLE)):
            problems.append(f"{width} px: docedit's title is cut to {shown} px of {whole}")

        # every panel's other states: docedit's version history and dialogs, chat's message buttons and edit
        # form, draw's clear confirmation
        toggle = page.locator(".docedit-history-toggle")
        await toggle.evaluate("(button) => button.click()")  # even where the layout hides it: it is measured
        await expect(page.locator(".docedit-history")).to_be_visible()
        problems += await alice.problems("docedit", " (version history open)")
        await screenshot(page, f"demo-layout-{width}-history")
        await toggle.evaluate("(button) => button.click()")
        await expect(page.locator(".docedit-history")).to_be_hidden()
        for opener, dialog, closer in [
            (".docedit-share", ".docedit-share-dialog", ".docedit-share-cancel"),
            (".docedit-delete", ".docedit-delete-dialog", ".docedit-delete-cancel"),
        ]:
            await page.locator(opener).click()
            await expect(page.locator(dialog)).to_be_visible()
            problems += await alice.problems("docedit", f" ({dialog[1:]} open)")
            await page.locator(closer).click()
            await expect(page.locator(dialog)).to_be_hidden()

        await alice.show("chat")
        await page.locator(".chat-message").hover()
        await expect(page.locator(".chat-message .chat-actions")).to_be_visible()
        problems += await alice.problems("chat", " (a message hovered)")
        await page.locator(".chat-message .chat-edit").click()
        await expect(page.locator(".chat-edit-form")).to_be_visible()
        problems += await alice.problems("chat", " (a message being edited)")
        await page.locator(".chat-edit-input").press("Escape")
        await expect(page.locator(".chat-edit-form")).to_have_count(0)

        await alice.show("draw")
        await page.locator(".draw-clear").click()
        await expect(page.locator(".draw-confirm")).to_be_visible()
        problems += await alice.problems("draw", " (clear asks to confirm)")
        await page.locator(".draw-clear-cancel").click()
        await expect(page.locator(".draw-confirm")).to_be_hidden()
        assert alice.console_errors == [], alice.console_errors

    # a sweep of other widths, every panel as it first shows (the last page, resized)
    for width in SWEEP:
        await page.set_viewport_size({"width": width, "height": 800})
        await expect(page.locator(".panel-tabs")).to_be_visible(visible=width <= 640)
        for plugin in PLUGINS:
            await alice.show(plugin)
            problems += await alice.problems(plugin)
    assert bob.console_errors == []
    assert problems == [], "\n".join(problems)


async def test_phone_tabs_follow_the_keyboard_and_are_remembered(hub_server, new_page):
    server = hub_server(plugins={"chat": Chat, "livedata": Livedata, "notifications": Notifications})
    guest = await Person.open(new_page, server, None, width=PHONE)
    page = guest.page
    tab = page.locator(".panel-tabs [role=tab][aria-selected=true]")
    await expect(tab).to_have_attribute("data-plugin", "chat")  # the first panel, with nothing remembered
    await expect(page.locator(".panel[data-plugin=chat]")).to_have_attribute("role", "tabpanel")
    await page.locator(".panel-tabs [role=tab][data-plugin=livedata]").click()
    await expect(page.locator(".panel[data-plugin=livedata]")).to_be_visible()
    await expect(page.locator(".panel[data-plugin=chat]")).to_be_hidden()
    await page.keyboard.press("ArrowRight")
    await expect(tab).to_have_attribute("data-plugin", "notifications")
    await expect(tab).to_be_focused()
    await page.keyboard.press("ArrowRight")  # round to the first
    await expect(tab).to_have_attribute("data-plugin", "chat")
    await page.keyboard.press("End")
    await expect(tab).to_have_attribute("data-plugin", "notifications")
    await expect(page.locator(".panel[data-plugin=notifications]")).to_be_visible()

    # the choice survives a reload; a wide window shows every panel, as regions rather than tab panels
    await page.reload()
    await expect(page.locator("#panels")).to_have_attribute("data-status", "ready")
    await expect(tab).to_have_attribute("data-plugin", "notifications")
    await expect(page.locator(".panel[data-plugin=chat]")).to_be_hidden()
    await page.set_viewport_size({"width": 1280, "height": 900})
    await expect(page.locator(".panel-tabs")).to_be_hidden()
    for plugin in ("chat", "livedata", "notifications"):
        await expect(page.locator(f".panel[data-plugin={plugin}]")).to_be_visible()
    await expect(page.locator(".panel[data-plugin=chat]")).not_to_have_attribute("role", "tabpanel")
    assert guest.console_errors == []


async def test_remote_caret_labels_show_briefly_inside_the_editor_and_cover_no_text(hub_server, new_page):
    server = hub_server(plugins={"docedit": Docedit})
    alice = await Person.open(new_page, server, "alice", "Alice")
    await alice.page.locator(".docedit-new-title").fill("Carets")
    await alice.page.locator(".docedit-new-title").press("Enter")
    await expect(alice.page.locator(".docedit-status")).to_have_attribute("data-status", "synced")
    await alice.page.locator(".docedit-editor .cm-content").click()
    await alice.page.keyboard.type("First line of the text\nSecond line of the text\nThird line")
    bob = await Person.open(new_page, server, "bob", "Bob")
    await expect(bob.page.locator(".docedit-status")).to_have_attribute("data-status", "synced")

    # Bob moves to the start of line 1: Alice sees his name, inside the editor (not clipped above line 1)
    await bob.page.locator(".docedit-editor .cm-content").click()
    await bob.page.keyboard.press("Control+Home")
    label = await wait_js(alice.page, f"() => {{ const l = ({CARET_LABEL})(); return l?.shown && l; }}")
    assert label["text"] == "Bob"
    assert label["inside"], label
    await screenshot(alice.page, "demo-caret-label-line-1")
    # ... for a moment: then the label is gone and the text under it is Alice's to see and click
    label = await wait_js(alice.page, f"() => {{ const l = ({CARET_LABEL})(); return l && !l.shown && l; }}")
    assert not label["covers"], label

    # hovering the caret shows the name again, still inside the editor
    caret = alice.page.locator(".docedit-editor .cm-ySelectionCaret")
    await caret.hover()
    label = await wait_js(alice.page, f"() => {{ const l = ({CARET_LABEL})(); return l?.shown && l; }}")
    assert label["inside"], label
    await alice.page.mouse.move(0, 0)

    # typing shows it again; at the end of a line near the right edge it stays inside the editor too
    await bob.page.keyboard.press("Control+End")
    await bob.page.keyboard.type(" and a few words more, up to the right edge of the editor")
    label = await wait_js(alice.page, f"() => {{ const l = ({CARET_LABEL})(); return l?.shown && l; }}")
    assert label["inside"], label
    await screenshot(alice.page, "demo-caret-label-typing")
    assert alice.console_errors == []
    assert bob.console_errors == []


async def test_the_notification_form_says_who_receives_it(hub_server, new_page):
    server = hub_server(plugins={"notifications": Notifications})
    guest = await Person.open(new_page, server, None, width=PHONE)
    recipients = guest.page.locator(".ntf-recipients")
    await expect(recipients).to_be_visible()
    name = await guest.page.evaluate("hubShell.hub.me.name")
    await expect(recipients).to_have_text(re.compile(rf"only you \({re.escape(name)}\).*guest", re.IGNORECASE))
    send = guest.page.get_by_role("button", name="Send test notification")
    await expect(send).to_have_accessible_description(re.compile("only you", re.IGNORECASE))
    assert await guest.problems("notifications") == []

    alice = await Person.open(new_page, server, "alice", "Alice")
    recipients = alice.page.locator(".ntf-recipients")
    await expect(recipients).to_have_text(re.compile(r"only you \(Alice\)"))
    await alice.page.get_by_label("User ids, separated by commas").fill("bob, carol")
    await expect(recipients).to_have_text(re.compile(r"bob, carol.*'publish' scope"))
    await alice.page.get_by_label("everyone").check()
    await expect(recipients).to_have_text(re.compile(r"everyone.*guests.*'publish' scope"))
    await alice.page.get_by_label("me", exact=True).check()
    await expect(recipients).to_have_text(re.compile(r"only you \(Alice\)"))
    await screenshot(guest.page, "demo-notification-recipients")
    assert guest.console_errors == []
    assert alice.console_errors == []
