"""RedisStore: durable plugin state in Redis, shared by every node — a sorted set of keys and a hash of values
per namespace, so prefix scans are ZRANGEBYLEX range reads."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from hub.store import StoreUnavailable, prefix_successor

T = TypeVar("T")


class RedisStore:
    """Keys of a namespace share a hash tag (``hub:store:{chat}:...``), so a namespace lives in one Cluster slot.

    Durability is Redis's: run it with AOF (``appendonly yes``, ``appendfsync everysec``) for plugin state
    to survive a Redis restart; see docs/operations.md.
    """

    def __init__(self, url: str, *, prefix: str = "hub", max_connections: int = 64) -> None:
        self.url = url
        self._prefix = prefix
        # Typed Any: redis-py types every reply as the union of all reply shapes; we decode each one explicitly.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=5.0, socket_timeout=5.0, socket_connect_timeout=5.0
        )
        self._redis: Any = aioredis.Redis.from_pool(pool)  # owns the pool: aclose() disconnects it
        self._closed = False

    def _keys(self, ns: str) -> str:
        return f"{self._prefix}:store:{{{ns}}}:keys"

    def _values(self, ns: str) -> str:
        return f"{self._prefix}:store:{{{ns}}}:values"

    @staticmethod
    def _range(prefix: str) -> tuple[str, str]:
        upper = prefix_successor(prefix)
        return "[" + prefix, "+" if upper is None else "(" + upper

    async def _call(self, operation: Awaitable[T]) -> T:
        if self._closed:
            if hasattr(operation, "close"):
                operation.close()  # an un-awaited coroutine
            raise StoreUnavailable("the store is closed")
        try:
            return await operation
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    async def start(self) -> None:
        await self._call(self._redis.ping())

    async def close(self) -> None:
        self._closed = True
        await self._redis.aclose()

    async def get(self, ns: str, key: str) -> bytes | None:
        value = await self._call(self._redis.hget(self._values(ns), key))
        return bytes(value) if value is not None else None

    async def put(self, ns: str, key: str, value: bytes) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self._keys(ns), {key: 0})
            pipe.hset(self._values(ns), key, value)
            await self._call(pipe.execute())

    async def delete(self, ns: str, key: str) -> bool:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self._keys(ns), key)
            pipe.hdel(self._values(ns), key)
            removed, _ = await self._call(pipe.execute())
        return bool(removed)

    async def _keys_in(self, ns: str, prefix: str, *, limit: int | None = None, reverse: bool = False) -> list[str]:
        low, high = self._range(prefix)
        paging = {"start": 0, "num": limit} if limit is not None else {}
        if reverse:
            keys = await self._call(self._redis.zrevrangebylex(self._keys(ns), high, low, **paging))
        else:
            keys = await self._call(self._redis.zrangebylex(self._keys(ns), low, high, **paging))
        return [key.decode() for key in keys]

    async def scan(
        self, ns: str, prefix: str = "", *, limit: int | None = None, reverse: bool = False
    ) -> list[tuple[str, bytes]]:
        if limit == 0:
            return []
        keys = await self._keys_in(ns, prefix, limit=limit, reverse=reverse)
        if not keys:
            return []
        values = await self._call(self._redis.hmget(self._values(ns), keys))
        return [(key, bytes(value)) for key, value in zip(keys, values, strict=True) if value is not None]

    async def _delete_keys(self, ns: str, keys: list[str]) -> int:
        if not keys:
            return 0
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self._keys(ns), *keys)
            pipe.hdel(self._values(ns), *keys)
            removed, _ = await self._call(pipe.execute())
        return int(removed)

    async def delete_prefix(self, ns: str, prefix: str) -> int:
        return await self._delete_keys(ns, await self._keys_in(ns, prefix))

    async def trim(self, ns: str, prefix: str, keep: int) -> int:
        if keep < 0:
            raise ValueError("keep must be >= 0")
        low, high = self._range(prefix)
        count = int(await self._call(self._redis.zlexcount(self._keys(ns), low, high)))
        if count <= keep:
            return 0
        return await self._delete_keys(ns, await self._keys_in(ns, prefix, limit=count - keep))
