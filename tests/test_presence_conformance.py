"""The Presence conformance suite: every backend's presence passes every test here.

Runs on each backend of tests/broker_backends.py; the ``presence`` fixture is a started broker's ``presence``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from hub.broker import Presence, open_broker
from hub.broker.presence_names import PROBES
from hub.testing import wait_until
from hub.types import PresenceChange, PresenceMember
from tests.broker_backends import BACKENDS, REDIS_BACKENDS, Deliveries, backend_url, started_broker, unique_channel


@pytest.fixture(params=BACKENDS)
async def presence(request: pytest.FixtureRequest) -> AsyncIterator[Presence]:
    async with started_broker(request, request.param) as broker:
        yield broker.presence


@pytest.fixture
def channel() -> str:
    return unique_channel()


async def test_presence_join_leave_members(presence: Presence, channel: str) -> None:
    alice = PresenceMember(client="c1", user="alice", name="Alice", display="Alice")
    bob = PresenceMember(client="c2", user="bob", name="Bob", display="Bob")
    alice_again = PresenceMember(client="c3", user="alice", name="Alice", display="Alice")  # one user, one display
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
    member = PresenceMember(client="c1", user="alice", name="Alice", display="Alice")
    await presence.join(channel, member)
    await presence.join(channel, member)
    assert await presence.members(channel) == [member]


async def test_presence_leave_of_an_absent_client_is_harmless(presence: Presence, channel: str) -> None:
    member = PresenceMember(client="c1", user="alice", name="Alice", display="Alice")
    await presence.leave(channel, "nobody")
    await presence.join(channel, member)
    await presence.leave(channel, "nobody")
    assert await presence.members(channel) == [member]


async def test_presence_is_per_channel(presence: Presence, channel: str) -> None:
    other = channel + "-other"
    member = PresenceMember(client="c1", user="alice", name="Alice", display="Alice")
    await presence.join(channel, member)
    assert await presence.members(other) == []
    await presence.leave(other, "c1")
    assert await presence.members(channel) == [member]


async def test_a_burst_of_concurrent_operations_all_succeed(presence: Presence, channel: str) -> None:
    """Hundreds of clients leaving at once must not exhaust a connection pool."""
    members = [PresenceMember(client=f"c{n}", user=f"u{n}", name=f"n{n}", display=f"n{n}") for n in range(300)]
    await asyncio.gather(*(presence.join(channel, member) for member in members))
    assert len(await presence.members(channel)) == 300
    await asyncio.gather(*(presence.leave(channel, member.client) for member in members))
    assert await presence.members(channel) == []


def _member(n: int) -> PresenceMember:
    return PresenceMember(client=f"c{n:04d}", user=f"u{n}", name=f"n{n}", display=f"n{n}")


async def _walk(
    presence: Presence, channel: str, limit: int, between: Callable[[], Awaitable[None]] | None = None
) -> list[list[PresenceMember]]:
    """Every page of a walk, until the cursor is None; ``between`` runs after the first page."""
    pages: list[list[PresenceMember]] = []
    cursor: str | None = ""
    while cursor is not None:
        assert len(pages) < 100, "the walk does not end"
        members, cursor = await presence.page(channel, cursor, limit)
        pages.append(members)
        if between is not None and len(pages) == 1:
            await between()
    return pages


async def test_join_and_leave_return_the_member_count(presence: Presence, channel: str) -> None:
    alice, bob, carol = _member(1), _member(2), _member(3)
    assert await presence.count(channel) == 0
    assert (await presence.join(channel, alice)).count == 1
    assert (await presence.join(channel, bob)).count == 2
    assert (await presence.join(channel, bob)).count == 2  # joining twice: still one entry
    assert (await presence.join(channel, carol)).count == 3
    assert await presence.count(channel) == 3
    assert (await presence.leave(channel, alice.client)).count == 2
    assert (await presence.leave(channel, alice.client)).count == 2  # leaving twice
    assert (await presence.leave(channel, "nobody")).count == 2  # not a member
    assert await presence.count(channel) == 2
    assert (await presence.leave(channel, bob.client)).count == 1
    assert (await presence.leave(channel, carol.client)).count == 0
    assert (await presence.leave(channel, carol.client)).count == 0
    assert await presence.count(channel) == 0
    assert (await presence.leave(channel + "-never", "c1")).count == 0


async def test_count_is_per_channel(presence: Presence, channel: str) -> None:
    other = channel + "-other"
    for n in range(5):
        await presence.join(channel, _member(n))
    await presence.join(other, _member(0))
    assert await presence.count(channel) == 5
    assert await presence.count(other) == 1
    assert await presence.count(channel + "-none") == 0


async def test_concurrent_joins_count_every_member_once(presence: Presence, channel: str) -> None:
    changes = await asyncio.gather(*(presence.join(channel, _member(n)) for n in range(100)))
    assert sorted(change.count for change in changes) == list(
        range(1, 101)
    )  # each join's count is read in the same step as its write
    assert await presence.count(channel) == 100


async def test_a_page_walk_returns_every_member(presence: Presence, channel: str) -> None:
    members = [_member(n) for n in range(250)]
    await asyncio.gather(*(presence.join(channel, member) for member in members))
    pages = await _walk(presence, channel, 40)
    seen = [member for page in pages for member in page]
    assert {m.client: m for m in seen} == {m.client: m for m in members}  # each at least once, data intact
    assert [len(page) for page in pages] == [40] * 6 + [10]
    assert [m.client for m in seen] == sorted(m.client for m in members)  # in client id order, each once


async def test_a_page_walk_over_an_empty_channel(presence: Presence, channel: str) -> None:
    assert await presence.page(channel, "", 40) == ([], None)
    await presence.join(channel, _member(1))
    await presence.leave(channel, _member(1).client)
    assert await presence.page(channel, "", 40) == ([], None)


async def test_a_small_channel_comes_whole_in_one_page(presence: Presence, channel: str) -> None:
    members = [_member(n) for n in range(30)]
    for member in members:
        await presence.join(channel, member)
    page, cursor = await presence.page(channel, "", 40)
    assert cursor is None
    assert sorted(page, key=lambda m: m.client) == members


async def test_members_joining_and_leaving_during_a_walk_do_not_break_it(presence: Presence, channel: str) -> None:
    """A member present during the whole walk appears; newcomers may or may not; the walk still ends."""
    members = [_member(n) for n in range(250)]
    await asyncio.gather(*(presence.join(channel, member) for member in members))
    newcomers = [_member(n) for n in range(250, 400)]  # enough to make Redis grow (rehash) the hash mid-walk
    leavers = members[::10]

    async def change() -> None:
        await asyncio.gather(*(presence.join(channel, member) for member in newcomers))
        await asyncio.gather(*(presence.leave(channel, member.client) for member in leavers))

    pages = await _walk(presence, channel, 40, change)
    seen = {member.client for page in pages for member in page}
    stayed = {m.client for m in members} - {m.client for m in leavers}
    assert stayed <= seen
    assert seen <= {m.client for m in members + newcomers}
    assert all(len(page) <= 40 for page in pages)
    assert await presence.count(channel) == 400 - len(leavers)


async def test_a_cursor_is_a_place_in_client_id_order(presence: Presence, channel: str) -> None:
    """The cursor is the last client id of the page before; any string starts a page after itself."""
    for n in range(10):
        await presence.join(channel, _member(n))
    page, cursor = await presence.page(channel, "", 3)
    assert [m.client for m in page] == ["c0000", "c0001", "c0002"]
    assert cursor == "c0002"
    page, cursor = await presence.page(channel, "c0004x", 3)  # not a member: the page starts after it
    assert [m.client for m in page] == ["c0005", "c0006", "c0007"]
    page, cursor = await presence.page(channel, "c0006", 3)  # the last page, full: no cursor after it
    assert ([m.client for m in page], cursor) == (["c0007", "c0008", "c0009"], None)
    assert await presence.page(channel, "c0009", 3) == ([], None)
    assert await presence.page(channel, "\U0010ffff", 3) == ([], None)
    with pytest.raises(ValueError, match="limit"):
        await presence.page(channel, "", 0)


async def test_a_big_page(presence: Presence, channel: str) -> None:
    """One page of thousands of members (the most a sub reply may list is 10,000)."""
    members = [_member(n) for n in range(2500)]
    for start in range(0, 2500, 500):
        await asyncio.gather(*(presence.join(channel, member) for member in members[start : start + 500]))
    page, cursor = await presence.page(channel, "", 10_000)
    assert (page, cursor) == (members, None)
    page, cursor = await presence.page(channel, "", 2000)
    assert (page, cursor) == (members[:2000], "c1999")


@pytest.mark.parametrize("backend", REDIS_BACKENDS)
async def test_a_dead_nodes_member_leaves_every_view_and_is_announced_once(
    request: pytest.FixtureRequest, backend: str
) -> None:
    """Only Redis members outlive their node. A node that never started never refreshes: once its member's expiry
    passes, no view counts or lists it, even before a node that follows the channel removes it and announces
    it, once."""
    url, prefix, channel = backend_url(request, backend), f"t{uuid.uuid4().hex[:8]}", unique_channel()
    ghost, alive, late = _member(1), _member(2), _member(3)
    expired: list[tuple[str, PresenceMember]] = []
    announced = asyncio.Event()

    async def on_expired(expired_channel: str, member: PresenceMember) -> None:
        expired.append((expired_channel, member))
        announced.set()

    dead = open_broker(url, prefix=prefix, presence_ttl=0.6)
    survivor = open_broker(url, prefix=prefix, presence_ttl=1.5)  # refreshes its members every 0.5 s
    await survivor.start(Deliveries(), on_expired)
    try:
        # Connected first (a cluster client finds its slots on first use, which may take longer than the ghost's
        # TTL on a busy machine): the joins below then take milliseconds, well inside it.
        await dead.presence.count(unique_channel())
        await survivor.presence.count(unique_channel())
        assert (await dead.presence.join(channel, ghost)).count == 1
        assert (await survivor.presence.join(channel, alive)).count == 2
        await asyncio.sleep(0.8)  # the ghost's expiry passes; nobody follows the channel, so nobody removes it
        assert expired == []
        assert await survivor.presence.count(channel) == 1
        assert await survivor.presence.page(channel, "", 10) == ([alive], None)
        assert await survivor.presence.page(channel, "", 1) == ([], "c0001")  # passed over, the walk goes on
        assert await survivor.presence.page(channel, "c0001", 1) == ([alive], None)
        assert await survivor.presence.members(channel) == [alive]
        assert (await survivor.presence.join(channel, late)).count == 2
        assert (await survivor.presence.leave(channel, late.client)).count == 1

        await survivor.pubsub.subscribe(channel)  # now the survivor follows the channel: it removes the ghost
        async with asyncio.timeout(3.0):
            await announced.wait()
        await asyncio.sleep(0.3)  # it keeps its own member refreshed, and announces nobody twice
        assert expired == [(channel, ghost)]
        assert await survivor.presence.count(channel) == 1
        assert await survivor.presence.page(channel, "", 1) == ([alive], None)
        assert await survivor.presence.members(channel) == [alive]
    finally:
        await survivor.close()
        await dead.close()


# ---- names and metadata (protocol.md §9, "Names" and "Metadata") ---------------------------------------------


def _shown(change: PresenceChange) -> str:
    assert change.member is not None
    return change.member.display


def _person(client: str, user: str, name: str) -> PresenceMember:
    return PresenceMember(client=client, user=user, name=name)


async def _displays(presence: Presence, channel: str) -> dict[str, str]:
    return {m.client: m.display for m in await presence.members(channel)}


async def test_users_who_share_a_name_get_suffixes_that_stay(presence: Presence, channel: str) -> None:
    first = await presence.join(channel, _person("c1", "alice-1", "Alice"))
    second = await presence.join(channel, _person("c2", "alice-2", "Alice"))
    third = await presence.join(channel, _person("c3", "alice-3", "Alice"))
    assert [c.member.display for c in (first, second, third) if c.member] == ["Alice", "Alice (2)", "Alice (3)"]
    assert await _displays(presence, channel) == {"c1": "Alice", "c2": "Alice (2)", "c3": "Alice (3)"}
    left = await presence.leave(channel, "c1")
    assert (left.count, _shown(left)) == (2, "Alice")
    # Those who stay keep theirs; a newcomer takes the first free one.
    assert await _displays(presence, channel) == {"c2": "Alice (2)", "c3": "Alice (3)"}
    fourth = await presence.join(channel, _person("c4", "alice-4", "Alice"))
    assert _shown(fourth) == "Alice"
    await presence.leave(channel, "c3")
    fifth = await presence.join(channel, _person("c5", "alice-5", "Alice"))
    assert _shown(fifth) == "Alice (3)"
    displays = await _displays(presence, channel)
    assert sorted(displays.values()) == ["Alice", "Alice (2)", "Alice (3)"]


async def test_one_users_connections_share_its_display(presence: Presence, channel: str) -> None:
    await presence.join(channel, _person("c1", "bob-1", "Bob"))
    await presence.join(channel, _person("c2", "bob-2", "Bob"))
    await presence.join(channel, _person("c3", "bob-2", "Bob"))  # bob-2's second tab
    assert await _displays(presence, channel) == {"c1": "Bob", "c2": "Bob (2)", "c3": "Bob (2)"}
    await presence.leave(channel, "c2")
    newcomer = await presence.join(channel, _person("c4", "bob-3", "Bob"))  # "Bob (2)" is still bob-2's
    assert _shown(newcomer) == "Bob (3)"
    await presence.leave(channel, "c3")  # bob-2's last connection: its display is free
    again = await presence.join(channel, _person("c5", "bob-5", "Bob"))
    assert _shown(again) == "Bob (2)"


async def test_a_name_that_looks_like_a_suffixed_one_is_told_apart(presence: Presence, channel: str) -> None:
    await presence.join(channel, _person("c1", "u1", "Alice"))
    await presence.join(channel, _person("c2", "u2", "Alice"))
    await presence.join(channel, _person("c3", "u3", "Alice (2)"))
    await presence.join(channel, _person("c4", "u4", 'Zoë "the" /z\\'))  # JSON-escaped in Redis
    displays = await _displays(presence, channel)
    assert displays == {"c1": "Alice", "c2": "Alice (2)", "c3": "Alice (2) (2)", "c4": 'Zoë "the" /z\\'}
    assert len(set(displays.values())) == 4


async def test_names_are_per_channel(presence: Presence, channel: str) -> None:
    await presence.join(channel, _person("c1", "u1", "Ann"))
    other = await presence.join(channel + "-other", _person("c2", "u2", "Ann"))
    assert _shown(other) == "Ann"


async def test_update_sets_a_members_metadata(presence: Presence, channel: str) -> None:
    joined = await presence.join(channel, PresenceMember("c1", "u1", "Ann", meta={"status": "online"}))
    assert joined.member == PresenceMember("c1", "u1", "Ann", "Ann", {"status": "online"})
    await presence.join(channel, _person("c2", "u2", "Ann"))
    changed = await presence.update(channel, "c2", {"status": "away", "n": 2**53, "x": [1.5, None, "é"]})
    assert changed.count == 2
    assert changed.member == PresenceMember(
        "c2", "u2", "Ann", "Ann (2)", {"status": "away", "n": 2**53, "x": [1.5, None, "é"]}
    )
    members = {m.client: m for m in await presence.members(channel)}
    assert members["c2"] == changed.member
    assert members["c1"].meta == {"status": "online"}
    page, _cursor = await presence.page(channel, "", 10)
    assert [m.meta for m in page] == [{"status": "online"}, changed.member.meta]
    cleared = await presence.update(channel, "c1", None)
    assert cleared.member == PresenceMember("c1", "u1", "Ann", "Ann", None)
    assert (await presence.update(channel, "nobody", {"a": 1})).member is None
    assert (await presence.update(channel + "-none", "c1", {"a": 1})) == PresenceChange(0, None)
    left = await presence.leave(channel, "c2")
    assert left.member == changed.member  # a leave hands back the member as it was, metadata included


PRESENCE_KEYS = ("", "-exp", "-ids", "-names", "-displays", "-refs")


@pytest.mark.parametrize("backend", REDIS_BACKENDS)
async def test_a_members_metadata_and_display_survive_its_refresh(request: pytest.FixtureRequest, backend: str) -> None:
    """The node's refresh writes its members back whole: after Redis lost them (here: the keys deleted), they come
    back with their metadata and display, and the name index with them."""
    url, prefix, channel = backend_url(request, backend), f"t{uuid.uuid4().hex[:8]}", unique_channel()
    broker = open_broker(url, prefix=prefix, presence_ttl=0.3)  # a refresh every 0.1 s
    await broker.start(Deliveries())
    try:
        await broker.presence.join(channel, _person("c1", "u1", "Ann"))
        await broker.presence.join(channel, _person("c2", "u2", "Ann"))
        await broker.presence.update(channel, "c2", {"status": "busy"})
        await asyncio.sleep(0.35)  # refreshes happened; the members would have expired without them
        before = sorted(await broker.presence.members(channel), key=lambda m: m.client)
        assert [(m.display, m.meta) for m in before] == [("Ann", None), ("Ann (2)", {"status": "busy"})]
        connection = broker.presence.connection  # type: ignore[attr-defined]
        keys = [connection.key(channel, f"presence{kind}") for kind in PRESENCE_KEYS]
        for key in keys:  # every one of them is there (operations.md, "Redis keys"), and then lost
            assert await connection.client.delete(key) == 1
        assert await broker.presence.members(channel) == []

        async def both_back() -> bool:
            return len(await broker.presence.members(channel)) == 2

        await wait_until(both_back, timeout=3, what="the refresh writing the members back")
        after = sorted(await broker.presence.members(channel), key=lambda m: m.client)
        assert after == before
        newcomer = await broker.presence.join(channel, _person("c3", "u3", "Ann"))  # the index came back too
        assert _shown(newcomer) == "Ann (3)"
    finally:
        await broker.close()


async def test_many_users_of_one_name_cost_a_bounded_search(presence: Presence, channel: str) -> None:
    """Past the first PROBES suffixes a new display is looked for above the room's size: still unique, and the
    lowest free one while one of the first suffixes is free."""
    n = PROBES + 20
    for i in range(n):
        await presence.join(channel, _person(f"c{i:03d}", f"u{i}", "Same"))
    displays = await _displays(presence, channel)
    assert len(set(displays.values())) == n
    first = ["Same"] + [f"Same ({k})" for k in range(2, PROBES + 2)]
    assert [displays[f"c{i:03d}"] for i in range(PROBES + 1)] == first
    # the next one was looked for above the room's size then (PROBES + 1 members): "Same (PROBES + 2)" on
    assert displays[f"c{PROBES + 1:03d}"] == f"Same ({PROBES + 2})"
    await presence.leave(channel, "c004")  # frees "Same (5)": the lowest free one, within the first suffixes
    assert _shown(await presence.join(channel, _person("new1", "v1", "Same"))) == "Same (5)"
    await presence.leave(channel, f"c{PROBES + 5:03d}")  # frees one above: not looked for, a fresh one instead
    late = _shown(await presence.join(channel, _person("new2", "v2", "Same")))
    now = await _displays(presence, channel)
    assert len(set(now.values())) == len(now) == n  # every display unique
    assert late.startswith("Same (")
    assert int(late[6:-1]) > n - 1  # found above the room's size (n - 1 members before the join)
