"""draw's boards in the plugin store: objects edited with compare-and-set, so that concurrent edits on any
number of nodes end as the conflict rule of plugins/draw/board.py says; tombstones, generations and clears."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import TypeAdapter

from hub import HubError
from hub_realtime_plugins.draw import board
from hub_realtime_plugins.draw.board import Editor, Entry, Limits, Meta, Stamp, Verdict
from hub_realtime_plugins.draw.messages import (
    Conflict,
    DrawObject,
    EditResult,
    PathObject,
    StoredRecord,
    Tombstone,
)

# ---- one board in the store -------------------------------------------------------------------------------
#
#   <board>/meta                    board.Meta: generation, counts, pruning floor
#   <board>/o/<gen, 14 hex>/<id>    the object's record (JSON of a DrawObject or a Tombstone)
#
# Every record of a generation shares a prefix, so a clear is one compare-and-set of the meta plus one
# delete_prefix of the old generation, and no write of the new generation can be caught by it.

CAS_ATTEMPTS = 50  # compare-and-set rounds for one object before the request fails as busy
KNOWN_METAS = 4096  # boards whose meta a hub remembers (MetaCache)

Record = DrawObject | Tombstone
_records: TypeAdapter[Record] = TypeAdapter(StoredRecord)


@dataclass
class Outcome:
    """What became of the edits of one message, filled in as they are applied: ``stored`` holds the JSON of each
    of ``applied``, as the board holds it (what the event carries)."""

    gen: int
    applied: list[Record] = field(default_factory=list)
    stored: list[bytes] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)

    def apply(self, record: Record, data: bytes) -> None:
        self.applied.append(record)
        self.stored.append(data)

    def live(self) -> tuple[list[DrawObject], list[bytes]]:
        """The applied objects (not tombstones) and their JSON."""
        objects, stored = [], []
        for record, data in zip(self.applied, self.stored, strict=True):
            if not isinstance(record, Tombstone):
                objects.append(record)
                stored.append(data)
        return objects, stored

    def result(self) -> EditResult:
        return EditResult(gen=self.gen, applied=[r.id for r in self.applied], conflicts=self.conflicts)


class MetaCache:
    """The meta of each board as this hub last read or wrote it (at most ``size`` boards, the least recently used
    forgotten first). Only ever a guess: a write made with it is a compare-and-set against the raw bytes, so a meta
    changed meanwhile (by another node, or by this one) makes that write fail and the board be read again."""

    def __init__(self, size: int = KNOWN_METAS) -> None:
        self.size = size
        self._metas: OrderedDict[str, tuple[bytes, Meta]] = OrderedDict()

    def get(self, room: str) -> tuple[bytes, Meta] | None:
        known = self._metas.get(room)
        if known is not None:
            self._metas.move_to_end(room)
        return known

    def put(self, room: str, raw: bytes | None, meta: Meta) -> None:
        if raw is None:
            self._metas.pop(room, None)
            return
        self._metas[room] = (raw, meta)
        self._metas.move_to_end(room)
        if len(self._metas) > self.size:
            self._metas.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Loaded:
    """A whole board as read by one scan; ``raw`` holds each tombstone's stored bytes, by id."""

    meta: Meta
    objects: list[DrawObject]
    tombstones: list[Tombstone]
    raw: dict[str, bytes]


class Records(Protocol):
    """What a board needs of the plugin's store (``ctx.store``, ``hub.store``)."""

    async def get(self, key: str) -> bytes | None: ...

    async def scan(
        self, prefix: str = "", *, limit: int | None = None, reverse: bool = False
    ) -> list[tuple[str, bytes]]: ...

    async def delete_prefix(self, prefix: str) -> int: ...

    async def compare_and_set(self, key: str, expected: bytes | None, value: bytes | None) -> bool: ...


