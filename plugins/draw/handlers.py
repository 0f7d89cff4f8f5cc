"""draw's settings, channel declaration and handlers: boards ``draw:<board>`` of objects kept in the plugin
store, edited with compare-and-set so that concurrent edits on any number of nodes end as the rule says."""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import Field, TypeAdapter
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub import Channel, Context, Hub, HubError, RateLimit
from plugins.draw import board
from plugins.draw.board import Editor, EditPolicy, Entry, Limits, Meta, Stamp, Verdict
from plugins.draw.messages import (
    BoardCleared,
    BoardLimits,
    BoardSnapshot,
    ClearBoard,
    ClearResult,
    Conflict,
    CursorMoved,
    DeleteObjects,
    DrawObject,
    EditResult,
    ExtendStroke,
    MoveCursor,
    ObjectsDeleted,
    ObjectsUpdated,
    PathObject,
    PutObjects,
    StoredRecord,
    StrokeExtended,
    Tombstone,
)


class DrawSettings(BaseSettings):
    """draw's options, from HUB_DRAW_* environment variables (docs/draw.md, "Settings")."""

    model_config = SettingsConfigDict(env_prefix="HUB_DRAW_", extra="ignore")

    history_size: int = Field(default=200, ge=1)  # events kept per board for recovery after a short disconnect
    max_objects: int = Field(default=2000, ge=1)  # live objects per board
    max_object_bytes: int = Field(default=32_768, ge=256)  # one object's JSON
    max_board_bytes: int = Field(default=2_097_152, ge=1024)  # all live objects' JSON: the snapshot must fit
    max_points: int = Field(default=2000, ge=2)  # per path, and per draw.stroke message
    max_put_objects: int = Field(default=100, ge=1)  # per draw.put or draw.delete message
    max_tombstones: int = Field(default=5000, ge=4)  # per board; the oldest are pruned beyond it
    put_rate: float = Field(default=20.0, gt=0)
    put_burst: int = Field(default=40, ge=1)
    delete_rate: float = Field(default=10.0, gt=0)
    delete_burst: int = Field(default=20, ge=1)
    clear_rate: float = Field(default=0.5, gt=0)
    clear_burst: int = Field(default=2, ge=1)
    cursor_rate: float = Field(default=15.0, gt=0)
    cursor_burst: int = Field(default=30, ge=1)
    stroke_rate: float = Field(default=20.0, gt=0)
    stroke_burst: int = Field(default=40, ge=1)
    edit: EditPolicy = EditPolicy.ANYONE  # who may change or delete an object (docs/draw.md, "Who may change what")
    moderator_scope: str = Field(default="moderator", min_length=1)  # a token scope that may change and clear all

    def limits(self) -> Limits:
        return Limits(
            max_objects=self.max_objects,
            max_object_bytes=self.max_object_bytes,
            max_board_bytes=self.max_board_bytes,
            max_points=self.max_points,
            max_put_objects=self.max_put_objects,
            max_tombstones=self.max_tombstones,
        )


settings = DrawSettings()

draw = Channel(
    "draw",
    description="Collaborative whiteboards: objects with versions, live strokes, cursors, presence.",
    recoverable=True,
    history_size=settings.history_size,
    presence=True,
)
draw.event("draw.updated", ObjectsUpdated)
draw.event("draw.deleted", ObjectsDeleted)
draw.event("draw.cleared", BoardCleared)
draw.event("draw.cursor_moved", CursorMoved)
draw.event("draw.stroked", StrokeExtended)

CAS_ATTEMPTS = 50  # compare-and-set rounds for one object before the request fails as busy

Record = DrawObject | Tombstone
_records: TypeAdapter[Record] = TypeAdapter(StoredRecord)


@contextlib.contextmanager
def refusals() -> Iterator[None]:
    """The board's refusals as the client sees them."""
    try:
        yield
    except board.LimitExceeded as exc:
        raise HubError(exc.code, exc.msg, [exc.detail()]) from None
    except board.UnknownGeneration as exc:
        raise HubError("conflict", str(exc)) from None
    except board.Forbidden as exc:
        raise HubError("forbidden", exc.msg, list(exc.details)) from None


def editor_of(ctx: Context) -> Editor:
    identity = ctx.identity
    return Editor(identity.user, settings.edit, moderator=settings.moderator_scope in identity.scopes)


# Edits of one board on this node take turns, so they do not make each other retry; nodes sharing a store
# still race, and compare-and-set settles that. One dict per hub (tests run several hubs in one process).
_locks: weakref.WeakKeyDictionary[Hub, weakref.WeakValueDictionary[str, asyncio.Lock]] = weakref.WeakKeyDictionary()


