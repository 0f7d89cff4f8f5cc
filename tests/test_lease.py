"""hub.Lease over the in-process coordination (the coordination's side is in tests/test_coordination_conformance.py,
on Redis too)."""

from __future__ import annotations

import asyncio

import pytest

from hub.broker.memory_coordination import MemoryCoordination
from hub.lease import Lease


async def test_two_holders_of_one_name_take_turns() -> None:
    coordination = MemoryCoordination()
    first = Lease(coordination, "feed:x", 0.2, node_id="n1")
    second = Lease(coordination, "feed:x", 0.2, node_id="n1")  # same node, another holder: still another owner
    assert first.owner != second.owner
    assert await first.acquire()
    assert first.held
    assert not await second.acquire()
    assert not second.held
    await first.release()
    assert not first.held
    assert await second.acquire()
    assert second.held


async def test_held_turns_false_when_the_ttl_passes_without_a_renewal() -> None:
    coordination = MemoryCoordination()
    lease = Lease(coordination, "feed:y", 0.1, node_id="n1")
    assert await lease.acquire()
    await asyncio.sleep(0.15)
    assert not lease.held
    assert await Lease(coordination, "feed:y", 1.0, node_id="n2").acquire()  # it ran out in the coordination too
    assert not await lease.acquire()


def test_a_lease_needs_a_name_and_a_positive_ttl() -> None:
    with pytest.raises(ValueError, match="ttl"):
        Lease(MemoryCoordination(), "x", 0, node_id="n")
    with pytest.raises(ValueError, match="name"):
        Lease(MemoryCoordination(), "", 1.0, node_id="n")
