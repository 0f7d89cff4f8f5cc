"""draw's settings, channel declaration and handlers: boards ``draw:<board>`` of objects kept in the plugin
store (plugins/draw/store.py), edited with compare-and-set so that concurrent edits on any number of nodes end
as the rule says."""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Iterator, Sequence

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub import Channel, Context, Hub, HubError, RateLimit
from plugins.draw import board
from plugins.draw.board import Editor, EditPolicy, Limits, Meta
from plugins.draw.messages import (
    BoardCleared,
    BoardLimits,
    BoardSnapshot,
    ClearBoard,
    ClearResult,
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
    StrokeExtended,
    Tombstone,
)
from plugins.draw.store import BoardStore, Outcome, Record


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
