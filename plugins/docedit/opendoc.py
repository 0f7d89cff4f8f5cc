"""OpenDoc: one document held in memory on a node — its Yjs document, meta, cursors, and what the node knows
of its stored updates — and restore_update, the edit that brings a version's text back."""

from __future__ import annotations

import asyncio
from typing import Protocol

from pycrdt import Doc, Text

from hub import Listener
from hub_realtime_plugins.docedit.awareness import AwarenessStates
from hub_realtime_plugins.docedit.ids import Role, channel_of, role_of, sortable_id
from hub_realtime_plugins.docedit.messages import DocMeta
from hub_realtime_plugins.docedit.store import YDoc
from hub_realtime_plugins.docedit.yprotocol import EMPTY_UPDATE

CONTENT = "content"  # the root Y.Text holding a document's text


class Peer(Protocol):
    """A /yjs socket following a document: the registry's one listener per document decodes each event once and
    hands it to every peer (instead of a listener per socket, each decoding it again)."""

    client: str  # "yjs:<n>": its own updates and awareness are not sent back to it

    def deliver(self, frame: bytes) -> None:
        """Send a y-websocket frame (someone else's update or awareness)."""

    def on_meta(self, meta: DocMeta) -> None:
        """The document's meta changed (its roles may have)."""

    def on_deleted(self) -> None:
        """The document was deleted."""


class OpenDoc:
    """One document held in memory on this node."""

    __slots__ = (
        "awareness",
        "channel",
        "closed_segments",
        "compacting",
        "deleted",
        "dirty",
        "doc_id",
        "last_used",
        "listener",
        "lock",
        "meta",
        "peers",
        "segment",
        "size",
        "snapshot",
        "stored_updates",
        "touched",
        "waiters",
        "writing",
        "ydoc",
    )

    def __init__(self, meta: DocMeta, ydoc: YDoc, now: float) -> None:
        self.doc_id = meta.id
        self.channel = channel_of(meta.id)
        self.meta = meta
        self.ydoc = ydoc
        self.awareness = AwarenessStates()
        # One write at a time per document on this node checks the size and starts; the stores of several run
        # at once, so they share a group commit.
        self.lock = asyncio.Lock()
        self.listener: Listener | None = None
        self.peers: set[Peer] = set()  # this node's /yjs sockets: the registry's listener feeds them
        self.size = 0  # bytes of the encoded state, exact after a measure, an upper bound between measures
        self.stored_updates = 0  # update records in the store, as far as this node knows
        # This node's appends go under d/<doc>/u/<segment>/; a compaction closes the segment (new appends take a
        # new one) and deletes the closed ones it folded with one prefix delete each.
        self.segment = sortable_id()
        self.closed_segments: list[str] = []
        self.snapshot: bytes | None = None  # the stored snapshot this document encodes all of, if known
        self.writing: dict[str, int] = {}  # writes under way (stored, applied, published) per segment
        self.waiters: list[asyncio.Future[None]] = []  # writes_done callers
        self.last_used = now
        self.touched = now  # when `updated`/`size` were last written to the meta
        self.dirty = False  # edits since then
        self.compacting = False
        self.deleted = False

    def begin_write(self, size: int) -> str:
        """A write starts: its ``size`` bytes are counted in :attr:`size`; returns the segment it stores under."""
        segment = self.segment
        self.writing[segment] = self.writing.get(segment, 0) + 1
        self.size += size
        return segment

    def end_write(self, segment: str) -> None:
        left = self.writing[segment] - 1
        if left:
            self.writing[segment] = left
            return
        del self.writing[segment]
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def writes_done(self, segments: list[str] | None = None) -> None:
        """Until no write under way stores under ``segments`` (any, for None)."""
        while any(segment in self.writing for segment in segments) if segments is not None else self.writing:
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            await waiter

    def close_segment(self) -> list[str]:
        """End the current segment (appends from now on take a new one); returns every closed segment."""
        self.closed_segments.append(self.segment)
        self.segment = sortable_id()
        return list(self.closed_segments)

    def role(self, user: str) -> Role:
        return role_of(self.meta, user)

    def measure(self) -> int:
        self.size = len(self.ydoc.get_update())
        return self.size

    def text(self) -> str:
        return str(self.ydoc.get(CONTENT, type=Text))


def restore_update(live: YDoc, version_state: bytes) -> bytes:
    """The update that makes ``live``'s content text equal to the version's, in one transaction (delete the
    current text, insert the version's; other root types untouched). Made on a copy, so the live document
    changes only through the normal write path."""
    version: YDoc = Doc()
    version.apply_update(version_state)
    text = str(version.get(CONTENT, type=Text))
    copy: YDoc = Doc()
    copy.apply_update(live.get_update())
    updates: list[bytes] = []
    subscription = copy.observe(lambda event: updates.append(event.update))
    with copy.transaction():
        content = copy.get(CONTENT, type=Text)
        if len(content):
            del content[:]
        if text:
            content.insert(0, text)
    copy.unobserve(subscription)
    return updates[0] if updates else EMPTY_UPDATE
