"""Lease: a named lock with an expiry, held by one node of the cluster at a time (one feed, one sweeper).

The broker's coordination keeps it: in Redis (SET NX PX, extended only by its owner) when nodes share one, in
the process with ``memory://``. A holder renews it well within its ttl; a node that dies stops renewing, so the
lease runs out within ttl and another node's :meth:`Lease.acquire` succeeds.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hub.broker import Coordination


class Lease:
    """One named lease as seen by one holder. Not re-entrant across objects: two ``Lease`` objects for the same
    name (even on one node) are two owners, and only one of them gets it."""

    __slots__ = ("_coordination", "_expires_at", "_owner", "name", "ttl")

    def __init__(self, coordination: Coordination, name: str, ttl: float, *, node_id: str) -> None:
        if ttl <= 0:
            raise ValueError("a lease needs a ttl > 0 seconds")
        if not name:
            raise ValueError("a lease needs a name")
        self._coordination = coordination
        self.name = name
        self.ttl = ttl
        self._owner = f"{node_id}:{secrets.token_hex(4)}"
        self._expires_at = 0.0  # monotonic; until then this holder may act on the lease

    @property
    def owner(self) -> str:
        """This holder's id in the broker (the node id plus a random suffix)."""
        return self._owner

    @property
    def held(self) -> bool:
        """Whether this holder got (or renewed) the lease less than ttl ago, by this node's clock, counted from
        before the request (so it never believes it holds a lease the broker has already let go)."""
        return time.monotonic() < self._expires_at

    async def acquire(self) -> bool:
        """Take the lease if it is free, or renew it if this holder has it; False if another holder has it.

        Raises :class:`hub.broker.BrokerUnavailable` when the broker cannot be reached; the holder should then
        stop acting on the lease once :attr:`held` turns False.
        """
        started = time.monotonic()
        if await self._coordination.lease_acquire(self.name, self._owner, self.ttl):
            self._expires_at = started + self.ttl
            return True
        self._expires_at = 0.0
        return False

    async def release(self) -> None:
        """Give the lease up at once (if this holder has it), so another node need not wait for the expiry."""
        self._expires_at = 0.0
        await self._coordination.lease_release(self.name, self._owner)
