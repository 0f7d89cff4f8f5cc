"""``Channels``: the subscriptions of a :class:`hub.client.Client`, and its presence requests.

Subscribing (the ``sub`` now or when the connection opens, again after every reconnect with ``since``, retried
with backoff when refused), unsubscribing, the events and ``unsub`` notices the hub sends for a channel, and the
presence requests (a page, the count, this connection's metadata, the walk of a small room's members).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from hub.client.core import ClientCore
from hub.client.errors import ClientError, ConnectionLost
from hub.client.requests import Reply
from hub.client.subscription import (
    ErrorHandler,
    EventHandler,
    Handlers,
    PresenceHandler,
    SnapshotHandler,
    SubscribedHandler,
    Subscription,
    Walk,
)
from hub.client.types import Event, Member, PresencePage, members_of

MAX_PRESENCE_PAGES = 100  # a walk of a small room's members takes one or two pages; never loop on a bad cursor


class Channels(ClientCore):
    """The subscriptions and presence requests of :class:`hub.client.Client` (its base class)."""

    # ---- presence requests ------------------------------------------------------------------------------

    async def presence(self, channel: str) -> list[Member]:
        """Who is on a presence channel now (need not be subscribed): everyone in a room of at most
        ``hello.limits["presence_list"]`` members, else the first page of that many (``presence_page``)."""
        return list((await self.presence_page(channel)).members)

    async def presence_page(self, channel: str, *, cursor: str | None = None, limit: int | None = None) -> PresencePage:
        """One page of a presence channel's members, the room's count, and the next page's cursor (None after the
        last). A member present during the whole walk is listed at least once: dedupe by ``client``."""
        frame: dict[str, Any] = {"op": "presence", "ch": channel}
        if cursor is not None:
            frame["cursor"] = cursor
        if limit is not None:
            frame["limit"] = limit
        data = (await self._call(frame)).get("data")
        data = data if isinstance(data, Mapping) else {}
        members = members_of(data.get("presence"))
        count = data.get("count")
        next_cursor = data.get("cursor")
        return PresencePage(
            tuple(members),
            count if isinstance(count, int) and not isinstance(count, bool) else len(members),
            next_cursor if isinstance(next_cursor, str) else None,
        )

    async def presence_count(self, channel: str) -> int:
        """How many members a presence channel has, without the list (need not be subscribed)."""
        data = (await self._call({"op": "presence", "ch": channel, "count_only": True})).get("data")
        count = data.get("count") if isinstance(data, Mapping) else None
        return count if isinstance(count, int) and not isinstance(count, bool) else 0

    async def set_presence(self, channel: str, meta: Any) -> Member | None:
        """Set this connection's presence metadata on a channel it follows (None clears it); the others see the
        member change (``on_presence`` with ``change.type == "updated"``). Resubscribes after a reconnect carry it.
        Before the channel's ``sub`` reply, or while disconnected, it only rides the next ``sub`` (returns None);
        refused metadata raises the hub's error (``invalid`` with ``details``, ``rate_limited``, ``bad_request``
        where the channel takes none). Returns the member as the room now lists it."""
        sub = self._subs.get(channel)
        if sub is None:
            raise ClientError("not_subscribed", f"This client does not follow {channel}; subscribe first.")
        sub.meta = meta
        if not self._live or not sub._sent or sub._awaiting_reply:
            return None
        reply = await self._call({"op": "presence_set", "ch": channel, "meta": meta})
        data = reply.get("data")
        return Member.parse(data.get("member")) if isinstance(data, Mapping) else None

    # ---- subscriptions ----------------------------------------------------------------------------------

    def subscribe(
        self,
        channel: str,
        *,
        events: Mapping[str, EventHandler] | None = None,
        on_event: EventHandler | None = None,
        on_subscribed: SubscribedHandler | None = None,
        on_snapshot: SnapshotHandler | None = None,
        on_presence: PresenceHandler | None = None,
        on_error: ErrorHandler | None = None,
        since: tuple[str, int] | None = None,
        meta: Any = None,
    ) -> Subscription:
        """Follow a channel: the ``sub`` is sent now if open, else when the connection opens, and again after every
        reconnect with ``since`` (the epoch and the last offset seen), so a recoverable channel delivers exactly
        the missed events, or says it could not (``info.reset``) and hands ``on_snapshot`` a fresh snapshot.
        ``since``: resume from a position known from before (``(epoch, offset)``). ``meta``: this connection's
        presence metadata on the channel (channels whose plugin declares a metadata model), sent with the ``sub``
        and every resubscribe; change it with :meth:`set_presence`.

        One subscription per channel per client: raises ``already_subscribed`` while one exists.
        """
        if channel in self._subs:
            raise ClientError("already_subscribed", f"This client already follows {channel}; unsubscribe first.")
        handlers = Handlers(dict(events or {}), on_event, on_subscribed, on_snapshot, on_presence, on_error)
        sub = Subscription(channel, handlers, self._dispatcher, self._owner, since, meta)
        self._subs[channel] = sub
        if self._live:
            self._send_sub(sub)
        return sub

    def _send_sub(self, sub: Subscription) -> None:
        frame: dict[str, Any] = {"op": "sub", "ch": sub.channel}
        if sub.meta is not None:
            frame["meta"] = sub.meta
        since = sub._since()
        if since is not None:
            frame["since"] = since
        sub._sent = True
        sub._awaiting_reply = True

        def settle(reply: Reply) -> None:
            if self._subs.get(sub.channel) is not sub:
                return
            if isinstance(reply, ConnectionLost):
                sub._awaiting_reply = False  # sent again on the next connection
                return
            if isinstance(reply, ClientError) or reply.get("op") == "err":
                error = reply if isinstance(reply, ClientError) else ClientError.from_frame(reply)
                error.channel = sub.channel
                if sub._on_refused(error):
                    del self._subs[sub.channel]
                else:
                    delay = self._backoff.retry_delay(sub._failures)
                    sub._retry = asyncio.get_running_loop().call_later(delay, self._retry_sub, sub)
                return
            data = reply.get("data")
            sub._on_reply(data if isinstance(data, Mapping) else {})

        try:
            self._request(frame, None, settle)
        except ClientError as error:  # too_many_requests: retried like a refusal
            settle(error)

    def _retry_sub(self, sub: Subscription) -> None:
        if self._subs.get(sub.channel) is sub and self._live and not sub._sent:
            self._send_sub(sub)

    async def _unsubscribe(self, sub: Subscription) -> None:
        sub._stop()
        if self._subs.get(sub.channel) is not sub:
            return
        del self._subs[sub.channel]
        if not sub._sent or not self._live:
            return
        try:
            await self._call({"op": "unsub", "ch": sub.channel})
        except ClientError as error:
            # not_subscribed: the sub was refused or ended meanwhile; disconnected: the hub forgot us anyway
            if error.code not in ("not_subscribed", "disconnected"):
                raise

    def _presence_list_limit(self) -> float:
        """The room size up to which the hub lists every member and announces joins one by one."""
        limit = self._hello.limits.get("presence_list") if self._hello is not None else None
        return limit if limit is not None and limit > 0 else float("inf")  # a hub without it lists everyone

    async def _walk_presence(self, channel: str) -> Walk:
        limit = self._presence_list_limit()
        members: dict[str, Member] = {}
        cursor: str | None = None
        for _ in range(MAX_PRESENCE_PAGES):
            page = await self.presence_page(channel, cursor=cursor)
            members.update((member.client, member) for member in page.members)
            if page.count > limit:
                return Walk(members, page.count, whole=False)
            cursor = page.cursor
            if cursor is None:
                return Walk(members, page.count, whole=True)
        return Walk(members, len(members), whole=False)

    # ---- frames in for a channel ------------------------------------------------------------------------

    def _on_event(self, frame: dict[str, Any]) -> bool:
        event = Event.parse(frame)
        if event is None:
            return True
        sub = self._subs.get(event.channel)
        if sub is not None:
            return sub._on_event(event)
        return self._dispatcher.post_event(self._emit, "event", event)

    def _on_revoked(self, frame: dict[str, Any]) -> None:
        """The hub ended a subscription (access withdrawn, the room deleted): it is over, and not sent again."""
        channel = frame.get("ch")
        sub = self._subs.get(channel) if isinstance(channel, str) else None
        # A `sub` still waiting for its reply is newer than the subscription the notice ends (the hub answers a
        # `sub` it refuses with an `err`, never with an `unsub`).
        if sub is None or sub._awaiting_reply:
            return
        del self._subs[sub.channel]
        if sub._retry is not None:
            sub._retry.cancel()
        code, message = frame.get("code"), frame.get("msg")
        error = ClientError(
            code if isinstance(code, str) else "revoked",
            message if isinstance(message, str) else f"The hub ended the subscription to {sub.channel}.",
            frame=frame,
        )
        error.channel = sub.channel
        sub._on_ended(error)
        self._emit("revoked", error)
