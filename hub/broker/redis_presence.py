"""RedisPresence: each channel's members in a hash, a sorted set of their expiry times (refreshed by their node),
a sorted set of their client ids (for pages in client id order) and the room's name index (the display of each
user, unique in the room: hub/broker/presence_names.py), changed by the scripts of redis_presence_scripts.py.

A node refreshes its own members every third of the presence TTL; a node that dies stops, and whichever
surviving node that follows the channel finds a member past its expiry first removes it and announces it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from hub import redis_client
from hub.broker.presence_names import PROBES
from hub.broker.protocols import BrokerUnavailable, PresenceExpired
from hub.broker.redis import RedisConnection
from hub.broker.redis_presence_scripts import EXPIRE_MEMBER, JOIN, LEAVE, PAGE, REFRESH, UPDATE
from hub.redis_client import REDIS_ERRORS
from hub.types import JSON, PresenceChange, PresenceMember

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
        self._update_script = connection.client.register_script(UPDATE)
        self._refresh_script = connection.client.register_script(REFRESH)
        self._on_expired: PresenceExpired | None = None
        self._local: dict[str, dict[str, PresenceMember]] = {}  # this node's members, refreshed by it
        self._upkeep: asyncio.Task[None] | None = None
        self._closing = False

    def _keys(self, channel: str) -> list[str]:
        """The member hash, the expiry sorted set, the client id sorted set and the name index's names, displays
        and refs hashes (the order of every script's KEYS)."""
        key = self.connection.key
        return [
            key(channel, "presence"),
            key(channel, "presence-exp"),
            key(channel, "presence-ids"),
            key(channel, "presence-names"),
            key(channel, "presence-displays"),
            key(channel, "presence-refs"),
        ]

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
        leaving = [(self._keys(channel), client) for channel, members in self._local.items() for client in members]

        def leave_all(pipe: Any) -> None:  # each one released from the name index as a leave does
            for keys, client in leaving:
                pipe.eval(LEAVE, len(keys), *keys, client, _now())

        with contextlib.suppress(*REDIS_ERRORS):
            if leaving:
                await redis_client.pipeline(self.connection.client, leave_all, transaction=False)

    async def join(self, channel: str, member: PresenceMember) -> PresenceChange:
        rest = orjson.dumps({"client": member.client, "user": member.user, "name": member.name, "meta": member.meta})
        args = [member.client, member.user, member.name, rest[1:], self._expiry(), int(self._ttl * 2000), _now()]
        args.append(PROBES)
        count, display = await self.connection.call(self._join_script(keys=self._keys(channel), args=args))
        joined = dataclasses.replace(member, display=_text(display))
        # Refreshed from now on; only once Redis has it, or a failed join would linger as a ghost member.
        self._local.setdefault(channel, {})[member.client] = joined
        return PresenceChange(int(count), joined)

    async def leave(self, channel: str, client: str) -> PresenceChange:
        members = self._local.get(channel)
        if members is not None:
            members.pop(client, None)
            if not members:
                del self._local[channel]
        count, value = await self.connection.call(self._leave_script(keys=self._keys(channel), args=[client, _now()]))
        return PresenceChange(int(count), _member(value) if value else None)

    async def update(self, channel: str, client: str, meta: JSON) -> PresenceChange:
        """Only this node's own members change here (a client sets its own metadata through its node). The new
        metadata is refreshed with the member from now on, so a member that Redis lost comes back with it."""
        members = self._local.get(channel)
        member = members.get(client) if members is not None else None
        if member is None or members is None:
            return PresenceChange(await self.count(channel), None)
        member = members[client] = dataclasses.replace(member, meta=meta)
        count = await self.connection.call(
            self._update_script(keys=self._keys(channel), args=[client, orjson.dumps(member.as_dict()), _now()])
        )
        return PresenceChange(int(count), member)

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
            refreshed = list(members.values())
            if not refreshed:
                continue
            keys = self._keys(channel)
            # The member data too (metadata included): after Redis lost its data, presence comes back within one
            # refresh, each member with its display.
            args: list[Any] = [expiry, ttl_ms]
            for member in refreshed:
                args += (member.client, member.user, member.display, orjson.dumps(member.as_dict()))
            await self.connection.call(self._refresh_script(keys=keys, args=args))
            # Whoever left while the refresh was on its way was written back by it: remove them again.
            for client in {m.client for m in refreshed} - self._local.get(channel, {}).keys():
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
    return PresenceMember(
        client=fields["client"],
        user=fields["user"],
        name=fields["name"],
        display=fields.get("display") or fields["name"],
        meta=fields.get("meta"),
    )


def _now() -> int:
    """Now in ms since the epoch, the unit of the expiry set: this node's clock, as every expiry it writes."""
    return int(time.time() * 1000)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
