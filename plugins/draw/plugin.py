"""draw: the plugin object — its settings, its channel ``draw:<board>``, the handlers and snapshot of boards of
objects kept in the plugin store (plugins/draw/store.py), edited with compare-and-set so that concurrent edits on
any number of nodes end as the rule says, and the JSON export (plugins/draw/export.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Iterator, Sequence

from fastapi import APIRouter

from hub import Channel, Context, Hub, HubError, Plugin, RateLimit, hookimpl
from hub_realtime_plugins.draw import board
from hub_realtime_plugins.draw.board import Editor, Limits, Meta
from hub_realtime_plugins.draw.export import export_routes
from hub_realtime_plugins.draw.messages import (
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
    encode_record,
)
from hub_realtime_plugins.draw.settings import DrawSettings
from hub_realtime_plugins.draw.store import BoardStore, MetaCache, Outcome, Record


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


def encode_objects(objects: Sequence[DrawObject], owner: str, limits: Limits) -> tuple[list[DrawObject], list[bytes]]:
    """Each object as it will be stored if it is new (owned by ``owner``: what the client sent as the owner is
    ignored) and its JSON, after the per-message and per-object limits. The only time an object is encoded: the
    store, the event and a retry's comparison all use these bytes."""
    board.check_message(len(objects), limits)
    owned: list[DrawObject] = []
    encoded = []
    for index, sent in enumerate(objects):
        obj = sent.model_copy(update={"owner": owner}) if sent.owner != owner else sent
        data = encode_record(obj)
        board.check_object(index, len(data), len(obj.points) if isinstance(obj, PathObject) else 0, limits)
        owned.append(obj)
        encoded.append(data)
    return owned, encoded


