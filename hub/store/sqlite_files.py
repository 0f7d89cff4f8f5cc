"""The SQLite store's files on disk: checks before opening them, and whether they are still the ones opened.

SQLite keeps using the files it opened whatever happens to their paths. A data directory removed under a running
hub is therefore not an error to SQLite: writes keep succeeding into unlinked files and are gone after a
restart. And in WAL mode every connection maps the WAL index (``-shm``) into memory: a ``-shm`` truncated, or
made immutable (``chattr +i``), under a running hub turns SQLite's next access to it into a SIGBUS that kills
the process. So the store compares the paths with what it opened (device and inode; the ``-shm``'s size and
writability) before it lets SQLite run.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

WAL_SUFFIX = "-wal"
SHM_SUFFIX = "-shm"
_EFFECTIVE_IDS = os.access in os.supports_effective_ids  # check as the process's effective user (it opens them)


def _siblings(database: Path, *, wal_index: bool) -> list[Path]:
    files = [database, Path(f"{database}{WAL_SUFFIX}")]
    if wal_index:
        files.append(Path(f"{database}{SHM_SUFFIX}"))
    return files


def unusable_before_open(database: Path, *, wal_index: bool = True) -> str | None:
    """Why SQLite could not run on ``database`` (None: it can), creating its directory if missing.

    The directory must be one this process may create files in (SQLite creates the -wal and -shm there);
    the database, its -wal and (``wal_index``) its -shm, where they exist, regular files it may read and write.
    """
    directory = database.parent
    if directory.exists() and not directory.is_dir():
        return f"the data directory {directory} is not a directory"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create the data directory {directory}: {exc.strerror}"
    if not os.access(directory, os.W_OK | os.X_OK, effective_ids=_EFFECTIVE_IDS):
        return f"the data directory {directory} is not writable by this process (SQLite creates -wal and -shm there)"
    for path in _siblings(database, wal_index=wal_index):
        try:
            mode = os.lstat(path).st_mode if path != database else os.stat(path).st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            return f"cannot check {path}: {exc.strerror}"
        if not stat.S_ISREG(mode):
            return f"{path} is not a regular file"
        if not os.access(path, os.R_OK | os.W_OK, effective_ids=_EFFECTIVE_IDS):
            return f"{path} is not a file this process can read and write (uid {os.geteuid()})"
    return None


class StoreFiles:
    """The database's files as the store opened them; the ``*problem*`` methods say when one is no longer the
    file at its path, in a sentence (None while all is well).

    A stat per file checked, and an access(2) for the -shm (about 2 µs each from Python). The store checks the
    -shm before every statement (SQLite touches its mapping in each one) and the database and -wal after every
    write (before acknowledging it); readiness checks all three. Thread-safe: the writer thread and a readiness
    probe may check at once.
    """

    def __init__(self, database: Path, identities: dict[str, tuple[int, int]], wal_index_size: int) -> None:
        self.database = database
        self._identities = identities  # path -> (device, inode)
        self._wal_index = next((path for path in identities if path.endswith(SHM_SUFFIX)), None)
        self._written = [path for path in identities if path != self._wal_index]  # the database and its -wal
        self._wal_index_size = wal_index_size  # SQLite never shrinks the -shm while it has it open

    @classmethod
    def opened(cls, database: Path, *, wal_index: bool = True) -> StoreFiles:
        """Record the files of a database SQLite has just opened (a -wal or -shm that does not exist is skipped)."""
        identities, size = {}, 0
        for path in map(str, _siblings(database, wal_index=wal_index)):
            with contextlib.suppress(FileNotFoundError):
                info = os.stat(path)
                identities[path] = (info.st_dev, info.st_ino)
                if path.endswith(SHM_SUFFIX):
                    size = info.st_size
        return cls(database, identities, size)

    def problem(self) -> str | None:
        """Every file checked (readiness)."""
        return self.wal_index_problem() or self.written_problem()

    def wal_index_problem(self) -> str | None:
        """The -shm checked: SQLite may touch its mapping only while this is None."""
        path = self._wal_index
        if path is None:
            return None
        try:
            info = os.stat(path)
        except OSError as exc:
            return self._gone(path, exc)
        if (info.st_dev, info.st_ino) != self._identities[path]:
            return f"{path} was replaced by another file while the hub ran"
        if info.st_size < self._wal_index_size:
            return f"{path} (the WAL index) was truncated while the hub ran"
        self._wal_index_size = info.st_size
        if not os.access(path, os.W_OK, effective_ids=_EFFECTIVE_IDS):  # chattr +i: writes through the map fault
            return f"{path} (the WAL index) is no longer writable by this process"
        return None

    def written_problem(self) -> str | None:
        """The database and its -wal checked: a write committed while this is None is in the files at their paths."""
        for path in self._written:
            try:
                info = os.stat(path)
            except OSError as exc:
                return self._gone(path, exc)
            if (info.st_dev, info.st_ino) != self._identities[path]:
                return f"{path} was replaced by another file while the hub ran"
        return None

    @staticmethod
    def _gone(path: str, exc: OSError) -> str:
        if not isinstance(exc, FileNotFoundError):
            return f"cannot check {path}: {exc.strerror}"
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            return f"the data directory {directory} was removed while the hub ran"
        return f"{path} was removed while the hub ran"

    def restore_wal_index(self) -> bool:
        """Make SQLite's mapping of the -shm safe to touch again, if it is not: give a truncated one its size back
        (zeros: SQLite rebuilds the index from the WAL). Only the very file SQLite mapped (a -shm removed or
        replaced leaves the mapping of the old one intact). False when it stays unsafe (unwritable, or the
        truncation cannot be undone): then closing the database, which checkpoints through it, is a SIGBUS."""
        path = self._wal_index
        if path is None:
            return True
        try:
            info = os.stat(path)
        except FileNotFoundError:
            return True
        if (info.st_dev, info.st_ino) != self._identities[path]:
            return True
        try:
            if info.st_size < self._wal_index_size:
                os.truncate(path, self._wal_index_size)
        except OSError:
            return False
        return os.access(path, os.W_OK, effective_ids=_EFFECTIVE_IDS)
