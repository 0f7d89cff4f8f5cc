"""Presence metadata and unique names over real sockets (protocol.md §9, "Metadata" and "Names"): a client sets its
metadata with ``sub`` and changes it with ``presence_set``, validated against the channel's model, bounded and
rate limited; joins, lists, pages and ``<namespace>.presence_updated`` carry it; a big room coalesces updates into
its count; members who share a name are shown with a suffix. On one memory hub and on two nodes on Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from hub import Channel, RateLimit, hookimpl
from hub.channel import PresenceChanged
from hub.schema import outbound_schema
from hub.testing import HubClient, HubServer, HubServerFactory, ReplyError

Nodes = tuple[HubServer, HubServer]
ClientFactory = Callable[..., Awaitable[HubClient]]
LIMIT = 3  # presence_list_limit: rooms above it are big
SETTINGS: dict[str, Any] = {"presence_list_limit": LIMIT, "presence_count_interval": 0.05}


class Status(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["online", "away", "busy"] = "online"
    device: str = Field(default="web", max_length=16)
    typing_in: str | None = Field(default=None, max_length=400)


class Rooms:
    """``room:*``: presence with a metadata model; ``plain:*``: presence without one; ``slow:*``: metadata at
    most twice a while; ``quiet:*``: no presence."""

    @hookimpl
    def hub_channels(self) -> list[Channel]:
        return [
            Channel("room", presence=True, presence_meta=Status),
            Channel("plain", presence=True),
            Channel("slow", presence=True, presence_meta=Status, presence_rate_limit=RateLimit(rate=0.001, burst=2)),
            Channel("quiet"),
        ]


def two_nodes(
    request: pytest.FixtureRequest, hub_server: HubServerFactory, **settings: Any
) -> tuple[HubServer, HubServer]:
    """Two places to connect to: the same memory hub twice, or two hub nodes on one Redis."""
    if request.param == "memory":
        server = hub_server(plugins={"rooms": Rooms()}, **settings)
        return server, server
    settings |= {
        "redis_url": request.getfixturevalue("redis_url"),
        "redis_prefix": f"t{uuid.uuid4().hex[:10]}",
        "probe_interval": 0.1,
        "presence_ttl": 0.6,  # a refresh every 0.2 s: metadata and names must survive them
    }
    return hub_server(plugins={"rooms": Rooms()}, **settings), hub_server(plugins={"rooms": Rooms()}, **settings)


@pytest.fixture(params=["memory", "redis"])
def nodes(request: pytest.FixtureRequest, hub_server: HubServerFactory) -> tuple[HubServer, HubServer]:
    return two_nodes(request, hub_server, **SETTINGS)


@pytest.fixture(params=["memory", "redis"])
def roomy_nodes(request: pytest.FixtureRequest, hub_server: HubServerFactory) -> tuple[HubServer, HubServer]:
    """:func:`nodes` whose rooms stay small (every join and leave announced) up to 20 members."""
    return two_nodes(request, hub_server, presence_list_limit=20)


@pytest.fixture
def server(hub_server: HubServerFactory) -> HubServer:
    return hub_server(plugins={"rooms": Rooms()}, **SETTINGS, presence_meta_max_bytes=128)


async def connect(hub_client: ClientFactory, server: HubServer, user: str, name: str) -> HubClient:
    client: HubClient = await hub_client(server, token=server.token(user, name=name))
    return client


async def refused(call: Any) -> ReplyError:
    with pytest.raises(ReplyError) as refusal:
        await call
    return refusal.value


def listed(members: list[dict[str, Any]]) -> dict[str, tuple[str, Any]]:
    """user -> (display, meta) of a presence list."""
    return {m["user"]: (shown(m), m.get("meta")) for m in members}


def shown(member: dict[str, Any]) -> str:
    """A member's display: sent only when it is not its name (protocol.md §9)."""
    return str(member.get("display", member["name"]))


# ---- metadata ------------------------------------------------------------------------------------------------


