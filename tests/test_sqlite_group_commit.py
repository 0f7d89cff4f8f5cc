"""SQLiteStore's puts: group commits in the store's thread, which waits for another writer without holding up the
event loop, and keeps the WAL from growing."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.store import open_store
from hub.store.sqlite import SQLiteStore


def wal_size(directory: Path) -> int:
    return os.path.getsize(directory / "hub.sqlite3-wal")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(str(tmp_path / "hub.sqlite3"))
    await store.start()
    yield store
    await store.close()


async def test_concurrent_puts_share_commits(store: SQLiteStore, tmp_path: Path) -> None:
    before = wal_size(tmp_path)
    await asyncio.gather(*(store.put("chat", f"room/{n:03d}", b"x" * 100) for n in range(100)))
    one_batch = wal_size(tmp_path) - before
    for n in range(100, 110):
        await store.put("chat", f"room/{n:03d}", b"x" * 100)
    ten_commits = wal_size(tmp_path) - before - one_batch
    assert one_batch < ten_commits  # a hundred puts in one transaction write fewer pages than ten alone
    assert len(await store.scan("chat", "room/")) == 110


async def test_a_put_waits_for_another_writer_in_the_thread_not_on_the_loop(store: SQLiteStore, tmp_path: Path) -> None:
    other = sqlite3.connect(tmp_path / "hub.sqlite3", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
        put = asyncio.create_task(store.put("chat", "room/1", b"after the lock"))
        ticks = 0
        for _ in range(20):  # the loop keeps running meanwhile
            await asyncio.sleep(0.005)
            ticks += 1
        assert ticks == 20
        assert not put.done()
        other.execute("COMMIT")
        await asyncio.wait_for(put, 5)
    finally:
        other.close()
    assert await store.get("chat", "room/1") == b"after the lock"


async def test_checkpoints_keep_the_wal_from_growing(store: SQLiteStore, tmp_path: Path) -> None:
    """SQLite's automatic checkpoints (every 1,000 pages) start the WAL over: it stays below 1,000 commits' pages."""
    commits = 3000
    for n in range(commits):
        await store.put("chat", f"room/{n:05d}", b"x" * 200)
    await store.get("chat", "room/00000")  # after the last checkpoint job
    page = 4096
    assert wal_size(tmp_path) < commits * page // 2
    assert len(await store.scan("chat")) == commits


async def test_exclusive_locking_group_commits_too(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'x.sqlite3'}?locking=exclusive")
    await store.start()
    try:
        await asyncio.gather(*(store.put("chat", f"k{n}", b"v") for n in range(20)))
        assert len(await store.scan("chat")) == 20
    finally:
        await store.close()
    reopened = SQLiteStore(str(tmp_path / "x.sqlite3"))
    await reopened.start()
    try:
        assert len(await reopened.scan("chat")) == 20
    finally:
        await reopened.close()


async def test_puts_waiting_at_close_are_written(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "hub.sqlite3"))
    await store.start()
    puts = [asyncio.create_task(store.put("chat", f"k{n}", b"v")) for n in range(5)]
    await asyncio.sleep(0)  # queued, not yet written
    await store.close()
    await asyncio.gather(*puts)
    reopened = SQLiteStore(str(tmp_path / "hub.sqlite3"))
    await reopened.start()
    try:
        assert len(await reopened.scan("chat")) == 5
    finally:
        await reopened.close()


async def test_writes_of_one_batch_run_in_order_and_see_each_other(store: SQLiteStore) -> None:
    """put, delete and compare_and_set share the group commit: each sees the writes queued before it."""
    first_wins = await asyncio.gather(*(store.compare_and_set("b", "k", None, f"v{n}".encode()) for n in range(10)))
    assert first_wins == [True] + [False] * 9
    assert await store.get("b", "k") == b"v0"
    chain = await asyncio.gather(
        store.compare_and_set("b", "k", b"v0", b"v1"),
        store.compare_and_set("b", "k", b"v1", b"v2"),
        store.put("b", "other", b"x"),
        store.delete("b", "other"),
        store.compare_and_set("b", "other", None, None),  # absent now
        store.compare_and_set("b", "k", b"v0", b"stale"),
        store.delete("b", "missing"),
    )
    assert chain == [True, True, None, True, True, False, False]
    assert await store.get("b", "k") == b"v2"
    assert await store.get("b", "other") is None


async def test_a_later_put_of_the_same_key_in_one_batch_wins(store: SQLiteStore) -> None:
    """A batch of puts is one multi-row statement: rows apply in order, so the last put of a key is what stays."""
    await asyncio.gather(
        store.put("chat", "first", b"alone"),  # written while the others queue: they form one batch
        *(store.put("chat", "k", f"v{n}".encode()) for n in range(300)),  # more than one statement's rows
    )
    assert await store.get("chat", "k") == b"v299"
    assert await store.get("chat", "first") == b"alone"
