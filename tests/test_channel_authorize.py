"""A channel's async access rule (``Channel(authorize=...)`` / ``@channel.authorize``) and the server's own
``unsub`` (``hub.revoke`` / ``ctx.revoke``), over real sockets: a refused client leaves no trace in presence,
the rule runs for sub, presence and pub after the synchronous policies, and a revoked subscription gets a
notice, a ``left`` for the others and no further event."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ConfigDict

from hub import Channel, Context, HubError, deny_anonymous, hookimpl
from hub.testing import HubClient, ReplyError, wait_until


class Said(BaseModel):
    text: str


class Kick(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str


class Kicked(BaseModel):
    ended: int


class Door:
    """``door:<user>+<user>...``: a presence channel whose async rule admits the users its room names, minus
    the ones kicked out (``door.kick`` revokes them). A user in ``slow`` waits in the snapshot until released."""

    def __init__(self) -> None:
        self.kicked: set[str] = set()
        self.checks: list[tuple[str, str, str | None]] = []
        self.slow: set[str] = set()
        self.waiting: asyncio.Event | None = None
        channel = Channel("door", presence=True, can_subscribe=deny_anonymous)
        channel.event("door.said", Said)

        @channel.authorize
        async def admit(ctx: Context, action: str, message_type: str | None) -> None:
            self.checks.append((ctx.identity.user, action, message_type))
            await asyncio.sleep(0)  # a real rule reads the store
            if ctx.identity.user not in ctx.room.split("+") or ctx.identity.user in self.kicked:
                raise HubError("forbidden", f"{ctx.identity.name} may not enter {ctx.channel!r}.")

        @channel.snapshot
        async def snapshot(ctx: Context) -> Said:
            if ctx.identity.user in self.slow:
                self.waiting = asyncio.Event()
                await self.waiting.wait()
            return Said(text="welcome")

        @channel.on("door.say", Said)
        async def say(ctx: Context, msg: Said) -> None:
            await ctx.publish("door.said", msg)

        @channel.on("door.kick", Kick)
        async def kick(ctx: Context, msg: Kick) -> Kicked:
            self.kicked.add(msg.user)
            ended = ctx.revoke(lambda identity: identity.user == msg.user, msg=f"{msg.user} was shown out.")
            return Kicked(ended=ended)

        self.channel = channel

    @hookimpl
    def hub_channels(self) -> list[Channel]:
        return [self.channel]


@pytest.fixture
def door() -> Door:
    return Door()


@pytest.fixture
def server(hub_server, door):
    return hub_server(plugins={"door": door})


async def refused(call: Any) -> ReplyError:
    with pytest.raises(ReplyError) as refusal:
        await call
    return refusal.value


async def next_unsub(client: HubClient) -> dict[str, Any]:
    while True:
        frame = await client.next_unsolicited()
        if frame.get("op") == "unsub":
            return frame


async def members(client: HubClient, channel: str) -> list[str]:
    return sorted(m["user"] for m in (await client.call({"op": "presence", "ch": channel}))["presence"])


async def test_a_refused_client_leaves_no_trace_and_the_rule_runs_after_the_policies(server, door, hub_client):
    alice = await hub_client(server, user="alice")
    await alice.sub("door:alice+bob")
    carol = await hub_client(server, user="carol")
    answers = [
        await refused(carol.sub("door:alice+bob")),
        await refused(carol.call({"op": "presence", "ch": "door:alice+bob"})),
        await refused(carol.pub("door:alice+bob", "door.say", {"text": "let me in"})),
    ]
    assert {(a.code, a.msg) for a in answers} == {("forbidden", "carol may not enter 'door:alice+bob'.")}
    await alice.no_event("door:alice+bob")  # no door.joined, no door.left
    assert await members(alice, "door:alice+bob") == ["alice"]
    guest = await hub_client(server)
    assert (await refused(guest.sub("door:alice+bob"))).code == "forbidden"  # deny_anonymous, first
    assert [check for check in door.checks if check[0] == "carol"] == [
        ("carol", "subscribe", None),
        ("carol", "presence", None),
        ("carol", "publish", "door.say"),
    ]
    assert not any(check[0].startswith("guest-") for check in door.checks)  # the rule never saw the guest


async def test_revoking_ends_the_subscription_with_a_notice_and_nothing_after(server, door, hub_client):
    room = "door:alice+bob+carl"
    alice, bob, carl = [await hub_client(server, user=user) for user in ("alice", "bob", "carl")]
    for client in (alice, bob, carl):
        await client.sub(room)
    assert (await bob.pub(room, "door.kick", {"user": "carl"})) == {"ended": 1}
    assert await next_unsub(carl) == {"op": "unsub", "ch": room, "code": "forbidden", "msg": "carl was shown out."}
    for client in (alice, bob):
        assert (await client.next_event(room, "door.left"))["data"]["user"] == "carl"
    await alice.pub(room, "door.say", {"text": "after"})
    assert (await bob.next_event(room, "door.said"))["data"] == {"text": "after"}
    await carl.no_event(room)
    assert (await refused(carl.unsub(room))).code == "not_subscribed"
    assert (await refused(carl.sub(room))).code == "forbidden"
    assert await members(alice, room) == ["alice", "bob"]

    async def let_back() -> None:
        door.kicked.discard("carl")

    await server.call(let_back())
    assert (await carl.sub(room))["snapshot"] == {"text": "welcome"}
    assert (await alice.next_event(room, "door.joined"))["data"]["user"] == "carl"
    await alice.pub(room, "door.say", {"text": "back"})
    assert (await carl.next_event(room, "door.said"))["data"] == {"text": "back"}


async def test_hub_revoke_counts_and_checks_its_arguments(server, hub_client):
    hub = server.app.state.hub
    alice = await hub_client(server, user="alice")
    bob = await hub_client(server, user="bob")
    for client in (alice, bob):
        await client.sub("door:alice+bob")

    async def revoke(channel: str, **kwargs: Any) -> int:
        return int(hub.revoke(channel, lambda identity: not identity.anonymous, **kwargs))

    assert await server.call(revoke("door:alice+bob", code="not_found", msg="The door is gone.")) == 2
    for client in (alice, bob):
        assert (await next_unsub(client))["code"] == "not_found"
    assert await server.call(revoke("door:alice+bob")) == 0  # nobody follows it any more
    with pytest.raises(ValueError, match="lower_snake_case"):
        await server.call(revoke("door:x", code="Not A Code"))
    with pytest.raises(HubError):
        await server.call(revoke("nowhere:x"))
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert "hub_revoked_subscriptions_total 2" in (await http.get("/metrics")).text


async def test_a_sub_still_being_prepared_when_access_goes_is_refused(server, door, hub_client):
    room = "door:alice+bob"
    bob = await hub_client(server, user="bob")
    await bob.sub(room)
    alice = await hub_client(server, user="alice")
    door.slow.add("alice")
    joining = asyncio.create_task(alice.sub(room))
    await wait_until(lambda: door.waiting is not None)
    assert (await bob.pub(room, "door.kick", {"user": "alice"})) == {"ended": 1}

    async def release() -> None:
        assert door.waiting is not None
        door.waiting.set()

    await server.call(release())
    refusal = await refused(joining)
    assert (refusal.code, refusal.msg) == ("forbidden", "alice was shown out.")
    assert alice.unsolicited.empty()  # an err for the sub, no unsub notice
    assert (await bob.next_event(room, "door.joined"))["data"]["user"] == "alice"  # she was let in, then out
    assert (await bob.next_event(room, "door.left"))["data"]["user"] == "alice"
    assert await members(bob, room) == ["bob"]
    assert (await refused(alice.unsub(room))).code == "not_subscribed"


def test_the_rule_must_be_async_and_single() -> None:
    def sync_rule(ctx: Context, action: str, message_type: str | None) -> None:
        return None

    async def rule(ctx: Context, action: str, message_type: str | None) -> None:
        return None

    with pytest.raises(TypeError, match="async"):
        Channel("door", authorize=sync_rule)  # type: ignore[arg-type]
    channel = Channel("door", authorize=rule)
    assert channel.authorizer is rule
    with pytest.raises(ValueError, match="already"):
        channel.authorize(rule)
    assert Channel("door").authorizer is None