async def test_metadata_set_at_sub_and_updated_reaches_every_node(nodes: Nodes, hub_client: ClientFactory) -> None:
    node_a, node_b = nodes
    alice = await connect(hub_client, node_a, "alice", "Alice")
    bob = await connect(hub_client, node_b, "bob", "Bob")
    reply = await alice.call({"op": "sub", "ch": "room:one", "meta": {"status": "busy"}})
    assert reply["presence"] == [
        {
            "client": reply["presence"][0]["client"],
            "user": "alice",
            "name": "Alice",  # no display: it is the name
            "meta": {"status": "busy", "device": "web", "typing_in": None},  # the model's JSON, defaults in
        }
    ]
    reply = await bob.call({"op": "sub", "ch": "room:one"})
    assert "meta" not in reply["presence"][0]  # none set: left out
    assert listed(reply["presence"]) == {
        "alice": ("Alice", {"status": "busy", "device": "web", "typing_in": None}),
        "bob": ("Bob", None),  # no metadata set
    }
    joined = await alice.next_event("room:one", "room.joined")
    assert (joined["data"]["user"], joined["data"].get("meta")) == ("bob", None)

    ok = await bob.call({"op": "presence_set", "ch": "room:one", "meta": {"status": "away", "typing_in": "doc-7"}})
    assert ok["member"]["meta"] == {"status": "away", "device": "web", "typing_in": "doc-7"}
    for client in (alice, bob):  # on the other node too; the setter hears its own update
        updated = await client.next_event("room:one", "room.presence_updated")
        assert updated["data"] == ok["member"]
        assert "offset" not in updated  # ephemeral, like joins

    if node_a is not node_b:
        await asyncio.sleep(0.5)  # past two refreshes of the members' TTL (0.6 s / 3): the metadata stays
    page = await alice.call({"op": "presence", "ch": "room:one"})
    assert listed(page["presence"])["bob"] == ("Bob", ok["member"]["meta"])
    assert page["count"] == 2

    cleared = await bob.call({"op": "presence_set", "ch": "room:one", "meta": None})
    assert cleared["member"] == {"client": cleared["member"]["client"], "user": "bob", "name": "Bob"}
    assert (await alice.next_event("room:one", "room.presence_updated"))["data"] == cleared["member"]
    await bob.call({"op": "unsub", "ch": "room:one"})
    left = await alice.next_event("room:one", "room.left")
    assert (left["data"]["user"], shown(left["data"])) == ("bob", "Bob")


async def test_metadata_is_validated_bounded_and_refused_where_not_declared(
    server: HubServer, hub_client: ClientFactory
) -> None:
    alice = await connect(hub_client, server, "alice", "Alice")
    await alice.sub("room:r")
    await alice.sub("plain:r")
    await alice.sub("quiet:r")

    invalid = await refused(alice.call({"op": "presence_set", "ch": "room:r", "meta": {"status": "asleep"}}))
    assert invalid.code == "invalid"
    assert (invalid.details or [{}])[0].get("loc") == ["status"]
    wrong_type = await refused(alice.call({"op": "presence_set", "ch": "room:r", "meta": {"device": 7}}))
    assert (wrong_type.code, wrong_type.details and wrong_type.details[0]["loc"]) == ("invalid", ["device"])
    extra = await refused(alice.call({"op": "presence_set", "ch": "room:r", "meta": {"mood": "fine"}}))
    assert extra.code == "invalid"
    not_object = await refused(alice.call({"op": "presence_set", "ch": "room:r", "meta": "online"}))
    assert not_object.code == "invalid"

    # 128 bytes here (presence_meta_max_bytes): refused before the model sees it, and after its defaults too
    too_big = await refused(alice.call({"op": "presence_set", "ch": "room:r", "meta": {"typing_in": "x" * 200}}))
    assert (too_big.code, too_big.msg) == ("invalid", "Presence metadata is at most 128 bytes of JSON, not 216.")
    filled = await refused(alice.call({"op": "presence_set", "ch": "room:r", "meta": {"typing_in": "x" * 80}}))
    assert filled.code == "invalid"
    assert "with its defaults" in filled.msg

    no_model = await refused(alice.call({"op": "presence_set", "ch": "plain:r", "meta": {"status": "away"}}))
    assert no_model.code == "bad_request"
    assert no_model.msg.startswith("Channels 'plain:*' take no presence metadata")
    no_presence = await refused(alice.call({"op": "presence_set", "ch": "quiet:r", "meta": {}}))
    assert (no_presence.code, no_presence.msg) == ("bad_request", "Channel 'quiet:r' keeps no presence.")
    not_subscribed = await refused(alice.call({"op": "presence_set", "ch": "room:elsewhere", "meta": {}}))
    assert not_subscribed.code == "not_subscribed"
    unknown = await refused(alice.call({"op": "presence_set", "ch": "nope:r", "meta": {}}))
    assert unknown.code == "unknown_channel"
    malformed = await refused(alice.call({"op": "presence_set", "ch": "room:r", "meta": {}, "extra": 1}))
    assert malformed.code == "bad_request"

    # nothing of it reached the room: the member is as it joined
    page = await alice.call({"op": "presence", "ch": "room:r"})
    assert listed(page["presence"]) == {"alice": ("Alice", None)}
    assert (await alice.call({"op": "presence_set", "ch": "room:r", "meta": {}}))["member"]["meta"] == {
        "status": "online",
        "device": "web",
        "typing_in": None,
    }


