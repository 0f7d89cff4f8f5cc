"""docedit over real sockets: convergence, offline edits, persistence, compaction, roles, limits, parts,
documents and versions, two nodes on one Redis, and the plain y-websocket endpoint at /yjs/{document}."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
import websockets
from pycrdt import Doc, Text

from hub.testing import ReplyError
from hub_realtime_plugins.docedit import Docedit, DoceditSettings
from hub_realtime_plugins.docedit.yprotocol import (
    FrameKind,
    Reader,
    SyncKind,
    b64decode,
    b64encode,
    parse_frame,
    step1,
    step2,
    sync_frame,
    update_message,
)
from tests.e2e.docedit_provider import DocProvider, wait_until

FAST = {"rate_limit": 5000.0, "rate_burst": 5000}


def plugin(**overrides: Any) -> Any:
    values: dict[str, Any] = {"idle_check_interval": 0.1, "idle_timeout": 0.3, "meta_touch_interval": 0.05}
    values.update(overrides)
    return lambda hub: Docedit(hub, settings=DoceditSettings(**values))


@pytest.fixture
def server(hub_server):
    return hub_server(plugins={"docedit": plugin()}, **FAST)


async def provider(hub_client, server, user: str, doc_id: str) -> DocProvider:
    replica = DocProvider(doc_id)
    await replica.attach(await hub_client(server, user=user))
    return replica


async def store_usage(server, doc_id: str) -> tuple[int, int, int]:
    """(update records, snapshot bytes, bytes of every record) under d/<doc>/ in the server's store."""
    store = server.app.state.hub.store_for("docedit")
    records = await server.call(store.scan(f"d/{doc_id}/"))
    updates = sum(1 for key, _value in records if key.startswith(f"d/{doc_id}/u/"))
    snap = sum(len(value) for key, value in records if key == f"d/{doc_id}/snap")
    return updates, snap, sum(len(value) for _key, value in records)


# ---- convergence -----------------------------------------------------------------------------------------------


