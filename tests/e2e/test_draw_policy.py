"""draw's edit policy over real sockets (docs/draw.md, "Who may change what"): every object records its creator;
``HUB_DRAW_EDIT=anyone`` (the default) lets everyone change everything, ``owner`` lets only the creator and
moderators change or delete an object, and clear a board that holds other users' objects. Boards stored before
owners were recorded still load."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from hub.testing import HubClient, HubServer, ReplyError
from hub_realtime_plugins.draw import Draw, DrawSettings, board
from hub_realtime_plugins.draw.board import Editor, EditPolicy, Meta

DRAW = {"draw": Draw}
CH = "draw:team"


def rect(object_id: str, version: int = 1, nonce: int = 0, **fields: Any) -> dict[str, Any]:
    return {"id": object_id, "version": version, "nonce": nonce, "kind": "rect", "left": 10, "top": 20, **fields}


async def put(client: HubClient, *objects: dict[str, Any], gen: int = 0) -> Any:
    return await client.pub(CH, "draw.put", {"gen": gen, "objects": list(objects)})


async def delete(client: HubClient, *stamps: tuple[str, int, int], gen: int = 0) -> Any:
    return await client.pub(
        CH, "draw.delete", {"gen": gen, "objects": [{"id": i, "version": v, "nonce": n} for i, v, n in stamps]}
    )


async def board_of(server: HubServer, hub_client: Any) -> dict[str, Any]:
    viewer = await hub_client(server, user="viewer")
    snapshot: dict[str, Any] = (await viewer.sub(CH))["snapshot"]
    await viewer.close()
    return snapshot


def owners(snapshot: dict[str, Any]) -> dict[str, str | None]:
    return {record["id"]: record["owner"] for record in snapshot["objects"] + snapshot["deleted"]}


@pytest.fixture
def owner_policy(monkeypatch):
    monkeypatch.setenv("HUB_DRAW_EDIT", "owner")  # read when the hub builds the plugin


@pytest.fixture
async def team(hub_server, hub_client):
    """(server, alice, bob, moderator); bob watches the board."""

    async def start() -> tuple[HubServer, HubClient, HubClient, HubClient]:
        server = hub_server(plugins=DRAW)
        alice = await hub_client(server, user="alice")
        bob = await hub_client(server, user="bob")
        moderator = await hub_client(server, token=server.token("mo", scopes=("moderator",)))
        await bob.sub(CH)
        return server, alice, bob, moderator

    return start


# ---- the default: anyone ------------------------------------------------------------------------------------


async def test_every_object_records_its_creator_and_keeps_it_whoever_edits_it(team, hub_client):
    server, alice, bob, _ = await team()
    await put(alice, rect("a"))
    created = await bob.next_event(CH, "draw.updated")
    assert created["data"]["objects"][0]["owner"] == "alice"

    moved = await put(bob, rect("a", 2, 0, left=99, owner="bob"))  # a client cannot claim an object
    assert moved["applied"] == ["a"]
    event = await bob.next_event(CH, "draw.updated")
    assert (event["data"]["user"], event["data"]["objects"][0]["owner"]) == ("bob", "alice")
    await put(bob, rect("b", owner="alice"))  # nor give one away: a new object is its sender's
    assert (await bob.next_event(CH, "draw.updated"))["data"]["objects"][0]["owner"] == "bob"
    await delete(bob, ("a", 3, 0))

    snapshot = await board_of(server, hub_client)
    assert snapshot["edit"] == "anyone"
    assert owners(snapshot) == {"a": "alice", "b": "bob"}  # a's tombstone too
    assert await bob.pub(CH, "draw.clear", {"gen": 0}) == {"gen": 1, "cleared": True}


async def test_a_retried_edit_of_someone_elses_object_is_a_repeat(team):
    """The stored bytes carry the creator as owner; a retry is encoded the same way, so it is seen as the same edit."""
    _, alice, bob, _ = await team()
    await put(alice, rect("a"))
    edit = rect("a", 2, 5, left=50)
    assert (await put(bob, edit))["applied"] == ["a"]
    assert await put(bob, edit) == {"gen": 0, "applied": ["a"], "conflicts": []}


# ---- owner ---------------------------------------------------------------------------------------------------


async def test_only_the_creator_may_change_or_delete_an_object(team, hub_client, owner_policy):
    server, alice, bob, _ = await team()
    await put(alice, rect("a"))
    await bob.next_event(CH, "draw.updated")

    for attempt in (
        put(bob, rect("mine"), rect("a", 2, 0, left=500)),  # one refused edit refuses the whole message
        put(bob, rect("a", 1, 999)),  # a "creation" over an existing id with a higher nonce
        delete(bob, ("a", 2, 0)),
    ):
        with pytest.raises(ReplyError) as refused:
            await attempt
        assert refused.value.code == "forbidden"
        assert "only an object's creator" in refused.value.msg
        assert refused.value.details == [
            {
                "loc": ["objects", refused.value.details[0]["loc"][1]],
                "msg": "object 'a' is alice's",
                "type": "not_owner",
            }
        ]
    await bob.no_event(CH)
    snapshot = await board_of(server, hub_client)
    assert snapshot["edit"] == "owner"
    assert [(o["id"], o["version"], o["left"]) for o in snapshot["objects"]] == [("a", 1, 10.0)]

    assert (await put(alice, rect("a", 2, 0, left=40)))["applied"] == ["a"]
    assert (await delete(alice, ("a", 3, 0)))["applied"] == ["a"]
    with pytest.raises(ReplyError, match="forbidden"):  # nor may bob bring it back over alice's tombstone
        await put(bob, rect("a", 4, 0))
    assert (await put(alice, rect("a", 4, 0)))["applied"] == ["a"]  # alice's undo
    assert (await put(bob, rect("b")))["applied"] == ["b"]  # anyone may still draw
    assert owners(await board_of(server, hub_client)) == {"a": "alice", "b": "bob"}


async def test_guests_own_what_they_draw(hub_server, hub_client, owner_policy):
    server = hub_server(plugins=DRAW)
    guest = await hub_client(server)
    other = await hub_client(server)
    await put(guest, rect("g"))
    with pytest.raises(ReplyError, match="forbidden"):
        await delete(other, ("g", 2, 0))
    assert (await delete(guest, ("g", 2, 0)))["applied"] == ["g"]


async def test_a_moderator_may_change_anything_and_the_creator_stays_the_owner(team, hub_client, owner_policy):
    server, alice, _, moderator = await team()
    await put(alice, rect("a"), rect("b"))
    assert (await put(moderator, rect("a", 2, 0, fill="#ff0000")))["applied"] == ["a"]
    assert (await delete(moderator, ("b", 2, 0)))["applied"] == ["b"]
    assert owners(await board_of(server, hub_client)) == {"a": "alice", "b": "alice"}
    assert (await put(alice, rect("a", 3, 0)))["applied"] == ["a"]  # still alice's


async def test_clearing_a_board_with_other_users_objects_needs_a_moderator(team, hub_client, owner_policy):
    server, alice, bob, moderator = await team()
    await put(alice, rect("a"))
    await put(bob, rect("b"))
    with pytest.raises(ReplyError) as refused:
        await bob.pub(CH, "draw.clear", {"gen": 0})
    assert refused.value.code == "forbidden"
    assert "holds 1" in refused.value.msg
    assert len((await board_of(server, hub_client))["objects"]) == 2

    await delete(alice, ("a", 2, 0))  # only bob's object is left (and alice's tombstone, which does not count)
    assert await bob.pub(CH, "draw.clear", {"gen": 0}) == {"gen": 1, "cleared": True}
    await put(bob, rect("c"), gen=1)
    with pytest.raises(ReplyError, match="forbidden"):
        await alice.pub(CH, "draw.clear", {"gen": 1})
    assert await moderator.pub(CH, "draw.clear", {"gen": 1}) == {"gen": 2, "cleared": True}
    assert await alice.pub(CH, "draw.clear", {"gen": 2}) == {"gen": 3, "cleared": True}  # an empty board


# ---- boards stored before owners were recorded ----------------------------------------------------------------


async def store_legacy_board(server: HubServer) -> None:
    """A board as the plugin stored it before owners were recorded: one rect and one tombstone, without owner."""
    store = server.app.state.hub.store_for("draw")
    rect_json = orjson.dumps({**rect("old"), "left": 10.0, "top": 20.0})
    tombstone_json = orjson.dumps({"id": "gone", "version": 2, "nonce": 0, "deleted": True, "ts": 1.0})
    prefix = f"team/o/{0:014x}/"
    assert await server.call(store.compare_and_set(prefix + "old", None, rect_json))
    assert await server.call(store.compare_and_set(prefix + "gone", None, tombstone_json))
    meta = Meta(gen=0, live=1, size=len(rect_json), tombstones=1)
    assert await server.call(store.compare_and_set("team/meta", None, meta.encode()))


async def test_a_board_stored_before_owners_were_recorded_loads_and_is_anyones(team, hub_client):
    server, _alice, bob, _ = await team()
    await store_legacy_board(server)
    assert owners(await board_of(server, hub_client)) == {"old": None, "gone": None}
    assert (await put(bob, rect("old", 2, 0)))["applied"] == ["old"]
    assert (await put(bob, rect("gone", 3, 0)))["applied"] == ["gone"]
    assert owners(await board_of(server, hub_client)) == {"old": None, "gone": None}  # nobody claims them


async def test_under_owner_objects_without_an_owner_are_the_moderators(team, hub_client, owner_policy):
    server, alice, _bob, moderator = await team()
    await store_legacy_board(server)
    with pytest.raises(ReplyError) as refused:
        await put(alice, rect("old", 2, 0))
    assert refused.value.details[0]["msg"] == "object 'old' has no recorded owner"
    with pytest.raises(ReplyError, match="forbidden"):
        await alice.pub(CH, "draw.clear", {"gen": 0})
    assert (await delete(moderator, ("old", 2, 0)))["applied"] == ["old"]
    assert await alice.pub(CH, "draw.clear", {"gen": 0}) == {"gen": 1, "cleared": True}


# ---- the setting and the rule --------------------------------------------------------------------------------


def test_the_policy_is_the_hub_draw_edit_setting(monkeypatch):
    assert DrawSettings().edit is EditPolicy.ANYONE
    monkeypatch.setenv("HUB_DRAW_EDIT", "owner")
    monkeypatch.setenv("HUB_DRAW_MODERATOR_SCOPE", "draw-admin")
    settings = DrawSettings()
    assert (settings.edit, settings.moderator_scope) == (EditPolicy.OWNER, "draw-admin")
    monkeypatch.setenv("HUB_DRAW_EDIT", "nobody")
    with pytest.raises(ValueError, match="edit"):
        DrawSettings()


@pytest.mark.parametrize(
    ("editor", "owner", "allowed"),
    [
        (Editor("bob"), "alice", True),
        (Editor("bob"), None, True),
        (Editor("bob", EditPolicy.OWNER), "bob", True),
        (Editor("bob", EditPolicy.OWNER), "alice", False),
        (Editor("bob", EditPolicy.OWNER), None, False),
        (Editor("bob", EditPolicy.OWNER, moderator=True), "alice", True),
        (Editor("bob", EditPolicy.OWNER, moderator=True), None, True),
    ],
)
def test_who_may_change_a_stored_record(editor: Editor, owner: str | None, allowed: bool) -> None:
    assert editor.may_change(owner) is allowed
    assert editor.owner_after(True, owner) == owner  # the creator stays the owner
    assert editor.owner_after(False, owner) == "bob"  # a creation is the editor's
    assert board.EditPolicy(editor.policy.value) is editor.policy
