"""Listener: a subscriber of a channel inside the hub — a plugin that must see every event of a channel on
this node (a document it keeps in memory, sockets of another protocol it serves) without a client."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hub.fanout import Fanout

log = logging.getLogger("hub.listener")

OnEvent = Callable[[str, str], None]
"""(channel, the event's encoded ``ev`` frame, as clients get it). Called on the event loop for every event of
the channel on this node, the node's own publishes included; it must not block (schedule slow work)."""


class Listener:
    """Made by :meth:`hub.Hub.listen`; counts as a subscriber of its channel (``hub.local_subscribers``,
    ``hub.interest``) until :meth:`close`."""

    __slots__ = ("_fanout", "_on_event", "channel", "closed")

    def __init__(self, fanout: Fanout, channel: str, on_event: OnEvent) -> None:
        self._fanout = fanout
        self._on_event = on_event
        self.channel = channel
        self.closed = False

    def __repr__(self) -> str:
        return f"<Listener {self.channel}>"

    def forget_floor(self, channel: str) -> None:
        """A listener gets every event as it comes; it keeps no floor."""

    def push_event(self, channel: str, frame: str, offset: int | None, conflate: bool = False) -> None:
        """Called by the fan-out, like a session's; one listener's bug never stops the others' delivery."""
        try:
            self._on_event(channel, frame)
        except Exception:  # a callback's failure stays with its listener (delivery boundary)
            log.exception("listener of %s failed on an event", channel)

    async def close(self) -> None:
        """Stop listening (idempotent); the node drops its broker subscription when nobody else follows."""
        if not self.closed:
            self.closed = True
            await self._fanout.remove(self.channel, self)