async def test_a_sub_with_bad_metadata_leaves_no_trace(server: HubServer, hub_client: ClientFactory) -> None:
    alice = await connect(hub_client, server, "alice", "Alice")
    bob = await connect(hub_client, server, "bob", "Bob")
    await alice.sub("room:r")
    bad = await refused(bob.call({"op": "sub", "ch": "room:r", "meta": {"status": 1}}))
    assert bad.code == "invalid"
    plain = await refused(bob.call({"op": "sub", "ch": "plain:r", "meta": {"status": "away"}}))
    assert plain.code == "bad_request"
    quiet = await refused(bob.call({"op": "sub", "ch": "quiet:r", "meta": {}}))
    assert (quiet.code, quiet.msg) == ("bad_request", "Channel 'quiet:r' keeps no presence, so no presence metadata.")
    await alice.no_event("room:r", "room.joined", wait=0.2)
    page = await alice.call({"op": "presence", "ch": "room:r"})
    assert [m["user"] for m in page["presence"]] == ["alice"]
    assert (await bob.call({"op": "sub", "ch": "room:r", "meta": {"device": "phone"}}))["presence_count"] == 2
    joined = await alice.next_event("room:r", "room.joined")
    assert joined["data"]["meta"] == {"status": "online", "device": "phone", "typing_in": None}


async def test_metadata_changes_are_rate_limited_per_channel_family(
    server: HubServer, hub_client: ClientFactory
) -> None:
    alice = await connect(hub_client, server, "alice", "Alice")
    await alice.sub("slow:a")
    await alice.sub("slow:b")
    await alice.sub("room:r")
    await alice.call({"op": "presence_set", "ch": "slow:a", "meta": {"status": "away"}})
    await alice.call({"op": "presence_set", "ch": "slow:b", "meta": {"status": "away"}})
    limited = await refused(alice.call({"op": "presence_set", "ch": "slow:a", "meta": {"status": "busy"}}))
    assert (limited.code, limited.msg) == ("rate_limited", "Too many presence changes on 'slow:*'; slow down.")
    await alice.call({"op": "presence_set", "ch": "room:r", "meta": {"status": "busy"}})  # another family: its own
    page = await alice.call({"op": "presence", "ch": "slow:a"})
    assert page["presence"][0]["meta"]["status"] == "away"


async def test_pages_and_counts(server: HubServer, hub_client: ClientFactory) -> None:
    clients = [await connect(hub_client, server, f"u{n}", f"User {n}") for n in range(5)]
    for n, client in enumerate(clients):
        await client.call({"op": "sub", "ch": "room:big", "meta": {"device": f"d{n}"}})
    assert await clients[0].call({"op": "presence", "ch": "room:big", "count_only": True}) == {"count": 5}
    assert await clients[0].call({"op": "presence", "ch": "plain:none", "count_only": True}) == {"count": 0}
    seen: dict[str, Any] = {}
    cursor = None
    while True:
        frame: dict[str, Any] = {"op": "presence", "ch": "room:big", "limit": 2}
        if cursor is not None:
            frame["cursor"] = cursor
        page = await clients[0].call(frame)
        seen.update((m["user"], m["meta"]["device"]) for m in page["presence"])
        cursor = page["cursor"]
        if cursor is None:
            break
    assert seen == {f"u{n}": f"d{n}" for n in range(5)}
    bad = await refused(clients[0].call({"op": "presence", "ch": "room:big", "count_only": "yes"}))
    assert bad.code == "bad_request"


