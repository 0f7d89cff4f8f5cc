"""What a broker backend provides, in three parts: PubSub (fan-out with history), Presence and Coordination.

A backend implements all three over one connection setup (see :class:`hub.broker.Broker`); each part has its own
conformance suite (tests/test_pubsub_conformance.py, test_presence_conformance.py, test_coordination_conformance.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from hub.types import JSON, HistoryPolicy, PresenceChange, PresenceMember, Recovery, StreamPosition

if TYPE_CHECKING:
    from hub.store import Store

Deliver = Callable[[str, str, "int | None"], None]
"""The node's local sink: (channel, encoded ev frame, offset or None). The pub/sub calls it for every event."""

StreamReset = Callable[[str], None]
"""Called with a channel whose history started over (a new epoch): offsets from before mean nothing now."""

PresenceExpired = Callable[[str, PresenceMember], Awaitable[None]]
"""Called once per member whose node stopped refreshing it (the node died), to announce its departure."""

MidClaim = Literal["claimed", "done", "pending"]
"""What :meth:`Coordination.claim_mid` found: the claim is ours, a publish with the mid is done, or one is running."""

MidDone = tuple[str, float]
"""A mid key (``<channel>\\0<user>\\0<mid>``: it starts with the channel) and how long to remember it as done."""


@dataclass(frozen=True, slots=True)
class StoreRecord:
    """Where :meth:`PubSub.publish` writes the event's data (its JSON, as UTF-8) before the event goes out: the
    record ``key`` of ``namespace`` (a plugin's) in ``store`` (the node's)."""

    store: Store
    namespace: str
    key: str


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """A page of a recoverable channel's history (:meth:`PubSub.history`): the stream's position when it was read,
    and ``(offset, ev frame)`` pairs in offset order."""

    position: StreamPosition
    frames: tuple[tuple[int, str], ...]
    truncated: bool = False
    """Events after the requested offset may be missing: some fell out of the history window before the first
    one returned, or the offset is past the stream's end (it belongs to another epoch)."""


Answer = Callable[[bytes], Awaitable[bytes]]
"""A node's answer to a survey's request (:meth:`Nodes.survey`): every live node gets the same request bytes."""


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """A live node as the registry holds it: what its ``describe()`` returned at its last refresh, and when."""

    node_id: str
    info: bytes
    last_seen: float  # seconds since the epoch


@dataclass(frozen=True, slots=True)
class Survey:
    """The answers to one request put to every live node: node id -> answer, and the live nodes that did not
    answer within the timeout (a node that died and has not expired from the registry yet, or one overloaded)."""

    answers: dict[str, bytes]
    missing: tuple[str, ...] = ()


class BrokerUnavailable(Exception):
    """The broker cannot be reached; callers turn this into an ``unavailable`` error."""


class PubSub(Protocol):
    """Fan-out between nodes with per-channel history: publish, follow a channel, read a stream's position and
    recover what a client missed.

    A PubSub is opened together with a :class:`Coordination` on the same backend, and ``publish(mid=...)`` marks
    the mid done in that Coordination in the same step as the event (on Redis: one script, the mid key beside
    the channel's stream)."""

    async def start(self, deliver: Deliver, on_stream_reset: StreamReset | None = None) -> None:
        """Begin delivering. ``on_stream_reset(channel)``: a recoverable channel's history started over under a
        new epoch (Redis lost it, or it expired), so its offsets start again at 1."""
        ...

    @property
    def healthy(self) -> bool:
        """Whether delivery to other nodes works right now (readiness)."""
        ...

    async def close(self) -> None: ...

    async def publish(
        self,
        channel: str,
        event_type: str,
        data: str,
        history: HistoryPolicy | None,
        *,
        mid: MidDone | None = None,
        record: StoreRecord | None = None,
    ) -> int | None:
        """Encode the event once, give it the next offset when ``history`` is set, keep it in the history,
        deliver it on this node and every other one. Returns the offset (None without history).

        ``mid``: the publish is the first effect of a handler that claimed this mid; mark it done (as
        :meth:`Coordination.confirm_mid`) together with the event, so that no death of the node between the two
        can leave a published event whose mid a retry could claim again, or a done mid whose event was never
        published.

        ``record``: also write ``data`` to the store as that record, before the event goes out or in the same
        step (one script when the store is on this broker's single Redis; else the store's put, then the
        publish). So the record is durable no later than the event is delivered anywhere, and whoever reads the
        channel's position after the event finds the record. A failed write publishes nothing: the caller sees
        the store's StoreUnavailable, or BrokerUnavailable when one Redis call does both."""
        ...

    async def subscribe(self, channel: str) -> None:
        """This node gained its first local subscriber of ``channel``."""
        ...

    async def unsubscribe(self, channel: str) -> None:
        """This node lost its last local subscriber of ``channel``."""
        ...

    async def position(self, channel: str, history: HistoryPolicy) -> StreamPosition:
        """Where ``channel``'s stream is now: its epoch and last offset (0 for a new stream)."""
        ...

    async def recover(self, channel: str, since: StreamPosition, history: HistoryPolicy) -> Recovery:
        """Every event after ``since`` (recovered=True), or none and recovered=False — never a partial list."""
        ...

    async def interest(self, channel: str) -> int:
        """How many nodes hold a subscription to ``channel`` (between :meth:`subscribe` and
        :meth:`unsubscribe`), this one included."""
        ...

    async def history(self, channel: str, history: HistoryPolicy, *, since: int | None, limit: int) -> HistoryPage:
        """Read a recoverable channel's kept events without subscribing: the first ``limit`` (>= 1) after offset
        ``since``, or the last ``limit`` when ``since`` is None, in offset order, with the stream's position (a
        stream that does not exist yet starts, as :meth:`position` starts it)."""
        ...


