"""SQLiteStore: the embedded default store, one file, one writer thread so the event loop never blocks."""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlparse

from hub.store.protocol import StoreUnavailable, prefix_successor
from hub.store.serial_thread import SerialThread
from hub.store.sqlite_files import StoreFiles, unusable_before_open

T = TypeVar("T")
log = logging.getLogger("hub.store")

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


Reduce = Callable[[sqlite3.Cursor], object] | None
"""What a write's result is, from its statement's cursor (None: nothing)."""
Write = tuple[str, tuple[object, ...], Reduce]
"""One write of a group commit: its statement, its parameters, how to read its result."""


ROWS_PER_STATEMENT = 200  # puts in one multi-row upsert (3 parameters each; SQLite allows 32,766)


@functools.lru_cache(maxsize=ROWS_PER_STATEMENT)
def _upsert_rows(count: int) -> str:
    """One statement that upserts ``count`` records, in order (a later row for the same key wins)."""
    values = ", ".join(["(?, ?, ?)"] * count)
    return _UPSERT.replace("VALUES (?, ?, ?)", f"VALUES {values}")


def _write_batch(db: sqlite3.Connection, writes: list[Write]) -> list[object]:
    """One transaction for a batch of writes, in order, each seeing those before it (in the writer thread).

    A batch of puts only (a busy chat) is one multi-row statement, its own transaction: SQLite runs it without
    giving the GIL back between rows, BEGIN and COMMIT (each SQLite step releases it, and under load the thread
    then waits for the event loop to let go of it again)."""
    if len(writes) <= ROWS_PER_STATEMENT and all(sql is _UPSERT for sql, _params, _reduce in writes):
        db.execute(_upsert_rows(len(writes)), [value for _sql, params, _reduce in writes for value in params])
        return [None] * len(writes)
    results: list[object] = []
    db.execute("BEGIN")
    try:
        for sql, params, reduce in writes:
            cursor = db.execute(sql, params)
            results.append(reduce(cursor) if reduce is not None else None)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return results


def _changed_one(cursor: sqlite3.Cursor) -> bool:
    return cursor.rowcount == 1


def _changed_any(cursor: sqlite3.Cursor) -> bool:
    return cursor.rowcount > 0


def _found_none(cursor: sqlite3.Cursor) -> bool:
    return cursor.fetchone() is None


