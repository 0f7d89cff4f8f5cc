"""The draw panel in a real Chromium: two people on one board see each other's strokes (while they are being
drawn), shapes, moves, undo/redo, deletes and clears; a reloaded page and a restarted hub show the same board;
a limit error is shown and rolled back; and the panel's copy of the conflict rule agrees with the server's."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

import pytest
from playwright.async_api import ConsoleMessage, Page, expect

import hub_realtime_plugins.chat
from hub.testing import HubServer
from hub_realtime_plugins.draw import Draw, board
from tests.browser.conftest import PageFactory, screenshot

pytestmark = pytest.mark.asyncio(loop_scope="session")

PLUGINS = {"chat": hub_realtime_plugins.chat.Chat, "draw": Draw}
# Console messages that are not the panel's: the shell has no favicon, and a hub that is down refuses sockets.
EXPECTED_CONSOLE = re.compile(r"favicon\.ico|WebSocket connection to .* failed|ERR_CONNECTION_REFUSED")


class Person:
    """One browser on the demo page, driving the draw panel with real pointer and keyboard events."""

    def __init__(self, page: Page, name: str) -> None:
        self.page = page
        self.name = name
        self.console_errors: list[str] = []
        page.on("console", self._on_console)

    def _on_console(self, message: ConsoleMessage) -> None:
        text = f"{message.text} {message.location.get('url', '')}"
        if message.type == "error" and not EXPECTED_CONSOLE.search(text):
            self.console_errors.append(text)

    @classmethod
    async def open(cls, new_page: PageFactory, server: HubServer, user: str, name: str) -> Person:
        person = cls(await new_page(), name)  # listening to the console before the page loads
        await person.page.goto(f"{server.url}/#token={server.token(user, name=name)}")
        await person.loaded()
        return person

    async def loaded(self) -> None:
        """Every panel mounted (so the layout stands still) and the board's snapshot drawn."""
        await expect(self.page.locator("#panels")).to_have_attribute("data-status", "ready")
        await expect(self.page.locator(".draw")).to_have_attribute("data-loaded", "true")
        await self.page.locator(".draw-stage").scroll_into_view_if_needed()

    async def screen(self, x: float, y: float) -> tuple[float, float]:
        point = await self.page.evaluate("([x, y]) => hubDraw.toScreen(x, y)", [x, y])
        return point["x"], point["y"]

    async def tool(self, name: str) -> None:
        await self.page.locator(f".draw-tool[data-tool={name}]").click()
        await expect(self.page.locator(f".draw-tool[data-tool={name}]")).to_have_attribute("aria-pressed", "true")

    async def press(self, points: Sequence[tuple[float, float]]) -> None:
        """Pointer down at the first point and through the others, without letting go."""
        mouse = self.page.mouse
        await mouse.move(*await self.screen(*points[0]))
        await mouse.down()
        for point in points[1:]:
            await mouse.move(*await self.screen(*point), steps=3)

    async def drag(self, points: Sequence[tuple[float, float]]) -> None:
        await self.press(points)
        await self.page.mouse.up()

    async def click(self, x: float, y: float) -> None:
        await self.page.mouse.click(*await self.screen(x, y))

    async def objects(self) -> list[dict[str, Any]]:
        return list(await self.page.evaluate("hubDraw.objects()"))

    async def until(self, expression: str, arg: Any = None) -> Any:
        """Wait until ``expression`` (a JS function of ``arg`` that may use ``hubDraw``) is truthy."""
        handle = await self.page.wait_for_function(expression, arg=arg)
        return await handle.json_value()

    async def until_object(self, object_id: str, condition: str = "true") -> dict[str, Any]:
        """Wait until object ``object_id`` is on the canvas and ``condition`` (JS, of ``o``) holds; return it."""
        return dict(
            await self.until(
                f"(id) => {{ const o = hubDraw.objects().find((o) => o.id === id); return o && ({condition}) && o; }}",
                object_id,
            )
        )

    async def until_settled(self) -> None:
        """Every edit of this page answered by the hub."""
        await self.until("() => hubDraw.pending() === 0")


def assert_no_console_errors(*people: Person) -> None:
    assert {person.name: person.console_errors for person in people} == {person.name: [] for person in people}


