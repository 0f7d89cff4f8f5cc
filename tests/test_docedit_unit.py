"""docedit's pure logic: the Yjs wire formats, awareness rules, parts, roles, folding updates into a snapshot
(garbage collected, pending updates kept), restore, and compaction against a real (SQLite) store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Text, merge_updates

from hub import HubError, PluginStore
from hub.store import open_store
from hub_realtime_plugins.docedit.awareness import AwarenessStates
from hub_realtime_plugins.docedit.ids import Role, is_doc_id, role_of, segment_prefix, sortable_id
from hub_realtime_plugins.docedit.messages import DocMeta, Person, SyncDocument
from hub_realtime_plugins.docedit.opendoc import restore_update
from hub_realtime_plugins.docedit.parts import Parts
from hub_realtime_plugins.docedit.store import DocStore, fold, fold_into, is_update
from hub_realtime_plugins.docedit.yprotocol import (
    EMPTY_UPDATE,
    AwarenessEntry,
    FrameKind,
    ProtocolError,
    Reader,
    SyncKind,
    b64decode,
    b64encode,
    encode_awareness,
    parse_awareness,
    parse_frame,
    parse_sync,
    permission_denied_frame,
    step1,
    sync_frame,
    update_message,
    var_uint,
)


def text_doc(value: str = "") -> Doc[Any]:
    doc: Doc[Any] = Doc()
    if value:
        doc.get("content", type=Text).insert(0, value)
    return doc


def content(doc: Doc[Any]) -> str:
    return str(doc.get("content", type=Text))


# ---- wire formats ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", [0, 1, 127, 128, 300, 2**21, 2**32 + 5, 2**53 - 1])
def test_var_uint_round_trips(number: int) -> None:
    reader = Reader(var_uint(number))
    assert reader.var_uint() == number
    assert reader.done


def test_var_uint_refuses_truncated_and_oversized_numbers() -> None:
    with pytest.raises(ProtocolError):
        Reader(b"\x80").var_uint()
    with pytest.raises(ProtocolError):
        Reader(b"\xff" * 9 + b"\x01").var_uint()


def test_sync_messages_match_pycrdt_and_y_protocols() -> None:
    import pycrdt

    doc = text_doc("hello")
    # pycrdt prepends the y-websocket SYNC type (0); the envelope carries the sub-message only.
    assert pycrdt.create_sync_message(doc) == sync_frame(step1(doc.get_state()))
    assert pycrdt.create_update_message(doc.get_update()) == sync_frame(update_message(doc.get_update()))
    message = parse_sync(step1(doc.get_state()))
    assert message.kind is SyncKind.STEP1
    assert message.payload == doc.get_state()


@pytest.mark.parametrize("data", [b"", b"\x03\x00", b"\x02\x05ab", b"\x00\x01\x00\x00", b"\x01", b"\x02\x80"], ids=repr)
def test_parse_sync_refuses_malformed_messages(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_sync(data)


def test_base64_is_strict() -> None:
    assert b64decode(b64encode(b"\x00\xffdata")) == b"\x00\xffdata"
    for bad in ("AAA", "A===", "no spaces", "é", "AA-_"):
        with pytest.raises(ProtocolError):
            b64decode(bad)


def test_awareness_updates_round_trip_with_utf8_and_removals() -> None:
    entries = [AwarenessEntry(7, 3, '{"user":{"name":"Zoë ✓"}}'), AwarenessEntry(2**40, 1, None)]
    data = encode_awareness(entries)
    assert parse_awareness(data) == entries
    with pytest.raises(ProtocolError):
        parse_awareness(data + b"\x00")
    with pytest.raises(ProtocolError):
        parse_awareness(b"\x01\x01\x01\x03{x}")
    with pytest.raises(ProtocolError):
        parse_awareness(b"\x01\x01\x01\x05" + b"\xff\xfe{}\x00\x00")


def test_y_websocket_frames() -> None:
    frame = parse_frame(sync_frame(update_message(b"\x00\x00")))
    assert frame.kind == FrameKind.SYNC
    assert frame.sync is not None
    assert frame.sync.kind is SyncKind.UPDATE
    assert parse_frame(b"\x01\x02\x00\x00").awareness == b"\x00\x00"
    assert parse_frame(b"\x03").kind == FrameKind.QUERY_AWARENESS
    denied = Reader(permission_denied_frame("forbidden: read only"))
    assert (denied.var_uint(), denied.var_uint(), denied.var_string()) == (2, 0, "forbidden: read only")
    with pytest.raises(ProtocolError):
        parse_frame(b"\x01\x05\x00")


def test_a_part_carries_at_most_32768_characters() -> None:
    SyncDocument(m="A" * 32768, part={"id": "x", "index": 0, "count": 2})
    SyncDocument(m="A" * 40000)  # a whole message is bounded by the frame limit instead
    with pytest.raises(ValueError, match="32768"):
        SyncDocument(m="A" * 32769, part={"id": "x", "index": 0, "count": 2})
    with pytest.raises(ValueError, match=r"below part\.count"):
        SyncDocument(m="AAAA", part={"id": "x", "index": 2, "count": 2})


# ---- awareness, parts, roles, ids ------------------------------------------------------------------------------


def test_awareness_takes_newer_clocks_and_forgets_a_leaver() -> None:
    states = AwarenessStates()
    assert states.apply([AwarenessEntry(1, 2, '{"a":1}')], "hubA", 0.0)
    assert not states.apply([AwarenessEntry(1, 1, '{"a":0}')], "hubA", 0.0)  # stale clock
    assert states.apply([AwarenessEntry(2, 1, '{"b":1}')], "hubB", 0.0)
    assert len(states) == 2
    removed = states.forget("hubA", 1.0)
    assert removed == [AwarenessEntry(1, 3, None)]
    encoded = states.encode()
    assert encoded is not None
    assert parse_awareness(encoded) == [AwarenessEntry(2, 1, '{"b":1}')]
    assert states.apply([AwarenessEntry(2, 1, None)], "hubB", 2.0)  # a removal at the same clock counts
    assert states.encode() is None
    states.apply([AwarenessEntry(3, 1, "{}")], "hubC", 2.0)
    states.prune(40.0, timeout=30.0)
    assert states.encode() is None


def test_parts_assemble_in_order_and_are_bounded() -> None:
    parts = Parts(max_chars=10, ttl=30.0)
    assert parts.add("c", "d", "p", 0, 3, "abc", 0.0) is None
    assert parts.add("c", "d", "p", 1, 3, "def", 0.0) is None
    assert parts.add("c", "d", "p", 2, 3, "g", 0.0) == "abcdefg"
    assert len(parts) == 0
    with pytest.raises(HubError, match="without the parts"):
        parts.add("c", "d", "q", 1, 2, "x", 0.0)
    parts.add("c", "d", "q", 0, 3, "x", 0.0)
    with pytest.raises(HubError, match="in order"):
        parts.add("c", "d", "q", 2, 3, "x", 0.0)
    parts.add("c", "d", "r", 0, 3, "123456", 0.0)
    with pytest.raises(HubError) as too_large:
        parts.add("c", "d", "r", 1, 3, "123456", 0.0)
    assert too_large.value.code == "too_large"
    parts.add("c", "d", "s", 0, 2, "x", 0.0)
    parts.prune(31.0)
    assert len(parts) == 0
    parts.add("c", "d", "t", 0, 2, "x", 0.0)
    parts.drop("c", "d")
    assert len(parts) == 0


def test_roles() -> None:
    meta = DocMeta(
        id="d", title="t", owner=Person(user="o", name="O"), editors=["e"], readers=["r"], created=0, updated=0
    )
    assert [role_of(meta, user) for user in ("o", "e", "r", "x")] == [Role.OWNER, Role.EDITOR, Role.READER, Role.NONE]
    assert role_of(meta.model_copy(update={"public": "read"}), "x") is Role.READER
    assert role_of(meta.model_copy(update={"public": "edit"}), "r") is Role.EDITOR
    assert Role.OWNER > Role.EDITOR > Role.READER > Role.NONE


def test_doc_ids_and_sortable_ids() -> None:
    assert is_doc_id("Notes_2024.v2=+-")
    assert not is_doc_id("@index")
    assert not is_doc_id("a" * 65)
    assert not is_doc_id("")
    ids = [sortable_id() for _ in range(1000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 1000


# ---- updates, folding, restore -----------------------------------------------------------------------------------


def test_is_update() -> None:
    assert is_update(text_doc("x").get_update())
    assert is_update(EMPTY_UPDATE)
    assert not is_update(b"junk")
    assert not is_update(text_doc("x").get_update()[:-2])


def test_fold_collects_garbage_so_the_snapshot_follows_the_document_not_its_edits() -> None:
    doc = text_doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    text = doc.get("content", type=Text)
    for i in range(2000):
        text.insert(0, "0123456789")
        if i % 2:
            del text[0:10]
    folded = fold(None, updates)
    replica = text_doc()
    replica.apply_update(folded)
    assert content(replica) == content(doc)
    assert len(folded) == len(doc.get_update())  # what the live document encodes to
    assert len(folded) <= len(merge_updates(*updates)) - 10_000  # merging alone keeps the deleted characters
    assert len(fold(folded, [])) <= len(folded)


def test_fold_keeps_updates_that_wait_for_a_missing_dependency() -> None:
    doc = text_doc("abc")
    first = doc.get_update()
    state = doc.get_state()
    doc.get("content", type=Text).insert(3, "def")
    second = doc.get_update(state)  # depends on `first`
    folded = fold(None, [second])  # `first` has not arrived yet
    replica = text_doc()
    replica.apply_update(folded)
    replica.apply_update(first)
    assert content(replica) == "abcdef"


def test_restore_makes_the_text_equal_to_the_version_and_keeps_other_roots() -> None:
    version = text_doc("old text")
    live = Doc()
    live.apply_update(version.get_update())
    live_text = live.get("content", type=Text)
    live_text.insert(0, "new and ")
    live.get("notes", type=Text).insert(0, "side")
    update = restore_update(live, version.get_update())
    assert content(live) == "new and old text"  # the live document changes only when the update is applied
    live.apply_update(update)
    assert content(live) == "old text"
    assert str(live.get("notes", type=Text)) == "side"
    assert restore_update(live, version.get_update()) != EMPTY_UPDATE  # still one (delete + insert) transaction


def test_fold_into_a_live_document_equals_the_fold_and_keeps_what_it_cannot_integrate() -> None:
    author = text_doc()
    updates: list[bytes] = []
    author.observe(lambda event: updates.append(event.update))
    text = author.get("content", type=Text)
    for i in range(300):
        text.insert(len(text) // 2, f"{i} ")
        if i % 7 == 0:
            del text[0:2]  # updates with deletions: their remainder is a delete set the live copy has applied
    live = text_doc()
    for update in updates[:250]:
        live.apply_update(update)
    folded, complete = fold_into(live, updates)  # the last 50 were not applied to the live copy yet
    assert complete
    assert folded == live.get_update()
    replica = text_doc()
    replica.apply_update(folded)
    assert content(replica) == content(author)
    assert len(folded) <= len(fold(None, updates))

    # an insert and a deletion that wait for an update nobody has yet: kept as they are
    other = text_doc("abc")
    first = other.get_update()
    state = other.get_state()
    other.get("content", type=Text).insert(3, "def")
    second = other.get_update(state)
    before = other.get_state()
    del other.get("content", type=Text)[0:2]
    deletion = other.get_update(before)
    live = text_doc()
    folded, complete = fold_into(live, [second, deletion])
    assert not complete
    replica = text_doc()
    replica.apply_update(folded)
    replica.apply_update(first)
    assert content(replica) == "cdef"


# ---- the store ---------------------------------------------------------------------------------------------------


async def test_compaction_from_the_live_document_deletes_closed_segments_and_keeps_the_open_one(
    tmp_path: Path,
) -> None:
    backend = open_store(f"sqlite:///{tmp_path / 'hub.sqlite3'}")
    await backend.start()
    try:
        plugin_store = PluginStore(backend, "docedit")
        store = DocStore(plugin_store)
        doc = text_doc()
        text = doc.get("content", type=Text)
        updates: list[bytes] = []
        doc.observe(lambda event: updates.append(event.update))
        for i in range(60):
            text.insert(len(text), f"{i},")
        live = text_doc()
        for update in updates[:20]:
            await store.append("d1", update)  # a key without a segment (another node, an older hub): deleted by key
        for update in updates[20:50]:
            await store.append("d1", update, "s1")
            live.apply_update(update)
        for update in updates[50:]:
            await store.append("d1", update, "s2")  # the open segment: appended, not yet applied here
        compaction = await store.compact("d1", live, closed_segments=["s1"])
        assert compaction is not None
        assert compaction.merged == 60
        assert compaction.snapshot is not None
        assert content(live) == content(doc)  # the fold applied what the live copy lacked
        assert await plugin_store.scan(segment_prefix("d1", "s1")) == []
        assert await store.update_count("d1") == 0  # the open segment's records folded were deleted by key
        text.insert(0, "late,")
        await store.append("d1", updates[-1], "s2")
        again = await store.compact("d1", live, known_snapshot=compaction.snapshot, closed_segments=["s2"])
        assert again is not None
        assert again.merged == 1
        assert await store.update_count("d1") == 0
        stored = await store.load("d1")
        replica = text_doc()
        assert stored.snapshot is not None
        replica.apply_update(stored.snapshot)
        assert content(replica) == content(doc)
    finally:
        await backend.close()


async def test_compaction_keeps_appends_made_while_it_runs(tmp_path: Path) -> None:
    backend = open_store(f"sqlite:///{tmp_path / 'hub.sqlite3'}")
    await backend.start()
    try:
        store = DocStore(PluginStore(backend, "docedit"))
        doc = text_doc()
        text = doc.get("content", type=Text)
        updates: list[bytes] = []
        doc.observe(lambda event: updates.append(event.update))
        for i in range(50):
            text.insert(len(text), f"{i},")
        for update in updates[:40]:
            await store.append("d1", update)

        async def append_rest() -> None:
            for update in updates[40:]:
                await store.append("d1", update)

        results = await asyncio.gather(store.compact("d1"), append_rest())
        compaction = results[0]
        assert compaction is not None
        assert compaction.merged >= 40
        stored = await store.load("d1")
        assert len(stored.updates) == 50 - compaction.merged
        replica = text_doc()
        for record in ([stored.snapshot] if stored.snapshot else []) + stored.updates:
            replica.apply_update(record)
        assert content(replica) == content(doc)
        again = await store.compact("d1")
        assert again is not None
        assert await store.update_count("d1") == 0
    finally:
        await backend.close()
