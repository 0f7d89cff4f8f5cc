"""Small value types shared across the core: identities, stream positions, presence members."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

JSON: TypeAlias = Any
"""A value decoded from, or encodable to, JSON. Used only where data is still untyped (before validation)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is on the other end of a connection, as established by auth."""

    user: str
    name: str
    anonymous: bool = False
    scopes: frozenset[str] = field(default_factory=frozenset)
    expires_at: float | None = None

    def public(self) -> dict[str, str]:
        """What other clients may see of this identity (presence, message authors)."""
        return {"user": self.user, "name": self.name}


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """A point in a recoverable channel's stream: the epoch names the stream, the offset counts its events."""

    epoch: str
    offset: int


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    """How much of a recoverable channel's stream a broker keeps: events, and seconds after the last publish."""

    size: int
    ttl: float


@dataclass(frozen=True, slots=True)
class Recovery:
    """The answer to "what did I miss since this position": all missed frames, or recovered=False and none."""

    recovered: bool
    position: StreamPosition
    frames: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PresenceMember:
    """One connection present in a channel.

    ``display``: the name the room shows for it, unique in the room: ``name``, or ``name`` with a suffix
    (``"Alice (2)"``) when another user of the room already shows as ``name``. A user's connections share one
    display; the broker's presence gives it at the join, and it stays the same until the user's last connection
    leaves the room. ``""`` before the join (a member being built). ``meta``: the connection's presence metadata
    (JSON of the channel's ``presence_meta`` model, already validated), or None while it has set none.
    """

    client: str
    user: str
    name: str
    display: str = ""
    meta: JSON = None

    def as_dict(self) -> dict[str, JSON]:
        """The entry as the wire carries it: ``display`` only when it is not ``name``, ``meta`` only when set
        (most members of most rooms have neither, and a room's list is sent whole to every joiner)."""
        entry: dict[str, JSON] = {"client": self.client, "user": self.user, "name": self.name}
        if self.display and self.display != self.name:
            entry["display"] = self.display
        if self.meta is not None:
            entry["meta"] = self.meta
        return entry


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """What a change of a channel's presence (a join, leave or metadata update) did, read in the same step: the
    channel's member count after it, and the member as the channel holds it (after a join or update) or held it
    (before a leave); ``member`` is None when the client was not a member (a leave or update that changed nothing).
    """

    count: int
    member: PresenceMember | None
