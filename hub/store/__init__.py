"""Durable plugin state: the Store protocol (store/protocol.py), a plugin's slice of it, and open_store(url),
which picks a backend by URL scheme."""

from __future__ import annotations

from urllib.parse import urlparse

from hub.redis_client import SCHEMES as REDIS_SCHEMES
from hub.store.protocol import Store, StoreUnavailable, prefix_successor

__all__ = ["PluginStore", "Store", "StoreUnavailable", "check_before_start", "open_store", "prefix_successor"]


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
