"""The Presence conformance suite: every backend's presence passes every test here.

Runs on each backend of tests/broker_backends.py; the ``presence`` fixture is a started broker's ``presence``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hub.broker import Presence
from hub.types import PresenceMember
from tests.broker_backends import BACKENDS, started_broker, unique_channel


@pytest.fixture(params=BACKENDS)
async def presence(request: pytest.FixtureRequest) -> AsyncIterator[Presence]:
    async with started_broker(request, request.param) as broker:
        yield broker.presence


@pytest.fixture
def channel() -> str:
    return unique_channel()


async def test_presence_join_leave_members(presence: Presence, channel: str) -> None:
    alice = PresenceMember(client="c1", user="alice", name="Alice")
    bob = PresenceMember(client="c2", user="bob", name="Bob")
    alice_again = PresenceMember(client="c3", user="alice", name="Alice")
    assert await presence.members(channel) == []
    await presence.join(channel, alice)
    await presence.join(channel, bob)
    await presence.join(channel, alice_again)
    assert sorted(await presence.members(channel), key=lambda m: m.client) == [alice, bob, alice_again]
    await presence.leave(channel, "c1")
    assert sorted(await presence.members(channel), key=lambda m: m.client) == [bob, alice_again]
    await presence.leave(channel, "c2")
    await presence.leave(channel, "c3")
    assert await presence.members(channel) == []


async def test_presence_join_twice_keeps_one_entry(presence: Presence, channel: str) -> None:
    member = PresenceMember(client="c1", user="alice", name="Alice")
    await presence.join(channel, member)
    await presence.join(channel, member)
    assert await presence.members(channel) == [member]


async def test_presence_leave_of_an_absent_client_is_harmless(presence: Presence, channel: str) -> None:
    member = PresenceMember(client="c1", user="alice", name="Alice")
    await presence.leave(channel, "nobody")
    await presence.join(channel, member)
    await presence.leave(channel, "nobody")
    assert await presence.members(channel) == [member]


async def test_presence_is_per_channel(presence: Presence, channel: str) -> None:
    other = channel + "-other"
    member = PresenceMember(client="c1", user="alice", name="Alice")
    await presence.join(channel, member)
    assert await presence.members(other) == []
    await presence.leave(other, "c1")
    assert await presence.members(channel) == [member]


async def test_a_burst_of_concurrent_operations_all_succeed(presence: Presence, channel: str) -> None:
    """Hundreds of clients leaving at once must not exhaust a connection pool."""
    members = [PresenceMember(client=f"c{n}", user=f"u{n}", name=f"n{n}") for n in range(300)]
    await asyncio.gather(*(presence.join(channel, member) for member in members))
    assert len(await presence.members(channel)) == 300
    await asyncio.gather(*(presence.leave(channel, member.client) for member in members))
    assert await presence.members(channel) == []
