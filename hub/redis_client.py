"""Redis URLs -> redis-py asyncio clients: one server (``redis://``, ``rediss://``, ``unix://``) or a Redis
Cluster (``redis+cluster://``, ``rediss+cluster://``, naming any one node; the client finds the others)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisClusterException, RedisError

SINGLE_SCHEMES = ("redis", "rediss", "unix")
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
SCHEMES = (*SINGLE_SCHEMES, *CLUSTER_SCHEMES)

REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException, OSError)
"""What a Redis outage raises. A cluster client raises RedisClusterException (not a RedisError) when it
cannot reach any node."""


def is_cluster_url(url: str) -> bool:
    return urlparse(url).scheme in CLUSTER_SCHEMES


def connect(url: str, *, max_connections: int = 64, timeout: float = 5.0) -> Any:
    """A client for the URL. Typed Any: redis-py types every reply as the union of all reply shapes, and
    callers decode each one explicitly. Nothing connects until the first command."""
    scheme = urlparse(url).scheme
    if scheme in CLUSTER_SCHEMES:
        plain = CLUSTER_SCHEMES[scheme] + url[len(scheme) :]
        # max_connections is per node. A cluster client has no blocking pool (an exhausted one fails into retries
        # with slot-map refreshes), so callers bound their own concurrency to max_connections (RedisBroker's
        # _call); the headroom is for the few calls outside it. Connections open only as they are needed.
        return RedisCluster.from_url(
            plain,
            # A few quick retries ride out a MOVED slot or a failover; redis-py's default (10 retries with
            # backoff up to 10 s) would hold a publish for half a minute while a primary is down.
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=3),
            max_connections=max_connections + 16,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
    if scheme not in SINGLE_SCHEMES:
        raise ValueError(f"unsupported Redis URL {url!r}")
    # A blocking pool: a burst of operations (many clients leaving at once) waits for a connection instead of
    # failing with "Too many connections".
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        # After Redis restarts, every pooled connection is dead, and redis-py's default is not to retry: each
        # one's next command failed (unavailable) even once the node was ready again. A connection error is
        # retried on a new connection (the restarted server never saw the command on the old one).
        retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), retries=2),
    )
    return aioredis.Redis.from_pool(pool)  # owns the pool: aclose() disconnects it


async def pipeline(client: Any, build: Callable[[Any], object], *, transaction: bool = True) -> list[Any]:
    """Run the commands ``build`` queues on a pipeline (MULTI/EXEC when ``transaction``). Entering a cluster
    pipeline already talks to Redis, so all of it belongs inside the caller's error handling."""
    async with client.pipeline(transaction=transaction) as pipe:
        build(pipe)
        return list(await pipe.execute())


async def check_mode(client: Any, url: str) -> None:
    """Refuse a plain URL that names a Cluster node: its keys would answer MOVED half of the time."""
    if isinstance(client, RedisCluster):
        return
    info = await client.info("cluster")
    if info.get("cluster_enabled") in (1, "1"):
        scheme = urlparse(url).scheme
        raise RuntimeError(f"{url.split('@')[-1]!r} is a Redis Cluster node: use {scheme}+cluster:// instead")