async def test_two_people_draw_move_undo_delete_and_clear(hub_server, new_page, tmp_path):
    server = hub_server(plugins=PLUGINS)
    alice = await Person.open(new_page, server, "alice", "Alice")
    bob = await Person.open(new_page, server, "bob", "Bob")
    for person in (alice, bob):
        await expect(person.page.locator(".draw-person")).to_have_count(2)
        await expect(person.page.locator(".draw-person.is-me")).to_have_count(1)
        await expect(person.page.locator(".draw-board.active")).to_have_text("main")
    info = await (await alice.page.request.get(f"{server.url}/api/info")).json()
    assert info["connections"] == 2  # chat and draw over one socket per page

    # Alice's pointer over the board is Bob's named cursor; it goes when her pointer leaves the board
    await alice.page.mouse.move(*await alice.screen(800, 500))
    await alice.page.mouse.move(*await alice.screen(820, 510), steps=3)
    # the last position is always sent (the throttle keeps it), so the cursor ends where the pointer did
    await bob.until(
        "() => hubDraw.cursors().some((c) => c.name === 'Alice' && Math.abs(c.x - 820) < 8 && Math.abs(c.y - 510) < 8)"
    )
    await expect(bob.page.locator(".draw-cursor .draw-cursor-name")).to_have_text("Alice")
    await alice.page.mouse.move(5, 5)  # over the page's header
    await bob.until("() => hubDraw.cursors().length === 0")

    # a freehand stroke: Bob sees it while Alice is still drawing, then the finished path under the same id
    await alice.tool("pen")
    wave = [(200 + i * 20, 300 + (40 if i % 2 else -40)) for i in range(16)]
    await alice.press(wave)
    live = await bob.until("() => hubDraw.previews().find((p) => p.points >= 10)")
    assert await bob.objects() == []
    await screenshot(bob.page, "draw-bob-sees-a-stroke-in-progress")
    await alice.page.mouse.up()
    stroke = await bob.until_object(live["id"], "o.kind === 'path'")
    await bob.until("() => hubDraw.previews().length === 0")
    assert (stroke["stroke_width"], stroke["points"] >= 10) == (4, True)

    # a rectangle with a fill colour
    await alice.page.locator(".draw-fill").fill("#ffd43b")
    await alice.tool("rect")
    await alice.drag([(700, 200), (900, 330), (1000, 400)])
    await expect(alice.page.locator(".draw-tool[data-tool=select]")).to_have_attribute("aria-pressed", "true")
    await alice.until_settled()
    rect = next(o for o in await alice.objects() if o["kind"] == "rect")
    assert rect["fill"] == "#ffd43b"
    assert (rect["width"], rect["height"]) == (pytest.approx(300, abs=3), pytest.approx(200, abs=3))
    assert await bob.until_object(rect["id"]) == rect
    assert [o["id"] for o in await bob.objects()] == [stroke["id"], rect["id"]]  # drawing order

    # Alice colours the rectangle (still selected after drawing it); Bob moves it
    await alice.page.locator(".draw-stroke").fill("#e03131")
    await bob.until_object(rect["id"], "o.stroke === '#e03131'")
    await bob.drag([(850, 300), (950, 350), (1050, 400)])
    await bob.until_settled()
    moved = await bob.until_object(rect["id"])
    assert moved["left"] == pytest.approx(rect["left"] + 200, abs=3)
    assert moved["top"] == pytest.approx(rect["top"] + 100, abs=3)
    assert await alice.until_object(rect["id"], f"o.version === {moved['version']}") == moved
    await screenshot(alice.page, "draw-alice-after-bob-moved-her-rectangle")

    # undo is per person: Alice's undo takes back her colour, not Bob's move
    await alice.page.keyboard.press("Control+z")
    for person in (alice, bob):
        undone = await person.until_object(rect["id"], "o.stroke === '#1f2937'")
        assert (undone["left"], undone["top"]) == (moved["left"], moved["top"])
    await alice.page.keyboard.press("Control+Shift+z")
    await bob.until_object(rect["id"], "o.stroke === '#e03131'")
    # … and Bob's undo takes back his move, not her colour (the toolbar button does what Ctrl+Z does)
    await bob.page.locator(".draw-button[data-action=undo]").click()
    for person in (alice, bob):
        back = await person.until_object(rect["id"], f"Math.abs(o.left - {rect['left']}) < 2")
        assert back["stroke"] == "#e03131"
    await alice.until_settled()
    await bob.until_settled()

    # a reloaded page shows the same board
    before_reload = await bob.objects()
    await bob.page.reload()
    await bob.loaded()
    await bob.until(f"() => hubDraw.objects().length === {len(before_reload)}")
    assert await bob.objects() == before_reload
    assert await alice.objects() == before_reload

    # export: a PNG made in the browser, and the server's JSON
    async with alice.page.expect_download() as download_info:
        await alice.page.locator(".draw-png").click()
    download = await download_info.value
    assert re.fullmatch(r"board-main-[\d-]+\.png", download.suggested_filename)
    png = tmp_path / download.suggested_filename
    await download.save_as(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    href = await alice.page.locator(".draw-json").get_attribute("href")
    exported = await (await alice.page.request.get(f"{server.url}{href}")).json()
    assert [o["id"] for o in exported["objects"]] == [o["id"] for o in before_reload]

    # delete: Alice selects the rectangle and presses Delete; her undo brings it back for both
    await alice.click(rect["left"] + 150, rect["top"] + 100)
    await alice.until(f"() => hubDraw.selected().includes('{rect['id']}')")
    await alice.page.keyboard.press("Delete")
    await bob.until(f"() => !hubDraw.objects().some((o) => o.id === '{rect['id']}')")
    await alice.page.locator(".draw-button[data-action=undo]").click()
    restored = await bob.until_object(rect["id"])
    assert restored["left"] == pytest.approx(rect["left"], abs=3)
    assert restored["version"] > back["version"]  # back at a new version: the delete's tombstone is older

    # clear needs a confirmation: cancel does nothing; confirming clears both boards, and the others are told
    await bob.page.locator(".draw-clear").click()
    await expect(bob.page.locator(".draw-confirm")).to_be_visible()
    await screenshot(bob.page, "draw-clear-confirmation")
    await bob.page.locator(".draw-clear-cancel").click()
    await expect(bob.page.locator(".draw-confirm")).to_be_hidden()
    assert len(await alice.objects()) == 2
    await bob.page.locator(".draw-clear").click()
    await bob.page.locator(".draw-clear-confirm").click()
    for person in (alice, bob):
        await person.until("() => hubDraw.objects().length === 0 && hubDraw.gen() === 1")
    await expect(alice.page.locator(".draw-notice")).to_have_text("Bob cleared the board.")

    # boards are separate channels: Alice opens another one by name; Bob's "main" stays empty
    await alice.page.locator(".draw-join-input").fill("sketches")
    await alice.page.locator(".draw-join-input").press("Enter")
    await expect(alice.page.locator(".draw-board.active")).to_have_text("sketches")
    await expect(alice.page.locator(".draw-person")).to_have_count(1)
    await alice.tool("ellipse")
    await alice.drag([(400, 400), (600, 520)])
    await alice.until_settled()
    await bob.page.locator(".draw-join-input").fill("sketches")
    await bob.page.locator(".draw-join-input").press("Enter")
    await bob.until("() => hubDraw.board() === 'sketches' && hubDraw.objects().some((o) => o.kind === 'ellipse')")
    await bob.page.locator(".draw-board[data-board=main]").click()
    await bob.until("() => hubDraw.board() === 'main' && hubDraw.objects().length === 0")

    assert_no_console_errors(alice, bob)


async def test_a_full_board_is_shown_and_rolled_back_and_strokes_fit_the_hubs_limits(hub_server, new_page, monkeypatch):
    # the plugin reads its limits when the hub builds it, so a test can lower them for its own hub
    monkeypatch.setenv("HUB_DRAW_MAX_OBJECTS", "2")
    monkeypatch.setenv("HUB_DRAW_MAX_POINTS", "8")
    server = hub_server(plugins=PLUGINS)
    alice = await Person.open(new_page, server, "alice", "Alice")
    bob = await Person.open(new_page, server, "bob", "Bob")
    for left in (100, 400):
        await alice.tool("rect")
        await alice.drag([(left, 100), (left + 200, 250)])
    await bob.until("() => hubDraw.objects().length === 2")

    # a third object: the board is full
    await alice.tool("rect")
    await alice.drag([(800, 100), (1000, 250)])
    error = alice.page.locator(".draw-error")
    await expect(error).to_have_text(
        "conflict: The board is full: it may hold at most 2 objects (max_objects), and this would make 3. "
        "Delete some first."
    )
    await alice.until("() => hubDraw.objects().length === 2 && hubDraw.pending() === 0")  # rolled back
    assert await alice.page.evaluate("hubDraw.history()") == {"undo": 2, "redo": 0}  # the refused one is forgotten
    await screenshot(alice.page, "draw-limit-error")

    # room for one more: a stroke of 30 points is simplified to this hub's max_points (its snapshot says 8),
    # not refused
    await alice.page.locator(".draw-stage").focus()
    await alice.page.keyboard.press("Control+z")
    await bob.until("() => hubDraw.objects().length === 1")
    await alice.tool("pen")
    await alice.drag([(100 + i * 30, 600 + (i % 2) * 50) for i in range(30)])
    await bob.until("() => hubDraw.objects().length === 2")
    await alice.until_settled()
    path = next(o for o in await bob.objects() if o["kind"] == "path")
    assert 2 <= path["points"] <= 8  # hubDraw.objects() reports a path's point count
    assert_no_console_errors(alice, bob)


async def test_two_people_moving_one_object_at_once_end_up_with_the_same_board(hub_server, new_page):
    server = hub_server(plugins=PLUGINS)
    alice = await Person.open(new_page, server, "alice", "Alice")
    bob = await Person.open(new_page, server, "bob", "Bob")
    await alice.tool("rect")
    await alice.drag([(400, 300), (700, 500)])
    await alice.until_settled()
    (rect,) = await alice.objects()
    await bob.until_object(rect["id"])

    # both grab it and drag it in different directions, their edits crossing on the wire
    for person in (alice, bob):
        await person.page.mouse.move(*await person.screen(550, 400))
        await person.page.mouse.down()
    for step in range(1, 9):
        await alice.page.mouse.move(*await alice.screen(550 + step * 25, 400), steps=2)
        await bob.page.mouse.move(*await bob.screen(550, 400 + step * 20), steps=2)
    for person in (alice, bob):
        await person.page.mouse.up()
    for person in (alice, bob):
        await person.until_settled()

    # whoever won, both show the same version of it, drawn in the same place
    for _ in range(100):  # until the last event reaches both (each page's own replies are in already)
        seen = [await person.objects() for person in (alice, bob)]
        if seen[0] == seen[1]:
            break
        await alice.page.wait_for_timeout(50)
    assert seen[0] == seen[1]
    assert seen[0][0]["version"] > 2
    boxes = [(await person.page.evaluate("hubDraw.bounds()"))[rect["id"]] for person in (alice, bob)]
    assert boxes[0] == pytest.approx(boxes[1], abs=0.2)  # the page that won keeps its unrounded drag
    assert_no_console_errors(alice, bob)


async def test_both_pages_reconnect_after_a_hub_restart_and_carry_on_drawing(hub_server, new_page):
    server = hub_server(plugins=PLUGINS)  # the board is kept in the hub's SQLite store, in its data dir
    alice = await Person.open(new_page, server, "alice", "Alice")
    bob = await Person.open(new_page, server, "bob", "Bob")
    await alice.tool("arrow")
    await alice.drag([(200, 700), (500, 500)])
    await alice.tool("line")
    await alice.drag([(200, 800), (600, 800)])
    await alice.until_settled()
    await bob.until("() => hubDraw.objects().length === 2")
    before = await alice.objects()
    assert [o["kind"] for o in before] == ["arrow", "line"]

    server.restart()  # same port, same data dir

    for person in (alice, bob):
        await expect(person.page.locator("#hub-state")).to_have_attribute("data-state", "open")
        await expect(person.page.locator(".draw-notice")).to_have_text("Reconnected: the board was reloaded.")
        await expect(person.page.locator(".draw-person")).to_have_count(2)
        assert await person.objects() == before

    # and they carry on: Bob draws an ellipse, Alice writes a text
    await bob.tool("ellipse")
    await bob.drag([(900, 300), (1200, 500)])
    await alice.until("() => hubDraw.objects().some((o) => o.kind === 'ellipse')")
    await alice.tool("text")
    await alice.click(900, 700)
    await alice.page.keyboard.type("Still here")
    await alice.page.keyboard.press("Escape")
    await alice.until_settled()
    text = await alice.until("() => hubDraw.objects().find((o) => o.kind === 'text')")
    assert text["text"] == "Still here"
    assert await bob.until_object(text["id"], f"o.version === {text['version']}") == text
    await screenshot(alice.page, "draw-after-restart")
    assert_no_console_errors(alice, bob)


# ---- the conflict rule in the browser is the server's ------------------------------------------------------

REPLAY = """
async (cases) => {
  const { Replica } = await import("/plugins/draw/board.js");
  return cases.map(({ floor, ops }) => {
    const replica = new Replica();
    replica.load({ gen: 0, floor, objects: [], deleted: [] });
    for (const op of ops) {
      if (op.clear !== undefined) replica.clear(op.clear);
      else replica.apply(op.gen, op.deleted
        ? { id: op.id, version: op.version, nonce: op.nonce, deleted: true }
        : { kind: "rect", id: op.id, version: op.version, nonce: op.nonce, left: 0, top: 0 });
    }
    const records = {};
    for (const [id, r] of replica.records) records[id] = [r.version, r.nonce, Boolean(r.deleted)];
    return { gen: replica.gen, records };
  });
}
"""


def random_case(rng: random.Random) -> dict[str, Any]:
    ops: list[dict[str, Any]] = []
    for _ in range(rng.randint(1, 25)):
        if rng.random() < 0.12:
            ops.append({"clear": rng.randint(0, 3)})
        else:
            ops.append(
                {
                    "gen": rng.randint(0, 3),
                    "id": rng.choice("abc"),
                    "version": rng.randint(1, 4),
                    "nonce": rng.randint(0, 2),
                    "deleted": rng.random() < 0.3,
                }
            )
    return {"floor": rng.choice([0, 0, 2]), "ops": ops}


def replay_in_python(case: dict[str, Any]) -> dict[str, Any]:
    replica = board.Replica(floor=case["floor"])
    for op in case["ops"]:
        if "clear" in op:
            replica.clear(op["clear"])
        else:
            replica.apply(op["gen"], op["id"], board.Entry(board.Stamp(op["version"], op["nonce"]), op["deleted"]))
    records = {i: [e.stamp.version, e.stamp.nonce, e.deleted] for i, e in replica.records.items()}
    return {"gen": replica.gen, "records": records}


SETTLE = """
async () => {
  const { Board } = await import("/plugins/draw/board.js");
  const rect = (version, nonce, left) => ({ kind: "rect", id: "r", version, nonce, left, top: 0 });
  const out = {};
  const b = new Board();
  b.load({ gen: 0, floor: 0, objects: [rect(1, 5, 0)], deleted: [] });
  const mine = rect(2, 9, 100);
  b.propose(mine);
  out.optimistic = b.shown("r").left;
  // the server had another version 2 with a higher nonce: the reply's current wins
  b.settle(0, [mine], { gen: 0, applied: [], conflicts: [{ id: "r", current: rect(2, 11, 50) }] });
  out.afterConflict = b.shown("r").left;
  // an equal stamp with another body (a nonce collision): the server's is taken
  const twin = rect(3, 7, 300);
  b.propose(twin);
  b.settle(0, [twin], { gen: 0, applied: [], conflicts: [{ id: "r", current: rect(3, 7, 200) }] });
  out.collision = b.shown("r").left;
  // an error rolls back to the server's record
  const refused = rect(4, 1, 999);
  b.propose(refused);
  b.abandon([refused]);
  out.rolledBack = b.shown("r").left;
  // a reply from after a clear: the board moves to the new generation and the old edit is gone
  const late = rect(4, 2, 5);
  b.propose(late);
  b.settle(0, [late], { gen: 1, applied: [], conflicts: [{ id: "r", current: null }] });
  out.cleared = [b.gen, b.shown("r")];
  out.nextVersion = b.nextStamp("q").version;
  return out;
}
"""


async def test_the_panel_applies_the_same_conflict_rule_as_the_server(hub_server, new_page):
    server = hub_server(plugins=PLUGINS)
    page = await new_page(f"{server.url}/healthz")
    rng = random.Random(20250705)
    cases = [random_case(rng) for _ in range(300)]
    assert await page.evaluate(REPLAY, cases) == [replay_in_python(case) for case in cases]
    assert await page.evaluate(SETTLE) == {
        "optimistic": 100,
        "afterConflict": 50,
        "collision": 200,
        "rolledBack": 200,
        "cleared": [1, None],
        "nextVersion": 1,
    }
