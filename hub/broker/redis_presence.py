"""RedisPresence: each channel's members in a hash, a sorted set of their expiry times (refreshed by their node)
and a sorted set of their client ids (for pages in client id order).

A node refreshes its own members every third of the presence TTL; a node that dies stops, and whichever
surviving node that follows the channel finds a member past its expiry first removes it and announces it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from hub import redis_client
from hub.broker.protocols import BrokerUnavailable, PresenceExpired
from hub.broker.redis import RedisConnection
from hub.broker.redis_scripts import EXPIRE_MEMBER, JOIN, LEAVE, PAGE
from hub.redis_client import REDIS_ERRORS
from hub.types import PresenceMember

log = logging.getLogger("hub.broker.redis")


class RedisPresence:
    """``followed()``: the channels this node follows (the pub/sub's), whose dead members it expires."""

    def __init__(
        self, connection: RedisConnection, *, followed: Callable[[], Iterable[str]], ttl: float = 30.0
    ) -> None:
        self.connection = connection
        self._followed = followed
        self._ttl = ttl
        self._join_script = connection.client.register_script(JOIN)
        self._leave_script = connection.client.register_script(LEAVE)
        self._expire_script = connection.client.register_script(EXPIRE_MEMBER)
        self._page_script = connection.client.register_script(PAGE)
        self._on_expired: PresenceExpired | None = None
        self._local: dict[str, dict[str, PresenceMember]] = {}  # this node's members, refreshed by it
        self._upkeep: asyncio.Task[None] | None = None
        self._closing = False

    def _keys(self, channel: str) -> list[str]:
        """The member hash, the expiry sorted set, the client id sorted set (the order of every script's KEYS)."""
        key = self.connection.key
        return [key(channel, "presence"), key(channel, "presence-exp"), key(channel, "presence-ids")]

    def _expiry(self) -> int:
        return int((time.time() + self._ttl) * 1000)

    async def start(self, on_expired: PresenceExpired | None = None) -> None:
        self._on_expired = on_expired
        self._upkeep = asyncio.create_task(self._upkeep_forever(), name="hub-redis-presence")

    async def close(self) -> None:
        self._closing = True  # the loop checks it: redis-py can swallow a cancellation mid-command
        if self._upkeep is not None:
            self._upkeep.cancel()
            _done, pending = await asyncio.wait([self._upkeep], timeout=self.connection.timeout * 2)
            if pending:
                log.warning("task %s did not stop", self._upkeep.get_name())
            self._upkeep = None
        client = self.connection.client
        with contextlib.suppress(*REDIS_ERRORS):
            for channel, members in self._local.items():
                if members:
                    hash_key, expiry_key, ids_key = self._keys(channel)
                    await client.hdel(hash_key, *members)
                    await client.zrem(expiry_key, *members)
                    await client.zrem(ids_key, *members)

    async def join(self, channel: str, member: PresenceMember) -> int:
        count = await self.connection.call(
            self._join_script(
                keys=self._keys(channel),
                args=[member.client, orjson.dumps(member.as_dict()), self._expiry(), int(self._ttl * 2000), _now()],
            )
        )
        # Refreshed from now on; only once Redis has it, or a failed join would linger as a ghost member.
        self._local.setdefault(channel, {})[member.client] = member
        return int(count)

    async def leave(self, channel: str, client: str) -> int:
        members = self._local.get(channel)
        if members is not None:
            members.pop(client, None)
            if not members:
                del self._local[channel]
        return int(await self.connection.call(self._leave_script(keys=self._keys(channel), args=[client, _now()])))

    async def count(self, channel: str) -> int:
        """The members not past their expiry (as :meth:`members` lists them): a dead node's stop counting within
        the TTL, before a node that follows the channel removes them."""
        expiry_key = self.connection.key(channel, "presence-exp")
        return int(await self.connection.call(self.connection.client.zcount(expiry_key, _now(), "+inf")))

    async def page(self, channel: str, cursor: str, limit: int) -> tuple[list[PresenceMember], str | None]:
        """Live members in client id order (byte order, as Python's) after ``cursor``, the last client id of the
        page before: ZRANGEBYLEX over the id set, in one script."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        start = b"(" + cursor.encode() if cursor else b"-"  # UnicodeEncodeError (a ValueError): a lone surrogate
        next_cursor, values = await self.connection.call(
            self._page_script(keys=self._keys(channel), args=[start, limit, _now()])
        )
        members = [_member(value) for value in values if value is not None]
        return members, None if next_cursor is None else _text(next_cursor)

    async def members(self, channel: str) -> list[PresenceMember]:
        client = self.connection.client
        clients = await self.connection.call(
            client.zrangebyscore(self.connection.key(channel, "presence-exp"), _now(), "+inf")
        )
        if not clients:
            return []
        values = await self.connection.call(client.hmget(self.connection.key(channel, "presence"), clients))
        return [_member(value) for value in values if value is not None]

    async def _upkeep_forever(self) -> None:
        """Refresh this node's members before they expire; expire the members of nodes that died."""
        while not self._closing:
            await asyncio.sleep(self._ttl / 3)
            try:
                await self._refresh()
                await self._expire()
            except BrokerUnavailable as exc:
                log.warning("presence upkeep failed: %s", exc)
            except REDIS_ERRORS as exc:
                log.warning("presence upkeep failed: %s", exc)

    async def _refresh(self) -> None:
        expiry = self._expiry()
        ttl_ms = int(self._ttl * 2000)
        for channel, members in list(self._local.items()):
            # A copy: members may leave while this refresh waits for a connection.
            mapping = {client: orjson.dumps(member.as_dict()) for client, member in members.items()}
            if not mapping:
                continue
            keys = self._keys(channel)

            def refresh(pipe: Any, keys: list[str] = keys, mapping: dict[str, bytes] = mapping) -> None:
                hash_key, expiry_key, ids_key = keys
                # The member data too: after Redis lost its data, presence comes back within one refresh.
                pipe.hset(hash_key, mapping=mapping)
                pipe.zadd(expiry_key, dict.fromkeys(mapping, expiry))
                pipe.zadd(ids_key, dict.fromkeys(mapping, 0))
                for key in keys:
                    pipe.pexpire(key, ttl_ms)

            await self.connection.call(redis_client.pipeline(self.connection.client, refresh, transaction=False))
            # Whoever left while the refresh was on its way was written back by it: remove them again.
            for client in mapping.keys() - self._local.get(channel, {}).keys():
                await self.connection.call(self._leave_script(keys=keys, args=[client, _now()]))

    async def _expire(self) -> None:
        now_ms = _now()
        client = self.connection.client
        for channel in list(self._followed()):
            keys = self._keys(channel)
            expired = await client.zrangebyscore(keys[1], "-inf", now_ms - 1)
            for member_client in expired:
                # Whichever node removes the entry first announces the departure, exactly once.
                value = await self.connection.call(self._expire_script(keys=keys, args=[member_client, now_ms]))
                if value is not None and self._on_expired is not None:
                    await self._on_expired(channel, _member(value))


def _member(value: Any) -> PresenceMember:
    fields = orjson.loads(value)
    return PresenceMember(client=fields["client"], user=fields["user"], name=fields["name"])


def _now() -> int:
    """Now in ms since the epoch, the unit of the expiry set: this node's clock, as every expiry it writes."""
    return int(time.time() * 1000)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