class BoardStore:
    """One board's records; every write is a compare-and-set, so no concurrent write is ever overwritten."""

    def __init__(self, store: Records, room: str, metas: MetaCache | None = None) -> None:
        self.store = store
        self.room = room
        self.meta_key = f"{room}/meta"
        self.metas = metas

    def prefix(self, gen: int) -> str:
        return f"{self.room}/o/{gen:014x}/"

    async def read_meta(self) -> tuple[bytes | None, Meta]:
        raw = await self.store.get(self.meta_key)
        meta = Meta.decode(raw)
        self._remember(raw, meta)
        return raw, meta

    async def write_meta(self, expected: bytes | None, meta: Meta) -> bytes | None:
        """Compare-and-set the meta; its new raw bytes, or None if it was not ``expected``."""
        raw = meta.encode()
        if not await self.store.compare_and_set(self.meta_key, expected, raw):
            return None
        self._remember(raw, meta)
        return raw

    def _remember(self, raw: bytes | None, meta: Meta) -> None:
        if self.metas is not None:
            self.metas.put(self.room, raw, meta)

    async def read(self, gen: int, object_id: str) -> tuple[bytes | None, Record | None]:
        raw = await self.store.get(self.prefix(gen) + object_id)
        return raw, (_records.validate_json(raw) if raw is not None else None)

    async def create(self, gen: int, edit: DrawObject, data: bytes, limits: Limits, outcome: Outcome) -> bool:
        """The common edit, cheaply: one new object (version 1, owned by its editor) on the generation the meta
        remembered for this board says is current. Two writes and no read: the counts (compare-and-set against the
        remembered meta), then the object (compare-and-set against no record). False, with nothing changed, when
        this does not settle it (nothing remembered, another generation, a board that looks full, a meta changed
        meanwhile, or a record already under that id: a retry, or an edit that may lose or be refused); then
        :meth:`apply` must judge it, reading the board.

        A version-1 edit of an unknown id always wins (board.wins), so neither the floor nor the edit policy can
        refuse it; the meta's compare-and-set proves the generation and the counts it was judged by are current.
        """
        known = self.metas.get(self.room) if self.metas is not None else None
        if known is None or edit.version != 1:
            return False
        meta_raw, meta = known
        if meta.gen != gen:
            return False
        incoming = entry_of(edit, data)
        counted = board.account(meta, None, incoming)
        try:
            board.check_capacity(meta, counted, limits)
        except board.LimitExceeded:
            return False  # perhaps only by a stale count: apply() reads the board and says so if it is so
        counted_raw = await self.write_meta(meta_raw, counted)
        if counted_raw is None:
            return False
        if await self.store.compare_and_set(self.prefix(gen) + edit.id, None, data):
            outcome.apply(edit, data)
            return True
        await self._recount(gen, incoming, None)  # take the count back; apply() judges against what is there
        return False

    async def apply(
        self,
        gen: int,
        edits: Sequence[Record],
        encoded: Sequence[bytes],
        editor: Editor,
        limits: Limits,
        outcome: Outcome,
    ) -> None:
        """Apply the edits of one message, recording each in ``outcome`` as it is done.

        ``edits`` carry ``editor`` as their owner; an edit of a stored record is stored with that record's owner.
        The policy and the limits are checked against the board as it is before anything is written, so a
        refused message changes nothing; then each object goes through its own compare-and-set loop.
        """
        meta_raw, meta = await self.read_meta()
        outcome.gen = meta.gen
        if not board.is_current(gen, meta.gen):
            for edit in edits:
                outcome.conflicts.append(Conflict(id=edit.id, current=(await self.read(meta.gen, edit.id))[1]))
            return
        stored = [await self.read(gen, edit.id) for edit in edits]
        held = [(index, record) for index, (_, record) in enumerate(stored) if record is not None]
        board.check_may_change(editor, [(index, record.id, record.owner) for index, record in held])
        owned = [
            owned_by(editor, record, edit, data, limits, index)
            for index, (edit, data, (_, record)) in enumerate(zip(edits, encoded, stored, strict=True))
        ]
        edits, encoded = [edit for edit, _ in owned], [data for _, data in owned]
        projected = meta
        for edit, data, (raw, record) in zip(edits, encoded, stored, strict=True):
            before, after = stored_entry(record, raw), entry_of(edit, data)
            if board.judge(before, after, floor=meta.floor, same=same_edit(raw, record, data, edit)) is Verdict.APPLY:
                projected = board.account(projected, before, after)
        board.check_capacity(meta, projected, limits)
        for edit, data, (raw, record) in zip(edits, encoded, stored, strict=True):
            meta_raw, meta = await self._apply_one(gen, edit, data, editor, (meta_raw, meta), (raw, record), outcome)

    async def _apply_one(
        self,
        gen: int,
        edit: Record,
        data: bytes,
        editor: Editor,
        meta_read: tuple[bytes | None, Meta],
        record_read: tuple[bytes | None, Record | None],
        outcome: Outcome,
    ) -> tuple[bytes | None, Meta]:
        """One object's compare-and-set loop, starting from what was read; returns the meta as last seen."""
        (meta_raw, meta), (raw, record) = meta_read, record_read
        for _ in range(CAS_ATTEMPTS):
            if meta.gen != gen:  # cleared meanwhile: the edit was made on a generation that is gone
                outcome.gen = meta.gen
                outcome.conflicts.append(Conflict(id=edit.id, current=(await self.read(meta.gen, edit.id))[1]))
                return meta_raw, meta
            if record is not None and not editor.may_change(record.owner):  # created by another, racing us
                outcome.conflicts.append(Conflict(id=edit.id, current=record))
                return meta_raw, meta
            edit, data = owned_by(editor, record, edit, data)
            incoming = entry_of(edit, data)
            current = stored_entry(record, raw)
            verdict = board.judge(current, incoming, floor=meta.floor, same=same_edit(raw, record, data, edit))
            if verdict is Verdict.REPEAT:
                outcome.apply(edit, data)
                return meta_raw, meta
            if verdict is Verdict.LOSE:
                outcome.conflicts.append(Conflict(id=edit.id, current=record))
                return meta_raw, meta
            # The counts first: a creation whose meta write succeeds has also judged by the latest floor,
            # since pruning raises the floor (a meta write) before it deletes any tombstone.
            counted = board.account(meta, current, incoming)
            recounted = counted != meta
            if recounted:
                counted_raw = await self.write_meta(meta_raw, counted)
                if counted_raw is None:
                    meta_raw, meta = await self.read_meta()
                    raw, record = await self.read(gen, edit.id)
                    continue
                meta_raw, meta = counted_raw, counted
            if await self.store.compare_and_set(self.prefix(gen) + edit.id, raw, data):
                outcome.apply(edit, data)
                return meta_raw, meta
            if recounted:  # the object changed under us: take the counts back, then judge again
                await self._recount(gen, incoming, current)
            meta_raw, meta = await self.read_meta()
            raw, record = await self.read(gen, edit.id)
        raise busy(self.room)

    async def _recount(self, gen: int, before: Entry | None, after: Entry | None) -> None:
        """Apply one change of counts to the meta (unless the board was cleared, which reset them)."""
        for _ in range(CAS_ATTEMPTS):
            meta_raw, meta = await self.read_meta()
            if meta.gen != gen:
                return
            if await self.write_meta(meta_raw, board.account(meta, before, after)) is not None:
                return
        raise busy(self.room)

    async def clear(self, gen: int, editor: Editor) -> tuple[Meta, bool]:
        """Move the board from generation ``gen`` to the next; False if it is past ``gen`` already.

        Under the ``owner`` policy a non-moderator may clear only a board whose live objects are all theirs: the
        board is read whole first, and the clear lands only if the meta has not changed since.
        """
        for _ in range(CAS_ATTEMPTS):
            meta_raw, meta = await self.read_meta()
            if not board.is_current(gen, meta.gen):
                return meta, False
            if not editor.may_change(None):  # a moderator, or the anyone policy, may clear any board
                loaded = await self.load()
                if loaded.meta != meta:  # changed between the two reads: start again
                    continue
                board.check_may_clear(editor, (obj.owner for obj in loaded.objects))
            cleared = meta.next_generation()
            if await self.write_meta(meta_raw, cleared) is not None:
                # Nothing can be stored under the old generation any more except by an edit that had read the
                # meta before this clear; such a record is dead, and load() removes it.
                await self.store.delete_prefix(self.prefix(gen))
                return cleared, True
        raise busy(self.room)

    async def load(self) -> Loaded:
        """The whole board in one prefix scan: the meta and every record of the current generation.

        Records of older generations (left by an edit that raced a clear) are dead; they are removed here.
        """
        meta = Meta()
        records: list[tuple[str, bytes]] = []
        dead: set[str] = set()
        for key, raw in await self.store.scan(f"{self.room}/"):
            if key == self.meta_key:
                meta = Meta.decode(raw)
                self._remember(raw, meta)
            elif key.startswith(f"{self.room}/o/"):
                records.append((key, raw))
        current = self.prefix(meta.gen)
        objects: list[DrawObject] = []
        tombstones: list[Tombstone] = []
        tombstone_bytes: dict[str, bytes] = {}
        for key, raw in records:
            if not key.startswith(current):
                gen = int(key[len(self.room) + 3 :].partition("/")[0], 16)
                if gen < meta.gen:
                    dead.add(self.prefix(gen))
                continue
            record = _records.validate_json(raw)
            if isinstance(record, Tombstone):
                tombstones.append(record)
                tombstone_bytes[record.id] = raw
            else:
                objects.append(record)
        for prefix in dead:
            await self.store.delete_prefix(prefix)
        objects.sort(key=lambda o: (o.z, o.id))
        return Loaded(meta, objects, tombstones, tombstone_bytes)

    async def prune(self, limits: Limits) -> int:
        """Delete the oldest tombstones once there are more than ``max_tombstones``; how many went."""
        loaded = await self.load()
        buried = [board.Buried(t.id, t.version, t.ts) for t in loaded.tombstones]
        chosen = board.choose_pruned(buried, limits)
        if not chosen:
            return 0
        gen = loaded.meta.gen
        for _ in range(CAS_ATTEMPTS):
            meta_raw, meta = await self.read_meta()
            if meta.gen != gen:
                return 0
            # The floor goes up before any tombstone goes, so no edit judged by the old floor can land after.
            if await self.write_meta(meta_raw, board.after_pruning(meta, chosen)) is not None:
                break
        else:
            raise busy(self.room)
        pruned = 0
        for tombstone in chosen:
            if await self.store.compare_and_set(self.prefix(gen) + tombstone.id, loaded.raw[tombstone.id], None):
                pruned += 1
            else:  # replaced meanwhile (the edit that did it counted for itself): count it back
                await self._recount(gen, None, Entry(Stamp(tombstone.version, 0), deleted=True))
        return pruned


