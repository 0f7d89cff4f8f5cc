"""Documents: this node's open documents — a pycrdt Doc per document with local users, kept current by a
listener on its channel — and the one write path for updates: check, store, apply, publish, compact."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from functools import cached_property
from typing import Any

import orjson
from pycrdt import Doc

from hub import Hub, HubError, Identity
from hub_realtime_plugins.docedit.compaction import Compactor
from hub_realtime_plugins.docedit.ids import INDEX_ROOM, NAMESPACE, Role, access_withdrawn, channel_of, role_of
from hub_realtime_plugins.docedit.messages import (
    DocMeta,
    DocumentDeleted,
    IndexChanged,
    MetaChanged,
    Person,
    UpdateApplied,
)
from hub_realtime_plugins.docedit.opendoc import OpenDoc
from hub_realtime_plugins.docedit.parts import Parts
from hub_realtime_plugins.docedit.settings import Access, DoceditSettings
from hub_realtime_plugins.docedit.store import DocStore, MetaConflict, YDoc, is_update
from hub_realtime_plugins.docedit.yprotocol import (
    EMPTY_UPDATE,
    ProtocolError,
    SyncKind,
    awareness_frame,
    b64decode,
    b64encode,
    encode_awareness,
    parse_awareness,
    parse_sync,
    sync_frame,
    update_message,
)

log = logging.getLogger("hub.docedit")


class Documents:
    """The registry of one hub's open documents, and everything that writes them. Built with the plugin (no
    I/O); ``start`` and ``stop`` run with the hub."""

    def __init__(self, hub: Hub, settings: DoceditSettings) -> None:
        self.hub = hub
        self.settings = settings
        # A chunked message is base64 of at most a whole document plus its message header.
        self.parts = Parts(max_chars=(settings.max_doc_bytes + 16) * 4 // 3 + 4, ttl=settings.part_ttl)
        self._open: dict[str, OpenDoc] = {}
        self._opening: dict[str, asyncio.Future[OpenDoc | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.closers: set[Callable[[], None]] = set()  # one per open /yjs socket: closes it at shutdown
        self.compactor = Compactor(hub, settings, self._spawn)
        self.updates_applied = 0
        self.rejected = 0  # updates refused: too large, malformed, or from a reader

    @cached_property
    def store(self) -> DocStore:
        """The plugin's store, reached on first use: a hub that only describes its channels has none."""
        return DocStore(self.hub.store)

    # ---- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="docedit-sweep")

    async def stop(self) -> None:
        for close in tuple(self.closers):
            close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for task in tuple(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for od in tuple(self._open.values()):
            with contextlib.suppress(Exception):  # best effort at shutdown: the store may be going away
                await self._close(od)

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def open_count(self) -> int:
        return len(self._open)

    def local_users(self, od: OpenDoc) -> int:
        """Sessions and /yjs sockets of this node following the document (the registry's own listener aside)."""
        return self.hub.local_subscribers(od.channel) - (1 if od.listener is not None else 0) + len(od.peers)

    # ---- opening and closing ------------------------------------------------------------------------------

    async def open(self, doc_id: str) -> OpenDoc | None:
        """The document, loaded on first use; None if it does not exist."""
        od = self._open.get(doc_id)
        if od is not None:
            od.last_used = time.monotonic()
            return od
        future = self._opening.get(doc_id)
        if future is None:
            future = self._opening[doc_id] = asyncio.ensure_future(self._load(doc_id))
            future.add_done_callback(lambda done: self._forget_opening(doc_id, done))
        # Shielded: one waiter giving up must not cancel the load the others wait for.
        return await asyncio.shield(future)

    def _forget_opening(self, doc_id: str, future: asyncio.Future[OpenDoc | None]) -> None:
        if self._opening.get(doc_id) is future:
            del self._opening[doc_id]
        if not future.cancelled():
            future.exception()  # retrieved, so an unawaited failure is not logged as "never retrieved"

    async def _load(self, doc_id: str) -> OpenDoc | None:
        """Listen first, then read the store: an update published meanwhile arrives as an event (and
        applying it twice is harmless), so none is missed."""
        holder: list[OpenDoc] = []
        early: list[str] = []

        def on_event(channel: str, frame: str) -> None:
            if holder:
                self._on_event(holder[0], frame)
            else:
                early.append(frame)

        listener = await self.hub.listen(channel_of(doc_id), on_event)
        try:
            meta = await self.store.meta(doc_id)
            if meta is None:
                await listener.close()
                return None
            stored = await self.store.load(doc_id)
        except BaseException:
            await listener.close()
            raise
        ydoc: YDoc = Doc()
        for record in ([stored.snapshot] if stored.snapshot else []) + stored.updates:
            try:
                ydoc.apply_update(record)
            except ValueError:  # checked before it was stored; skipped so the rest of the document loads
                log.error("docedit %s: skipped an undecodable stored record", doc_id)
        od = OpenDoc(meta, ydoc, time.monotonic())
        od.listener = listener
        od.stored_updates = len(stored.updates)
        od.measure()
        holder.append(od)
        for frame in early:
            self._on_event(od, frame)
        self._open[doc_id] = od
        return od

    async def _close(self, od: OpenDoc) -> None:
        if self._open.get(od.doc_id) is od:
            del self._open[od.doc_id]
        if od.dirty and not od.deleted:
            await self._touch(od)
        if od.listener is not None:
            await od.listener.close()
            od.listener = None

    # ---- events from every node ---------------------------------------------------------------------------

    def _on_event(self, od: OpenDoc, frame: str) -> None:
        event = orjson.loads(frame)
        kind = event.get("type")
        data = event.get("data") or {}
        if kind == "docedit.update":
            try:
                raw = b64decode(data.get("m", ""))
            except ProtocolError:
                log.error("docedit %s: ignored a malformed docedit.update event", od.doc_id)
                return
            if data.get("node") != self.hub.node_id:  # this node applied its own before publishing
                self._apply_remote(od, raw)
            if od.peers:
                out = sync_frame(raw)  # made once for every /yjs socket of this node
                sender = data.get("client")
                for peer in tuple(od.peers):
                    if peer.client != sender:
                        peer.deliver(out)
        elif kind == "docedit.awareness":
            try:
                raw = b64decode(data["m"])
            except (KeyError, ProtocolError):
                return
            with contextlib.suppress(ProtocolError):  # checked by the sender's node
                od.awareness.apply(parse_awareness(raw), data["client"], time.monotonic())
            if od.peers:
                out = awareness_frame(raw)
                sender = data.get("client")
                for peer in tuple(od.peers):
                    if peer.client != sender:
                        peer.deliver(out)
        elif kind == f"{NAMESPACE}.left":
            removed = od.awareness.forget(data["client"], time.monotonic())
            self.parts.drop(data["client"], od.doc_id)
            if removed and od.peers:
                # /ws clients drop a leaver's cursors on docedit.left; y-websocket clients see no presence,
                # so each node tells its own /yjs sockets (every node gets the event: no duplicates).
                removal = awareness_frame(encode_awareness(removed))
                for peer in tuple(od.peers):
                    peer.deliver(removal)
        elif kind == "docedit.meta":
            od.meta = DocMeta.model_validate(data["doc"])
            # Every node gets the event and ends its own sessions' subscriptions. Now, in this callback: the
            # registry's listener is the channel's first subscriber here (the document is opened before anyone
            # subscribes), so those who lost access get neither this event nor any after it.
            self.hub.revoke(
                od.channel, lambda identity: od.role(identity.user) is Role.NONE, msg=access_withdrawn(od.doc_id)
            )
            for peer in tuple(od.peers):
                peer.on_meta(od.meta)
        elif kind == "docedit.deleted":
            od.deleted = True
            for peer in tuple(od.peers):
                peer.on_deleted()
            # After this event has reached every local subscriber, so each sees it before its unsub.
            asyncio.get_running_loop().call_soon(self._end_subscriptions, od)
            self._spawn(self._close(od), f"docedit-close-{od.doc_id}")

    def _end_subscriptions(self, od: OpenDoc) -> None:
        deleted = f"Document {od.doc_id!r} was deleted."
        self.hub.revoke(od.channel, lambda _identity: True, code="not_found", msg=deleted)

    def _apply_remote(self, od: OpenDoc, raw: bytes) -> None:
        try:
            message = parse_sync(raw)
            if message.kind != SyncKind.UPDATE:
                raise ProtocolError("docedit.update carries a sync update")
            od.ydoc.apply_update(message.payload)
        except ValueError:
            log.error("docedit %s: ignored a malformed docedit.update event", od.doc_id)
            return
        od.size += len(message.payload)
        od.stored_updates += 1  # the node that applied it stored it
        self.compactor.maybe_compact(od, self.store)

    # ---- writes -------------------------------------------------------------------------------------------

    async def apply(self, od: OpenDoc, update: bytes, *, client: str | None) -> None:
        """Check an update, store it (append), apply it here, then publish it as ``docedit.update``."""
        if update == EMPTY_UPDATE:
            return
        if not is_update(update):
            self.rejected += 1
            raise HubError("invalid", "The message does not carry a valid Yjs update.")
        while self._open.get(od.doc_id) is not od and not od.deleted:
            # Closed as idle while this request waited; applying to a fresh copy keeps it current.
            reopened = await self.open(od.doc_id)
            if reopened is None:
                raise HubError("not_found", f"Document {od.doc_id!r} was deleted.")
            od = reopened
        async with od.lock:  # one at a time: the size check, then the write starts (the sweeper waits for it)
            if od.deleted:
                raise HubError("not_found", f"Document {od.doc_id!r} was deleted.")
            await self._check_size(od, update)
            segment = od.begin_write(len(update))
        try:
            try:
                await self.store.append(od.doc_id, update, segment)  # durable before it is applied or answered
            except BaseException:
                od.size -= len(update)
                raise
            try:
                od.ydoc.apply_update(update)
            except ValueError:  # is_update accepted it, so this cannot happen; the stored copy stands
                log.error("docedit %s: a checked update failed to apply", od.doc_id)
            od.stored_updates += 1
            od.dirty = True
            od.last_used = time.monotonic()
            self.updates_applied += 1
            event = UpdateApplied(m=b64encode(update_message(update)), client=client, node=self.hub.node_id)
            await self.hub.publish(od.channel, "docedit.update", event, ephemeral=True)
        finally:
            od.end_write(segment)
        self.compactor.maybe_compact(od, self.store)
        if time.monotonic() - od.touched >= self.settings.meta_touch_interval:
            od.touched = time.monotonic()
            self._spawn(self._touch(od), f"docedit-touch-{od.doc_id}")

    async def _check_size(self, od: OpenDoc, update: bytes) -> None:
        limit = self.settings.max_doc_bytes
        if od.size + len(update) <= limit:
            return
        await od.writes_done()  # every write under way applied: the measure below is exact
        trial: YDoc = Doc()  # exact only near the limit: the document with the update, encoded
        trial.apply_update(od.ydoc.get_update())
        trial.apply_update(update)
        exact = len(trial.get_update())
        if exact > limit:
            self.rejected += 1
            raise HubError(
                "too_large",
                f"This change would make the document {exact} bytes long; documents are limited to {limit} bytes.",
            )
        od.size = exact - len(update)

    async def _touch(self, od: OpenDoc) -> None:
        """Write the meta's `updated` and `size` (throttled: at most every meta_touch_interval per node)."""
        od.dirty = False
        od.touched = time.monotonic()
        size = od.measure()
        now = time.time()
        try:
            meta = await self.store.change_meta(
                od.doc_id, lambda m: m.model_copy(update={"updated": now, "size": size})
            )
        except Exception:  # a background write (task boundary): the next edit retries
            log.exception("docedit %s: writing updated/size failed", od.doc_id)
            od.dirty = True
            return
        if meta is not None:
            od.meta = meta

    # ---- documents ----------------------------------------------------------------------------------------

    async def create(self, doc_id: str, identity: Identity, title: str, public: Access) -> DocMeta | None:
        """A new document owned by ``identity``; None if it exists."""
        now = time.time()
        meta = DocMeta(
            id=doc_id,
            title=title,
            owner=Person(user=identity.user, name=identity.name),
            public=public,
            created=now,
            updated=now,
            size=0,
        )
        if not await self.store.create(meta):
            return None
        await self.index_changed()
        return meta

    async def change_meta(self, od: OpenDoc, change: Callable[[DocMeta], DocMeta]) -> DocMeta:
        try:
            meta = await self.store.change_meta(od.doc_id, change)
        except MetaConflict:
            raise HubError("unavailable", "The document is being changed by others; retry.") from None
        if meta is None:
            raise HubError("not_found", f"Document {od.doc_id!r} was deleted.")
        od.meta = meta
        await self.hub.publish(od.channel, "docedit.meta", MetaChanged(doc=meta), ephemeral=True)
        await self.index_changed()
        return meta

    async def delete(self, od: OpenDoc) -> None:
        async with od.lock:
            od.deleted = True
            await od.writes_done()  # their events go out before docedit.deleted
            await self.store.delete(od.doc_id)
        await self.hub.publish(od.channel, "docedit.deleted", DocumentDeleted(id=od.doc_id), ephemeral=True)
        await self.index_changed()
        await self._close(od)

    async def index_changed(self) -> None:
        await self.hub.publish(channel_of(INDEX_ROOM), "docedit.index_changed", IndexChanged(), ephemeral=True)

    async def listing(self, user: str, limit: int = 200) -> list[DocMeta]:
        """Documents ``user`` has a role in, most recently updated first."""
        metas = [meta for meta in await self.store.metas() if role_of(meta, user) is not Role.NONE]
        metas.sort(key=lambda meta: meta.updated, reverse=True)
        return metas[:limit]

    # ---- upkeep -------------------------------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.idle_check_interval)
            try:
                await self.sweep()
            except Exception:  # one failed round must not end the loop (task boundary)
                log.exception("docedit sweep failed")

    async def sweep(self) -> None:
        """Forget stale parts and cursors; close documents without local users for idle_timeout."""
        now = time.monotonic()
        self.parts.prune(now)
        for od in tuple(self._open.values()):
            od.awareness.prune(now, self.settings.awareness_timeout)
            if self.local_users(od) > 0:
                od.last_used = now
            elif now - od.last_used >= self.settings.idle_timeout and not od.lock.locked() and not od.writing:
                await self._close(od)