def _open(path: str, *, exclusive: bool) -> sqlite3.Connection:
    """Open (creating it if need be) the database in WAL mode with the records table."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        if exclusive:
            # Before WAL mode is entered: the WAL index then lives in this process's heap, with no -shm file.
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(_SCHEMA)
        db.execute("SELECT 1 FROM records LIMIT 1").fetchall()  # a read transaction: the -wal (and -shm) exist now
    except BaseException:
        db.close()
        raise
    return db


def _never_close(db: sqlite3.Connection) -> None:
    """Keep ``db`` from ever being closed, even by the interpreter's exit: its last close would checkpoint
    through an unwritable -shm mapping and kill the process with SIGBUS. The WAL stays on disk, complete."""
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(db))


class SQLiteStore:
    """Records in one WITHOUT ROWID table keyed by (ns, key), so prefix scans are index range scans.

    While it runs it checks, before every statement and after every write, that the database, its -wal and
    its -shm at their paths are still the files it opened (and the -shm no shorter): a removed data directory
    or a truncated WAL index makes the store unavailable for good, with the reason in :attr:`problem`, logged
    once, instead of acknowledging writes into unlinked files or dying of SIGBUS. A restart is the recovery.
    """

    def __init__(self, path: str, *, exclusive: bool = False) -> None:
        self.path = path
        self.exclusive = exclusive  # locking_mode=EXCLUSIVE: no -shm, but no other process may open the file
        self.problem: str | None = None
        """Why the store is unusable (a file of it moved under the running hub), or None."""
        self._files: StoreFiles | None = None
        self._problem_lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        # One thread owns the connection: SQLite serialises writers anyway, and ordering stays simple.
        self._thread = SerialThread("hub-sqlite")
        # Group commit: writes (put, delete, compare_and_set) that arrive while a batch is being written wait here,
        # and go in the next one, in order.
        self._pending: list[tuple[Write, asyncio.Future[Any]]] = []
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
        locking = parse_qs(parsed.query).get("locking", ["normal"])[-1]
        if locking not in ("normal", "exclusive"):
            raise ValueError(f"sqlite URL {url!r}: locking must be normal or exclusive")
        return cls(path, exclusive=locking == "exclusive")

    def check_before_start(self) -> str | None:
        """Why the store cannot start (None: it can): its files checked, then opened and closed once. Blocking;
        for ``hub serve`` to stop with one line before it serves rather than fail inside start-up."""
        if self.path == ":memory:":
            return None
        problem = unusable_before_open(Path(self.path), wal_index=not self.exclusive)
        if problem is not None:
            return problem
        try:
            _open(self.path, exclusive=self.exclusive).close()
        except sqlite3.Error as exc:
            return f"cannot open the SQLite store {self.path}: {exc}"
        return None

    def _fail(self, problem: str) -> None:
        """The store is unusable from now on; say why once (any thread)."""
        with self._problem_lock:
            if self.problem is not None:
                return
            self.problem = problem
        if self._files is not None:
            self._files.restore_wal_index()  # a truncated -shm: protect every process that has it mapped
        log.error("the store is unavailable until the hub restarts: %s", problem)

    def _verify(self, check: Callable[[], str | None] | None) -> None:
        """Raise StoreUnavailable if the store failed, or ``check`` (one of StoreFiles') finds it failing now."""
        if self.problem is None and check is not None:
            problem = check()
            if problem is not None:
                self._fail(problem)
        if self.problem is not None:
            raise StoreUnavailable(self.problem)

    def _guarded(self, fn: Callable[[sqlite3.Connection], T], db: sqlite3.Connection, *, write: bool) -> T:
        """Run ``fn`` in the writer thread between checks: the -shm before it (SQLite must not touch a truncated
        one) and, for a write, the database and -wal after it (a write committed into a file that is no longer
        at its path is not acknowledged)."""
        files = self._files
        self._verify(files.wal_index_problem if files is not None else None)
        result = fn(db)
        if write:
            self._verify(files.written_problem if files is not None else None)
        return result

    async def _run(self, fn: Callable[[sqlite3.Connection], T], *, write: bool = True) -> T:
        db = self._db
        if db is None:
            raise StoreUnavailable("the store is not open")
        if self.problem is not None:
            raise StoreUnavailable(self.problem)
        self._submit_pending()  # puts that came first are written first: the thread runs jobs in order
        try:
            return await self._thread.run(functools.partial(self._guarded, fn, db, write=write))
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def start(self) -> None:
        if self.path == ":memory:":
            self._db = await self._thread.run(lambda: _open(self.path, exclusive=self.exclusive))
            return
        path = Path(self.path)
        problem = unusable_before_open(path, wal_index=not self.exclusive)
        if problem is not None:
            raise StoreUnavailable(problem)

        def open_db() -> tuple[sqlite3.Connection, StoreFiles]:
            db = _open(self.path, exclusive=self.exclusive)
            return db, StoreFiles.opened(path, wal_index=not self.exclusive)

        try:
            self._db, self._files = await self._thread.run(open_db)
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"cannot open the SQLite store {self.path}: {exc}") from exc

    async def check(self) -> str | None:
        """Look at the files again (a few stats, for readiness): None while they are the ones opened."""
        if self._db is None:
            return self.problem or "the store is not open"
        if self.problem is None and self._files is not None:
            problem = self._files.problem()
            if problem is not None:
                self._fail(problem)
        return self.problem

    async def close(self) -> None:
        self._submit_pending()
        db, self._db = self._db, None
        if db is not None:
            # Closing checkpoints through the -shm mapping: a truncated -shm gets its size back first.
            if self._files is None or self._files.problem() is None or self._files.restore_wal_index():
                await self._thread.run(db.close)
            else:
                log.warning(
                    "leaving %s open: closing it would be a SIGBUS; SQLite replays its WAL at the next start", self.path
                )
                _never_close(db)
        self._thread.shutdown()

    async def get(self, ns: str, key: str) -> bytes | None:
        def get(db: sqlite3.Connection) -> bytes | None:
            row = db.execute("SELECT value FROM records WHERE ns = ? AND key = ?", (ns, key)).fetchone()
            return bytes(row[0]) if row else None

        return await self._run(get, write=False)

    async def put(self, ns: str, key: str, value: bytes) -> None:
        """Group commit: a put returns once its batch is committed. Writes that arrive while a batch is being
        written (a flooded chat room) share the next transaction and one trip to the writer thread."""
        await self._write((_UPSERT, (ns, key, value), None))

    def _write(self, write: Write) -> asyncio.Future[Any]:
        """Queue one write for the next group commit; the future is its result once the batch is committed."""
        if self._db is None:
            raise StoreUnavailable("the store is not open")
        if self.problem is not None:
            raise StoreUnavailable(self.problem)
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((write, done))
        if not self._batch_in_flight:
            self._submit_pending()
        return done

    def _submit_pending(self) -> None:
        db = self._db
        if not self._pending or db is None:
            return
        batch, self._pending = self._pending, []
        self._batch_in_flight = True
        write = functools.partial(_write_batch, writes=[write for write, _done in batch])
        # The files are checked after the batch here, on the loop, before anything is acknowledged: in the
        # thread, each check is one more wait for the GIL.
        written = self._thread.run(functools.partial(self._guarded, write, db, write=False))

        def settle(result: asyncio.Future[list[object]]) -> None:
            self._batch_in_flight = False
            error = None if result.cancelled() else result.exception()
            if result.cancelled():
                error = StoreUnavailable("the write was cancelled")
            elif error is None:
                try:
                    self._verify(self._files.written_problem if self._files is not None else None)
                except StoreUnavailable as problem:
                    error = problem
            results = result.result() if error is None else None
            for index, (_write, done) in enumerate(batch):
                if done.done():
                    continue
                if results is not None:
                    done.set_result(results[index])
                elif isinstance(error, StoreUnavailable):
                    done.set_exception(error)
                else:
                    done.set_exception(StoreUnavailable(str(error)))
            self._submit_pending()

        written.add_done_callback(settle)

    async def delete(self, ns: str, key: str) -> bool:
        deleted = await self._write(("DELETE FROM records WHERE ns = ? AND key = ?", (ns, key), _changed_any))
        return bool(deleted)

    async def scan(
        self, ns: str, prefix: str = "", *, limit: int | None = None, reverse: bool = False
    ) -> list[tuple[str, bytes]]:
        order = "DESC" if reverse else "ASC"
        where, bounds = _prefix_range(prefix)
        sql = f"SELECT key, value FROM records WHERE ns = ? AND {where} ORDER BY key {order} LIMIT ?"

        def scan(db: sqlite3.Connection) -> list[tuple[str, bytes]]:
            rows = db.execute(sql, (ns, *bounds, -1 if limit is None else limit))
            return [(key, bytes(value)) for key, value in rows]

        return await self._run(scan, write=False)

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
        """One statement per case, atomic (also against other processes on the same file), in the group commit:
        compare-and-sets that arrive together (a busy board) share one transaction, each seeing the writes
        queued before it."""
        where = "ns = ? AND key = ?"
        write: Write
        if expected is None and value is None:
            write = (f"SELECT 1 FROM records WHERE {where}", (ns, key), _found_none)
        elif expected is None:
            sql = "INSERT INTO records (ns, key, value) VALUES (?, ?, ?) ON CONFLICT (ns, key) DO NOTHING"
            write = (sql, (ns, key, value), _changed_one)
        elif value is None:
            write = (f"DELETE FROM records WHERE {where} AND value = ?", (ns, key, expected), _changed_one)
        else:
            write = (
                f"UPDATE records SET value = ? WHERE {where} AND value = ?",
                (value, ns, key, expected),
                _changed_one,
            )
        return bool(await self._write(write))
