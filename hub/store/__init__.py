"""Store protocol for durable plugin state, and open_store(url) which picks a backend by URL scheme."""

from __future__ import annotations

from typing import Protocol
from urllib.parse import urlparse

from hub.redis_client import SCHEMES as REDIS_SCHEMES


def prefix_successor(prefix: str) -> str | None:
    """The smallest string above every string that starts with ``prefix`` (None: there is none).

    The prefix with its last character incremented, dropping trailing U+10FFFF first; an empty prefix, or
    one of only U+10FFFF characters, has no upper bound.
    """
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code <= 0x10FFFF:
            if 0xD800 <= code <= 0xDFFF:  # surrogates cannot be stored; the next character is U+E000
                code = 0xE000
            return "".join(chars) + chr(code)
    return None


class StoreUnavailable(Exception):
    """The store cannot be reached; callers turn this into an ``unavailable`` error."""


class Store(Protocol):
    """Ordered key/value records grouped in namespaces (one per plugin). Keys sort as strings.

    That one shape covers chat logs (``room/<sortable id>``), inboxes, canvases (objects keyed by id) and
    documents (update logs plus snapshots), on SQLite and on Redis alike.
    """

    async def start(self) -> None:
        """Open the store; raises StoreUnavailable, with a sentence saying why, when it cannot be used."""
        ...

    async def close(self) -> None: ...

    @property
    def problem(self) -> str | None:
        """Why the store cannot be used, as last seen (None: usable as far as is known); :meth:`check` looks
        again. SQLite's is permanent once set (its files changed under it: only a restart recovers)."""
        ...

    async def check(self) -> str | None:
        """Look again now, cheaply enough for every readiness probe: None when the store is usable, else why not."""
        ...

    async def get(self, ns: str, key: str) -> bytes | None: ...

    async def put(self, ns: str, key: str, value: bytes) -> None: ...

    async def delete(self, ns: str, key: str) -> bool: ...

    async def scan(
        self, ns: str, prefix: str = "", *, limit: int | None = None, reverse: bool = False
    ) -> list[tuple[str, bytes]]:
        """Records whose key starts with ``prefix``, in key order (or reverse), at most ``limit`` of them."""
        ...

    async def delete_prefix(self, ns: str, prefix: str) -> int: ...

    async def trim(self, ns: str, prefix: str, keep: int) -> int:
        """Delete all but the last ``keep`` records (in key order) under ``prefix``; returns how many went."""
        ...

    async def compare_and_set(self, ns: str, key: str, expected: bytes | None, value: bytes | None) -> bool:
        """Atomically: if the record holds ``expected`` (None: there is no record), make it ``value`` (None:
        delete it) and return True; otherwise change nothing and return False.

        Atomic against every other call on the same store, from this process or another one sharing the
        backend, so a read-decide-write loop around it never loses a concurrent write.
        """
        ...


class PluginStore:
    """A plugin's view of the store: every call is confined to the plugin's namespace."""

    __slots__ = ("_ns", "_store")

    def __init__(self, store: Store, ns: str) -> None:
        self._store = store
        self._ns = ns

    async def get(self, key: str) -> bytes | None:
        return await self._store.get(self._ns, key)

    async def put(self, key: str, value: bytes) -> None:
        await self._store.put(self._ns, key, value)

    async def delete(self, key: str) -> bool:
        return await self._store.delete(self._ns, key)

    async def scan(
        self, prefix: str = "", *, limit: int | None = None, reverse: bool = False
    ) -> list[tuple[str, bytes]]:
        return await self._store.scan(self._ns, prefix, limit=limit, reverse=reverse)

    async def delete_prefix(self, prefix: str) -> int:
        return await self._store.delete_prefix(self._ns, prefix)

    async def trim(self, prefix: str, keep: int) -> int:
        return await self._store.trim(self._ns, prefix, keep)

    async def compare_and_set(self, key: str, expected: bytes | None, value: bytes | None) -> bool:
        return await self._store.compare_and_set(self._ns, key, expected, value)


def open_store(url: str, *, prefix: str = "hub", check_timeout: float = 3.0) -> Store:
    """Build the store a URL names: ``sqlite:///relative/file``, ``sqlite:////absolute/file``, ``sqlite:///:memory:``
    (``?locking=exclusive``: see SQLiteStore), or a Redis URL. ``check_timeout``: how long :meth:`Store.check`
    waits for a remote store to answer."""
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        from hub.store.sqlite import SQLiteStore

        return SQLiteStore.from_url(url)
    if scheme in REDIS_SCHEMES:
        from hub.store.redis import RedisStore

        return RedisStore(url, prefix=prefix, check_timeout=check_timeout)
    raise ValueError(
        f"unsupported store URL {url!r}; expected sqlite:///path, redis://host:port/db or redis+cluster://host:port"
    )


def check_before_start(url: str) -> str | None:
    """Why the store a URL names cannot start (None: it can, as far as can be told without a server): for
    ``hub serve``, to stop with one line before it serves. A SQLite store's files are checked, and the database
    opened and closed once; a Redis store is not contacted (its start-up needs Redis anyway)."""
    if urlparse(url).scheme != "sqlite":
        return None
    from hub.store.sqlite import SQLiteStore

    return SQLiteStore.from_url(url).check_before_start()