async def test_a_big_room_coalesces_updates_into_its_count(nodes: Nodes, hub_client: ClientFactory) -> None:
    node_a, node_b = nodes
    members = [await connect(hub_client, (node_a, node_b)[n % 2], f"u{n}", f"U{n}") for n in range(LIMIT + 1)]
    for member in members:
        await member.sub("room:crowd")
    watcher = members[0]
    await watcher.next_event("room:crowd", "room.presence")  # the joins' count
    await asyncio.sleep(0.4)  # every node's count of the joins is in (8 x presence_count_interval)
    while not watcher.events.empty():
        watcher.events.get_nowait()
    await members[-1].call({"op": "presence_set", "ch": "room:crowd", "meta": {"status": "away"}})
    count = await watcher.next_event("room:crowd", "room.presence")  # the update's, coalesced
    assert count["data"] == {"count": LIMIT + 1}
    await watcher.no_event("room:crowd", "room.presence_updated", wait=0.2)
    assert (await everyone(watcher, "room:crowd"))[f"u{LIMIT}"]["meta"]["status"] == "away"  # the list has it


async def everyone(client: HubClient, channel: str) -> dict[str, dict[str, Any]]:
    """user -> member, walking every page of the presence op."""
    members: dict[str, dict[str, Any]] = {}
    frame: dict[str, Any] = {"op": "presence", "ch": channel}
    while True:
        page = await client.call(frame)
        members.update((m["user"], m) for m in page["presence"])
        if page["cursor"] is None:
            return members
        frame["cursor"] = page["cursor"]


# ---- names ---------------------------------------------------------------------------------------------------


async def test_members_who_share_a_name_are_told_apart_on_every_node(
    roomy_nodes: Nodes, hub_client: ClientFactory
) -> None:
    node_a, node_b = roomy_nodes
    first = await connect(hub_client, node_a, "alice-1", "Alice")
    second = await connect(hub_client, node_b, "alice-2", "Alice")
    second_tab = await connect(hub_client, node_a, "alice-2", "Alice")
    watcher = await connect(hub_client, node_b, "carol", "Carol")
    await watcher.sub("room:names")
    await first.sub("room:names")
    reply = await second.sub("room:names")
    assert listed(reply["presence"]) == {
        "carol": ("Carol", None),
        "alice-1": ("Alice", None),
        "alice-2": ("Alice (2)", None),
    }
    assert shown(reply["presence"][0]) == "Alice (2)"  # the joiner first, with its display
    tab_reply = await second_tab.sub("room:names")
    assert shown(tab_reply["presence"][0]) == "Alice (2)"  # the same user: the same display
    joined = [await watcher.next_event("room:names", "room.joined") for _ in range(2)]  # then the room is big
    assert [(e["data"]["user"], shown(e["data"])) for e in joined] == [
        ("alice-1", "Alice"),
        ("alice-2", "Alice (2)"),
    ]

    await first.unsub("room:names")
    left = await watcher.next_event("room:names", "room.left")
    assert shown(left["data"]) == "Alice"
    page = await watcher.call({"op": "presence", "ch": "room:names"})
    assert sorted(shown(m) for m in page["presence"]) == ["Alice (2)", "Alice (2)", "Carol"]  # no jumps
    newcomer = await connect(hub_client, node_b, "alice-3", "Alice")
    assert shown((await newcomer.sub("room:names"))["presence"][0]) == "Alice"  # the free one
    guests = [await hub_client(node) for node in (node_a, node_b)]  # guests have their own random names
    for guest in guests:
        await guest.sub("room:names")
    by_user: dict[str, set[str]] = {}
    for m in (await everyone(watcher, "room:names")).values():
        by_user.setdefault(shown(m), set()).add(m["user"])
    assert all(len(users) == 1 for users in by_user.values()), by_user  # never one display for two users


def test_presence_events_are_described_as_sent() -> None:
    """``hub schema`` (and the SDK's types from it) says what a presence event carries: display and meta may be
    missing, and are left out while they carry nothing."""
    schema = outbound_schema(PresenceChanged)
    assert schema["required"] == ["client", "user", "name"]
    assert set(schema["properties"]) == {"client", "user", "name", "display", "meta"}
    assert schema["additionalProperties"] is False
    plain = PresenceChanged(client="c1", user="u1", name="Ann")
    assert plain.model_dump_json() == '{"client":"c1","user":"u1","name":"Ann"}'
    full = PresenceChanged(client="c1", user="u1", name="Ann", display="Ann (2)", meta={"away": True})
    assert full.model_dump_json() == '{"client":"c1","user":"u1","name":"Ann","display":"Ann (2)","meta":{"away":true}}'
