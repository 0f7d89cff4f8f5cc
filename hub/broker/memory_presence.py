"""MemoryPresence: who is in each channel, inside one process (the embedded default)."""

from __future__ import annotations

import bisect

from hub.broker.protocols import PresenceExpired
from hub.types import PresenceMember


class _Room:
    """One channel's members, and their client ids kept sorted so a page is a bisect away."""

    __slots__ = ("clients", "members")

    def __init__(self) -> None:
        self.members: dict[str, PresenceMember] = {}  # client -> member
        self.clients: list[str] = []  # the keys of ``members``, sorted


class MemoryPresence:
    """Members never expire here: a member leaves with its connection, in this very process."""

    def __init__(self) -> None:
        self._rooms: dict[str, _Room] = {}

    async def start(self, on_expired: PresenceExpired | None = None) -> None:
        """Nothing to keep up: no member outlives its node here, so ``on_expired`` is never called."""

    async def close(self) -> None:
        self._rooms.clear()

    async def join(self, channel: str, member: PresenceMember) -> int:
        room = self._rooms.get(channel)
        if room is None:
            room = self._rooms[channel] = _Room()
        if member.client not in room.members:
            bisect.insort(room.clients, member.client)
        room.members[member.client] = member
        return len(room.members)

    async def leave(self, channel: str, client: str) -> int:
        room = self._rooms.get(channel)
        if room is None:
            return 0
        if room.members.pop(client, None) is not None:
            del room.clients[bisect.bisect_left(room.clients, client)]
            if not room.members:
                del self._rooms[channel]
                return 0
        return len(room.members)

    async def count(self, channel: str) -> int:
        room = self._rooms.get(channel)
        return 0 if room is None else len(room.members)

    async def page(self, channel: str, cursor: str, limit: int) -> tuple[list[PresenceMember], str | None]:
        """Members in client id order after ``cursor`` (the last client id of the page before; ``""`` sorts first)."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        room = self._rooms.get(channel)
        if room is None:
            return [], None
        start = bisect.bisect_right(room.clients, cursor)
        clients = room.clients[start : start + limit]
        members = [room.members[client] for client in clients]
        more = start + limit < len(room.clients)
        return members, clients[-1] if more else None

    async def members(self, channel: str) -> list[PresenceMember]:
        room = self._rooms.get(channel)
        return [] if room is None else list(room.members.values())
