"""SQLiteStore: the embedded default store, one file, one writer thread so the event loop never blocks."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

from hub.store import StoreUnavailable, prefix_successor

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    ns TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (ns, key)
) WITHOUT ROWID;
"""


def _prefix_range(prefix: str) -> tuple[str, tuple[str, ...]]:
    """SQL and parameters selecting keys that start with ``prefix``, as an index range scan.

    SQLite compares TEXT as UTF-8 bytes, which sorts by code point, like prefix_successor.
    """
    upper = prefix_successor(prefix)
    if upper is None:
        return "key >= ?", (prefix,)
    return "key >= ? AND key < ?", (prefix, upper)


_UPSERT = (
    "INSERT INTO records (ns, key, value) VALUES (?, ?, ?) ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value"
)


def _write_batch(db: sqlite3.Connection, rows: list[tuple[str, str, bytes]]) -> None:
    """One transaction for a batch of puts (in the writer thread)."""
    db.execute("BEGIN")
    try:
        db.executemany(_UPSERT, rows)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class SQLiteStore:
    """Records in one WITHOUT ROWID table keyed by (ns, key), so prefix scans are index range scans."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        # One thread owns the connection: SQLite serialises writers anyway, and ordering stays simple.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-sqlite")
        # Group commit: puts that arrive while a batch is being written wait here, and go in the next one.
        self._pending: list[tuple[str, str, bytes, asyncio.Future[None]]] = []
        self._batch_in_flight = False

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        # As in SQLAlchemy: sqlite:///relative/path, sqlite:////absolute/path, sqlite:///:memory:
        parsed = urlparse(url)
        if parsed.netloc == ":memory:":
            return cls(":memory:")
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"sqlite URL {url!r} has a host; use sqlite:///relative or sqlite:////absolute")
        path = parsed.path[1:] if parsed.path.startswith("/") else parsed.path
        if path == ":memory:":
            return cls(":memory:")
        if not path:
            raise ValueError(f"sqlite URL {url!r} names no file; use sqlite:///path/to/file")
        return cls(path)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        if db is None:
            raise StoreUnavailable("the store is not open")
        self._submit_pending()  # puts that came first are written first: the executor runs jobs in order
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, db)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def start(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)

        def open_db() -> sqlite3.Connection:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(_SCHEMA)
            return db

        loop = asyncio.get_running_loop()
        self._db = await loop.run_in_executor(self._executor, open_db)

    async def close(self) -> None:
        self._submit_pending()
        db, self._db = self._db, None
        if db is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, db.close)
        self._executor.shutdown(wait=True)

    async def get(self, ns: str, key: str) -> bytes | None:
        def get(db: sqlite3.Connection) -> bytes | None:
            row = db.execute("SELECT value FROM records WHERE ns = ? AND key = ?", (ns, key)).fetchone()
            return bytes(row[0]) if row else None

        return await self._run(get)

    async def put(self, ns: str, key: str, value: bytes) -> None:
        """Group commit: a put returns once its batch is committed. Puts that arrive while a batch is being
        written (a flooded chat room) share the next transaction and one trip to the writer thread."""
        if self._db is None:
            raise StoreUnavailable("the store is not open")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((ns, key, value, done))
        if not self._batch_in_flight:
            self._submit_pending()
        await done

    def _submit_pending(self) -> None:
        db = self._db
        if not self._pending or db is None:
            return
        batch, self._pending = self._pending, []
        rows = [(ns, key, value) for ns, key, value, _done in batch]
        self._batch_in_flight = True
        written = asyncio.get_running_loop().run_in_executor(self._executor, _write_batch, db, rows)

        def settle(result: asyncio.Future[None]) -> None:
            self._batch_in_flight = False
            error = None if result.cancelled() else result.exception()
            for _ns, _key, _value, done in batch:
                if done.done():
                    continue
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(StoreUnavailable(str(error)))
            self._submit_pending()

        written.add_done_callback(settle)

    async def delete(self, ns: str, key: str) -> bool:
        def delete(db: sqlite3.Connection) -> bool:
            return db.execute("DELETE FROM records WHERE ns = ? AND key = ?", (ns, key)).rowcount > 0

        return await self._run(delete)

    async def scan(
        self, ns: str, prefix: str = "", *, limit: int | None = None, reverse: bool = False
    ) -> list[tuple[str, bytes]]:
        order = "DESC" if reverse else "ASC"
        where, bounds = _prefix_range(prefix)
        sql = f"SELECT key, value FROM records WHERE ns = ? AND {where} ORDER BY key {order} LIMIT ?"

        def scan(db: sqlite3.Connection) -> list[tuple[str, bytes]]:
            rows = db.execute(sql, (ns, *bounds, -1 if limit is None else limit))
            return [(key, bytes(value)) for key, value in rows]

        return await self._run(scan)

    async def delete_prefix(self, ns: str, prefix: str) -> int:
        where, bounds = _prefix_range(prefix)

        def delete_prefix(db: sqlite3.Connection) -> int:
            return db.execute(f"DELETE FROM records WHERE ns = ? AND {where}", (ns, *bounds)).rowcount

        return await self._run(delete_prefix)

    async def trim(self, ns: str, prefix: str, keep: int) -> int:
        if keep < 0:
            raise ValueError("keep must be >= 0")
        where, bounds = _prefix_range(prefix)

        def trim(db: sqlite3.Connection) -> int:
            # The key of the oldest record to keep; everything before it under the prefix goes.
            row = db.execute(
                f"SELECT key FROM records WHERE ns = ? AND {where} ORDER BY key DESC LIMIT 1 OFFSET ?",
                (ns, *bounds, max(keep - 1, 0)),
            ).fetchone()
            if row is None:
                return 0
            bound_sql = "key <= ?" if keep == 0 else "key < ?"
            return db.execute(
                f"DELETE FROM records WHERE ns = ? AND key >= ? AND {bound_sql}", (ns, prefix, row[0])
            ).rowcount

        return await self._run(trim)

    async def compare_and_set(self, ns: str, key: str, expected: bytes | None, value: bytes | None) -> bool:
        # One statement per case: SQLite runs each atomically, also against other processes on the same file.
        where = "ns = ? AND key = ?"

        def compare_and_set(db: sqlite3.Connection) -> bool:
            if expected is None and value is None:
                return db.execute(f"SELECT 1 FROM records WHERE {where}", (ns, key)).fetchone() is None
            if expected is None:
                sql = "INSERT INTO records (ns, key, value) VALUES (?, ?, ?) ON CONFLICT (ns, key) DO NOTHING"
                return db.execute(sql, (ns, key, value)).rowcount == 1
            if value is None:
                return db.execute(f"DELETE FROM records WHERE {where} AND value = ?", (ns, key, expected)).rowcount == 1
            sql = f"UPDATE records SET value = ? WHERE {where} AND value = ?"
            return db.execute(sql, (value, ns, key, expected)).rowcount == 1

        return await self._run(compare_and_set)
