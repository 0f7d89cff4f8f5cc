"""Store.trim keeps the newest records under a prefix and leaves every other prefix alone."""

from __future__ import annotations

import pytest

from hub.store import open_store


@pytest.fixture
async def store(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'trim.sqlite3'}")
    await store.start()
    yield store
    await store.close()


async def test_trim_keeps_the_last_records_of_one_prefix(store):
    for n in range(10):
        await store.put("chat", f"room/{n:02d}", b"m")
    await store.put("chat", "room2/00", b"other room")
    await store.put("chat", "roo/00", b"shorter prefix")
    await store.put("other", "room/00", b"other namespace")

    assert await store.trim("chat", "room/", 3) == 7
    assert [key for key, _ in await store.scan("chat", "room/")] == ["room/07", "room/08", "room/09"]
    assert await store.trim("chat", "room/", 3) == 0
    assert await store.get("chat", "room2/00") == b"other room"
    assert await store.get("chat", "roo/00") == b"shorter prefix"
    assert await store.get("other", "room/00") == b"other namespace"


async def test_trim_to_zero_empties_the_prefix_and_trim_of_nothing_is_zero(store):
    for n in range(4):
        await store.put("chat", f"r/{n}", b"m")
    assert await store.trim("chat", "r/", 10) == 0
    assert await store.trim("chat", "r/", 0) == 4
    assert await store.scan("chat", "r/") == []
    assert await store.trim("chat", "empty/", 1) == 0
