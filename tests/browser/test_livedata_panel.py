"""The livedata panel in a real Chromium: symbols with live prices and sparklines; unfollowing a symbol stops
its updates and (as the page was its only subscriber) the hub's feed; following it again resumes both; the
choice survives a reload; the toggles work from the keyboard; no console errors."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import ConsoleMessage, Page, expect

from hub_realtime_plugins.livedata import Livedata
from tests.browser.conftest import WAIT_MS, screenshot, wait_js

pytestmark = pytest.mark.asyncio(loop_scope="session")

SYMBOLS = ["ACME", "GLOBX", "HOOLI"]
CHANGE = re.compile(r"^[+\u2212±][\d,.]+ \([+\u2212±][\d.]+%\)$")  # "+1.25 (+0.52%)", with a real minus sign

FAST_ENV = {
    "HUB_LIVEDATA_SYMBOLS": ",".join(SYMBOLS),
    "HUB_LIVEDATA_INTERVAL": "0.05",
    "HUB_LIVEDATA_SEED": "11",
    "HUB_LIVEDATA_LEASE_TTL": "0.6",
    "HUB_LIVEDATA_CHECK_INTERVAL": "0.05",
    "HUB_LIVEDATA_HISTORY_SIZE": "30",
}


@pytest.fixture
def livedata_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fast settings from the environment, as in production: the hub is given the class itself (a factory
    defined in this module would have the hub look for the panel in this module's package)."""
    for name, value in FAST_ENV.items():
        monkeypatch.setenv(name, value)


async def feeds_running(url: str) -> dict[str, bool]:
    async with httpx.AsyncClient(base_url=url) as http:
        listing = (await http.get("/api/livedata/symbols")).json()
    return {entry["symbol"]: entry["feed_here"] for entry in listing["symbols"]}


async def seq_of(page: Page, symbol: str) -> int:
    value = await page.locator(f"tr[data-symbol={symbol}]").get_attribute("data-seq")
    return int(value or 0)


async def wait_seq_above(page: Page, symbol: str, seq: int) -> int:
    return int(
        await wait_js(
            page,
            "([symbol, seq]) => { const v = Number(document.querySelector(`tr[data-symbol=${symbol}]`)"
            "?.dataset.seq ?? 0); return v > seq && v; }",
            [symbol, seq],
        )
    )


