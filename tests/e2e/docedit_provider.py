"""A small Yjs provider for tests: a pycrdt document synced with a hub's ``docedit:<doc>`` channel over a
HubClient, speaking docs/docedit.md exactly as a browser provider would (sub, step 1/step 2, updates, parts)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from pycrdt import Doc, Text

from hub import testing
from hub.testing import HubClient
from hub_realtime_plugins.docedit.yprotocol import (
    EMPTY_UPDATE,
    SyncKind,
    b64decode,
    b64encode,
    parse_sync,
    step1,
    step2,
    update_message,
)

PART_CHARS = 32768


async def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> None:
    """hub.testing's, with the longer default these tests need (documents syncing across nodes)."""
    await testing.wait_until(predicate, timeout, interval)


class DocProvider:
    """One replica of one document. ``attach`` a connected HubClient (again after a reconnect); edits made
    while detached are sent in step 2 on the next attach."""

    def __init__(self, doc_id: str) -> None:
        self.doc_id = doc_id
        self.channel = f"docedit:{doc_id}"
        self.ydoc: Doc[Any] = Doc()
        self.text = self.ydoc.get("content", type=Text)
        self.client: HubClient | None = None
        self.snapshot: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []  # every non-update event, in order
        self.updates_received = 0
        self._outbox: list[bytes] = []  # local updates made while attached, not yet sent
        self._remote = False
        self._pump: asyncio.Task[None] | None = None
        self.ydoc.observe(self._on_change)

    def _on_change(self, event: Any) -> None:
        if not self._remote and self.client is not None:
            self._outbox.append(event.update)

    def apply_remote(self, update: bytes) -> None:
        self._remote = True
        try:
            self.ydoc.apply_update(update)
        finally:
            self._remote = False

    @property
    def content(self) -> str:
        return str(self.text)

    # ---- connection ---------------------------------------------------------------------------------------

    async def attach(self, client: HubClient) -> dict[str, Any]:
        """Subscribe, then step 1 -> step 2 (what we lack), then our step 2 (what the server lacks)."""
        self.client = client
        self.snapshot = (await client.sub(self.channel))["snapshot"]
        self._pump = asyncio.create_task(self._read_events())
        reply = await self.sync_message(step1(self.ydoc.get_state()))
        message = parse_sync(b64decode(reply["m"]))
        assert message.kind is SyncKind.STEP2
        self.apply_remote(message.payload)
        if self.snapshot["role"] in ("owner", "editor"):
            server_state = parse_sync(b64decode(self.snapshot["step1"])).payload
            missing = self.ydoc.get_update(server_state)
            if missing != EMPTY_UPDATE:
                await self.sync_message(step2(missing))
        self._outbox.clear()
        return self.snapshot

    async def detach(self) -> None:
        """The connection is gone (closed by the test); edits from now on wait for the next attach."""
        client, self.client = self.client, None
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        if client is not None:
            await client.close()

    async def _read_events(self) -> None:
        assert self.client is not None
        while True:
            frame = await self.client.events.get()
            if frame["ch"] != self.channel:
                continue
            if frame["type"] == "docedit.update":
                self.updates_received += 1
                self.apply_remote(parse_sync(b64decode(frame["data"]["m"])).payload)
            else:
                self.events.append(frame)

    async def next_event(self, event_type: str, timeout: float = 5.0) -> dict[str, Any]:
        """The first event of ``event_type`` received and not taken yet (taken now)."""
        await wait_until(lambda: any(frame["type"] == event_type for frame in self.events), timeout)
        index = next(i for i, frame in enumerate(self.events) if frame["type"] == event_type)
        return self.events.pop(index)

    async def sync_message(self, message: bytes) -> Any:
        """Send one sync sub-message, in parts when its base64 is longer than 32768 characters."""
        assert self.client is not None
        text = b64encode(message)
        if len(text) <= PART_CHARS:
            return await self.client.pub(self.channel, "docedit.sync", {"m": text})
        chunks = [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)]
        part_id = secrets.token_hex(4)
        reply: Any = None
        for index, chunk in enumerate(chunks):
            part = {"id": part_id, "index": index, "count": len(chunks)}
            reply = await self.client.pub(self.channel, "docedit.sync", {"m": chunk, "part": part})
            if index < len(chunks) - 1:
                assert reply == {"partial": True}
        return reply

    # ---- editing ------------------------------------------------------------------------------------------

    async def edit(self, change: Callable[[Text], None]) -> None:
        """Change the text locally, then (when attached) send what the change produced as updates."""
        with self.ydoc.transaction():
            change(self.text)
        await self.flush()

    async def flush(self) -> None:
        if self.client is None:
            return
        pending, self._outbox = self._outbox, []
        for update in pending:
            await self.sync_message(update_message(update))

    def call(self, message_type: str, data: dict[str, Any]) -> Awaitable[Any]:
        assert self.client is not None
        return self.client.pub(self.channel, message_type, data)
