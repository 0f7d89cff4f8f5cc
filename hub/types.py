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
    """One connection present in a channel."""

    client: str
    user: str
    name: str

    def as_dict(self) -> dict[str, str]:
        return {"client": self.client, "user": self.user, "name": self.name}