async def wait_feeds(url: str, page: Page, expected: dict[str, bool]) -> None:
    """Poll the hub's symbol list until it matches (through the page's event loop, on a condition)."""
    for _ in range(WAIT_MS // 25):
        if await feeds_running(url) == expected:
            return
        await page.wait_for_timeout(25)
    assert await feeds_running(url) == expected


async def test_the_panel_shows_live_prices_and_follows_and_unfollows(hub_server, livedata_env, new_page):
    server = hub_server(plugins={"livedata": Livedata})
    console_errors: list[str] = []
    page = await new_page()
    page.on("console", lambda m: _record_error(console_errors, m))
    await page.goto(server.url)
    await expect(page.locator("#panels")).to_have_attribute("data-status", "ready")
    panel = page.locator(".panel[data-plugin=livedata]")
    await expect(panel.locator(".livedata")).to_have_attribute("data-status", "ready")

    # every symbol, followed by default, with live prices, a change and a sparkline
    rows = panel.locator("tbody tr")
    await expect(rows).to_have_count(3)
    await expect(panel.locator(".livedata-symbol")).to_have_text(SYMBOLS)
    await expect(panel.locator(".livedata-summary")).to_have_text("Following 3 of 3 symbols")
    for symbol in SYMBOLS:
        row = panel.locator(f"tr[data-symbol={symbol}]")
        await expect(row.locator(".livedata-toggle")).to_have_attribute("aria-pressed", "true")
        await expect(row.locator(".livedata-price")).to_have_text(re.compile(r"^[\d,]+\.\d{2,4}$"))
        await expect(row.locator(".livedata-change")).to_have_text(CHANGE)
    first = await seq_of(page, "ACME")
    await wait_seq_above(page, "ACME", first + 3)  # prices update live
    await wait_js(page, "() => Number(document.querySelector('tr[data-symbol=ACME] .livedata-spark')"
                  ".dataset.points) >= 4")  # fmt: skip
    points = await panel.locator("tr[data-symbol=ACME] polyline").get_attribute("points")
    assert points is not None
    assert len(points.split()) >= 4
    change_colour = await panel.locator("tr[data-symbol=ACME] .livedata-change").evaluate(
        "el => [el.dataset.dir, getComputedStyle(el).color]"
    )
    assert change_colour in (["up", "rgb(43, 138, 62)"], ["down", "rgb(201, 42, 42)"], ["flat", "rgb(102, 112, 133)"])
    await screenshot(page, "livedata-panel-live")
    assert await feeds_running(server.url) == dict.fromkeys(SYMBOLS, True)

    # unfollow ACME (with the keyboard): its price stops while the others go on, and the hub stops its feed
    toggle = panel.locator("tr[data-symbol=ACME] .livedata-toggle")
    await toggle.focus()
    await page.keyboard.press("Enter")
    await expect(toggle).to_have_attribute("aria-pressed", "false")
    await expect(toggle).to_have_text("Follow")
    await expect(panel.locator(".livedata-summary")).to_have_text("Following 2 of 3 symbols")
    await wait_feeds(server.url, page, {"ACME": False, "GLOBX": True, "HOOLI": True})
    stopped_at = await seq_of(page, "ACME")
    await wait_seq_above(page, "GLOBX", await seq_of(page, "GLOBX") + 5)  # others moved on for 5 ticks ...
    assert await seq_of(page, "ACME") == stopped_at  # ... and ACME did not
    await expect(panel.locator("tr[data-symbol=ACME]")).to_have_attribute("data-followed", "false")

    # follow it again: updates resume from the stored session, and the feed runs again
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-pressed", "true")
    await wait_seq_above(page, "ACME", stopped_at + 2)
    await wait_feeds(server.url, page, dict.fromkeys(SYMBOLS, True))

    # the choice is remembered: unfollow HOOLI (Space on the button), reload, HOOLI stays unfollowed
    hooli = panel.locator("tr[data-symbol=HOOLI] .livedata-toggle")
    await hooli.focus()
    await page.keyboard.press("Space")
    await expect(hooli).to_have_attribute("aria-pressed", "false")
    await page.reload()
    await expect(page.locator(".livedata")).to_have_attribute("data-status", "ready")
    await expect(page.locator("tr[data-symbol=HOOLI] .livedata-toggle")).to_have_attribute("aria-pressed", "false")
    await expect(page.locator("tr[data-symbol=ACME] .livedata-toggle")).to_have_attribute("aria-pressed", "true")
    await expect(page.locator(".livedata-summary")).to_have_text("Following 2 of 3 symbols")
    # HOOLI shows its last known price (from the symbol list), dimmed, without updates
    await expect(page.locator("tr[data-symbol=HOOLI] .livedata-price")).to_have_text(re.compile(r"\d"))
    await wait_seq_above(page, "ACME", await seq_of(page, "ACME") + 2)
    await wait_feeds(server.url, page, {"ACME": True, "GLOBX": True, "HOOLI": False})
    assert console_errors == []


async def test_price_flashes_respect_reduced_motion(hub_server, livedata_env, browser):
    server = hub_server(plugins={"livedata": Livedata})
    for motion, expect_flash in (("reduce", False), ("no-preference", True)):
        context = await browser.new_context(reduced_motion=motion)
        try:
            page = await context.new_page()
            await page.goto(server.url)
            await expect(page.locator(".livedata")).to_have_attribute("data-status", "ready")
            # record whether any price cell ever gets a flash class over a few ticks
            flashed = await page.evaluate(
                """() => new Promise((resolve) => {
                  const seen = { flash: false, changes: 0 };
                  const observer = new MutationObserver((records) => {
                    for (const r of records) {
                      if (r.type === "attributes" && /flash-/.test(r.target.className)) seen.flash = true;
                      if (r.type === "childList") seen.changes += 1;
                    }
                    if (seen.changes >= 12) { observer.disconnect(); resolve(seen.flash); }
                  });
                  for (const el of document.querySelectorAll(".livedata-price")) {
                    observer.observe(el, { attributes: true, attributeFilter: ["class"], childList: true });
                  }
                })"""
            )
            assert flashed is expect_flash, motion
        finally:
            await context.close()


def _record_error(errors: list[str], message: ConsoleMessage) -> None:
    if message.type == "error":
        errors.append(message.text)
