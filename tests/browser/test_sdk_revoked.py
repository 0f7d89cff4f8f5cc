"""hub.js in a real Chromium when the hub ends a subscription itself (``{"op":"unsub",...}``: access withdrawn):
the app hears it through the subscription's ``onError`` (``error.revoked``) and the Hub's ``revoked`` event,
no handler runs for the channel afterwards, and the subscription is not sent again after a reconnect."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from hub import Channel, Context, HubError, hookimpl
from tests.browser.conftest import sdk_page, wait_js

pytestmark = pytest.mark.asyncio(loop_scope="session")

FAST_RECONNECT = {"minDelay": 50, "maxDelay": 300}


class Said(BaseModel):
    text: str


class Kick(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str


class Door:
    """``door:<room>``: anyone may come in unless kicked out with ``door.kick``, which ends their subscription."""

    def __init__(self) -> None:
        self.kicked: set[tuple[str, str]] = set()  # (user, channel)
        self.subscribes: list[tuple[str, str]] = []  # (user, channel) of every sub the rule saw
        channel = Channel("door", presence=True)
        channel.event("door.said", Said)

        @channel.authorize
        async def admit(ctx: Context, action: str, message_type: str | None) -> None:
            if action == "subscribe":
                self.subscribes.append((ctx.identity.user, ctx.channel))
            if (ctx.identity.user, ctx.channel) in self.kicked:
                raise HubError("forbidden", f"{ctx.identity.name} was shown out of {ctx.channel!r}.")

        @channel.on("door.say", Said)
        async def say(ctx: Context, msg: Said) -> None:
            await ctx.publish("door.said", msg)

        @channel.on("door.kick", Kick)
        async def kick(ctx: Context, msg: Kick) -> None:
            self.kicked.add((msg.user, ctx.channel))
            ctx.revoke(lambda identity: identity.user == msg.user, msg="You were shown out.")

        self.channel = channel

    @hookimpl
    def hub_channels(self) -> list[Channel]:
        return [self.channel]


# Subscribes like an app would and records what the SDK tells it, beside the harness's own record.
WATCH = """
(channel) => {
  const log = (window.watched = { calls: [], revoked: [] });
  window.hub.on("revoked", ({ channel, error }) =>
    log.revoked.push({ channel, code: error.code, message: error.message, revoked: error.revoked }));
  window.hub.subscribe(channel, {
    onSubscribed: () => log.calls.push({ kind: "subscribed" }),
    onEvent: (frame) => log.calls.push({ kind: "event", type: frame.type }),
    onError: (error) => log.calls.push({ kind: "error", code: error.code, message: error.message,
                                         revoked: error.revoked, retrying: error.retrying }),
  });
}
"""


async def test_a_revoked_subscription_is_reported_and_never_sent_again(hub_server, new_page, py_client):
    door = Door()
    server = hub_server(plugins={"door": door})
    keeper = await py_client(server, user="keeper")
    await keeper.sub("door:hall")
    page = await sdk_page(new_page, server.url, **FAST_RECONNECT)
    await wait_js(page, "() => window.hub.state === 'open'")
    guest = await page.evaluate("window.hub.me.user")
    await page.evaluate(WATCH, "door:hall")
    await wait_js(page, "() => window.watched.calls.some(c => c.kind === 'subscribed')")
    await keeper.pub("door:hall", "door.say", {"text": "hello"})
    await wait_js(page, "() => window.watched.calls.some(c => c.type === 'door.said')")

    await keeper.pub("door:hall", "door.kick", {"user": guest})
    error = await wait_js(page, "() => window.watched.calls.find(c => c.kind === 'error')")
    assert error == {
        "kind": "error",
        "code": "forbidden",
        "message": "You were shown out.",
        "revoked": True,
        "retrying": False,
    }
    revoked: list[dict[str, Any]] = await page.evaluate("window.watched.revoked")
    assert revoked == [{"channel": "door:hall", "code": "forbidden", "message": "You were shown out.", "revoked": True}]
    assert await page.evaluate("window.hub.channels") == []
    assert (await keeper.next_event("door:hall", "door.left"))["data"]["user"] == guest
    calls = len(await page.evaluate("window.watched.calls"))

    # The hub restarts; the SDK reconnects (as the same guest) and resubscribes everything it still follows.
    server.restart()
    await wait_js(page, "() => window.record.states.includes('reconnecting') && window.hub.state === 'open'")
    assert await page.evaluate("window.hub.me.user") == guest
    # A subscription made now is sent after every resubscription, so once it is confirmed a resent
    # door:hall would have reached the rule already.
    await page.evaluate("window.follow('door:porch')")
    await wait_js(page, "() => (window.record.channels['door:porch'] || []).some(e => e.kind === 'subscribed')")
    assert [channel for user, channel in door.subscribes if user == guest] == ["door:hall", "door:porch"]
    assert await page.evaluate("window.hub.channels") == ["door:porch"]
    assert len(await page.evaluate("window.watched.calls")) == calls  # no handler of door:hall ran again