def board_lock(hub: Hub, room: str) -> asyncio.Lock:
    locks = _locks.setdefault(hub, weakref.WeakValueDictionary())
    lock = locks.get(room)
    if lock is None:
        lock = locks[room] = asyncio.Lock()
    return lock


# ---- one board in the store -------------------------------------------------------------------------------
#
#   <board>/meta                    board.Meta: generation, counts, pruning floor
#   <board>/o/<gen, 14 hex>/<id>    the object's record (JSON of a DrawObject or a Tombstone)
#
# Every record of a generation shares a prefix, so a clear is one compare-and-set of the meta plus one
# delete_prefix of the old generation, and no write of the new generation can be caught by it.


@dataclass
class Outcome:
    """What became of the edits of one message, filled in as they are applied."""

    gen: int
    applied: list[Record] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)

    def result(self) -> EditResult:
        return EditResult(gen=self.gen, applied=[r.id for r in self.applied], conflicts=self.conflicts)


@dataclass(frozen=True, slots=True)
class Loaded:
    """A whole board as read by one scan; ``raw`` holds each tombstone's stored bytes, by id."""

    meta: Meta
    objects: list[DrawObject]
    tombstones: list[Tombstone]
    raw: dict[str, bytes]


class Records(Protocol):
    """What a board needs of the plugin's store (``ctx.store``, ``hub.store_for("draw")``)."""

    async def get(self, key: str) -> bytes | None: ...

    async def scan(
        self, prefix: str = "", *, limit: int | None = None, reverse: bool = False
    ) -> list[tuple[str, bytes]]: ...

    async def delete_prefix(self, prefix: str) -> int: ...

    async def compare_and_set(self, key: str, expected: bytes | None, value: bytes | None) -> bool: ...


class BoardStore:
    """One board's records; every write is a compare-and-set, so no concurrent write is ever overwritten."""

    def __init__(self, store: Records, room: str) -> None:
        self.store = store
        self.room = room
        self.meta_key = f"{room}/meta"

    def prefix(self, gen: int) -> str:
        return f"{self.room}/o/{gen:014x}/"

    async def read_meta(self) -> tuple[bytes | None, Meta]:
        raw = await self.store.get(self.meta_key)
        return raw, Meta.decode(raw)

    async def read(self, gen: int, object_id: str) -> tuple[bytes | None, Record | None]:
        raw = await self.store.get(self.prefix(gen) + object_id)
        return raw, (_records.validate_json(raw) if raw is not None else None)

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
                outcome.applied.append(edit)
                return meta_raw, meta
            if verdict is Verdict.LOSE:
                outcome.conflicts.append(Conflict(id=edit.id, current=record))
                return meta_raw, meta
            # The counts first: a creation whose meta write succeeds has also judged by the latest floor,
            # since pruning raises the floor (a meta write) before it deletes any tombstone.
            counted = board.account(meta, current, incoming)
            recounted = counted != meta
            if recounted:
                counted_raw = counted.encode()
                if not await self.store.compare_and_set(self.meta_key, meta_raw, counted_raw):
                    meta_raw, meta = await self.read_meta()
                    raw, record = await self.read(gen, edit.id)
                    continue
                meta_raw, meta = counted_raw, counted
            if await self.store.compare_and_set(self.prefix(gen) + edit.id, raw, data):
                outcome.applied.append(edit)
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
            if await self.store.compare_and_set(self.meta_key, meta_raw, board.account(meta, before, after).encode()):
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
            if await self.store.compare_and_set(self.meta_key, meta_raw, cleared.encode()):
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
            if await self.store.compare_and_set(self.meta_key, meta_raw, board.after_pruning(meta, chosen).encode()):
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


# ---- handlers ---------------------------------------------------------------------------------------------


def encode_objects(objects: Sequence[DrawObject], owner: str, limits: Limits) -> tuple[list[DrawObject], list[bytes]]:
    """Each object as it will be stored if it is new (owned by ``owner``: what the client sent as the owner is
    ignored) and its JSON, after the per-message and per-object limits."""
    board.check_message(len(objects), limits)
    owned: list[DrawObject] = []
    encoded = []
    for index, sent in enumerate(objects):
        obj = sent.model_copy(update={"owner": owner}) if sent.owner != owner else sent
        data = obj.model_dump_json().encode()
        board.check_object(index, len(data), len(obj.points) if isinstance(obj, PathObject) else 0, limits)
        owned.append(obj)
        encoded.append(data)
    return owned, encoded