class Draw(Plugin):
    """Whiteboards ``draw:<board>``: one per hub, built with ``HUB_DRAW_*`` settings (or ``settings``)."""

    def __init__(self, hub: Hub, settings: DrawSettings | None = None) -> None:
        super().__init__(hub)
        self.settings = s = settings or hub.settings(DrawSettings)
        self.limits = s.limits()
        # Edits of one board on this hub take turns, so they do not make each other retry; nodes sharing a store
        # still race, and compare-and-set settles that.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._metas = MetaCache()  # each board's meta as last seen here: a guess that lets a new object skip reads
        self.channel = draw = Channel(
            "draw",
            description="Collaborative whiteboards: objects with versions, live strokes, cursors, presence.",
            recoverable=True,
            history_size=s.history_size,
            presence=True,
        )
        draw.event("draw.updated", ObjectsUpdated)
        draw.event("draw.deleted", ObjectsDeleted)
        draw.event("draw.cleared", BoardCleared)
        draw.event("draw.cursor_moved", CursorMoved)
        draw.event("draw.stroked", StrokeExtended)
        draw.on("draw.put", PutObjects, rate_limit=RateLimit(rate=s.put_rate, burst=s.put_burst))(self.put_objects)
        delete_limit = RateLimit(rate=s.delete_rate, burst=s.delete_burst)
        draw.on("draw.delete", DeleteObjects, rate_limit=delete_limit)(self.delete_objects)
        clear_limit = RateLimit(rate=s.clear_rate, burst=s.clear_burst)
        draw.on("draw.clear", ClearBoard, rate_limit=clear_limit)(self.clear_board)
        cursor_limit = RateLimit(rate=s.cursor_rate, burst=s.cursor_burst)
        draw.on("draw.cursor", MoveCursor, rate_limit=cursor_limit)(self.move_cursor)
        stroke_limit = RateLimit(rate=s.stroke_rate, burst=s.stroke_burst)
        draw.on("draw.stroke", ExtendStroke, rate_limit=stroke_limit)(self.extend_stroke)
        draw.snapshot(self.whole_board)

    @hookimpl
    def hub_channels(self) -> list[Channel]:
        return [self.channel]

    @hookimpl
    def hub_http_routes(self) -> APIRouter:
        return export_routes(self.hub, self.channel.namespace)

    # ---- handlers -----------------------------------------------------------------------------------------

    def editor_of(self, ctx: Context) -> Editor:
        identity = ctx.identity
        return Editor(identity.user, self.settings.edit, moderator=self.settings.moderator_scope in identity.scopes)

    def board_lock(self, room: str) -> asyncio.Lock:
        lock = self._locks.get(room)
        if lock is None:
            lock = self._locks[room] = asyncio.Lock()
        return lock

    async def apply_edits(self, ctx: Context, gen: int, edits: Sequence[Record], encoded: Sequence[bytes]) -> Outcome:
        """Store what wins and broadcast it, also when a later edit of the message fails (a retry then finds
        the stored ones identical and broadcasts them again, so nobody misses them)."""
        limits = self.limits
        outcome = Outcome(gen=gen)
        store = BoardStore(ctx.store, ctx.room, self._metas)
        async with self.board_lock(ctx.room):
            try:
                with refusals():
                    new = edits[0] if len(edits) == 1 and not isinstance(edits[0], Tombstone) else None
                    if new is None or not await store.create(gen, new, encoded[0], limits, outcome):
                        await store.apply(gen, edits, encoded, self.editor_of(ctx), limits, outcome)
            finally:
                objects, stored = outcome.live()
                tombstones = [r for r in outcome.applied if isinstance(r, Tombstone)]
                client, user = ctx.client_id, ctx.identity.user
                if objects:
                    updated = ObjectsUpdated.of_stored(gen, client, user, objects, stored)
                    await ctx.publish("draw.updated", updated)
                if tombstones:
                    deleted = ObjectsDeleted(gen=gen, client=client, user=user, deleted=tombstones)
                    await ctx.publish("draw.deleted", deleted)
            if tombstones and board.needs_pruning(Meta.decode(await ctx.store.get(store.meta_key)), limits):
                await store.prune(limits)
        return outcome

    async def put_objects(self, ctx: Context, msg: PutObjects) -> EditResult:
        with refusals():
            objects, encoded = encode_objects(msg.objects, ctx.identity.user, self.limits)
        return (await self.apply_edits(ctx, msg.gen, objects, encoded)).result()

    async def delete_objects(self, ctx: Context, msg: DeleteObjects) -> EditResult:
        with refusals():
            board.check_message(len(msg.objects), self.limits)
        now = time.time()
        owner = ctx.identity.user
        tombstones = [Tombstone(id=d.id, version=d.version, nonce=d.nonce, ts=now, owner=owner) for d in msg.objects]
        encoded = [t.model_dump_json().encode() for t in tombstones]
        return (await self.apply_edits(ctx, msg.gen, tombstones, encoded)).result()

    async def clear_board(self, ctx: Context, msg: ClearBoard) -> ClearResult:
        async with self.board_lock(ctx.room):
            with refusals():
                meta, cleared = await BoardStore(ctx.store, ctx.room, self._metas).clear(msg.gen, self.editor_of(ctx))
            if cleared:
                event = BoardCleared(gen=meta.gen, client=ctx.client_id, user=ctx.identity.user)
                await ctx.publish("draw.cleared", event)
        return ClearResult(gen=meta.gen, cleared=cleared)

    async def move_cursor(self, ctx: Context, msg: MoveCursor) -> None:
        who = ctx.identity
        event = CursorMoved(client=ctx.client_id, user=who.user, name=who.name, x=msg.x, y=msg.y)
        await ctx.publish("draw.cursor_moved", event, ephemeral=True)

    async def extend_stroke(self, ctx: Context, msg: ExtendStroke) -> None:
        with refusals():
            board.check_points(len(msg.points), self.limits)
        who = ctx.identity
        event = StrokeExtended(client=ctx.client_id, user=who.user, name=who.name, **msg.model_dump())
        await ctx.publish("draw.stroked", event, ephemeral=True)

    async def whole_board(self, ctx: Context) -> BoardSnapshot:
        loaded = await BoardStore(ctx.store, ctx.room, self._metas).load()
        meta = loaded.meta
        s = self.settings
        limits = BoardLimits(
            max_objects=s.max_objects,
            max_object_bytes=s.max_object_bytes,
            max_board_bytes=s.max_board_bytes,
            max_points=s.max_points,
            max_put_objects=s.max_put_objects,
        )
        return BoardSnapshot(
            gen=meta.gen,
            floor=meta.floor,
            edit=s.edit.value,
            objects=loaded.objects,
            deleted=loaded.tombstones,
            limits=limits,
        )
