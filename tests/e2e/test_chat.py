"""chat over real sockets: two clients in a room, history after a restart, typing, presence, edit/delete."""

from __future__ import annotations

import pytest

from hub.testing import ReplyError


async def test_two_clients_chat_in_one_room(hub_server, hub_client):
    server = hub_server()
    alice = await hub_client(server, user="alice")
    bob = await hub_client(server, user="bob")
    await alice.sub("chat:lobby")
    await bob.sub("chat:lobby")

    posted = await alice.pub("chat:lobby", "chat.send", {"text": "  hello bob  "})
    assert posted["text"] == "hello bob"
    assert posted["author"] == {"user": "alice", "name": "alice"}

    event = await bob.next_event("chat:lobby", "chat.posted")
    assert event["data"] == posted
    assert event["offset"] == 1
    assert (await alice.next_event("chat:lobby", "chat.posted"))["data"] == posted  # the author sees it too

    await bob.pub("chat:lobby", "chat.send", {"text": "hi alice"})
    reply = await alice.next_event("chat:lobby", "chat.posted")
    assert reply["data"]["text"] == "hi alice"
    assert reply["data"]["author"]["user"] == "bob"
    assert reply["offset"] == 2


async def test_late_joiner_gets_recent_messages_and_history_survives_restart(hub_server, hub_client):
    server = hub_server()
    alice = await hub_client(server, user="alice")
    await alice.sub("chat:general")
    for n in range(3):
        await alice.pub("chat:general", "chat.send", {"text": f"message {n}"})
    await alice.close()

    server.restart()

    carol = await hub_client(server, user="carol")
    data = await carol.sub("chat:general")
    assert [m["text"] for m in data["snapshot"]["messages"]] == ["message 0", "message 1", "message 2"]
    assert data["recovered"] is False


async def test_typing_is_ephemeral_and_presence_tracks_joins_and_leaves(hub_server, hub_client):
    server = hub_server()
    alice = await hub_client(server, user="alice")
    bob = await hub_client(server, user="bob")
    await alice.sub("chat:room")
    data = await bob.sub("chat:room")
    assert sorted(m["user"] for m in data["presence"]) == ["alice", "bob"]
    joined = await alice.next_event("chat:room", "chat.joined")
    assert joined["data"]["user"] == "bob"

    await bob.pub("chat:room", "chat.typing", {"active": True})
    typing = await alice.next_event("chat:room", "chat.typing")
    assert typing["data"] == {"user": "bob", "name": "bob", "active": True}
    assert "offset" not in typing  # ephemeral: not in history

    await bob.close()
    left = await alice.next_event("chat:room", "chat.left")
    assert left["data"]["user"] == "bob"
    assert [m["user"] for m in (await alice.call({"op": "presence", "ch": "chat:room"}))["presence"]] == ["alice"]


async def test_only_the_author_edits_or_deletes(hub_server, hub_client):
    server = hub_server()
    alice = await hub_client(server, user="alice")
    bob = await hub_client(server, user="bob")
    await alice.sub("chat:x")
    await bob.sub("chat:x")
    posted = await alice.pub("chat:x", "chat.send", {"text": "typo"})

    with pytest.raises(ReplyError) as refused:
        await bob.pub("chat:x", "chat.edit", {"id": posted["id"], "text": "hijacked"})
    assert refused.value.code == "forbidden"
    with pytest.raises(ReplyError) as refused:
        await bob.pub("chat:x", "chat.delete", {"id": posted["id"]})
    assert refused.value.code == "forbidden"

    edited = await alice.pub("chat:x", "chat.edit", {"id": posted["id"], "text": "fixed"})
    assert edited["text"] == "fixed"
    assert edited["edited_ts"] is not None
    assert (await bob.next_event("chat:x", "chat.edited"))["data"]["text"] == "fixed"

    await alice.pub("chat:x", "chat.delete", {"id": posted["id"]})
    assert (await bob.next_event("chat:x", "chat.deleted"))["data"] == {"id": posted["id"]}
    with pytest.raises(ReplyError) as missing:
        await alice.pub("chat:x", "chat.delete", {"id": posted["id"]})
    assert missing.value.code == "not_found"

    carol = await hub_client(server, user="carol")
    assert (await carol.sub("chat:x"))["snapshot"]["messages"] == []
