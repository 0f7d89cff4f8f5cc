"""``Subscription``: one channel a client follows: its handlers, its place in the stream, its presence list.

Two sides, as in the client: the reader applies what arrives (the ``sub`` reply's position, each event's offset,
so a resubscribe asks for exactly what is missing) and posts the handler calls to the dispatcher, which runs them
in order; the presence list is kept on the dispatcher's side, with the handlers that see it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hub.client.dispatcher import Dispatcher, call
from hub.client.errors import RETRYABLE_SUB_CODES, ClientError
from hub.client.types import Event, Member, PresenceChange, PresenceChangeType, SubscriptionInfo, members_of

EventHandler = Callable[[Event], Any]
SubscribedHandler = Callable[[SubscriptionInfo], Any]
SnapshotHandler = Callable[[Any, SubscriptionInfo], Any]
PresenceHandler = Callable[[list[Member], PresenceChange], Any]
ErrorHandler = Callable[[ClientError], Any]


@dataclass(frozen=True, slots=True)
class Handlers:
    """A subscription's handlers; every one is optional and may be a plain function or a coroutine function."""

    events: Mapping[str, EventHandler]
    on_event: EventHandler | None = None
    on_subscribed: SubscribedHandler | None = None
    on_snapshot: SnapshotHandler | None = None
    on_presence: PresenceHandler | None = None
    on_error: ErrorHandler | None = None


@dataclass(frozen=True, slots=True)
class Walk:
    """Every member of a small room, page by page; ``whole`` is False when the room turned out big (more than the
    list limit) and the walk stopped early."""

    members: dict[str, Member]
    count: int
    whole: bool


@dataclass(frozen=True, slots=True)
class Owner:
    """What a subscription needs of its client."""

    unsubscribe: Callable[[Subscription], Awaitable[None]]
    list_limit: Callable[[], float]
    walk: Callable[[str], Awaitable[Walk]]


