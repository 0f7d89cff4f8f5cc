"""Broker protocol (fan-out between nodes, history, presence, dedup) and open_broker(url) by URL scheme."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal, Protocol
from urllib.parse import urlparse

from hub.redis_client import SCHEMES as REDIS_SCHEMES
from hub.types import HistoryPolicy, PresenceMember, Recovery, StreamPosition

Deliver = Callable[[str, str, "int | None"], None]
"""The node's local sink: (channel, encoded ev frame, offset or None). The broker calls it for every event."""


StreamReset = Callable[[str], None]
"""Called with a channel whose history started over (a new epoch): offsets from before mean nothing now."""

PresenceExpired = Callable[[str, PresenceMember], Awaitable[None]]
"""Called once per member whose node stopped refreshing it (the node died), to announce its departure."""


MidClaim = Literal["claimed", "done", "pending"]
"""What :meth:`Broker.claim_mid` found: the claim is ours, a publish with the mid is done, or one is running."""

MidDone = tuple[str, float]
"""A mid key (``<channel>\\0<user>\\0<mid>``: it starts with the channel) and how long to remember it as done."""


class BrokerUnavailable(Exception):
    """The broker cannot be reached; callers turn this into an ``unavailable`` error."""


class Broker(Protocol):
    """What the core needs from a broker. Every implementation passes tests/test_broker_conformance.py."""

    async def start(
        self,
        deliver: Deliver,
        on_presence_expired: PresenceExpired | None = None,
        on_stream_reset: StreamReset | None = None,
    ) -> None:
        """Begin delivering. ``on_stream_reset(channel)``: a recoverable channel's history started over under a
        new epoch (Redis lost it, or it expired), so its offsets start again at 1."""
        ...

    @property
    def healthy(self) -> bool:
        """Whether delivery to other nodes works right now (readiness)."""
        ...

    async def close(self) -> None: ...

    async def publish(
        self, channel: str, event_type: str, data: str, history: HistoryPolicy | None, *, mid: MidDone | None = None
    ) -> int | None:
        """Encode the event once, give it the next offset when ``history`` is set, keep it in the history,
        deliver it on this node and every other one. Returns the offset (None without history).

        ``mid``: the publish is the first effect of a handler that claimed this mid; mark it done (as
        :meth:`confirm_mid`) together with the event, so that no death of the node between the two can leave a
        published event whose mid a retry could claim again, or a done mid whose event was never published."""
        ...

    async def subscribe(self, channel: str) -> None:
        """This node gained its first local subscriber of ``channel``."""
        ...

    async def unsubscribe(self, channel: str) -> None:
        """This node lost its last local subscriber of ``channel``."""
        ...

    async def position(self, channel: str, history: HistoryPolicy) -> StreamPosition: ...

    async def recover(self, channel: str, since: StreamPosition, history: HistoryPolicy) -> Recovery:
        """Every event after ``since`` (recovered=True), or none and recovered=False — never a partial list."""
        ...

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

    async def interest(self, channel: str) -> int:
        """How many nodes hold a subscription to ``channel`` (between :meth:`subscribe` and
        :meth:`unsubscribe`), this one included."""
        ...

    async def lease_acquire(self, name: str, owner: str, ttl: float) -> bool:
        """Take the lease ``name`` for ``owner`` for ``ttl`` seconds if nobody holds it, or extend it if
        ``owner`` holds it; False if another owner holds it."""
        ...

    async def lease_release(self, name: str, owner: str) -> None:
        """Give the lease up if ``owner`` holds it (else change nothing)."""
        ...

    async def presence_join(self, channel: str, member: PresenceMember) -> None: ...

    async def presence_leave(self, channel: str, client: str) -> None: ...

    async def presence_members(self, channel: str) -> list[PresenceMember]: ...


def open_broker(
    url: str,
    *,
    sweep_interval: float = 30.0,
    presence_ttl: float = 30.0,
    probe_interval: float = 1.0,
    probe_timeout: float = 3.0,
    reorder_timeout: float = 0.5,
    prefix: str = "hub",
) -> Broker:
    """Build the broker a URL names: ``memory://`` (one process), ``redis://`` / ``rediss://`` / ``unix://``
    (one Redis, many nodes) or ``redis+cluster://`` / ``rediss+cluster://`` (a Redis Cluster)."""
    scheme = urlparse(url).scheme
    if scheme == "memory":
        from hub.broker.memory import MemoryBroker

        return MemoryBroker(sweep_interval=sweep_interval)
    if scheme in REDIS_SCHEMES:
        from hub.broker.redis import RedisBroker

        return RedisBroker(
            url,
            prefix=prefix,
            presence_ttl=presence_ttl,
            probe_interval=probe_interval,
            probe_timeout=probe_timeout,
            reorder_timeout=reorder_timeout,
        )
    raise ValueError(
        f"unsupported broker URL {url!r}; expected memory://, redis://host:port/db or redis+cluster://host:port"
    )
