"""MemoryPresence: who is in each channel, inside one process (the embedded default)."""

from __future__ import annotations

import bisect
import dataclasses

from hub.broker.presence_names import display_name
from hub.broker.protocols import PresenceExpired
from hub.types import JSON, PresenceChange, PresenceMember


class _Room:
    """One channel's members, their client ids kept sorted so a page is a bisect away, and its name index."""

    __slots__ = ("clients", "displays", "members", "names")

    def __init__(self) -> None:
        self.members: dict[str, PresenceMember] = {}  # client -> member
        self.clients: list[str] = []  # the keys of ``members``, sorted
        self.names: dict[str, str] = {}  # display -> the user who shows as it
        self.displays: dict[str, tuple[str, int]] = {}  # user -> (its display, how many of its members are here)

    def show(self, user: str, name: str) -> str:
        """The display of one more member of ``user``: the user's own if it has one here, else a new one."""
        held = self.displays.get(user)
        if held is not None:
            self.displays[user] = (held[0], held[1] + 1)
            return held[0]
        display = display_name(name, self.names.__contains__, len(self.members))
        self.names[display] = user
        self.displays[user] = (display, 1)
        return display

    def hide(self, user: str) -> None:
        """One member of ``user`` left: its display is free again once its last member has."""
        display, members = self.displays[user]
        if members > 1:
            self.displays[user] = (display, members - 1)
            return
        del self.displays[user]
        if self.names.get(display) == user:
            del self.names[display]


class MemoryPresence:
    """Members never expire here: a member leaves with its connection, in this very process."""

    def __init__(self) -> None:
        self._rooms: dict[str, _Room] = {}

    async def start(self, on_expired: PresenceExpired | None = None) -> None:
        """Nothing to keep up: no member outlives its node here, so ``on_expired`` is never called."""

    async def close(self) -> None:
        self._rooms.clear()

    async def join(self, channel: str, member: PresenceMember) -> PresenceChange:
        room = self._rooms.get(channel)
        if room is None:
            room = self._rooms[channel] = _Room()
        present = room.members.get(member.client)
        if present is None:
            bisect.insort(room.clients, member.client)
            display = room.show(member.user, member.name)
        else:
            display = present.display  # joining twice: one entry, the same display
        joined = room.members[member.client] = dataclasses.replace(member, display=display)
        return PresenceChange(len(room.members), joined)

    async def leave(self, channel: str, client: str) -> PresenceChange:
        room = self._rooms.get(channel)
        if room is None:
            return PresenceChange(0, None)
        member = room.members.pop(client, None)
        if member is not None:
            del room.clients[bisect.bisect_left(room.clients, client)]
            room.hide(member.user)
            if not room.members:
                del self._rooms[channel]
                return PresenceChange(0, member)
        return PresenceChange(len(room.members), member)

    async def update(self, channel: str, client: str, meta: JSON) -> PresenceChange:
        room = self._rooms.get(channel)
        if room is None:
            return PresenceChange(0, None)
        member = room.members.get(client)
        if member is not None:
            member = room.members[client] = dataclasses.replace(member, meta=meta)
        return PresenceChange(len(room.members), member)

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
