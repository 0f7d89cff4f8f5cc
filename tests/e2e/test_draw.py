"""draw over real sockets: edits and their conflicts, deletes, clears, limits, cursors and live strokes, the
late joiner's snapshot, persistence across restarts, the JSON export, and two hub nodes on one Redis."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import httpx
import pytest

from hub import Identity, hookimpl
from hub.store.redis import RedisStore
from hub.testing import HubClient, HubServer, ReplyError
from hub_realtime_plugins.draw import Draw, DrawSettings, board

DRAW = {"draw": Draw}


def draw_with(**values: Any) -> dict[str, Any]:
    """The draw plugin with these settings (the others from HUB_DRAW_* or their defaults)."""
    return {"draw": lambda hub: Draw(hub, settings=DrawSettings(**values))}


def rect(object_id: str, version: int = 1, nonce: int = 0, **fields: Any) -> dict[str, Any]:
    return {"id": object_id, "version": version, "nonce": nonce, "kind": "rect", "left": 10, "top": 20, **fields}


def path(object_id: str, points: int, **fields: Any) -> dict[str, Any]:
    dots = [[float(n), float(n % 7)] for n in range(points)]
    return {"id": object_id, "version": 1, "nonce": 0, "kind": "path", "left": 0, "top": 0, "points": dots, **fields}


async def put(client: HubClient, channel: str, *objects: dict[str, Any], gen: int = 0) -> Any:
    return await client.pub(channel, "draw.put", {"gen": gen, "objects": list(objects)})


async def delete(client: HubClient, channel: str, *stamps: tuple[str, int, int], gen: int = 0) -> Any:
    deletions = [{"id": i, "version": v, "nonce": n} for i, v, n in stamps]
    return await client.pub(channel, "draw.delete", {"gen": gen, "objects": deletions})


async def snapshot(server: HubServer, hub_client: Any, channel: str) -> Any:
    """The board as a new subscriber gets it."""
    viewer = await hub_client(server, user=f"viewer-{uuid.uuid4().hex[:6]}")
    data = (await viewer.sub(channel))["snapshot"]
    await viewer.close()
    return data


class ClientBoard:
    """What a browser holds: the board from the snapshot, kept up to date with the rule of board.Replica."""

    def __init__(self, snap: dict[str, Any]) -> None:
        self.replica = board.Replica(snap["gen"], snap["floor"])
        self.bodies: dict[str, dict[str, Any]] = {}
        for record in snap["objects"] + snap["deleted"]:
            self.apply(snap["gen"], record)

    def apply(self, gen: int, record: dict[str, Any]) -> None:
        if gen > self.replica.gen:
            self.clear(gen)
        entry = board.Entry(board.Stamp(record["version"], record["nonce"]), bool(record.get("deleted")))
        if self.replica.apply(gen, record["id"], entry):
            self.bodies[record["id"]] = record

    def clear(self, gen: int) -> None:
        if self.replica.clear(gen):
            self.bodies = {}

    def on_event(self, frame: dict[str, Any]) -> None:
        data = frame["data"]
        if frame["type"] == "draw.cleared":
            self.clear(data["gen"])
        for record in data.get("objects", []) + data.get("deleted", []):
            self.apply(data["gen"], record)

    def live(self) -> dict[str, dict[str, Any]]:
        return {i: b for i, b in self.bodies.items() if not b.get("deleted")}


def live(snap: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["id"]: o for o in snap["objects"]}


async def drain(client: HubClient, into: ClientBoard, channel: str, quiet: float = 0.3) -> None:
    """Apply every event that arrives until none has come for ``quiet`` seconds."""
    while True:
        try:
            frame = await client.next_event(channel, timeout=quiet)
        except TimeoutError:
            return
        into.on_event(frame)


# ---- one node ----------------------------------------------------------------------------------------------


async def test_edits_are_broadcast_and_a_late_joiner_gets_the_whole_board(hub_server, hub_client):
    server = hub_server(plugins=DRAW)
    alice = await hub_client(server, user="alice")
    bob = await hub_client(server, user="bob")
    await alice.sub("draw:team")
    await bob.sub("draw:team")

    stroke = path("p1", 3, stroke="#ff0000", stroke_width=4, z=2)
    shape = rect("r1", z=1, fill="#00ff0080", width=30, height=40, angle=15)
    reply = await put(alice, "draw:team", stroke, shape)
    assert reply == {"gen": 0, "applied": ["p1", "r1"], "conflicts": []}
    event = await bob.next_event("draw:team", "draw.updated")
    assert event["offset"] == 1
    assert event["data"]["user"] == "alice"
    assert event["data"]["client"] == alice.hello["client"]
    assert [o["id"] for o in event["data"]["objects"]] == ["p1", "r1"]
    assert event["data"]["objects"][0]["points"] == [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]

    carol = await hub_client(server, user="carol")
    data = await carol.sub("draw:team")
    assert sorted(m["user"] for m in data["presence"]) == ["alice", "bob", "carol"]
    snap = data["snapshot"]
    assert snap["gen"] == 0
    assert [o["id"] for o in snap["objects"]] == ["r1", "p1"]  # drawing order: z, then id
    assert snap["objects"][1] == event["data"]["objects"][0]
    assert snap["deleted"] == []
    assert (await snapshot(server, hub_client, "draw:other"))["objects"] == []  # boards are separate


async def test_the_snapshot_tells_clients_the_hubs_limits(hub_server, hub_client, small_limits):
    server = hub_server(plugins=small_limits)
    limits = (await snapshot(server, hub_client, "draw:limits"))["limits"]
    assert limits == {
        "max_objects": 3,
        "max_object_bytes": 600,
        "max_board_bytes": 100_000,
        "max_points": 5,
        "max_put_objects": 2,
    }


async def test_a_client_back_from_a_short_disconnect_gets_exactly_the_edits_it_missed(hub_server, hub_client):
    server = hub_server(plugins=DRAW)
    alice = await hub_client(server, user="alice")
    bob = await hub_client(server, user="bob")
    first = await bob.sub("draw:b")
    await put(alice, "draw:b", rect("a"))
    seen = await bob.next_event("draw:b", "draw.updated")
    await bob.unsub("draw:b")
    await put(alice, "draw:b", rect("a", 2, 0, left=50))
    await delete(alice, "draw:b", ("a", 3, 0))
    await alice.pub("draw:b", "draw.cursor", {"x": 1, "y": 1})  # ephemeral: not in what was missed

    back = await bob.sub("draw:b", since={"epoch": first["epoch"], "offset": seen["offset"]})
    assert back["recovered"] is True
    assert "snapshot" not in back
    assert [(m["type"], m["offset"]) for m in back["missed"]] == [("draw.updated", 2), ("draw.deleted", 3)]


async def test_concurrent_edits_resolve_by_version_then_nonce(hub_server, hub_client):
    server = hub_server(plugins=DRAW)
    alice = await hub_client(server, user="alice")
    bob = await hub_client(server, user="bob")
    await bob.sub("draw:b")
    await put(alice, "draw:b", rect("r", 1, 0))
    await bob.next_event("draw:b", "draw.updated")

    assert (await put(bob, "draw:b", rect("r", 2, 50, left=200)))["applied"] == ["r"]
    await bob.next_event("draw:b", "draw.updated")
    lost = await put(alice, "draw:b", rect("r", 2, 30, left=100))  # same version, lower nonce: loses
    assert lost["applied"] == []
    assert lost["conflicts"] == [{"id": "r", "current": (await snapshot(server, hub_client, "draw:b"))["objects"][0]}]
    assert lost["conflicts"][0]["current"]["left"] == 200
    await bob.no_event("draw:b", "draw.updated")  # a losing edit is not broadcast

    assert (await put(alice, "draw:b", rect("r", 2, 70, left=300)))["applied"] == ["r"]  # higher nonce wins
    assert (await bob.next_event("draw:b", "draw.updated"))["data"]["objects"][0]["left"] == 300
    assert (await put(bob, "draw:b", rect("r", 1, 99)))["conflicts"][0]["current"]["left"] == 300  # older version
    assert (await put(bob, "draw:b", rect("r", 3, 0, left=400)))["applied"] == ["r"]  # higher version wins
    assert live(await snapshot(server, hub_client, "draw:b"))["r"]["left"] == 400


async def test_a_repeated_edit_is_broadcast_again_so_a_retry_reaches_everyone(hub_server, hub_client):
    server = hub_server(plugins=DRAW)
    alice = await hub_client(server, user="alice")
    bob = await hub_client(server, user="bob")
    await bob.sub("draw:b")
    first = await put(alice, "draw:b", rect("r", 1, 5))
    again = await put(alice, "draw:b", rect("r", 1, 5))  # the client saw no reply and sent it again
    assert first == again == {"gen": 0, "applied": ["r"], "conflicts": []}
    one, two = await bob.next_event("draw:b", "draw.updated"), await bob.next_event("draw:b", "draw.updated")
    assert one["data"]["objects"] == two["data"]["objects"]
    collision = await put(alice, "draw:b", rect("r", 1, 5, left=99))  # same stamp, other body: not the same edit
    assert collision["conflicts"][0]["current"]["left"] == 10


async def test_deletes_leave_tombstones_that_stale_edits_cannot_bring_back(hub_server, hub_client):
    server = hub_server(plugins=DRAW)
    alice = await hub_client(server, user="alice")
    bob = await hub_client(server, user="bob")
    await bob.sub("draw:b")
    await put(alice, "draw:b", rect("a", 1, 0), rect("b", 1, 0))
    await bob.next_event("draw:b", "draw.updated")

    assert await delete(alice, "draw:b", ("a", 2, 7)) == {"gen": 0, "applied": ["a"], "conflicts": []}
    event = await bob.next_event("draw:b", "draw.deleted")
    assert [(t["id"], t["version"], t["nonce"], t["deleted"]) for t in event["data"]["deleted"]] == [("a", 2, 7, True)]
    assert event["offset"] == 2

    stale = await put(bob, "draw:b", rect("a", 2, 3, left=500))  # an edit made before bob saw the delete
    assert stale["conflicts"][0]["current"]["deleted"] is True
    snap = await snapshot(server, hub_client, "draw:b")
    assert list(live(snap)) == ["b"]
    assert [t["id"] for t in snap["deleted"]] == ["a"]

    assert (await put(alice, "draw:b", rect("a", 3, 0)))["applied"] == ["a"]  # undo: the next version
    assert sorted(live(await snapshot(server, hub_client, "draw:b"))) == ["a", "b"]
    lost = await delete(bob, "draw:b", ("b", 1, 0))  # a delete is an edit like any other
    assert lost["conflicts"][0]["current"]["kind"] == "rect"


async def test_clear_moves_the_board_to_a_new_generation(hub_server, hub_client):
    server = hub_server(plugins=DRAW)
    alice = await hub_client(server, user="alice")
    bob = await hub_client(server, user="bob")
    await bob.sub("draw:b")
    await put(alice, "draw:b", rect("a"), rect("b"))
    await delete(alice, "draw:b", ("b", 2, 0))

    assert await alice.pub("draw:b", "draw.clear", {"gen": 0}) == {"gen": 1, "cleared": True}
    cleared = await bob.next_event("draw:b", "draw.cleared")
    assert cleared["data"] == {"gen": 1, "client": alice.hello["client"], "user": "alice"}
    assert await bob.pub("draw:b", "draw.clear", {"gen": 0}) == {"gen": 1, "cleared": False}  # cleared already
    await bob.no_event("draw:b", "draw.cleared")

    stale = await put(bob, "draw:b", rect("a", 2, 0))  # made before bob saw the clear
    assert stale == {"gen": 1, "applied": [], "conflicts": [{"id": "a", "current": None}]}
    assert (await put(bob, "draw:b", rect("a", 2, 0), gen=1))["applied"] == ["a"]  # an undo of the clear
    board = await snapshot(server, hub_client, "draw:b")
    assert {key: board[key] for key in ("gen", "floor", "objects", "deleted")} == {
        "gen": 1,
        "floor": 0,
        "objects": [(await bob.next_event("draw:b", "draw.updated"))["data"]["objects"][0]],
        "deleted": [],
    }
    for request in (
        {"type": "draw.put", "data": {"gen": 2, "objects": [rect("x")]}},
        {"type": "draw.clear", "data": {"gen": 5}},
    ):
        reply = await bob.request({"op": "pub", "ch": "draw:b", **request})
        assert (reply["code"], reply["msg"]) == (
            "conflict",
            f"This board is at generation 1, not {request['data']['gen']}; subscribe again to get the current board.",
        )


@pytest.fixture
def small_limits() -> dict[str, Any]:
    return draw_with(max_objects=3, max_points=5, max_object_bytes=600, max_put_objects=2, max_board_bytes=100_000)


async def test_limits_refuse_with_a_clear_error_and_nothing_is_stored_or_broadcast(
    hub_server, hub_client, small_limits
):
    server = hub_server(plugins=small_limits)
    alice = await hub_client(server, user="alice")
    bob = await hub_client(server, user="bob")
    await bob.sub("draw:b")
    await put(alice, "draw:b", rect("a"), rect("b"))
    await bob.next_event("draw:b", "draw.updated")

    async def refused(objects: list[dict[str, Any]]) -> dict[str, Any]:
        reply = await alice.request(
            {"op": "pub", "ch": "draw:b", "type": "draw.put", "data": {"gen": 0, "objects": objects}}
        )
        assert reply["op"] == "err"
        return reply

    full = await refused([rect("c"), rect("d")])
    assert full["code"] == "conflict"
    assert "at most 3 objects (max_objects)" in full["msg"]
    assert full["details"][0]["type"] == "board_full"
    points = await refused([path("p", 6)])
    assert (points["code"], points["details"][0]["loc"]) == ("invalid", ["objects", 0, "points"])
    assert "at most 5 points (max_points)" in points["msg"]
    large = await refused([{**rect("t"), "kind": "text", "text": "x" * 700}])
    assert large["code"] == "invalid"
    assert "max_object_bytes" in large["msg"]
    many = await refused([rect("x"), rect("y"), rect("z")])
    assert "at most 2 objects (max_put_objects)" in many["msg"]
    for bad in ({**rect("q"), "stroke": "red"}, {**rect("q"), "left": 1e400}, {**rect("q"), "id": "no spaces"}):
        assert (await refused([bad]))["code"] == "invalid"
    assert (await refused([rect("q"), rect("q")]))["code"] == "invalid"  # one id twice

    await bob.no_event("draw:b")
    assert sorted(live(await snapshot(server, hub_client, "draw:b"))) == ["a", "b"]
    assert (await put(alice, "draw:b", rect("c")))["applied"] == ["c"]  # the third one fits
    await delete(alice, "draw:b", ("a", 2, 0))  # tombstones do not count
    assert (await put(alice, "draw:b", rect("d")))["applied"] == ["d"]
    reply = await alice.request(
        {"op": "pub", "ch": "draw:b", "type": "draw.stroke", "data": {"id": "s", "points": [[0, 0]] * 6}}
    )
    assert (reply["code"], reply["details"][0]["type"]) == ("invalid", "too_many_points")


async def test_tombstones_beyond_the_limit_are_pruned_and_their_objects_stay_deleted(hub_server, hub_client):
    server = hub_server(plugins=draw_with(max_tombstones=4))
    alice = await hub_client(server, user="alice")
    ids = [f"o{n}" for n in range(6)]
    await put(alice, "draw:b", *(rect(i) for i in ids[:3]))
    await put(alice, "draw:b", *(rect(i) for i in ids[3:]))
    for n, object_id in enumerate(ids):
        await delete(alice, "draw:b", (object_id, 2 + n, 0))  # o0 is the oldest tombstone, at version 2
    snap = await snapshot(server, hub_client, "draw:b")
    # The fifth tombstone passed the limit of 4: the two oldest went, leaving 3; the sixth made 4 again.
    assert [t["id"] for t in snap["deleted"]] == ["o2", "o3", "o4", "o5"]
    assert snap["floor"] == 3  # o1's version: edits of unknown ids at versions 2 and 3 are refused

    assert (await put(alice, "draw:b", rect("o0", 2, 9)))["conflicts"] == [{"id": "o0", "current": None}]
    assert (await put(alice, "draw:b", rect("o1", 3, 9)))["conflicts"] == [{"id": "o1", "current": None}]
    assert (await put(alice, "draw:b", rect("o1", 4, 0)))["applied"] == ["o1"]  # newer than any pruned tombstone
    assert (await put(alice, "draw:b", rect("new")))["applied"] == ["new"]  # creations are not held back
    assert sorted(live(await snapshot(server, hub_client, "draw:b"))) == ["new", "o1"]


async def test_cursors_and_live_strokes_are_ephemeral_and_name_their_sender(hub_server, hub_client):
    server = hub_server(plugins=DRAW)
    alice = await hub_client(server, user="alice")
    bob = await hub_client(server, user="bob")
    await alice.sub("draw:b")
    await bob.sub("draw:b")
    await alice.pub("draw:b", "draw.cursor", {"x": 12.5, "y": -3})
    cursor = await bob.next_event("draw:b", "draw.cursor_moved")
    assert cursor["data"] == {"client": alice.hello["client"], "user": "alice", "name": "alice", "x": 12.5, "y": -3.0}
    assert "offset" not in cursor
    await alice.pub("draw:b", "draw.cursor", {})
    assert (await bob.next_event("draw:b", "draw.cursor_moved"))["data"]["x"] is None  # left the board

    chunk = {"id": "s1", "points": [[1, 2], [3, 4]], "stroke": "#112233", "stroke_width": 3}
    await alice.pub("draw:b", "draw.stroke", chunk)
    stroked = await bob.next_event("draw:b", "draw.stroked")
    assert "offset" not in stroked
    assert stroked["data"]["points"] == [[1.0, 2.0], [3.0, 4.0]]
    assert (stroked["data"]["id"], stroked["data"]["name"], stroked["data"]["stroke"]) == ("s1", "alice", "#112233")

    data = await (await hub_client(server, user="carol")).sub("draw:b")
    assert data["offset"] == 0  # nothing ephemeral is in the history
    assert data["snapshot"]["objects"] == []

    burst = DrawSettings().cursor_burst
    moves = [{"op": "pub", "ch": "draw:b", "type": "draw.cursor", "data": {"x": n, "y": n}} for n in range(2 * burst)]
    replies = await asyncio.gather(*(alice.request(move) for move in moves))
    assert "rate_limited" in {reply.get("code") for reply in replies}


async def test_boards_survive_a_restart(hub_server, hub_client):
    server = hub_server(plugins=DRAW)
    alice = await hub_client(server, user="alice")
    await put(alice, "draw:keep", rect("a"), path("p", 4))
    await delete(alice, "draw:keep", ("a", 2, 0))
    await alice.pub("draw:gone", "draw.clear", {"gen": 0})
    before = await snapshot(server, hub_client, "draw:keep")
    await alice.close()

    server.restart()

    assert await snapshot(server, hub_client, "draw:keep") == before
    assert (await snapshot(server, hub_client, "draw:gone"))["gen"] == 1


# ---- export ------------------------------------------------------------------------------------------------


class NoSecrets:
    """Nobody may subscribe to draw:secret, so nobody may export it either."""

    @hookimpl
    def hub_authorize(self, identity: Identity, action: str, channel: str, message_type: str | None) -> bool | None:
        return False if channel == "draw:secret" else None


async def test_export_returns_the_board_as_json_to_whoever_may_subscribe(hub_server, hub_client):
    server = hub_server(plugins={**DRAW, "nosecrets": NoSecrets()}, anonymous=False)
    alice = await hub_client(server, user="alice")
    await put(alice, "draw:b", rect("r", z=5), path("p", 2))
    bearer = {"Authorization": f"Bearer {server.token('alice')}"}
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/api/draw/b.json", headers=bearer)
        assert response.status_code == 200
        exported = response.json()
        assert exported["board"] == "b"
        assert exported["gen"] == 0
        assert exported["objects"] == (await snapshot(server, hub_client, "draw:b"))["objects"]
        assert [(o["id"], o["version"]) for o in exported["objects"]] == [("p", 1), ("r", 1)]

        assert (await http.get("/api/draw/empty.json", headers=bearer)).json() == {
            "board": "empty",
            "gen": 0,
            "objects": [],
        }
        assert (await http.get("/api/draw/b.json")).status_code == 401  # no guests on this hub
        assert (await http.get("/api/draw/b.json", headers={"Authorization": "Bearer nope"})).status_code == 401
        expired = {"Authorization": f"Bearer {server.token('alice', ttl=-10)}"}
        assert (await http.get("/api/draw/b.json", headers=expired)).status_code == 401
        assert (await http.get("/api/draw/secret.json", headers=bearer)).status_code == 403
        assert (await http.get("/api/draw/not%20a%20board.json", headers=bearer)).status_code == 404
        assert (await http.get(f"/api/draw/{'x' * 200}.json", headers=bearer)).status_code == 404


async def test_export_serves_guests_when_the_hub_allows_them(hub_server, hub_client):
    server = hub_server(plugins=DRAW)
    guest = await hub_client(server)
    await put(guest, "draw:open", rect("r"))
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/api/draw/open.json")
        assert response.status_code == 200
        assert [o["id"] for o in response.json()["objects"]] == ["r"]
        assert (await http.get("/api/draw/open.json", headers={"Authorization": "Basic x"})).status_code == 401


# ---- Redis: several nodes, one store -----------------------------------------------------------------------


def node(hub_server, redis_url: str, prefix: str, plugins: dict[str, Any] = DRAW) -> HubServer:
    return hub_server(plugins=plugins, redis_url=redis_url, redis_prefix=prefix, probe_interval=0.1, presence_ttl=0.6)


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


async def test_two_nodes_on_one_redis_resolve_concurrent_edits_the_same_way(hub_server, hub_client, redis_url, prefix):
    """Six clients on two nodes edit the same objects at once. The store ends with the winner of the rule for
    every object (not whichever write came last), and every client, applying the events it got with the same
    rule, holds exactly that board."""
    node_a, node_b = node(hub_server, redis_url, prefix), node(hub_server, redis_url, prefix)
    clients = [await hub_client(n, user=f"u{i}") for i, n in enumerate([node_a, node_b] * 3)]
    boards = [ClientBoard((await c.sub("draw:race"))["snapshot"]) for c in clients]
    ids = [f"o{n}" for n in range(12)]
    await put(clients[0], "draw:race", *(rect(i) for i in ids[:6]))
    await put(clients[1], "draw:race", *(rect(i) for i in ids[6:]))

    rng = random.Random(5)
    edits = {
        (c, object_id): rect(object_id, rng.randint(2, 4), rng.randrange(2**53), left=rng.randint(0, 999))
        for c in range(len(clients))
        for object_id in ids
    }

    async def edit_all(c: int) -> None:
        for object_id in ids:
            reply = await put(clients[c], "draw:race", edits[c, object_id])
            for conflict in reply["conflicts"]:
                assert conflict["current"] is not None
                boards[c].apply(reply["gen"], conflict["current"])

    await asyncio.gather(*(edit_all(c) for c in range(len(clients))))
    expected = {
        object_id: max((edits[c, object_id] for c in range(len(clients))), key=lambda e: (e["version"], e["nonce"]))
        for object_id in ids
    }
    for server in (node_a, node_b):
        stored = live(await snapshot(server, hub_client, "draw:race"))
        assert {i: (o["version"], o["nonce"], o["left"]) for i, o in stored.items()} == {
            i: (e["version"], e["nonce"], e["left"]) for i, e in expected.items()
        }
    for client, held in zip(clients, boards, strict=True):
        await drain(client, held, "draw:race")
        assert held.live() == stored


async def test_a_clear_on_one_node_and_edits_on_another_end_the_same_everywhere(
    hub_server, hub_client, redis_url, prefix
):
    node_a, node_b = node(hub_server, redis_url, prefix), node(hub_server, redis_url, prefix)
    alice, bob = await hub_client(node_a, user="alice"), await hub_client(node_b, user="bob")
    boards = [ClientBoard((await c.sub("draw:c"))["snapshot"]) for c in (alice, bob)]
    await put(alice, "draw:c", *(rect(f"o{n}") for n in range(10)))

    async def edit_until_cleared() -> None:
        for version in range(2, 30):
            reply = await put(bob, "draw:c", *(rect(f"o{n}", version, 0, left=version) for n in range(10)))
            if reply["gen"] == 1:
                return

    await asyncio.gather(edit_until_cleared(), alice.pub("draw:c", "draw.clear", {"gen": 0}))
    await put(bob, "draw:c", rect("after"), gen=1)
    final = await snapshot(node_b, hub_client, "draw:c")
    assert final["gen"] == 1
    assert list(live(final)) == ["after"]  # no edit made on generation 0 survived the clear
    store = RedisStore(redis_url, prefix=prefix)
    await store.start()
    try:  # nor is any record of generation 0 left: an edit that raced the clear was removed by the snapshot
        assert [key for key, _ in await store.scan("draw", "c/")] == ["c/meta", f"c/o/{1:014x}/after"]
    finally:
        await store.close()
    for client, held in zip((alice, bob), boards, strict=True):
        await drain(client, held, "draw:c")
        assert held.live() == live(final)


async def test_a_board_on_redis_survives_every_node(hub_server, hub_client, redis_url, prefix):
    first = node(hub_server, redis_url, prefix)
    alice = await hub_client(first, user="alice")
    await put(alice, "draw:kept", rect("a"), path("p", 3))
    await delete(alice, "draw:kept", ("a", 2, 0))
    before = await snapshot(first, hub_client, "draw:kept")
    await alice.close()
    first.stop()

    second = node(hub_server, redis_url, prefix)
    assert await snapshot(second, hub_client, "draw:kept") == before
    bob = await hub_client(second, user="bob")
    assert (await put(bob, "draw:kept", rect("a", 1, 5)))["conflicts"][0]["current"]["deleted"] is True
    async with httpx.AsyncClient(base_url=second.url) as http:
        assert [o["id"] for o in (await http.get("/api/draw/kept.json")).json()["objects"]] == ["p"]


async def test_creations_racing_on_two_nodes_keep_the_object_count_right(hub_server, hub_client, redis_url, prefix):
    """Every creation counts once however the nodes interleave: the limit is reached exactly, and a delete
    makes room again."""
    twenty = draw_with(max_objects=20)
    node_a, node_b = node(hub_server, redis_url, prefix, twenty), node(hub_server, redis_url, prefix, twenty)
    clients = [await hub_client(n, user=f"u{i}") for i, n in enumerate([node_a, node_b] * 2)]
    await asyncio.gather(*(put(clients[n % 4], "draw:n", rect(f"o{n}")) for n in range(20)))
    alice, bob = clients[0], clients[1]
    assert len(live(await snapshot(node_a, hub_client, "draw:n"))) == 20
    with pytest.raises(ReplyError) as full:
        await put(alice, "draw:n", rect("one-too-many"))
    assert full.value.code == "conflict"
    await delete(bob, "draw:n", ("o0", 2, 0))
    assert (await put(alice, "draw:n", rect("fits-again")))["applied"] == ["fits-again"]


async def test_a_node_that_remembers_a_board_it_no_longer_knows_judges_edits_by_the_board_as_it_is(
    hub_server, hub_client, redis_url, prefix
):
    """A node remembers each board's meta, so that a new object costs two writes and no read. When another node
    changed the board meanwhile, that memory is wrong: the edit is then judged against the board as stored, the
    counts stay exact, and nothing is written on a generation that was cleared."""
    three = draw_with(max_objects=3)
    node_a, node_b = node(hub_server, redis_url, prefix, three), node(hub_server, redis_url, prefix, three)
    alice, bob = await hub_client(node_a, user="alice"), await hub_client(node_b, user="bob")
    assert (await put(alice, "draw:m", rect("a")))["applied"] == ["a"]  # node a remembers generation 0, 1 object
    assert await bob.pub("draw:m", "draw.clear", {"gen": 0}) == {"gen": 1, "cleared": True}
    assert await put(alice, "draw:m", rect("b")) == {
        "gen": 1,
        "applied": [],
        "conflicts": [{"id": "b", "current": None}],
    }
    for object_id in ("c", "d"):
        assert (await put(bob, "draw:m", rect(object_id), gen=1))["applied"] == [object_id]
    assert (await put(alice, "draw:m", rect("e"), gen=1))["applied"] == ["e"]  # node a thought the board empty
    assert (await put(alice, "draw:m", rect("e"), gen=1))["applied"] == ["e"]  # a retry: counted once
    with pytest.raises(ReplyError) as full:
        await put(alice, "draw:m", rect("f"), gen=1)
    assert full.value.code == "conflict"
    await delete(bob, "draw:m", ("c", 2, 0), gen=1)
    assert (await put(alice, "draw:m", rect("g"), gen=1))["applied"] == ["g"]
    with pytest.raises(ReplyError):
        await put(bob, "draw:m", rect("h"), gen=1)
    final = await snapshot(node_b, hub_client, "draw:m")
    assert (final["gen"], sorted(live(final))) == (1, ["d", "e", "g"])
