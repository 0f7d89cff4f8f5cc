"""SQLiteStore against its files changing under it: unavailable for good, with the reason, said once."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.store import StoreUnavailable, check_before_start, open_store
from hub.store.sqlite import SQLiteStore


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "hub.sqlite3"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(str(db_path))
    await store.start()
    await store.put("chat", "room/1", b"kept")
    yield store
    await store.close()


async def test_a_removed_data_directory_fails_every_call_and_is_logged_once(
    store: SQLiteStore, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shutil.rmtree(db_path.parent)
    with caplog.at_level(logging.ERROR, logger="hub.store"):
        with pytest.raises(StoreUnavailable, match=r"data directory .* was removed"):
            await store.put("chat", "room/2", b"lost")
        with pytest.raises(StoreUnavailable, match="was removed"):
            await store.get("chat", "room/1")  # for good: reads too, until a restart
        with pytest.raises(StoreUnavailable):
            await store.compare_and_set("chat", "room/3", None, b"lost")
        assert "was removed" in str(await store.check())
    assert [record.getMessage() for record in caplog.records] == [
        f"the store is unavailable until the hub restarts: the data directory {db_path.parent} was removed "
        "while the hub ran"
    ]
    assert not db_path.parent.exists()  # not recreated


async def test_a_removed_wal_is_seen_by_a_check_without_any_write(store: SQLiteStore, db_path: Path) -> None:
    assert await store.check() is None
    os.unlink(f"{db_path}-wal")
    assert await store.check() == f"{db_path}-wal was removed while the hub ran"
    assert store.problem is not None


async def test_a_replaced_database_refuses_the_write_that_follows(store: SQLiteStore, db_path: Path) -> None:
    other = db_path.with_name("other")
    shutil.copyfile(db_path, other)
    os.replace(other, db_path)
    with pytest.raises(StoreUnavailable, match="replaced by another file"):
        await store.delete("chat", "room/1")


async def test_puts_in_flight_when_the_files_go_are_all_refused(store: SQLiteStore, db_path: Path) -> None:
    shutil.rmtree(db_path.parent)
    results = await asyncio.gather(*(store.put("chat", f"room/{n}", b"x") for n in range(50)), return_exceptions=True)
    assert all(isinstance(result, StoreUnavailable) for result in results)


async def test_a_restart_after_the_directory_is_restored_sees_the_restored_data(db_path: Path) -> None:
    store = SQLiteStore(str(db_path))
    await store.start()
    await store.put("chat", "room/1", b"backed up")
    await store.close()
    backup = db_path.parent.with_name("backup")
    shutil.copytree(db_path.parent, backup)

    store = SQLiteStore(str(db_path))
    await store.start()
    shutil.rmtree(db_path.parent)
    with pytest.raises(StoreUnavailable):
        await store.put("chat", "room/2", b"refused")
    shutil.copytree(backup, db_path.parent)  # restored under the running store: it still refuses, never mixes
    with pytest.raises(StoreUnavailable):
        await store.get("chat", "room/1")
    await store.close()  # and closing leaves the restored files alone

    store = SQLiteStore(str(db_path))
    await store.start()
    assert await store.scan("chat") == [("room/1", b"backed up")]
    await store.close()


async def test_exclusive_locking_keeps_the_wal_index_out_of_the_file_system(db_path: Path) -> None:
    store = open_store(f"sqlite:///{db_path}?locking=exclusive")
    await store.start()
    await store.put("chat", "room/1", b"x")
    assert sorted(os.listdir(db_path.parent)) == ["hub.sqlite3", "hub.sqlite3-wal"]  # no -shm: nothing to SIGBUS
    assert await store.check() is None
    shutil.rmtree(db_path.parent)
    with pytest.raises(StoreUnavailable, match="removed"):
        await store.put("chat", "room/2", b"x")
    await store.close()


def test_a_sqlite_url_with_an_unknown_locking_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="locking must be normal or exclusive"):
        open_store("sqlite:///x.sqlite3?locking=shared")


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda d: d.parent.write_text(""), "is not a directory"),
        (lambda d: (d.parent.mkdir(), Path(f"{d}-shm").mkdir()), "hub.sqlite3-shm is not a regular file"),
        (lambda d: (d.parent.mkdir(), Path(f"{d}-wal").symlink_to("/dev/null")), "hub.sqlite3-wal is not a regular"),
        (lambda d: (d.parent.mkdir(), d.write_bytes(b"not a database" * 100)), "cannot open the SQLite store"),
    ],
    ids=["data-dir-is-a-file", "shm-is-a-directory", "wal-is-a-symlink", "not-a-database"],
)
async def test_files_sqlite_cannot_use_are_named_before_and_at_start(setup, expected: str, tmp_path: Path) -> None:
    db_path = tmp_path / "data" / "hub.sqlite3"
    setup(db_path)
    problem = check_before_start(f"sqlite:///{db_path}")
    assert problem is not None
    assert expected in problem
    store = SQLiteStore(str(db_path))
    with pytest.raises(StoreUnavailable, match=expected):
        await store.start()
    await store.close()


def test_a_usable_store_passes_the_check_before_start(tmp_path: Path) -> None:
    assert check_before_start(f"sqlite:///{tmp_path / 'new' / 'hub.sqlite3'}") is None
    assert check_before_start("sqlite:///:memory:") is None
    assert check_before_start("redis://127.0.0.1:1/0") is None  # not contacted: its start-up needs it anyway
