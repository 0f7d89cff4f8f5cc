"""/yjs/{document}: the same documents over the plain y-websocket protocol (binary frames), so a stock Yjs
``WebsocketProvider`` edits alongside the hub's own clients, with the same auth, roles and limits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pycrdt import merge_updates

from hub import Hub, HubError, close_reason
from hub_realtime_plugins.docedit.awareness import AwarenessStates
from hub_realtime_plugins.docedit.documents import Documents
from hub_realtime_plugins.docedit.ids import (
    INDEX_ROOM,
    Role,
    access_withdrawn,
    is_doc_id,
    may_create,
    no_document,
    role_of,
)
from hub_realtime_plugins.docedit.messages import MAX_AWARENESS_BYTES, AwarenessChanged, DocMeta
from hub_realtime_plugins.docedit.opendoc import OpenDoc
from hub_realtime_plugins.docedit.yprotocol import (
    EMPTY_UPDATE,
    FrameKind,
    ProtocolError,
    SyncKind,
    awareness_frame,
    b64encode,
    encode_awareness,
    parse_awareness,
    parse_frame,
    permission_denied_frame,
    step1,
    step2,
    sync_frame,
    update_message,
)

log = logging.getLogger("hub.docedit.yjs")

TOKEN_PREFIX = "bearer."
CLOSE_AUTH_FAILED = 4001  # as on /ws: missing, forged or expired token
CLOSE_NO_ACCESS = 4003  # the identity has no role in the document (or it is missing), or lost it
CLOSE_POLICY = 1008  # a refused origin, a bad document name
CLOSE_MALFORMED = 1007  # a frame that is not y-websocket
CLOSE_SLOW = 4509  # the socket did not read its frames fast enough
CLOSE_DELETED = 4510  # the document was deleted


UPDATE_FRAME = bytes((FrameKind.SYNC, SyncKind.UPDATE))  # how a frame carrying one sync update begins
MERGE_AT_MOST = 64  # updates merged into one frame


def merge_update_frames(frames: list[bytes]) -> list[bytes]:
    """One sync update frame equal to ``frames`` (each a sync update frame of a checked update), or ``frames``
    themselves if they cannot be merged."""
    if len(frames) == 1:
        return frames
    updates = []
    try:
        for frame in frames:
            sync = parse_frame(frame).sync
            if sync is None:
                return frames
            updates.append(sync.payload)
        return [sync_frame(update_message(merge_updates(*updates)))]
    except ValueError:  # ProtocolError too; cannot happen (the hub checked each update): sent one by one
        log.error("could not merge %d updates for a /yjs socket", len(frames))
        return frames


class _Closed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class YjsConnection:
    """One /yjs socket: a listener on the document's channel feeds it everyone else's updates and awareness;
    its own frames go through the same write path as ``docedit.sync`` and ``docedit.awareness``."""

    def __init__(self, documents: Documents, websocket: WebSocket, doc_id: str) -> None:
        self.hub: Hub = documents.hub
        self.documents = documents
        self.settings = settings = documents.settings
        self.ws = websocket
        self.doc_id = doc_id
        self.client = f"yjs:{secrets.token_hex(6)}"
        self.outbox: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=settings.yjs_send_queue)
        self.closing: tuple[int, str] | None = None
        self.own_clients: set[int] = set()  # Yjs clientIDs whose awareness this socket sent
        self.user = ""  # the socket's user id, once authenticated
        self._tokens = float(settings.sync_burst)
        self._refilled = time.monotonic()

    async def serve(self) -> None:
        headers = dict(self.ws.scope.get("headers") or [])
        if not self.hub.origin_allowed(headers):
            log.warning("refused a /yjs socket from origin %r", headers.get(b"origin", b"").decode("latin-1"))
            await self.ws.close(CLOSE_POLICY)  # before accept: HTTP 403
            return
        offered: list[str] = list(self.ws.scope.get("subprotocols") or [])
        token = next((p[len(TOKEN_PREFIX) :] for p in offered if p.startswith(TOKEN_PREFIX)), None)
        token = token or self.ws.query_params.get("token")
        # Browsers fail a handshake that offered subprotocols and got none back; never echo the token.
        await self.ws.accept(subprotocol=next((p for p in offered if not p.startswith(TOKEN_PREFIX)), None))
        try:
            identity = await self.hub.verify_token(token or None)
        except HubError as exc:
            await self.ws.close(CLOSE_AUTH_FAILED, close_reason(exc.msg))
            return
        if self.doc_id == INDEX_ROOM or not is_doc_id(self.doc_id):
            await self.ws.close(CLOSE_POLICY, close_reason("Document ids are 1 to 64 letters, digits and _ . = + -."))
            return
        self.user = identity.user
        documents = self.documents
        od = await documents.open(self.doc_id)
        if od is None and self.settings.auto_create and may_create(self.settings.create, identity):
            await documents.create(self.doc_id, identity, self.doc_id, self.settings.default_access)
            od = await documents.open(self.doc_id)
        if od is None or od.role(identity.user) is Role.NONE:  # the same close: nothing tells the two apart
            await self.ws.close(CLOSE_NO_ACCESS, close_reason(no_document(self.doc_id)))
            return
        # From here the document's listener (documents.py) hands this socket everyone else's updates and awareness.
        od.peers.add(self)
        writer = asyncio.create_task(self._write_forever(), name=f"docedit-yjs-{self.client}")
        stop = self._going_away
        documents.closers.add(stop)
        try:
            self._send(sync_frame(step1(od.ydoc.get_state())))
            known = od.awareness.encode()
            if known is not None:
                self._send(awareness_frame(known))
            await self._read_forever(documents, identity.user)
        except _Closed as closed:
            self.closing = (closed.code, closed.reason)
        except WebSocketDisconnect:
            log.debug("a /yjs socket of %s went away", self.doc_id)
        finally:
            documents.closers.discard(stop)
            od.peers.discard(self)
            await self._leave(documents, writer)

    # ---- inbound ------------------------------------------------------------------------------------------

    async def _read_forever(self, documents: Documents, user: str) -> None:
        while self.closing is None:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:
                raise _Closed(CLOSE_MALFORMED, "y-websocket frames are binary.")
            await self._throttle()
            try:
                frame = parse_frame(data)
            except ProtocolError as exc:
                raise _Closed(CLOSE_MALFORMED, f"Not a y-websocket frame: {exc}.") from None
            od = await documents.open(self.doc_id)
            if od is None or od.deleted:
                raise _Closed(CLOSE_DELETED, "The document was deleted.")
            role = od.role(user)
            if role is Role.NONE:
                raise _Closed(CLOSE_NO_ACCESS, access_withdrawn(self.doc_id))
            if frame.sync is not None:
                await self._on_sync(documents, od, role, frame.sync.kind, frame.sync.payload)
            elif frame.awareness is not None:
                await self._on_awareness(od, frame.awareness)
            elif frame.kind == FrameKind.QUERY_AWARENESS:
                known = od.awareness.encode()
                if known is not None:
                    self._send(awareness_frame(known))
            # auth frames from a client and unknown kinds are ignored, as y-websocket servers do

    async def _on_sync(self, documents: Documents, od: OpenDoc, role: Role, kind: SyncKind, payload: bytes) -> None:
        if kind is SyncKind.STEP1:
            try:
                self._send(sync_frame(step2(od.ydoc.get_update(payload))))
            except ValueError:
                raise _Closed(CLOSE_MALFORMED, "Sync step 1 without a state vector.") from None
            return
        if payload == EMPTY_UPDATE:
            return
        if role < Role.EDITOR:
            documents.rejected += 1
            self._send(permission_denied_frame("forbidden: you may only read this document"))
            return
        try:
            await documents.apply(od, payload, client=self.client)
        except HubError as exc:
            if exc.code == "invalid":
                raise _Closed(CLOSE_MALFORMED, exc.msg) from None
            # y-websocket has no error message but the auth one; the update is not applied
            self._send(permission_denied_frame(f"{exc.code}: {exc.msg}"))

    async def _on_awareness(self, od: OpenDoc, update: bytes) -> None:
        try:
            if len(update) > MAX_AWARENESS_BYTES:
                raise ProtocolError(f"an awareness update is at most {MAX_AWARENESS_BYTES} bytes")
            entries = parse_awareness(update)
        except ProtocolError as exc:
            raise _Closed(CLOSE_MALFORMED, f"Bad awareness update: {exc}.") from None
        self.own_clients.update(entry.client_id for entry in entries)
        od.awareness.apply(entries, self.client, time.monotonic())
        event = AwarenessChanged(m=b64encode(update), client=self.client)
        await self.hub.publish(od.channel, "docedit.awareness", event, ephemeral=True)

    async def _throttle(self) -> None:
        """sync_rate frames per second on average (sync_burst at once): a faster client waits, which its TCP
        window turns into backpressure."""
        now = time.monotonic()
        self._tokens = min(
            float(self.settings.sync_burst), self._tokens + (now - self._refilled) * self.settings.sync_rate
        )
        self._refilled = now
        if self._tokens < 1.0:
            await asyncio.sleep((1.0 - self._tokens) / self.settings.sync_rate)
            self._tokens = 1.0
            self._refilled = time.monotonic()
        self._tokens -= 1.0

    # ---- outbound -----------------------------------------------------------------------------------------

    def deliver(self, frame: bytes) -> None:
        self._send(frame)

    def on_meta(self, meta: DocMeta) -> None:
        if role_of(meta, self.user) is Role.NONE:
            self._stop(CLOSE_NO_ACCESS, access_withdrawn(self.doc_id))  # nothing more is sent: _send checks

    def on_deleted(self) -> None:
        self._stop(CLOSE_DELETED, "The document was deleted.")

    def _send(self, data: bytes) -> None:
        if self.closing is not None:
            return
        try:
            self.outbox.put_nowait(data)
        except asyncio.QueueFull:
            self._stop(CLOSE_SLOW, "The socket did not read its updates fast enough.")

    def _going_away(self) -> None:
        self._stop(1001, "The hub is shutting down.")

    def _stop(self, code: int, reason: str) -> None:
        if self.closing is None:
            self.closing = (code, reason)
            with contextlib.suppress(asyncio.QueueFull):
                self.outbox.put_nowait(None)

    async def _write_forever(self) -> None:
        outbox = self.outbox
        carried: list[bytes | None] = []  # a frame taken from the outbox while merging, sent next
        while True:
            data = carried.pop() if carried else await outbox.get()
            if data is None:
                code, reason = self.closing or (1000, "")
                await self.ws.close(code, close_reason(reason))
                return
            if outbox.qsize() and data.startswith(UPDATE_FRAME):
                # Updates waiting back to back go as one merged update: one send instead of many (a Yjs client
                # applies a merged update as it would each of its parts).
                batch = [data]
                while outbox.qsize() and len(batch) < MERGE_AT_MOST:
                    following = outbox.get_nowait()
                    if following is None or not following.startswith(UPDATE_FRAME):
                        carried.append(following)
                        break
                    batch.append(following)
                for frame in merge_update_frames(batch):
                    await self.ws.send_bytes(frame)
                continue
            await self.ws.send_bytes(data)

    async def _leave(self, documents: Documents, writer: asyncio.Task[None]) -> None:
        if self.closing is not None and not writer.done():
            # Queued frames go first, then the close (the writer closes when it reaches the marker).
            with contextlib.suppress(asyncio.QueueFull):
                self.outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, self.hub.close_timeout)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer
        od = await documents.open(self.doc_id) if self.own_clients else None
        if od is not None:
            await self._forget_awareness(od.awareness, od.channel)

    async def _forget_awareness(self, states: AwarenessStates, channel: str) -> None:
        removed = states.forget(self.client, time.monotonic())
        if removed:
            event = AwarenessChanged(m=b64encode(encode_awareness(removed)), client=self.client)
            with contextlib.suppress(Exception):  # the socket is gone either way; states also time out
                await self.hub.publish(channel, "docedit.awareness", event, ephemeral=True)


def make_router(documents: Documents) -> APIRouter:
    """``/yjs/{document}``, serving one hub's documents."""
    router = APIRouter()

    @router.websocket("/yjs/{document}")
    async def yjs_socket(websocket: WebSocket, document: str) -> None:
        await YjsConnection(documents, websocket, document).serve()

    return router
