"""RedisStore: durable plugin state in Redis, shared by every node — a sorted set of keys and a hash of values
per namespace, so prefix scans are ZRANGEBYLEX range reads."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from redis.asyncio.cluster import RedisCluster

from hub import redis_client
from hub.redis_client import REDIS_ERRORS
from hub.store.protocol import StoreUnavailable, prefix_successor

T = TypeVar("T")

# compare_and_set in one script, so nothing runs between the comparison and the write. KEYS: the namespace's
# key set and value hash (one hash tag, so one Cluster slot). ARGV: key, "1" if a value is expected, the
# expected value, "1" if the record is to be set (else deleted), the new value. Lua strings are binary-safe.
_COMPARE_AND_SET = """
local current = redis.call('HGET', KEYS[2], ARGV[1])
if ARGV[2] == '1' then
  if current ~= ARGV[3] then return 0 end
elseif current then
  return 0
end
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[1], 0, ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[5])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
end
return 1
"""


# put and delete as scripts rather than MULTI pipelines: one EVALSHA round trip, atomic, and several times
# cheaper in CPU on redis-py's cluster client, whose MULTI pipelines cost about 0.9 ms each (0.2 ms here).
# PUT_RECORD writes one record: the last two KEYS are the namespace's key set and value hash, the last two ARGV
# the record's key and value. Counted from the end, so another script can start with it: the broker's publish
# puts a record and publishes its event in one script when the store shares its Redis (hub/broker/redis_pubsub.py).
# A failing write (out of memory, a key of the wrong type) stops the script before anything after it runs.
PUT_RECORD = """
redis.call('ZADD', KEYS[#KEYS - 1], 0, ARGV[#ARGV - 1])
redis.call('HSET', KEYS[#KEYS], ARGV[#ARGV - 1], ARGV[#ARGV])
"""
# KEYS: the namespace's key set and value hash. _PUT ARGV: key, value. _DELETE ARGV: the keys to delete.
_PUT = PUT_RECORD + "return 1\n"
_DELETE = """
redis.call('ZREM', KEYS[1], unpack(ARGV))
return redis.call('HDEL', KEYS[2], unpack(ARGV))
"""
_DELETE_BATCH = 1000  # keys per _DELETE call (Lua's unpack has a stack limit)


class RedisStore:
    """Keys of a namespace share a hash tag (``hub:store:{chat}:...``), so a namespace lives in one Cluster slot.

    Durability is Redis's: run it with AOF (``appendonly yes``, ``appendfsync everysec``) for plugin state
    to survive a Redis restart; see docs/operations.md.
    """

    def __init__(self, url: str, *, prefix: str = "hub", max_connections: int = 64, check_timeout: float = 3.0) -> None:
        self.url = url
        self.problem: str | None = None
        """Why the last :meth:`check` found Redis unusable, or None."""
        self._check_timeout = check_timeout
        self._prefix = prefix
        self._redis: Any = redis_client.connect(url, max_connections=max_connections, timeout=5.0)
        self._put_script = self._redis.register_script(_PUT)
        self._delete_script = self._redis.register_script(_DELETE)
        self._closed = False

    @property
    def sharded(self) -> bool:
        """A Redis Cluster: each namespace lives on the primary that owns its slot."""
        return isinstance(self._redis, RedisCluster)

    def record_keys(self, ns: str) -> list[str]:
        """The keys a record of ``ns`` is written to (its key set and value hash), as :data:`PUT_RECORD`'s last
        two KEYS: for a script that puts a record together with other work on the same Redis."""
        return [self._keys(ns), self._values(ns)]

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
            # Bounded: a connection handles its frames in order, so a call stuck in retries would hold its pongs.
            return await asyncio.wait_for(operation, 5.0)
        except REDIS_ERRORS as exc:
            raise StoreUnavailable(f"redis: {exc or type(exc).__name__}") from exc

    async def start(self) -> None:
        await self._call(self._redis.ping())
        await redis_client.check_mode(self._redis, self.url)

    async def close(self) -> None:
        self._closed = True
        await self._redis.aclose()

    async def check(self) -> str | None:
        """A PING (on a Cluster: every primary's, since each holds some namespaces), answered within
        ``check_timeout``."""
        if self._closed:
            return "the store is closed"
        try:
            async with asyncio.timeout(self._check_timeout):
                if isinstance(self._redis, RedisCluster):
                    await self._redis.ping(target_nodes=RedisCluster.PRIMARIES)
                else:
                    await self._redis.ping()
        except REDIS_ERRORS as exc:
            self.problem = f"redis: {exc or f'no answer within {self._check_timeout:g} s'}"
        else:
            self.problem = None
        return self.problem

    async def get(self, ns: str, key: str) -> bytes | None:
        value = await self._call(self._redis.hget(self._values(ns), key))
        return bytes(value) if value is not None else None

    async def put(self, ns: str, key: str, value: bytes) -> None:
        await self._call(self._put_script(keys=self.record_keys(ns), args=[key, value]))

    async def delete(self, ns: str, key: str) -> bool:
        return await self._delete_keys(ns, [key]) == 1

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
        removed = 0
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            removed += int(await self._call(self._delete_script(keys=[self._keys(ns), self._values(ns)], args=batch)))
        return removed

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

    _compare_and_set_script: Any = None  # registered on first use (EVALSHA, loaded again after a Redis restart)

    async def compare_and_set(self, ns: str, key: str, expected: bytes | None, value: bytes | None) -> bool:
        if self._compare_and_set_script is None:
            self._compare_and_set_script = self._redis.register_script(_COMPARE_AND_SET)
        args = [
            key,
            "0" if expected is None else "1",
            b"" if expected is None else expected,
            "0" if value is None else "1",
            b"" if value is None else value,
        ]
        done = await self._call(self._compare_and_set_script(keys=[self._keys(ns), self._values(ns)], args=args))
        return bool(done)
