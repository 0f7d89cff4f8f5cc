"""Authorization over real sockets: channel policies and the hub_authorize hook, for subscribe and publish."""

from __future__ import annotations

from types import ModuleType

import pytest
from pydantic import BaseModel

import hub_realtime_plugins.chat
from hub import Channel, Context, Identity, deny_anonymous, hookimpl, only_room_owner
from hub.testing import ReplyError


class Note(BaseModel):
    text: str


def make_inbox_plugin() -> ModuleType:
    """A per-user inbox (only its owner subscribes) where guests may not post."""
    inbox = Channel("inbox", can_subscribe=only_room_owner, can_publish=deny_anonymous)
    inbox.event("inbox.noted", Note)

    @inbox.on("inbox.note", Note)
    async def note(ctx: Context, msg: Note) -> None:
        await ctx.publish("inbox.noted", msg)

    module = ModuleType("inbox_plugin")
    module.hub_channels = hookimpl(lambda: [inbox])  # type: ignore[attr-defined]
    return module


class ReadOnlyRooms:
    """Only users with the "admin" scope publish on chat:announcements; nobody may subscribe to chat:secret."""

    @hookimpl
    def hub_authorize(self, identity: Identity, action: str, channel: str, message_type: str | None) -> bool | None:
        if channel == "chat:announcements" and action == "publish":
            return "admin" in identity.scopes
        if channel == "chat:secret" and action == "subscribe":
            return False
        return None


@pytest.fixture
def server(hub_server):
    plugins_in_test = {
        "chat": hub_realtime_plugins.chat.Chat,
        "inbox": make_inbox_plugin(),
        "readonly": ReadOnlyRooms(),
    }
    return hub_server(plugins=plugins_in_test)


async def test_only_the_owner_subscribes_to_a_per_user_channel(server, hub_client):
    alice = await hub_client(server, user="alice")
    bob = await hub_client(server, user="bob")
    await alice.sub("inbox:alice")
    with pytest.raises(ReplyError) as refused:
        await bob.sub("inbox:alice")
    assert refused.value.code == "forbidden"
    await bob.pub("inbox:alice", "inbox.note", {"text": "hi alice"})  # anyone signed in may post to it
    assert (await alice.next_event("inbox:alice", "inbox.noted"))["data"] == {"text": "hi alice"}


async def test_guests_may_not_publish_where_the_policy_denies_anonymous(server, hub_client):
    guest = await hub_client(server)
    assert guest.hello["user"]["anonymous"] is True
    with pytest.raises(ReplyError) as refused:
        await guest.pub("inbox:alice", "inbox.note", {"text": "spam"})
    assert refused.value.code == "forbidden"
    assert (await guest.call({"op": "ping"})) is None  # the socket carries on


async def test_hub_authorize_refuses_publish_without_the_scope_and_allows_with_it(server, hub_client):
    reader = await hub_client(server, user="reader")
    admin = await hub_client(server, token=server.token("root", scopes=("admin",)))
    await reader.sub("chat:announcements")
    with pytest.raises(ReplyError) as refused:
        await reader.pub("chat:announcements", "chat.send", {"text": "me too"})
    assert refused.value.code == "forbidden"
    await admin.pub("chat:announcements", "chat.send", {"text": "maintenance at noon"})
    event = await reader.next_event("chat:announcements", "chat.posted")
    assert event["data"]["text"] == "maintenance at noon"


async def test_hub_authorize_refuses_subscribe_and_nothing_else_changes(server, hub_client):
    alice = await hub_client(server, user="alice")
    with pytest.raises(ReplyError) as refused:
        await alice.sub("chat:secret")
    assert refused.value.code == "forbidden"
    assert "chat:secret" in refused.value.msg
    await alice.sub("chat:lobby")  # other channels are unaffected
    await alice.pub("chat:lobby", "chat.send", {"text": "fine here"})
    assert (await alice.next_event("chat:lobby", "chat.posted"))["data"]["text"] == "fine here"
