"""The values the Python client hands to the app: events, identities, ``hello``, ``sub`` replies, presence, states."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

State: TypeAlias = Literal["connecting", "open", "reconnecting", "closed"]
"""The connection's states, in the order a connection usually goes through them (docs/client.md)."""

Cause: TypeAlias = Literal[
    "closed", "heartbeat", "connect_timeout", "refused", "protocol", "overflow", "token", "client", "error"
]
"""Why a socket was lost or an attempt failed: the socket ``closed``; nothing arrived within the heartbeat timeout;
no ``hello`` within the connect timeout; the server ``refused`` the upgrade with an HTTP status; it answered
without the hub's ``hello`` (``protocol``); the app's handlers fell behind (``overflow``: the event queue was
full); the token function failed; the app called ``close()``; or the URL cannot be used at all (``error``)."""


def _text(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


@dataclass(frozen=True, slots=True)
class User:
    """Who a connection is, from ``hello`` (``hello.data.user``) or an ``auth`` reply."""

    user: str
    name: str
    anonymous: bool

    @classmethod
    def parse(cls, data: Any) -> User | None:
        if not isinstance(data, Mapping) or not isinstance(data.get("user"), str):
            return None
        return cls(data["user"], _text(data.get("name"), data["user"]), data.get("anonymous") is True)


@dataclass(frozen=True, slots=True)
class Member:
    """One connection in a presence list (a user with two connections is two members). ``display`` is its name as
    the room shows it, unique in the room ("Alice (2)" when another user there is also called Alice): show it
    rather than ``name``. ``meta`` is its presence metadata (the channel plugin's model), or None. ``entry`` is the
    entry as the hub sent it, members this client does not know included."""

    client: str
    user: str
    name: str
    entry: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    display: str = ""
    meta: Any = None

    @classmethod
    def parse(cls, data: Any) -> Member | None:
        if not isinstance(data, Mapping) or not isinstance(data.get("client"), str):
            return None
        name = _text(data.get("name"))
        display = data.get("display")  # sent only when it differs from the name (protocol.md §9)
        return cls(
            data["client"],
            _text(data.get("user")),
            name,
            dict(data),
            display if isinstance(display, str) and display else name,
            data.get("meta"),
        )


def members_of(items: Any) -> list[Member]:
    """The well-formed members of a presence list from the hub (anything else is skipped)."""
    if not isinstance(items, list):
        return []
    return [member for member in map(Member.parse, items) if member is not None]


@dataclass(frozen=True, slots=True)
class Hello:
    """The hub's ``hello`` for the current connection (docs/protocol.md §4)."""

    client: str
    user: User | None
    protocol: int
    heartbeat_interval: float
    heartbeat_timeout: float
    limits: Mapping[str, int]
    plugins: tuple[str, ...]
    namespaces: tuple[str, ...]

    @classmethod
    def parse(cls, data: Any) -> Hello:
        data = data if isinstance(data, Mapping) else {}
        heartbeat = data.get("heartbeat") if isinstance(data.get("heartbeat"), Mapping) else {}
        limits = data.get("limits") if isinstance(data.get("limits"), Mapping) else {}

        def number(value: Any, default: float) -> float:
            ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
            return float(value) if ok else default

        return cls(
            client=_text(data.get("client")),
            user=User.parse(data.get("user")),
            protocol=data["protocol"] if isinstance(data.get("protocol"), int) else 0,
            heartbeat_interval=number(heartbeat.get("interval"), 25.0),
            heartbeat_timeout=number(heartbeat.get("timeout"), 60.0),
            limits={k: v for k, v in limits.items() if isinstance(v, int) and not isinstance(v, bool)},
            plugins=tuple(p for p in data.get("plugins", ()) if isinstance(p, str)),
            namespaces=tuple(n for n in data.get("namespaces", ()) if isinstance(n, str)),
        )


@dataclass(frozen=True, slots=True)
class Event:
    """An ``ev`` frame: an event on a channel. ``offset`` is set only for events kept in a recoverable channel's
    history (docs/protocol.md §4)."""

    channel: str
    type: str
    data: Any
    offset: int | None = None

    @classmethod
    def parse(cls, frame: Mapping[str, Any]) -> Event | None:
        channel, kind = frame.get("ch"), frame.get("type")
        if not isinstance(channel, str) or not isinstance(kind, str):
            return None
        offset = frame.get("offset")
        offset = offset if isinstance(offset, int) and not isinstance(offset, bool) else None
        return cls(channel, kind, frame.get("data"), offset)

    def as_frame(self) -> dict[str, Any]:
        """The event as the ``ev`` frame it came in (what ``hub listen --json`` prints)."""
        frame: dict[str, Any] = {"op": "ev", "ch": self.channel, "type": self.type, "data": self.data}
        if self.offset is not None:
            frame["offset"] = self.offset
        return frame


@dataclass(frozen=True, slots=True)
class SubscriptionInfo:
    """What a successful ``sub`` reply said, given to ``on_subscribed`` and ``on_snapshot``.

    ``reset`` is true when a reply that should have continued the stream did not recover (a resubscribe, or the
    first reply of a subscription made with ``since``): the app must rebuild this channel's state (from
    ``snapshot`` when the channel has one). ``missed`` counts the recovered events, which follow as ordinary events.
    """

    channel: str
    resubscribed: bool
    recovered: bool
    reset: bool
    epoch: str | None
    offset: int | None
    missed: int
    presence: tuple[Member, ...] | None
    presence_count: int | None
    snapshot: Any = None
    has_snapshot: bool = False


PresenceChangeType: TypeAlias = Literal["sync", "joined", "left", "count", "updated"]


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """What changed in a presence channel's list, given to ``on_presence`` with the members listed.

    ``sync``: a new list (a ``sub`` reply, or the whole list fetched when a big room became small again);
    ``joined``/``left``: ``member`` came or went; ``count``: a big room's new member count. ``count`` is how many
    members the room has on every node; ``partial`` is true when the list holds fewer than that.
    """

    type: PresenceChangeType
    count: int
    partial: bool
    member: Member | None = None


@dataclass(frozen=True, slots=True)
class PresencePage:
    """One page of a presence channel's members (the ``presence`` op's reply); ``cursor`` is None after the last."""

    members: tuple[Member, ...]
    count: int
    cursor: str | None


@dataclass(frozen=True, slots=True)
class StateChange:
    """Detail of the state events (``connecting``, ``open``, ``reconnecting``, ``closed``) and of ``state``.

    ``code`` is the WebSocket close code when a socket closed (1006 when it dropped without a close frame or could
    not be opened), None when the client gave up on it itself; ``attempt`` and ``delay`` (seconds) are set for
    ``reconnecting``; ``me`` and ``client`` for ``open``; ``url`` is the URL of the socket concerned.
    """

    state: State
    prev: State
    code: int | None = None
    reason: str = ""
    cause: Cause | None = None
    attempt: int | None = None
    delay: float | None = None
    url: str | None = None
    me: User | None = None
    client: str | None = None