class Subscription:
    """A channel followed by a :class:`hub.client.Client`; made by ``client.subscribe(...)``.

    ``await sub.ready()`` waits for the first successful ``sub`` reply (after its handlers ran) and returns its
    :class:`SubscriptionInfo`, or raises the :class:`ClientError` that ended the subscription first.
    ``await sub.unsubscribe()`` (or leaving ``async with client.subscribe(...)``) stops the handlers at once and
    sends ``unsub``.
    """

    def __init__(
        self,
        channel: str,
        handlers: Handlers,
        dispatcher: Dispatcher,
        owner: Owner,
        since: tuple[str, int] | None = None,
        meta: Any = None,
    ) -> None:
        self.channel = channel
        self.meta = meta
        """This connection's presence metadata on the channel, sent with every ``sub`` (``Client.set_presence``)."""
        self._namespace = channel.split(":", 1)[0]
        self._handlers = handlers
        self._dispatcher = dispatcher
        self._owner = owner
        self.epoch: str | None = since[0] if since else None
        """The channel's stream, from the last ``sub`` reply (recoverable channels)."""
        self.offset: int | None = since[1] if since else None
        """The last offset seen: from the reply, recovered and live events. A resubscribe sends it as ``since``."""
        self.active = True
        """False once unsubscribed, refused for good, or ended by the hub."""
        # reader's side
        self._sent = False  # a `sub` went out on the current socket
        self._awaiting_reply = False
        self._failures = 0  # retryable refusals in a row
        self._retry: asyncio.TimerHandle | None = None
        self._ever_subscribed = False
        self._resuming = since is not None  # the first reply continues a stream the app already holds
        # dispatcher's side
        self._members: dict[str, Member] | None = None
        self._count = 0
        self._first: SubscriptionInfo | None = None
        self._error: ClientError | None = None
        self._settled = asyncio.Event()

    def __repr__(self) -> str:
        return f"<Subscription {self.channel} active={self.active} epoch={self.epoch} offset={self.offset}>"

    # ---- the app's side -----------------------------------------------------------------------------------

    @property
    def members(self) -> list[Member]:
        """The presence list as the last ``on_presence`` saw it (presence channels; empty otherwise)."""
        return list(self._members.values()) if self._members is not None else []

    @property
    def count(self) -> int:
        """The room's member count on every node, as the last ``on_presence`` saw it."""
        return self._count

    async def ready(self) -> SubscriptionInfo:
        await self._settled.wait()
        if self._first is None:
            assert self._error is not None
            raise self._error
        return self._first

    async def unsubscribe(self) -> None:
        """Stop the handlers now (events already on their way are dropped), then send ``unsub`` (at once while
        disconnected). Harmless when repeated."""
        await self._owner.unsubscribe(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.unsubscribe()

    # ---- the reader's side ----------------------------------------------------------------------------------

    def _since(self) -> dict[str, Any] | None:
        if self.epoch is None or self.offset is None:
            return None
        return {"epoch": self.epoch, "offset": self.offset}

    def _on_reply(self, data: Mapping[str, Any]) -> None:
        """A ``sub`` reply: the new position now, then (in order) the handlers, the presence list, the missed
        events."""
        self._awaiting_reply = False
        resubscribed = self._ever_subscribed
        continues = resubscribed or self._resuming
        self._ever_subscribed = True
        self._failures = 0
        epoch, offset = data.get("epoch"), data.get("offset")
        if isinstance(epoch, str):
            self.epoch = epoch
        if isinstance(offset, int) and not isinstance(offset, bool):
            self.offset = offset
        recovered = data.get("recovered") is True
        raw_missed = data.get("missed") if recovered else None
        missed = [event for event in map(_event, raw_missed if isinstance(raw_missed, list) else []) if event]
        presence = members_of(data["presence"]) if isinstance(data.get("presence"), list) else None
        raw_count = data.get("presence_count")
        count = raw_count if isinstance(raw_count, int) and not isinstance(raw_count, bool) else 0
        info = SubscriptionInfo(
            channel=self.channel,
            resubscribed=resubscribed,
            recovered=recovered,
            reset=continues and not recovered,
            epoch=self.epoch if isinstance(epoch, str) else None,
            offset=offset if isinstance(offset, int) and not isinstance(offset, bool) else None,
            missed=len(missed),
            presence=tuple(presence) if presence is not None else None,
            presence_count=max(count, len(presence)) if presence is not None else None,
            snapshot=data.get("snapshot"),
            has_snapshot="snapshot" in data,
        )
        self._dispatcher.post(self._apply_reply, info, missed)

    def _on_event(self, event: Event) -> bool:
        """A live event; False when the app is too far behind to take it (the client then drops the socket, and
        the resubscribe recovers from the last offset taken)."""
        if not self._dispatcher.post_event(self._deliver, event):
            return False
        if event.offset is not None:
            self.offset = event.offset
        return True

    def _on_refused(self, error: ClientError) -> bool:
        """The ``sub`` was answered with an ``err``. True when the subscription is over (the client drops it);
        retryable codes leave it to be sent again."""
        self._awaiting_reply = False
        error.retrying = error.code in RETRYABLE_SUB_CODES
        if error.retrying:
            self._sent = False
            self._failures += 1
        self._dispatcher.post(self._report, error, not error.retrying)
        return not error.retrying

    def _on_ended(self, error: ClientError) -> None:
        """The hub ended the subscription itself (an ``unsub`` frame): events before it still reach the handlers."""
        error.revoked = True
        self._dispatcher.post(self._report, error, True)

    # ---- the dispatcher's side ------------------------------------------------------------------------------

    async def _apply_reply(self, info: SubscriptionInfo, missed: list[Event]) -> None:
        if not self.active:
            return
        if info.presence is not None:
            self._members = {member.client: member for member in info.presence}
            self._count = info.presence_count or len(self._members)
        handlers = self._handlers
        if handlers.on_subscribed is not None:
            await call(handlers.on_subscribed, info)
        if info.has_snapshot and handlers.on_snapshot is not None:
            await call(handlers.on_snapshot, info.snapshot, info)
        if self._members is not None and info.presence is not None:
            await self._presence_changed("sync")
        for event in missed:
            await self._deliver(event)
        if self._first is None and self.active:
            self._first = info
            self._settled.set()

    async def _report(self, error: ClientError, final: bool) -> None:
        if final:
            self.active = False
        if self._handlers.on_error is not None:
            await call(self._handlers.on_error, error)
        if final and self._first is None and self._error is None:
            self._error = error
            self._settled.set()

    async def _deliver(self, event: Event) -> None:
        if not self.active:
            return
        if self._members is not None and isinstance(event.data, Mapping):
            await self._on_presence_event(event)
        typed = self._handlers.events.get(event.type)
        if typed is not None:
            await call(typed, event)
        if self._handlers.on_event is not None:
            await call(self._handlers.on_event, event)

    def _stop(self) -> None:
        """Unsubscribed by the app: no handler runs from now on."""
        self.active = False
        if self._retry is not None:
            self._retry.cancel()
        if self._first is None and self._error is None:
            self._error = ClientError("closed", f"The subscription to {self.channel} was ended by the app.")
            self._settled.set()

    # ---- presence (docs/protocol.md §9) -----------------------------------------------------------------

    async def _on_presence_event(self, event: Event) -> None:
        assert self._members is not None
        assert isinstance(event.data, Mapping)
        if event.type == f"{self._namespace}.presence":
            count = event.data.get("count")
            if not isinstance(count, int) or isinstance(count, bool):
                return
            self._count = max(count, 0)
            await self._presence_changed("count")
            # A count in a small room follows a big phase whose joins and leaves were not announced: the list may
            # be partial or stale, so fetch it whole (from then on joined/left keep it whole).
            if self._count <= self._owner.list_limit():
                await self._fetch_members()
        elif event.type == f"{self._namespace}.presence_updated":
            member = Member.parse(event.data)
            if member is None:
                return
            if member.client in self._members:
                self._members[member.client] = member
            await self._presence_changed("updated", member)
        elif event.type in (f"{self._namespace}.joined", f"{self._namespace}.left"):
            member = Member.parse(event.data)
            if member is None:
                return
            joined = event.type.endswith(".joined")
            self._apply_member(joined, member)
            await self._presence_changed("joined" if joined else "left", member)

    def _apply_member(self, joined: bool, member: Member) -> None:
        """A join or leave by client id, idempotently (protocol §9); the count moves only when the list did."""
        assert self._members is not None
        listed = member.client in self._members
        if joined:
            self._members[member.client] = member
            self._count += not listed
        elif self._members.pop(member.client, None) is not None:
            self._count -= 1
        self._count = max(self._count, len(self._members))

    async def _fetch_members(self) -> None:
        try:
            walked = await self._owner.walk(self.channel)
        except ClientError:
            return  # disconnected or refused: the resubscribe's reply (or the next count) brings the list
        if not self.active or self._members is None:
            return
        self._members = walked.members
        limit = self._owner.list_limit()
        small = walked.whole and walked.count <= limit
        self._count = len(self._members) if small else max(walked.count, len(self._members))
        await self._presence_changed("sync")

    async def _presence_changed(self, kind: PresenceChangeType, member: Member | None = None) -> None:
        if self._handlers.on_presence is None or self._members is None:
            return
        members = list(self._members.values())
        change = PresenceChange(kind, self._count, len(members) < self._count, member)
        await call(self._handlers.on_presence, members, change)


def _event(frame: Any) -> Event | None:
    return Event.parse(frame) if isinstance(frame, Mapping) else None