def entry_of(record: Record, encoded: bytes) -> Entry:
    """What the rules need of a record: its stamp, whether it is a tombstone, its size if it is live."""
    deleted = isinstance(record, Tombstone)
    return Entry(Stamp(record.version, record.nonce), deleted, 0 if deleted else len(encoded))


def stored_entry(record: Record | None, raw: bytes | None) -> Entry | None:
    return entry_of(record, raw) if record is not None and raw is not None else None


def same_edit(raw: bytes | None, record: Record | None, data: bytes, edit: Record) -> bool:
    """Whether the stored record is this very edit, sent again."""
    if isinstance(record, Tombstone) and isinstance(edit, Tombstone):  # only their ts can differ
        return (record.version, record.nonce) == (edit.version, edit.nonce)
    return raw == data


def owned_by(
    editor: Editor, record: Record | None, edit: Record, data: bytes, limits: Limits | None = None, index: int = 0
) -> tuple[Record, bytes]:
    """The edit as it is stored over ``record`` (None: nothing stored): with the owner the policy gives it, and its
    JSON. The edit came encoded with ``editor`` as its owner; with another owner it is encoded again, and
    checked again against the per-object limits when ``limits`` are given."""
    owner = editor.owner_after(record is not None, record.owner if record is not None else None)
    if owner == edit.owner:
        return edit, data
    edit = edit.model_copy(update={"owner": owner})
    data = edit.model_dump_json().encode()
    if limits is not None and not isinstance(edit, Tombstone):
        board.check_object(index, len(data), len(edit.points) if isinstance(edit, PathObject) else 0, limits)
    return edit, data


def busy(room: str) -> HubError:
    return HubError("unavailable", f"Board {room!r} is too busy: an edit lost {CAS_ATTEMPTS} races in a row; retry.")