class Presence(Protocol):
    """Who is in a channel, across nodes. A member stays until it leaves or its node stops refreshing it."""

    async def start(self, on_expired: PresenceExpired | None = None) -> None:
        """Begin the upkeep: refresh this node's members, and call ``on_expired(channel, member)`` once for each
        member of a node that died (a backend whose members cannot outlive their node never calls it)."""
        ...

    async def close(self) -> None:
        """Stop the upkeep and remove this node's members."""
        ...

    async def join(self, channel: str, member: PresenceMember) -> PresenceChange:
        """Add ``member`` to ``channel`` (joining twice keeps one entry per client) with its display, unique in the
        channel (hub/broker/presence_names.py: the display of another member of the same user, else the name with
        the first free suffix). Returns the channel's member count on every node after the join, read in the same
        step, and the member as added (``member.display`` set)."""
        ...

    async def leave(self, channel: str, client: str) -> PresenceChange:
        """Remove the member of ``client`` from ``channel`` (nothing happens if it is not there); its user's display
        is free again once the user has no member left there. Returns the member count after the leave (the same
        as before when ``client`` was not a member) and the member removed (None if it was not there)."""
        ...

    async def update(self, channel: str, client: str, meta: JSON) -> PresenceChange:
        """Replace the metadata of ``client``'s member of ``channel``, a member this node added (nothing happens
        if there is none). From then on the member is listed, and refreshed, with it. Returns the member count and
        the member as updated (None if ``client`` is not this node's member there)."""
        ...

    async def count(self, channel: str) -> int:
        """How many members ``channel`` has now, on every node (without reading them). Like :meth:`join`,
        :meth:`leave`, :meth:`page` and :meth:`members`, it leaves out a dead node's members once they expire, even
        before ``on_expired`` announced them."""
        ...

    async def page(self, channel: str, cursor: str, limit: int) -> tuple[list[PresenceMember], str | None]:
        """At most ``limit`` (>= 1) of ``channel``'s members, in client id order, and the cursor of the next page
        (the last client id the page covered), or None when no member follows.

        ``cursor`` ``""`` starts a walk; any other string is a place in client id order (a page starts after it).
        A member present during the whole walk appears exactly once; one that joins or leaves during it may or
        may not (callers that dedupe by client id stay right)."""
        ...

    async def members(self, channel: str) -> list[PresenceMember]:
        """Everyone in ``channel`` now, on every node (the whole list: for the expiry path and small rooms)."""
        ...


class Nodes(Protocol):
    """The nodes of a cluster: a registry of the live ones (each refreshes its own record, and a node that stops
    refreshing leaves it within the backend's TTL), and a survey, one request put to every live node at once.

    It carries bytes: what a node says about itself and what a request means are its caller's business
    (hub/control.py). Every node answers the requests of every other one while it runs."""

    node_id: str

    async def start(self, describe: Callable[[], bytes], answer: Answer) -> None:
        """Join the cluster: ``describe()`` is this node's record (read again at each refresh), ``answer`` answers
        the surveys of every node, this one's included. Returns once other nodes' surveys can reach this one."""
        ...

    async def close(self) -> None:
        """Leave the registry and stop answering."""
        ...

    async def live(self) -> list[NodeRecord]:
        """The nodes whose record has not expired, this one included, in node id order."""
        ...

    async def survey(self, request: bytes, timeout: float) -> Survey:
        """Put ``request`` to every live node (this one answers directly) and wait up to ``timeout`` seconds for
        their answers. A node that fails to answer is in ``missing``; BrokerUnavailable when the request cannot
        be sent at all."""
        ...


class Coordination(Protocol):
    """What nodes agree on: publish dedup (a mid runs once within its window) and leases (one holder at a time)."""

    async def claim_mid(self, key: str, ttl: float) -> MidClaim:
        """Claim ``key`` for a publish about to run: ``"claimed"`` (it is ours for ``ttl`` seconds, until
        :meth:`confirm_mid` or :meth:`release_mid`), ``"done"`` (a publish with it succeeded within the dedup
        window) or ``"pending"`` (another attempt holds the claim and has not finished; if its node died, the
        claim expires after its ``ttl`` and a retry may run)."""
        ...

    async def confirm_mid(self, key: str, ttl: float) -> None:
        """The publish ``key`` guarded succeeded: remember it as done for ``ttl`` seconds (the dedup window)."""
        ...

    async def release_mid(self, key: str) -> None:
        """Forget ``key`` (the publish it guarded failed), so a retry is not taken for a duplicate."""
        ...

    async def lease_acquire(self, name: str, owner: str, ttl: float) -> bool:
        """Take the lease ``name`` for ``owner`` for ``ttl`` seconds if nobody holds it, or extend it if
        ``owner`` holds it; False if another owner holds it."""
        ...

    async def lease_release(self, name: str, owner: str) -> None:
        """Give the lease up if ``owner`` holds it (else change nothing)."""
        ...
