"""DocStore: docedit's records in the plugin store — meta, the compacted snapshot, appended updates, versions —
and compaction, which folds the updates into a new snapshot without losing a concurrent append."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

from pycrdt import Doc, get_update, merge_updates

from hub import PluginStore
from hub_realtime_plugins.docedit.ids import (
    INDEX_PREFIX,
    doc_prefix,
    index_key,
    meta_key,
    segment_prefix,
    snap_key,
    sortable_id,
    updates_prefix,
    versions_prefix,
)
from hub_realtime_plugins.docedit.messages import DocMeta, Version
from hub_realtime_plugins.docedit.yprotocol import EMPTY_UPDATE, ProtocolError, Reader

log = logging.getLogger("hub.docedit")

YDoc: TypeAlias = Doc[Any]  # a document whose root types are read by name

CAS_ATTEMPTS = 20


class MetaConflict(Exception):
    """A meta record kept changing under a read-modify-write; the caller reports ``unavailable``."""


@dataclass(frozen=True, slots=True)
class StoredState:
    """What a document is made of in the store: its snapshot and its appended updates (in key order)."""

    snapshot: bytes | None
    updates: list[bytes]


@dataclass(frozen=True, slots=True)
class Compaction:
    merged: int  # update records folded into the snapshot (and deleted)
    size: int  # bytes of the new snapshot
    # the new snapshot, when the live document it was made from encodes all of it (so a later compaction from
    # that document need not apply it again); None otherwise
    snapshot: bytes | None


def is_update(data: bytes) -> bool:
    """Whether ``data`` decodes as a Yjs (v1) update: applied to an empty document, it raises nothing."""
    try:
        empty: YDoc = Doc()
        empty.apply_update(data)
    except ValueError:
        return False
    return True


def fold(snapshot: bytes | None, updates: list[bytes]) -> bytes:
    """One update equal to the snapshot plus the updates: applied to a document (so deleted content is garbage
    collected: the result grows with the document, not with its edits), plus whatever of them the document
    could not integrate yet (updates waiting for a missing dependency), kept as they are."""
    doc: YDoc = Doc()
    parts = ([snapshot] if snapshot else []) + updates
    _apply_all(doc, parts)
    state = doc.get_state()
    folded = doc.get_update()
    pending = [rest for rest in (_beyond(part, state) for part in parts) if rest is not None]
    return merge_updates(folded, *pending) if pending else folded


def _apply_all(doc: YDoc, parts: list[bytes]) -> None:
    """Apply every stored record to ``doc``, in order."""
    for part in parts:
        try:
            doc.apply_update(part)
        except ValueError:  # never stored unchecked; skipped so one bad record cannot block the document
            log.error("skipped an undecodable docedit record (%d bytes)", len(part))


def fold_into(doc: YDoc, parts: list[bytes]) -> tuple[bytes, bool]:
    """What :func:`fold` gives, made from ``doc`` — a live document that already holds most of ``parts`` — rather
    than from a fresh one: each part is applied to ``doc`` (a CRDT ignores what it holds already), ``doc`` is
    encoded once, and a part's remainder is kept only when ``doc`` could not integrate it (structs waiting for a
    missing dependency, or deletions of items it does not have yet). Costs one encoding of the document plus a
    few microseconds per part, instead of rebuilding the document from its snapshot. Also returns whether
    ``doc`` itself encodes all of it (no remainder was kept)."""
    _apply_all(doc, parts)
    state = doc.get_state()
    folded = doc.get_update()
    clocks: dict[int, int] | None = None
    pending: list[bytes] = []
    for part in parts:
        rest = _beyond(part, state)
        if rest is None:
            continue
        if clocks is None:
            clocks = _state_clocks(state)
        if not _only_known_deletions(rest, clocks):
            pending.append(rest)
    return (merge_updates(folded, *pending), False) if pending else (folded, True)


def _state_clocks(state: bytes) -> dict[int, int]:
    """A state vector (lib0: count, then client and clock per entry) as client -> clock."""
    reader = Reader(state)
    return {reader.var_uint(): reader.var_uint() for _ in range(reader.var_uint())}


def _only_known_deletions(rest: bytes, clocks: dict[int, int]) -> bool:
    """Whether a remainder of :func:`_beyond` holds no structs and deletes only items below the document's state
    (so the document applied those deletions when the part was applied to it)."""
    try:
        reader = Reader(rest)
        if reader.var_uint() != 0:  # structs beyond the state: waiting for a dependency
            return False
        for _ in range(reader.var_uint()):
            client = reader.var_uint()
            known = clocks.get(client, 0)
            for _ in range(reader.var_uint()):
                clock, length = reader.var_uint(), reader.var_uint()
                if clock + length > known:
                    return False
        return reader.done
    except ProtocolError:
        return False


def _beyond(update: bytes, state: bytes) -> bytes | None:
    """The part of ``update`` that ``state`` does not cover (its delete set included), or None if empty."""
    try:
        rest = get_update(update, state)
    except ValueError:
        return None
    return None if rest == EMPTY_UPDATE else rest


def _encode_version(version: Version, state: bytes) -> bytes:
    # Header and state in one record: the header is compact JSON (no raw newline), then a newline, then bytes.
    return version.model_dump_json().encode() + b"\n" + state


def _decode_version(raw: bytes) -> tuple[Version, bytes]:
    header, _, state = raw.partition(b"\n")
    return Version.model_validate_json(header), state


class DocStore:
    """docedit's slice of the store. Keys: ``d/<doc>/meta``, ``d/<doc>/snap``, ``d/<doc>/u/<id>``,
    ``d/<doc>/v/<id>``, and ``i/<doc>`` (a copy of the meta, so listing documents reads only metas)."""

    def __init__(self, store: PluginStore) -> None:
        self._store = store

    # ---- meta ---------------------------------------------------------------------------------------------

    async def meta(self, doc_id: str) -> DocMeta | None:
        raw = await self._store.get(meta_key(doc_id))
        return DocMeta.model_validate_json(raw) if raw is not None else None

    async def create(self, meta: DocMeta) -> bool:
        """Store a new document's meta; False if the document exists. Leftovers of a deleted document with the
        same id (an update stored while it was being deleted) are removed first."""
        raw = meta.model_dump_json().encode()
        if not await self._store.compare_and_set(meta_key(meta.id), None, raw):
            return False
        for prefix in (updates_prefix(meta.id), versions_prefix(meta.id)):
            await self._store.delete_prefix(prefix)
        await self._store.delete(snap_key(meta.id))
        await self._store.put(index_key(meta.id), raw)
        return True

    async def change_meta(self, doc_id: str, change: Callable[[DocMeta], DocMeta]) -> DocMeta | None:
        """Read-modify-write the meta with compare-and-set, so concurrent changes on other nodes are kept;
        None if the document does not exist."""
        for _ in range(CAS_ATTEMPTS):
            raw = await self._store.get(meta_key(doc_id))
            if raw is None:
                return None
            meta = change(DocMeta.model_validate_json(raw))
            encoded = meta.model_dump_json().encode()
            if await self._store.compare_and_set(meta_key(doc_id), raw, encoded):
                await self._store.put(index_key(doc_id), encoded)
                return meta
        raise MetaConflict(f"the meta of {doc_id!r} kept changing")

    async def metas(self) -> list[DocMeta]:
        return [DocMeta.model_validate_json(raw) for _key, raw in await self._store.scan(INDEX_PREFIX)]

    async def delete(self, doc_id: str) -> None:
        """Everything of the document goes; the meta first, so nothing opens it meanwhile."""
        await self._store.delete(meta_key(doc_id))
        await self._store.delete(index_key(doc_id))
        await self._store.delete_prefix(doc_prefix(doc_id))

    # ---- content ------------------------------------------------------------------------------------------

    async def load(self, doc_id: str) -> StoredState:
        """Updates first, then the snapshot: a compaction in between wrote its snapshot before deleting the
        updates it merged, so whatever this read misses of the updates is in the snapshot it reads after."""
        updates = [value for _key, value in await self._store.scan(updates_prefix(doc_id))]
        snapshot = await self._store.get(snap_key(doc_id))
        return StoredState(snapshot, updates)

    async def append(self, doc_id: str, update: bytes, segment: str | None = None) -> None:
        """Store one update; with ``segment``, under ``d/<doc>/u/<segment>/`` (see :meth:`compact`)."""
        prefix = updates_prefix(doc_id) if segment is None else segment_prefix(doc_id, segment)
        await self._store.put(prefix + sortable_id(), update)

    async def update_count(self, doc_id: str) -> int:
        return len(await self._store.scan(updates_prefix(doc_id)))

    async def compact(
        self,
        doc_id: str,
        live: YDoc | None = None,
        *,
        known_snapshot: bytes | None = None,
        closed_segments: Iterable[str] = (),
    ) -> Compaction | None:
        """Fold the snapshot and every stored update into a new snapshot, then delete exactly the update keys
        folded; updates appended meanwhile keep their keys. None if another compaction replaced the snapshot
        first (its work stands; nothing is deleted here).

        ``live``: the node's open copy of the document, which holds (nearly) everything stored; the fold starts
        from it (:func:`fold_into`), and the stored snapshot is applied to it only if it is not
        ``known_snapshot`` (the last one made from the copy, :attr:`Compaction.snapshot`). ``closed_segments``:
        segments of this node that no append will use any more and whose appends have all returned (so every
        record in them is in the scan below): they are deleted with one prefix delete each, not key by key."""
        segments = [segment_prefix(doc_id, segment) for segment in closed_segments]
        records = await self._store.scan(updates_prefix(doc_id))
        if not records:
            return Compaction(0, 0, None)
        snapshot = await self._store.get(snap_key(doc_id))
        values = [value for _key, value in records]
        if live is None:
            folded, complete = fold(snapshot, values), False
        else:
            parts = ([snapshot] if snapshot and snapshot != known_snapshot else []) + values
            folded, complete = fold_into(live, parts)
        if not await self._store.compare_and_set(snap_key(doc_id), snapshot, folded):
            return None
        emptied = set()
        for key, _value in records:
            segment = next((prefix for prefix in segments if key.startswith(prefix)), None)
            if segment is None:
                await self._store.delete(key)
            else:
                emptied.add(segment)
        for prefix in sorted(emptied):
            await self._store.delete_prefix(prefix)
        return Compaction(len(records), len(folded), folded if complete else None)

    # ---- versions -----------------------------------------------------------------------------------------

    async def save_version(self, doc_id: str, version: Version, state: bytes, keep: int) -> None:
        await self._store.put(versions_prefix(doc_id) + version.id, _encode_version(version, state))
        await self._store.trim(versions_prefix(doc_id), keep)

    async def versions(self, doc_id: str) -> list[Version]:
        """Newest first."""
        records = await self._store.scan(versions_prefix(doc_id), reverse=True)
        return [_decode_version(raw)[0] for _key, raw in records]

    async def version(self, doc_id: str, version_id: str) -> tuple[Version, bytes] | None:
        raw = await self._store.get(versions_prefix(doc_id) + version_id)
        return _decode_version(raw) if raw is not None else None
