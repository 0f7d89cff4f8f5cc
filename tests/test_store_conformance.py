"""The store conformance suite: every Store implementation must pass every test here.

Add a backend by adding an entry to STORE_FACTORIES (name -> async factory building an unstarted store);
the ``store`` fixture starts it and closes it afterwards. Tests use a unique namespace each, so a backend
shared between tests (a Redis server) needs no flushing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from hub.store import PluginStore, Store, StoreUnavailable, open_store

StoreFactory = Callable[[pytest.FixtureRequest], Awaitable[Store]]


async def make_sqlite_file_store(request: pytest.FixtureRequest) -> Store:
    tmp_path: Path = request.getfixturevalue("tmp_path")
    return open_store(f"sqlite:///{tmp_path / 'store' / 'hub.sqlite3'}")


async def make_sqlite_memory_store(request: pytest.FixtureRequest) -> Store:
    return open_store("sqlite:///:memory:")


async def make_redis_store(request: pytest.FixtureRequest) -> Store:
    from hub.store.redis import RedisStore

    return RedisStore(request.getfixturevalue("redis_url"), prefix=f"t{uuid.uuid4().hex[:8]}")


async def make_redis_cluster_store(request: pytest.FixtureRequest) -> Store:
    return open_store(request.getfixturevalue("redis_cluster_url"), prefix=f"t{uuid.uuid4().hex[:8]}")


STORE_FACTORIES: dict[str, StoreFactory] = {
    "sqlite-file": make_sqlite_file_store,
    "sqlite-memory": make_sqlite_memory_store,
    "redis": make_redis_store,
    "redis-cluster": make_redis_cluster_store,
}


@pytest.fixture(params=sorted(STORE_FACTORIES))
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    instance = await STORE_FACTORIES[request.param](request)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.close()


@pytest.fixture
def ns() -> str:
    return f"test_{uuid.uuid4().hex}"


async def put_all(store: Store, ns: str, keys: list[str]) -> None:
    for key in keys:
        await store.put(ns, key, key.encode())


# ---- records ----------------------------------------------------------------------------------------------


async def test_get_missing_is_none(store: Store, ns: str) -> None:
    assert await store.get(ns, "missing") is None


async def test_put_then_get(store: Store, ns: str) -> None:
    await store.put(ns, "room/1", b"hello")
    assert await store.get(ns, "room/1") == b"hello"


async def test_put_overwrites(store: Store, ns: str) -> None:
    await store.put(ns, "k", b"first")
    await store.put(ns, "k", b"second")
    assert await store.get(ns, "k") == b"second"
    assert await store.scan(ns) == [("k", b"second")]


async def test_delete_reports_whether_a_record_was_there(store: Store, ns: str) -> None:
    await store.put(ns, "k", b"v")
    assert await store.delete(ns, "k") is True
    assert await store.get(ns, "k") is None
    assert await store.delete(ns, "k") is False
    assert await store.delete(ns, "never") is False


@pytest.mark.parametrize("value", [bytes(range(256)), b"\x00", b"", b"\xff" * 100_000, "snow \u2603".encode()])
async def test_binary_values_round_trip(store: Store, ns: str, value: bytes) -> None:
    await store.put(ns, "bin", value)
    stored = await store.get(ns, "bin")
    assert type(stored) is bytes
    assert stored == value
    assert await store.scan(ns) == [("bin", value)]


@pytest.mark.parametrize("key", ["", " ", "a/b/c", "caf\u00e9", "emoji-\U0001f600", "quote'\"", "%_*?[", "\x00x"])
async def test_unusual_keys_round_trip(store: Store, ns: str, key: str) -> None:
    await store.put(ns, key, b"v")
    assert await store.get(ns, key) == b"v"
    assert await store.scan(ns) == [(key, b"v")]


# ---- scan -------------------------------------------------------------------------------------------------


async def test_scan_in_key_order(store: Store, ns: str) -> None:
    await put_all(store, ns, ["room/3", "room/1", "room/2", "other/1"])
    assert await store.scan(ns, "room/") == [("room/1", b"room/1"), ("room/2", b"room/2"), ("room/3", b"room/3")]


async def test_scan_reverse(store: Store, ns: str) -> None:
    await put_all(store, ns, ["room/3", "room/1", "room/2"])
    assert [key for key, _ in await store.scan(ns, "room/", reverse=True)] == ["room/3", "room/2", "room/1"]


async def test_scan_limit(store: Store, ns: str) -> None:
    await put_all(store, ns, [f"room/{n:03d}" for n in range(10)])
    assert [key for key, _ in await store.scan(ns, "room/", limit=3)] == ["room/000", "room/001", "room/002"]
    newest = await store.scan(ns, "room/", limit=3, reverse=True)
    assert [key for key, _ in newest] == ["room/009", "room/008", "room/007"]
    assert len(await store.scan(ns, "room/", limit=100)) == 10


async def test_scan_limit_zero_returns_nothing(store: Store, ns: str) -> None:
    await put_all(store, ns, ["a", "b"])
    assert await store.scan(ns, limit=0) == []


async def test_scan_without_prefix_returns_the_whole_namespace(store: Store, ns: str) -> None:
    await put_all(store, ns, ["b", "a", "c/1"])
    assert [key for key, _ in await store.scan(ns)] == ["a", "b", "c/1"]


async def test_scan_orders_keys_as_strings(store: Store, ns: str) -> None:
    keys = ["a", "a/", "a/b", "a0", "aa", "B", "\u00e9", "\U0001f600"]
    await put_all(store, ns, keys)
    assert [key for key, _ in await store.scan(ns)] == sorted(keys)


async def test_scan_prefix_is_not_a_pattern(store: Store, ns: str) -> None:
    await put_all(store, ns, ["a%b", "axb", "a_b", "a*b"])
    assert [key for key, _ in await store.scan(ns, "a%")] == ["a%b"]
    assert [key for key, _ in await store.scan(ns, "a_")] == ["a_b"]
    assert [key for key, _ in await store.scan(ns, "a*")] == ["a*b"]


async def test_prefix_isolation(store: Store, ns: str) -> None:
    await put_all(store, ns, ["a/1", "a/2", "ab/1", "a", "b/1"])
    assert [key for key, _ in await store.scan(ns, "a/")] == ["a/1", "a/2"]
    assert [key for key, _ in await store.scan(ns, "ab/")] == ["ab/1"]
    assert await store.scan(ns, "c/") == []


async def test_scan_includes_keys_with_the_highest_code_point(store: Store, ns: str) -> None:
    """Keys are arbitrary strings; a prefix scan must not stop below U+10FFFF."""
    keys = ["a/\U0010ffff", "a/\U0010ffffz", "a/z"]
    await put_all(store, ns, keys)
    assert [key for key, _ in await store.scan(ns, "a/")] == sorted(keys)
    assert [key for key, _ in await store.scan(ns)] == sorted(keys)


async def test_namespaces_are_isolated(store: Store, ns: str) -> None:
    other = ns + "_other"
    await store.put(ns, "k", b"mine")
    await store.put(other, "k", b"theirs")
    assert await store.get(ns, "k") == b"mine"
    assert await store.scan(ns) == [("k", b"mine")]
    assert await store.delete_prefix(ns, "") == 1
    assert await store.get(other, "k") == b"theirs"
    assert await store.delete(ns, "k") is False
    assert await store.get(other, "k") == b"theirs"


# ---- delete_prefix ----------------------------------------------------------------------------------------


async def test_delete_prefix_returns_the_count(store: Store, ns: str) -> None:
    await put_all(store, ns, ["a/1", "a/2", "a/3", "ab/1", "b/1"])
    assert await store.delete_prefix(ns, "a/") == 3
    assert [key for key, _ in await store.scan(ns)] == ["ab/1", "b/1"]
    assert await store.delete_prefix(ns, "a/") == 0


async def test_delete_empty_prefix_clears_the_namespace(store: Store, ns: str) -> None:
    await put_all(store, ns, ["a", "b/1", "c/2"])
    assert await store.delete_prefix(ns, "") == 3
    assert await store.scan(ns) == []


# ---- compare_and_set --------------------------------------------------------------------------------------


async def test_compare_and_set_creates_only_when_absent(store: Store, ns: str) -> None:
    assert await store.compare_and_set(ns, "k", None, b"first") is True
    assert await store.get(ns, "k") == b"first"
    assert await store.compare_and_set(ns, "k", None, b"second") is False
    assert await store.get(ns, "k") == b"first"
    assert await store.scan(ns) == [("k", b"first")]  # a created record is visible to scans like a put one


async def test_compare_and_set_replaces_only_the_expected_value(store: Store, ns: str) -> None:
    await store.put(ns, "k", b"v1")
    assert await store.compare_and_set(ns, "k", b"v0", b"v2") is False
    assert await store.get(ns, "k") == b"v1"
    assert await store.compare_and_set(ns, "k", b"v1", b"v2") is True
    assert await store.get(ns, "k") == b"v2"
    assert await store.compare_and_set(ns, "k", b"v2", b"v2") is True  # same value: still a match
    assert await store.compare_and_set(ns, "missing", b"v1", b"v2") is False
    assert await store.get(ns, "missing") is None


async def test_compare_and_set_with_no_value_deletes(store: Store, ns: str) -> None:
    await put_all(store, ns, ["a", "b"])
    assert await store.compare_and_set(ns, "a", b"other", None) is False
    assert await store.get(ns, "a") == b"a"
    assert await store.compare_and_set(ns, "a", b"a", None) is True
    assert await store.get(ns, "a") is None
    assert await store.scan(ns) == [("b", b"b")]
    assert await store.compare_and_set(ns, "a", b"a", None) is False


async def test_compare_and_set_absent_to_absent_tells_whether_the_record_is_missing(store: Store, ns: str) -> None:
    await store.put(ns, "present", b"v")
    assert await store.compare_and_set(ns, "missing", None, None) is True
    assert await store.get(ns, "missing") is None
    assert await store.compare_and_set(ns, "present", None, None) is False
    assert await store.get(ns, "present") == b"v"


@pytest.mark.parametrize("value", [bytes(range(256)), b"", b"\x00\xff" * 5000])
async def test_compare_and_set_compares_bytes_exactly(store: Store, ns: str, value: bytes) -> None:
    await store.put(ns, "k", value)
    assert await store.compare_and_set(ns, "k", value + b"\x00", b"x") is False
    assert await store.compare_and_set(ns, "k", value, value[::-1] + b"!") is True
    assert await store.get(ns, "k") == value[::-1] + b"!"


async def test_compare_and_set_is_confined_to_its_namespace(store: Store, ns: str) -> None:
    other = ns + "_other"
    await store.put(other, "k", b"theirs")
    assert await store.compare_and_set(ns, "k", b"theirs", b"mine") is False
    assert await store.compare_and_set(ns, "k", None, b"mine") is True
    assert await store.get(other, "k") == b"theirs"
    assert await PluginStore(store, other).compare_and_set("k", b"theirs", None) is True
    assert await store.get(ns, "k") == b"mine"


async def make_two_sqlite_file_stores(request: pytest.FixtureRequest) -> tuple[Store, Store]:
    path = request.getfixturevalue("tmp_path") / "shared.sqlite3"
    return open_store(f"sqlite:///{path}"), open_store(f"sqlite:///{path}")


async def make_two_redis_stores(request: pytest.FixtureRequest) -> tuple[Store, Store]:
    from hub.store.redis import RedisStore

    url, prefix = request.getfixturevalue("redis_url"), f"t{uuid.uuid4().hex[:8]}"
    return RedisStore(url, prefix=prefix), RedisStore(url, prefix=prefix)


# Two store objects on the same data, as two hub nodes (or processes) have: backend name -> factory.
STORE_PAIR_FACTORIES: dict[str, Callable[[pytest.FixtureRequest], Awaitable[tuple[Store, Store]]]] = {
    "sqlite-file": make_two_sqlite_file_stores,
    "redis": make_two_redis_stores,
}


@pytest.fixture(params=sorted(STORE_PAIR_FACTORIES))
async def store_pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Store, Store]]:
    first, second = await STORE_PAIR_FACTORIES[request.param](request)
    await first.start()
    await second.start()
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_concurrent_compare_and_set_loops_lose_no_update(store_pair: tuple[Store, Store], ns: str) -> None:
    """Many read-modify-write loops at once through two store objects on one backend (two nodes on one
    Redis, two processes on one SQLite file): every increment lands, which get-then-put cannot promise."""

    async def increment(target: Store) -> None:
        while True:
            raw = await target.get(ns, "counter")
            if await target.compare_and_set(ns, "counter", raw, str(int(raw or b"0") + 1).encode()):
                return

    await asyncio.gather(*(increment(store_pair[n % 2]) for n in range(40)))
    assert await store_pair[0].get(ns, "counter") == b"40"
    assert await store_pair[1].get(ns, "counter") == b"40"


# ---- PluginStore ------------------------------------------------------------------------------------------


async def test_plugin_store_is_confined_to_its_namespace(store: Store, ns: str) -> None:
    mine = PluginStore(store, ns)
    theirs = PluginStore(store, ns + "_other")
    await mine.put("room/1", b"a")
    await mine.put("room/2", b"b")
    await theirs.put("room/1", b"x")
    assert await mine.get("room/1") == b"a"
    assert await theirs.get("room/1") == b"x"
    assert await store.get(ns, "room/2") == b"b"  # the plugin's records live under its namespace
    assert await mine.scan("room/", limit=1, reverse=True) == [("room/2", b"b")]
    assert await theirs.scan() == [("room/1", b"x")]
    assert await mine.delete("room/1") is True
    assert await mine.delete("room/1") is False
    assert await theirs.get("room/1") == b"x"
    assert await mine.delete_prefix("room/") == 1
    assert await mine.compare_and_set("room/3", None, b"c") is True
    assert await mine.compare_and_set("room/3", b"c", b"d") is True
    assert await theirs.get("room/3") is None
    assert await mine.compare_and_set("room/3", b"d", None) is True
    assert await theirs.delete_prefix("room/") == 1
    assert await store.scan(ns) == []


# ---- lifecycle --------------------------------------------------------------------------------------------


async def test_closed_store_is_unavailable(store: Store, ns: str) -> None:
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.get(ns, "k")
    with pytest.raises(StoreUnavailable):
        await store.put(ns, "k", b"v")
    assert await store.check() is not None  # readiness says so too


async def test_a_working_store_checks_healthy(store: Store, ns: str) -> None:
    await store.put(ns, "k", b"v")
    assert await store.check() is None
    assert store.problem is None


async def test_sqlite_file_store_persists_after_reopen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'hub.sqlite3'}"
    first = open_store(url)
    await first.start()
    await first.put("chat", "lobby/1", b"hello")
    await first.put("chat", "lobby/2", b"world")
    await first.delete("chat", "lobby/2")
    await first.close()
    assert (tmp_path / "nested" / "dir" / "hub.sqlite3").exists()

    second = open_store(url)
    await second.start()
    try:
        assert await second.scan("chat") == [("lobby/1", b"hello")]
    finally:
        await second.close()


async def test_sqlite_memory_stores_are_separate() -> None:
    first, second = open_store("sqlite:///:memory:"), open_store("sqlite://:memory:")
    await first.start()
    await second.start()
    try:
        await first.put("ns", "k", b"v")
        assert await second.get("ns", "k") is None
    finally:
        await first.close()
        await second.close()


@pytest.mark.parametrize("url", ["postgres://localhost/hub", "memory://", "file:///tmp/x", "hub.sqlite3", ""])
def test_open_store_rejects_unknown_schemes(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported store URL"):
        open_store(url)


def test_open_store_rejects_a_sqlite_url_without_a_path() -> None:
    with pytest.raises(ValueError, match="names no file"):
        open_store("sqlite://")


async def test_sqlite_urls_follow_the_sqlalchemy_convention(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///relative.sqlite3")
    absolute = open_store(f"sqlite:///{tmp_path / 'absolute.sqlite3'}")  # four slashes: an absolute path
    for store in (relative, absolute):
        await store.start()
        await store.put("ns", "k", b"v")
        await store.close()
    assert (tmp_path / "relative.sqlite3").exists()
    assert (tmp_path / "absolute.sqlite3").exists()
