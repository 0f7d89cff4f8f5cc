"""Idempotency-Key claims: a retry with the same key (from the same publisher) delivers once, on any node.

A claim is one record, taken with compare_and_set, so of two concurrent first tries on two nodes exactly one
delivers; the other waits for its result. Keys (in the plugin's store)::

    i/<sha256(publisher, key)>        the claim: {"state": "pending" | "done", "ts", "fingerprint", "result"}
    it/<ms>/<sha256(publisher, key)>  the claim's time index, so old claims are purged without a full scan
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from pydantic import BaseModel

from hub import PluginStore
from hub_realtime_plugins.notifications.messages import PublishResult

CLAIMS = "i/"
CLAIM_TIMES = "it/"
POLL_INTERVAL = 0.05  # seconds between two looks at a claim another try holds


class IdempotencyConflict(Exception):
    """The key is in use: by a different request (``mismatch``) or by a try still running (``in_progress``)."""

    def __init__(self, reason: Literal["mismatch", "in_progress"], msg: str) -> None:
        super().__init__(msg)
        self.reason = reason
        self.msg = msg


class Claim(BaseModel):
    state: Literal["pending", "done"]
    ts: float
    fingerprint: str
    result: PublishResult | None = None


def claim_key(publisher: str, key: str) -> str:
    return CLAIMS + hashlib.sha256(f"{publisher}\x00{key}".encode()).hexdigest()


class IdempotencyClaims:
    def __init__(self, store: PluginStore, *, window: float, wait: float, stale: float) -> None:
        self._store = store
        self._window = window
        self._wait = wait
        self._stale = stale

    async def run_once(
        self, publisher: str, key: str, fingerprint: str, deliver: Callable[[], Awaitable[PublishResult]]
    ) -> PublishResult:
        """Run ``deliver`` unless this key already delivered (then return that result with duplicate=True)."""
        record = claim_key(publisher, key)
        deadline = time.monotonic() + self._wait
        while True:
            now = time.time()
            pending = Claim(state="pending", ts=now, fingerprint=fingerprint).model_dump_json().encode()
            current = await self._store.get(record)
            if current is None:
                if await self._store.compare_and_set(record, None, pending):
                    return await self._deliver(record, pending, now, fingerprint, deliver)
                continue  # another try claimed it just now: look again
            claim = Claim.model_validate_json(current)
            expired = claim.ts < now - self._window
            stale = claim.state == "pending" and claim.ts < now - self._stale
            if expired or stale:  # forgotten, or its node died mid-delivery: take it over
                if await self._store.compare_and_set(record, current, pending):
                    return await self._deliver(record, pending, now, fingerprint, deliver)
                continue
            if claim.fingerprint != fingerprint:
                raise IdempotencyConflict("mismatch", "This Idempotency-Key was used for a different request.")
            if claim.state == "done" and claim.result is not None:
                return claim.result.model_copy(update={"duplicate": True})
            if time.monotonic() >= deadline:
                raise IdempotencyConflict("in_progress", "A request with this Idempotency-Key is still running.")
            await asyncio.sleep(POLL_INTERVAL)

    async def _deliver(
        self,
        record: str,
        pending: bytes,
        now: float,
        fingerprint: str,
        deliver: Callable[[], Awaitable[PublishResult]],
    ) -> PublishResult:
        await self._store.put(f"{CLAIM_TIMES}{int(now * 1000):012x}/{record[len(CLAIMS) :]}", b"")
        try:
            result = await deliver()
        except BaseException:
            # Nothing (or not all) was delivered: free the key so a retry runs. Best effort; a claim left
            # behind goes stale and is taken over after idempotency_stale seconds.
            await asyncio.shield(self._store.compare_and_set(record, pending, None))
            raise
        done = Claim(state="done", ts=now, fingerprint=fingerprint, result=result).model_dump_json().encode()
        await self._store.compare_and_set(record, pending, done)
        return result

    async def purge(self, now: float | None = None, batch: int = 500) -> int:
        """Forget claims older than the window; returns how many went."""
        cutoff_ms = int(((time.time() if now is None else now) - self._window) * 1000)
        purged = 0
        while True:
            entries = await self._store.scan(CLAIM_TIMES, limit=batch)
            due = [key for key, _raw in entries if int(key[len(CLAIM_TIMES) :].split("/", 1)[0], 16) <= cutoff_ms]
            for key in due:
                record = CLAIMS + key.rpartition("/")[2]
                current = await self._store.get(record)
                # The index may be older than the claim (taken over later): only an old claim goes.
                if current is not None and Claim.model_validate_json(current).ts * 1000 <= cutoff_ms:
                    purged += await self._store.compare_and_set(record, current, None)
                await self._store.delete(key)
            if len(due) < batch:
                return purged
