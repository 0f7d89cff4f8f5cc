"""The Coordination conformance suite: every backend's publish dedup and leases pass every test here.

Runs on each backend of tests/broker_backends.py; the ``coordination`` fixture is a started broker's
``coordination``. (A publish that marks its mid done is in the PubSub suite.)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from hub.broker import Coordination
from tests.broker_backends import BACKENDS, started_broker


@pytest.fixture(params=BACKENDS)
async def coordination(request: pytest.FixtureRequest) -> AsyncIterator[Coordination]:
    async with started_broker(request, request.param) as broker:
        yield broker.coordination


# ---- publish dedup -----------------------------------------------------------------------------------------


async def test_claim_mid(coordination: Coordination) -> None:
    key = f"test:{uuid.uuid4().hex}:mid-1"
    assert await coordination.claim_mid(key, 0.1) == "claimed"
    assert await coordination.claim_mid(key, 0.1) == "pending"  # the first attempt has not finished
    assert await coordination.claim_mid(key + "-other", 0.1) == "claimed"
    await asyncio.sleep(0.2)  # the claim of an attempt that never finished (its node died) expires
    assert await coordination.claim_mid(key, 0.1) == "claimed"
    await coordination.confirm_mid(key, 0.3)  # done: remembered for the dedup window, not the claim's ttl
    await asyncio.sleep(0.15)
    assert await coordination.claim_mid(key, 0.1) == "done"
    await asyncio.sleep(0.25)
    assert await coordination.claim_mid(key, 0.1) == "claimed"


async def test_release_mid_lets_a_retry_run(coordination: Coordination) -> None:
    key = f"test:{uuid.uuid4().hex}:mid-1"
    assert await coordination.claim_mid(key, 5.0) == "claimed"
    await coordination.release_mid(key)
    assert await coordination.claim_mid(key, 5.0) == "claimed"


# ---- leases ------------------------------------------------------------------------------------------------


async def test_a_lease_has_one_owner_until_it_expires(coordination: Coordination) -> None:
    name = f"lease-{uuid.uuid4().hex}"
    assert await coordination.lease_acquire(name, "a", 0.3) is True
    assert await coordination.lease_acquire(name, "b", 0.3) is False
    assert await coordination.lease_acquire(name, "a", 0.3) is True  # the owner renews it
    await asyncio.sleep(0.45)  # not renewed: it ran out
    assert await coordination.lease_acquire(name, "b", 10.0) is True
    assert await coordination.lease_acquire(name, "a", 10.0) is False


async def test_renewing_a_lease_keeps_it(coordination: Coordination) -> None:
    name = f"lease-{uuid.uuid4().hex}"
    for _ in range(4):
        assert await coordination.lease_acquire(name, "a", 0.25) is True
        await asyncio.sleep(0.1)
    assert await coordination.lease_acquire(name, "b", 0.25) is False


async def test_only_the_owner_releases_a_lease(coordination: Coordination) -> None:
    name = f"lease-{uuid.uuid4().hex}"
    assert await coordination.lease_acquire(name, "a", 10.0) is True
    await coordination.lease_release(name, "b")  # not b's: nothing happens
    assert await coordination.lease_acquire(name, "b", 10.0) is False
    await coordination.lease_release(name, "a")
    assert await coordination.lease_acquire(name, "b", 10.0) is True
    await coordination.lease_release(name, "nobody")
    assert await coordination.lease_acquire(name, "a", 10.0) is False
