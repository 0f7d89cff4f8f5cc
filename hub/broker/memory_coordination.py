"""MemoryCoordination: publish dedup keys and leases inside one process (the embedded default)."""

from __future__ import annotations

import time

from hub.broker.protocols import MidClaim


class MemoryCoordination:
    """Entries expire lazily when touched; the expired ones nobody touches again are freed by a sweep that runs
    at most once per ``sweep_interval``, during a claim or an acquire (so memory is bounded without a task)."""

    def __init__(self, *, sweep_interval: float = 30.0) -> None:
        self._mids: dict[str, tuple[float, bool]] = {}  # mid key -> (monotonic expiry, done)
        self._leases: dict[str, tuple[str, float]] = {}  # name -> (owner, monotonic expiry)
        self._sweep_interval = sweep_interval
        self._next_sweep = time.monotonic() + sweep_interval

    async def claim_mid(self, key: str, ttl: float) -> MidClaim:
        now = self._sweep_if_due()
        found = self._mids.get(key)
        if found is not None and found[0] > now:
            return "done" if found[1] else "pending"
        self._mids[key] = (now + ttl, False)
        return "claimed"

    async def confirm_mid(self, key: str, ttl: float) -> None:
        self.mark_done(key, ttl)

    def mark_done(self, key: str, ttl: float) -> None:
        """:meth:`confirm_mid` without a suspension point, so MemoryPubSub.publish does it in the event's step."""
        self._mids[key] = (time.monotonic() + ttl, True)

    async def release_mid(self, key: str) -> None:
        self._mids.pop(key, None)

    async def lease_acquire(self, name: str, owner: str, ttl: float) -> bool:
        now = self._sweep_if_due()
        held = self._leases.get(name)
        if held is not None and held[0] != owner and held[1] > now:
            return False
        self._leases[name] = (owner, now + ttl)
        return True

    async def lease_release(self, name: str, owner: str) -> None:
        held = self._leases.get(name)
        if held is not None and held[0] == owner:
            del self._leases[name]

    def sweep(self) -> None:
        """Free expired dedup keys and leases."""
        now = time.monotonic()
        for key in [key for key, (expires_at, _done) in self._mids.items() if expires_at <= now]:
            del self._mids[key]
        for name in [name for name, (_owner, expires_at) in self._leases.items() if expires_at <= now]:
            del self._leases[name]

    def _sweep_if_due(self) -> float:
        now = time.monotonic()
        if now >= self._next_sweep:
            self.sweep()
            self._next_sweep = now + self._sweep_interval
        return now
