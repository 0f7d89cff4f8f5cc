"""MemoryPresence: who is in each channel, inside one process (the embedded default)."""

from __future__ import annotations

from hub.broker.protocols import PresenceExpired
from hub.types import PresenceMember


class MemoryPresence:
    """Members never expire here: a member leaves with its connection, in this very process."""

    def __init__(self) -> None:
        self._members: dict[str, dict[str, PresenceMember]] = {}  # channel -> client -> member

    async def start(self, on_expired: PresenceExpired | None = None) -> None:
        """Nothing to keep up: no member outlives its node here, so ``on_expired`` is never called."""

    async def close(self) -> None:
        self._members.clear()

    async def join(self, channel: str, member: PresenceMember) -> None:
        self._members.setdefault(channel, {})[member.client] = member

    async def leave(self, channel: str, client: str) -> None:
        members = self._members.get(channel)
        if members is not None:
            members.pop(client, None)
            if not members:
                del self._members[channel]

    async def members(self, channel: str) -> list[PresenceMember]:
        return list(self._members.get(channel, {}).values())