async def apply_edits(ctx: Context, gen: int, edits: Sequence[Record], encoded: Sequence[bytes]) -> Outcome:
    """Store what wins and broadcast it, also when a later edit of the message fails (a retry then finds
    the stored ones identical and broadcasts them again, so nobody misses them)."""
    limits = settings.limits()
    outcome = Outcome(gen=gen)
    store = BoardStore(ctx.store, ctx.room)
    async with board_lock(ctx.hub, ctx.room):
        try:
            with refusals():
                await store.apply(gen, edits, encoded, editor_of(ctx), limits, outcome)
        finally:
            objects = [r for r in outcome.applied if not isinstance(r, Tombstone)]
            tombstones = [r for r in outcome.applied if isinstance(r, Tombstone)]
            client, user = ctx.client_id, ctx.identity.user
            if objects:
                await ctx.publish("draw.updated", ObjectsUpdated(gen=gen, client=client, user=user, objects=objects))
            if tombstones:
                await ctx.publish("draw.deleted", ObjectsDeleted(gen=gen, client=client, user=user, deleted=tombstones))
        if tombstones and board.needs_pruning(Meta.decode(await ctx.store.get(store.meta_key)), limits):
            await store.prune(limits)
    return outcome


@draw.on("draw.put", PutObjects, rate_limit=RateLimit(rate=settings.put_rate, burst=settings.put_burst))
async def put_objects(ctx: Context, msg: PutObjects) -> EditResult:
    with refusals():
        objects, encoded = encode_objects(msg.objects, ctx.identity.user, settings.limits())
    return (await apply_edits(ctx, msg.gen, objects, encoded)).result()


@draw.on("draw.delete", DeleteObjects, rate_limit=RateLimit(rate=settings.delete_rate, burst=settings.delete_burst))
async def delete_objects(ctx: Context, msg: DeleteObjects) -> EditResult:
    with refusals():
        board.check_message(len(msg.objects), settings.limits())
    now = time.time()
    owner = ctx.identity.user
    tombstones = [Tombstone(id=d.id, version=d.version, nonce=d.nonce, ts=now, owner=owner) for d in msg.objects]
    encoded = [t.model_dump_json().encode() for t in tombstones]
    return (await apply_edits(ctx, msg.gen, tombstones, encoded)).result()


@draw.on("draw.clear", ClearBoard, rate_limit=RateLimit(rate=settings.clear_rate, burst=settings.clear_burst))
async def clear_board(ctx: Context, msg: ClearBoard) -> ClearResult:
    async with board_lock(ctx.hub, ctx.room):
        with refusals():
            meta, cleared = await BoardStore(ctx.store, ctx.room).clear(msg.gen, editor_of(ctx))
        if cleared:
            await ctx.publish("draw.cleared", BoardCleared(gen=meta.gen, client=ctx.client_id, user=ctx.identity.user))
    return ClearResult(gen=meta.gen, cleared=cleared)


@draw.on("draw.cursor", MoveCursor, rate_limit=RateLimit(rate=settings.cursor_rate, burst=settings.cursor_burst))
async def move_cursor(ctx: Context, msg: MoveCursor) -> None:
    who = ctx.identity
    event = CursorMoved(client=ctx.client_id, user=who.user, name=who.name, x=msg.x, y=msg.y)
    await ctx.publish("draw.cursor_moved", event, ephemeral=True)


@draw.on("draw.stroke", ExtendStroke, rate_limit=RateLimit(rate=settings.stroke_rate, burst=settings.stroke_burst))
async def extend_stroke(ctx: Context, msg: ExtendStroke) -> None:
    with refusals():
        board.check_points(len(msg.points), settings.limits())
    who = ctx.identity
    event = StrokeExtended(client=ctx.client_id, user=who.user, name=who.name, **msg.model_dump())
    await ctx.publish("draw.stroked", event, ephemeral=True)


@draw.snapshot
async def whole_board(ctx: Context) -> BoardSnapshot:
    loaded = await BoardStore(ctx.store, ctx.room).load()
    meta = loaded.meta
    limits = BoardLimits(
        max_objects=settings.max_objects,
        max_object_bytes=settings.max_object_bytes,
        max_board_bytes=settings.max_board_bytes,
        max_points=settings.max_points,
        max_put_objects=settings.max_put_objects,
    )
    return BoardSnapshot(
        gen=meta.gen,
        floor=meta.floor,
        edit=settings.edit.value,
        objects=loaded.objects,
        deleted=loaded.tombstones,
        limits=limits,
    )