async def test_concurrent_editors_converge_and_a_late_joiner_gets_everything(server, hub_client):
    alice = await provider(hub_client, server, "alice", "notes")
    assert alice.snapshot["role"] == "owner"
    assert alice.snapshot["doc"]["owner"]["user"] == "alice"
    bob = await provider(hub_client, server, "bob", "notes")
    assert bob.snapshot["role"] == "editor"  # auto-created with public "edit"

    async def type_into(replica: DocProvider, word: str) -> None:
        for char in word:
            await replica.edit(lambda text, c=char: text.insert(len(text) // 2, c))

    await asyncio.gather(type_into(alice, "alpha-" * 10), type_into(bob, "bravo+" * 10))
    await wait_until(lambda: alice.content == bob.content and len(alice.content) == 120)
    assert sorted(alice.content) == sorted("alpha-" * 10 + "bravo+" * 10)

    carol = await provider(hub_client, server, "carol", "notes")
    assert carol.content == alice.content
    async with httpx.AsyncClient(base_url=server.url) as http:
        metrics = (await http.get("/metrics")).text
    assert "hub_docedit_updates_total 120" in metrics
    assert "hub_docedit_open_documents 1" in metrics


async def test_offline_edits_merge_on_reconnect(server, hub_client):
    alice = await provider(hub_client, server, "alice", "trip")
    bob = await provider(hub_client, server, "bob", "trip")
    await alice.edit(lambda text: text.insert(0, "Day 1: museum."))
    await wait_until(lambda: bob.content == "Day 1: museum.")

    await bob.detach()
    await bob.edit(lambda text: text.insert(len(text), " Day 2: beach."))  # offline
    await alice.edit(lambda text: text.insert(0, "Plan. "))  # meanwhile, online
    assert bob.content == "Day 1: museum. Day 2: beach."

    await bob.attach(await hub_client(server, user="bob"))
    await wait_until(lambda: alice.content == bob.content == "Plan. Day 1: museum. Day 2: beach.")


# ---- persistence and compaction ----------------------------------------------------------------------------------


async def test_a_document_survives_a_restart(server, hub_client):
    alice = await provider(hub_client, server, "alice", "keep")
    await alice.edit(lambda text: text.insert(0, "durable words"))
    await alice.edit(lambda text: text.insert(7, " and true"))
    await alice.detach()
    server.restart()
    again = await provider(hub_client, server, "alice", "keep")
    assert again.content == "durable and true words"
    assert again.snapshot["role"] == "owner"


async def test_compaction_keeps_storage_bounded_under_10000_edits(hub_server, hub_client):
    compact_every = 100
    server = hub_server(
        plugins={"docedit": plugin(compact_every=compact_every, sync_rate=1e6, sync_burst=10**6)}, **FAST
    )
    alice = await provider(hub_client, server, "alice", "busy")
    for _burst in range(100):  # 10,000 edits: type a character, delete one now and then; 100 in flight at once
        for step in range(100):
            if step % 4 == 3:
                alice.text.__delitem__(slice(0, 1))
            else:
                alice.text.insert(len(alice.text), "abc"[step % 3])
        pending, alice._outbox = alice._outbox, []
        await asyncio.gather(*(alice.sync_message(update_message(update)) for update in pending))
    assert len(alice.content) == 5000
    peer = await provider(hub_client, server, "bob", "busy")
    assert peer.content == alice.content

    state_size = len(alice.ydoc.get_update())

    async def settled() -> bool:
        updates, _snap, _total = await store_usage(server, "busy")
        return updates <= compact_every

    await wait_until(settled)
    updates, snap, total = await store_usage(server, "busy")
    assert updates <= compact_every
    assert 0 < snap < 3 * state_size  # the snapshot grows with the document, not with its 10,000 edits
    assert total < 3 * state_size + compact_every * 200
    server.restart()
    after = await provider(hub_client, server, "carol", "busy")
    assert after.content == alice.content


# ---- roles, limits, malformed input --------------------------------------------------------------------------------


async def test_a_reader_cannot_write_and_a_stranger_cannot_enter(server, hub_client):
    owner = await provider(hub_client, server, "olga", "private")
    await owner.call("docedit.share", {"editors": ["ed"], "readers": ["rita"], "public": "none"})
    await owner.edit(lambda text: text.insert(0, "secret plan"))
    reader = await provider(hub_client, server, "rita", "private")
    assert reader.snapshot["role"] == "reader"
    assert reader.content == "secret plan"

    forged = Doc()
    forged.apply_update(reader.ydoc.get_update())
    sv = forged.get_state()
    forged.get("content", type=Text).insert(0, "HACKED ")
    with pytest.raises(ReplyError) as refused:
        await reader.sync_message(update_message(forged.get_update(sv)))
    assert refused.value.code == "forbidden"
    with pytest.raises(ReplyError) as refused_step2:
        await reader.sync_message(step2(forged.get_update(sv)))
    assert refused_step2.value.code == "forbidden"
    assert await reader.sync_message(step2(b"\x00\x00")) == {"applied": True}  # the empty update is fine

    seen = owner.updates_received
    await owner.edit(lambda text: text.insert(len(text), "!"))
    await wait_until(lambda: reader.content == "secret plan!")  # the reader still gets updates
    # Events of a channel arrive in order: a relayed forgery would have come before the echo of this edit.
    await wait_until(lambda: owner.updates_received == seen + 1)
    assert owner.content == "secret plan!"
    assert owner.updates_received == seen + 1
    late = await provider(hub_client, server, "ed", "private")
    assert late.content == "secret plan!"
    stored = Doc()
    store = server.app.state.hub.store_for("docedit")
    for _key, value in await server.call(store.scan("d/private/u/")):
        stored.apply_update(value)
    assert "HACKED" not in str(stored.get("content", type=Text))

    stranger = await hub_client(server, user="mallory")  # no role: the answer a missing document gets
    with pytest.raises(ReplyError) as no_role:
        await stranger.sub("docedit:private")
    assert no_role.value.code == "not_found"
    with pytest.raises(ReplyError) as no_role_pub:
        await stranger.pub("docedit:private", "docedit.sync", {"m": b64encode(step1(b"\x00"))})
    assert no_role_pub.value.code == "not_found"


async def test_size_limit_and_malformed_input_leave_the_connection_working(hub_server, hub_client):
    server = hub_server(plugins={"docedit": plugin(max_doc_bytes=4096)}, **FAST)
    alice = await provider(hub_client, server, "alice", "small")
    await alice.edit(lambda text: text.insert(0, "fits"))
    with pytest.raises(ReplyError) as too_large:
        await alice.edit(lambda text: text.insert(4, "x" * 5000))
    assert too_large.value.code == "too_large"
    assert "4096" in too_large.value.msg
    for bad in ({"m": "not base64!"}, {"m": b64encode(b"\x02\x05abc")}, {"m": b64encode(update_message(b"junk"))},
                {"m": b64encode(b"\x07\x00")}, {"m": b64encode(step1(b"\xff\xff"))}, {"m": "AAA"}):  # fmt: skip
        with pytest.raises(ReplyError) as invalid:
            await alice.call("docedit.sync", bad)
        assert invalid.value.code == "invalid", bad
    with pytest.raises(ReplyError) as bad_awareness:
        await alice.call("docedit.awareness", {"m": b64encode(b"\x01\x01\x01\x03{x}")})
    assert bad_awareness.value.code == "invalid"
    fresh = await provider(hub_client, server, "bob", "small")
    assert fresh.content == "fits"  # nothing of the refused update was applied
    await alice.edit(lambda text: text.insert(0, "still "))
    await wait_until(lambda: fresh.content == "still fits")


async def test_a_large_update_travels_in_parts(server, hub_client):
    alice = await provider(hub_client, server, "alice", "big")
    bob = await provider(hub_client, server, "bob", "big")
    payload = "".join(f"line {i:05d} of a long document\n" for i in range(3000))  # ~96 KB
    await alice.edit(lambda text: text.insert(0, payload))
    await wait_until(lambda: bob.content == payload)
    late = DocProvider("big")  # its step 2 reply is large too, and its own offline text goes up in parts
    late.text.insert(0, "z" * 70_000)
    await late.attach(await hub_client(server, user="carol"))
    await wait_until(lambda: bob.content == late.content == alice.content and len(bob.content) == len(payload) + 70_000)
    with pytest.raises(ReplyError) as out_of_order:
        await alice.call("docedit.sync", {"m": "AAAA", "part": {"id": "p", "index": 1, "count": 2}})
    assert out_of_order.value.code == "invalid"


# ---- documents and versions ------------------------------------------------------------------------------------------


async def test_create_rename_share_delete_and_the_index(hub_server, hub_client):
    server = hub_server(plugins={"docedit": plugin(auto_create=False)}, **FAST)
    alice = await hub_client(server, user="alice")
    bob = await hub_client(server, user="bob")
    index_a = await alice.sub("docedit:@index")
    assert index_a["snapshot"] == {"docs": []}
    await bob.sub("docedit:@index")
    with pytest.raises(ReplyError) as missing:
        await alice.sub("docedit:report")
    assert missing.value.code == "not_found"
    with pytest.raises(ReplyError) as other_at:
        await alice.sub("docedit:@other")
    assert other_at.value.code == "not_found"

    meta = await alice.pub("docedit:report", "docedit.create", {"title": "Q3 report", "public": "none"})
    assert meta["title"] == "Q3 report"
    assert meta["owner"] == {"user": "alice", "name": "alice"}
    await alice.next_event("docedit:@index", "docedit.index_changed")
    with pytest.raises(ReplyError) as exists:
        await bob.pub("docedit:report", "docedit.create", {"title": "mine"})
    assert exists.value.code == "conflict"
    assert [doc["id"] for doc in (await alice.pub("docedit:@index", "docedit.list", {}))["docs"]] == ["report"]
    assert (await bob.pub("docedit:@index", "docedit.list", {}))["docs"] == []
    with pytest.raises(ReplyError) as wrong_room:
        await alice.pub("docedit:@index", "docedit.rename", {"title": "x"})
    assert wrong_room.value.code == "bad_request"

    await alice.sub("docedit:report")
    shared = await alice.pub("docedit:report", "docedit.share", {"editors": ["bob"], "readers": [], "public": "none"})
    assert shared["editors"] == ["bob"]
    assert (await alice.next_event("docedit:report", "docedit.meta"))["data"]["doc"]["editors"] == ["bob"]
    await bob.next_event("docedit:@index", "docedit.index_changed")
    assert [doc["id"] for doc in (await bob.pub("docedit:@index", "docedit.list", {}))["docs"]] == ["report"]
    renamed = await bob.pub("docedit:report", "docedit.rename", {"title": "Q3 final"})
    assert renamed["title"] == "Q3 final"
    with pytest.raises(ReplyError) as not_owner:
        await bob.pub("docedit:report", "docedit.delete", {})
    assert not_owner.value.code == "forbidden"
    with pytest.raises(ReplyError) as not_owner_share:
        await bob.pub("docedit:report", "docedit.share", {"editors": [], "readers": [], "public": "edit"})
    assert not_owner_share.value.code == "forbidden"

    assert await alice.pub("docedit:report", "docedit.delete", {}) == {}
    assert (await alice.next_event("docedit:report", "docedit.deleted"))["data"] == {"id": "report"}
    assert (await alice.pub("docedit:@index", "docedit.list", {}))["docs"] == []
    with pytest.raises(ReplyError) as gone:
        await bob.pub("docedit:report", "docedit.sync", {"m": b64encode(step1(b"\x00"))})
    assert gone.value.code == "not_found"
    assert await store_usage(server, "report") == (0, 0, 0)


async def test_versions_save_list_get_and_restore_for_every_client(server, hub_client):
    alice = await provider(hub_client, server, "alice", "essay")
    bob = await provider(hub_client, server, "bob", "essay")
    await alice.edit(lambda text: text.insert(0, "First draft."))
    await wait_until(lambda: bob.content == "First draft.")
    first = await alice.call("docedit.save_version", {"name": "draft 1"})
    assert first["name"] == "draft 1"
    assert first["author"]["user"] == "alice"
    assert first["size"] > 0
    assert (await bob.next_event("docedit.version_saved"))["data"]["version"] == first
    await bob.edit(lambda text: text.insert(len(text), " Second thoughts."))
    await wait_until(lambda: alice.content == "First draft. Second thoughts.")
    second = await bob.call("docedit.save_version", {"name": "draft 2"})
    assert [v["name"] for v in (await alice.call("docedit.versions", {}))["versions"]] == ["draft 2", "draft 1"]

    got = await bob.call("docedit.get_version", {"id": first["id"]})
    viewer = Doc()
    viewer.apply_update(b64decode(got["update"]))
    assert str(viewer.get("content", type=Text)) == "First draft."
    assert got["version"] == first
    with pytest.raises(ReplyError) as unknown:
        await bob.call("docedit.get_version", {"id": "0000000000000000-00000000"})
    assert unknown.value.code == "not_found"

    assert await bob.call("docedit.restore", {"id": first["id"]}) == {"applied": True}
    await wait_until(lambda: alice.content == bob.content == "First draft.")
    restored = await alice.next_event("docedit.restored")
    assert restored["data"] == {"version": first, "by": {"user": "bob", "name": "bob"}}
    await alice.call("docedit.restore", {"id": second["id"]})
    await wait_until(lambda: alice.content == bob.content == "First draft. Second thoughts.")
    late = await provider(hub_client, server, "carol", "essay")
    assert late.content == "First draft. Second thoughts."


async def test_awareness_reaches_others_and_late_joiners_and_goes_with_its_client(server, hub_client):
    alice = await provider(hub_client, server, "alice", "cursors")
    bob = await provider(hub_client, server, "bob", "cursors")
    state = b'{"user":{"name":"Alice","color":"#f00"},"cursor":{"anchor":3}}'
    update = b"\x01" + bytes([42]) + b"\x01" + bytes([len(state)]) + state  # 1 entry: client 42, clock 1
    assert await alice.call("docedit.awareness", {"m": b64encode(update)}) is None
    event = await bob.next_event("docedit.awareness")
    assert event["data"] == {"m": b64encode(update), "client": alice.client.hello["client"]}
    carol = await provider(hub_client, server, "carol", "cursors")
    assert b64decode(carol.snapshot["awareness"]) == update
    assert carol.snapshot["awareness_owners"] == {alice.client.hello["client"]: [42]}  # whose cursor it is
    await alice.detach()
    left = await bob.next_event("docedit.left")
    assert left["data"]["client"] == event["data"]["client"]
    dave = await provider(hub_client, server, "dave", "cursors")
    assert dave.snapshot["awareness"] is None
    assert dave.snapshot["awareness_owners"] == {}


# ---- several nodes ------------------------------------------------------------------------------------------------


async def test_clients_on_two_nodes_converge_and_a_node_opening_later_sees_everything(
    hub_server, hub_client, redis_url
):
    prefix = f"t{uuid.uuid4().hex[:10]}"
    settings = {"redis_url": redis_url, "redis_prefix": prefix, "probe_interval": 0.1, **FAST}
    node_a = hub_server(plugins={"docedit": plugin()}, **settings)
    node_b = hub_server(plugins={"docedit": plugin()}, **settings)
    alice = await provider(hub_client, node_a, "alice", "shared")
    bob = await provider(hub_client, node_b, "bob", "shared")

    async def type_into(replica: DocProvider, word: str) -> None:
        for char in word:
            await replica.edit(lambda text, c=char: text.insert(len(text) // 3, c))

    await asyncio.gather(type_into(alice, "north" * 8), type_into(bob, "south" * 8))
    await wait_until(lambda: alice.content == bob.content and len(alice.content) == 80)
    await alice.call("docedit.rename", {"title": "Both"})
    assert (await bob.next_event("docedit.meta"))["data"]["doc"]["title"] == "Both"

    node_c = hub_server(plugins={"docedit": plugin()}, **settings)
    carol = await provider(hub_client, node_c, "carol", "shared")
    assert carol.content == alice.content
    await carol.edit(lambda text: text.insert(0, ">"))
    await wait_until(lambda: alice.content == bob.content == carol.content)


# ---- /yjs/{document} ------------------------------------------------------------------------------------------------


class YjsPeer:
    """A raw y-websocket client: pycrdt plus binary frames over ``websockets``."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ydoc: Doc[Any] = Doc()
        self.text = self.ydoc.get("content", type=Text)
        self.denied: list[str] = []
        self.awareness: list[bytes] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, server, doc_id: str, token: str | None) -> YjsPeer:
        query = f"?token={token}" if token else ""
        ws = await websockets.connect(f"ws://127.0.0.1:{server.port}/yjs/{doc_id}{query}", max_size=None)
        peer = cls(ws)
        await ws.send(sync_frame(step1(peer.ydoc.get_state())))
        return peer

    async def _read(self) -> None:
        async for data in self.ws:
            frame = parse_frame(data)
            if frame.sync is not None:
                if frame.sync.kind is SyncKind.STEP1:
                    await self.ws.send(sync_frame(step2(self.ydoc.get_update(frame.sync.payload))))
                else:
                    self.ydoc.apply_update(frame.sync.payload)
            elif frame.awareness is not None:
                self.awareness.append(frame.awareness)
            elif frame.kind == FrameKind.AUTH:
                reader = Reader(data)
                reader.var_uint()
                assert reader.var_uint() == 0
                self.denied.append(reader.var_string())

    async def edit(self, index: int, value: str) -> None:
        sv = self.ydoc.get_state()
        self.text.insert(index, value)
        await self.ws.send(sync_frame(update_message(self.ydoc.get_update(sv))))

    @property
    def content(self) -> str:
        return str(self.text)

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


async def test_a_y_websocket_client_may_send_a_whole_document_in_one_message(hub_server, hub_client):
    # A stock Yjs client cannot split its messages: /yjs takes up to yjs_max_message_bytes while /ws keeps
    # the hub's 64 KB max_frame_bytes.
    server = hub_server(plugins={"docedit": plugin(yjs_max_message_bytes=400_000)}, **FAST)
    alice = await provider(hub_client, server, "alice", "offline")
    yjs = await YjsPeer.connect(server, "offline", server.token("yuri"))
    big = "offline work. " * 15_000  # 210 KB, typed while offline: one update in one frame
    await yjs.edit(0, big)
    await wait_until(lambda: alice.content == big)
    too_big = "x" * 500_000  # past this hub's /yjs limit: closed with 1009, nothing applied
    await yjs.edit(0, too_big)
    await asyncio.wait_for(yjs.ws.wait_closed(), 5)
    assert yjs.ws.close_code == 1009
    late = await provider(hub_client, server, "bob", "offline")
    assert late.content == big
    await alice.client.send_raw('{"op":"ping","pad":"' + "x" * 70_000 + '"}')  # /ws keeps max_frame_bytes
    assert (await alice.client.closed())[0] == 1009


async def test_a_raw_y_websocket_client_edits_alongside_a_ws_client(server, hub_client):
    alice = await provider(hub_client, server, "alice", "interop")
    await alice.edit(lambda text: text.insert(0, "from ws. "))
    yjs = await YjsPeer.connect(server, "interop", server.token("yuri"))
    await wait_until(lambda: yjs.content == "from ws. ")
    await yjs.edit(len(yjs.content), "from yjs.")
    await alice.edit(lambda text: text.insert(0, ">> "))
    await wait_until(lambda: alice.content == yjs.content == ">> from ws. from yjs.")

    state = b'{"user":{"name":"Yuri"}}'
    await yjs.ws.send(b"\x01" + bytes([len(state) + 4]) + b"\x01\x07\x01" + bytes([len(state)]) + state)
    seen = await alice.next_event("docedit.awareness")
    assert seen["data"]["client"].startswith("yjs:")
    await yjs.close()
    gone = await alice.next_event("docedit.awareness")
    assert b64decode(gone["data"]["m"]).endswith(b"null")  # the socket's cursor is removed for everyone


async def test_a_reader_on_yjs_is_denied_and_a_bad_token_is_closed(server, hub_client):
    owner = await provider(hub_client, server, "olga", "ro")
    await owner.call("docedit.share", {"editors": [], "readers": ["rita"], "public": "none"})
    await owner.edit(lambda text: text.insert(0, "read me"))
    reader = await YjsPeer.connect(server, "ro", server.token("rita"))
    await wait_until(lambda: reader.content == "read me")
    await reader.edit(0, "HACKED ")
    await wait_until(lambda: reader.denied)
    assert reader.denied[0].startswith("forbidden")
    await owner.edit(lambda text: text.insert(len(text), "!"))
    await wait_until(lambda: "!" in reader.content)
    assert owner.content == "read me!"
    await reader.close()

    stranger = await websockets.connect(f"ws://127.0.0.1:{server.port}/yjs/ro?token={server.token('mallory')}")
    await stranger.wait_closed()
    assert stranger.close_code == 4003
    forged = await websockets.connect(f"ws://127.0.0.1:{server.port}/yjs/ro?token=not.a.token")
    await forged.wait_closed()
    assert forged.close_code == 4001
    still = await provider(hub_client, server, "olga", "ro")  # the hub carries on
    assert still.content == "read me!"
