"""RoomPresence: this node's side of presence at any room size.

While a room has at most ``presence_list_limit`` members, every join and leave is announced one by one
(``<namespace>.joined`` / ``<namespace>.left``) and a ``sub`` reply lists every member. In a bigger room that
would cost O(n^2) frames to fill it, so joins and leaves are coalesced instead: at most once per
``presence_count_interval``, a node that saw some announces the room's member count (``<namespace>.presence``),
and lists come in pages of at most ``presence_list_limit`` members (protocol.md §9). A metadata update
(``<namespace>.presence_updated``) follows the same rule as a join.

It also validates a client's presence metadata against the channel's ``presence_meta`` model.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import orjson
from pydantic import BaseModel, ValidationError

from hub.broker import BrokerUnavailable
from hub.channel import PresenceChanged, PresenceCount
from hub.errors import HubError
from hub.protocol import ErrorCode, validation_details

if TYPE_CHECKING:
    from hub.broker import Presence
    from hub.channel import Channel
    from hub.types import JSON, PresenceChange, PresenceMember

log = logging.getLogger("hub.presence")

Publish = Callable[[str, str, BaseModel], Awaitable[object]]
"""Publish an ephemeral event to a channel on every node: (channel, event type, data)."""


def _namespace(channel: str) -> str:
    return channel.partition(":")[0]


def presence_meta(spec: Channel, meta: JSON, max_bytes: int) -> JSON:
    """A client's presence metadata on a channel of ``spec``, checked: at most ``max_bytes`` of JSON, then valid
    against the channel's ``presence_meta`` model as a ``pub``'s data is against its model (strictly); returned as
    the model's JSON. ``None`` (no metadata, or clearing it) passes as is. HubError: ``bad_request`` when the
    channel takes no metadata, ``invalid`` when it is too big or not valid."""
    model = spec.presence_meta
    if model is None:
        raise HubError(
            ErrorCode.BAD_REQUEST,
            f"Channels '{spec.namespace}:*' take no presence metadata (their plugin declares no presence_meta model).",
        )
    if meta is None:
        return None
    text = orjson.dumps(meta)
    if len(text) > max_bytes:
        raise HubError(ErrorCode.INVALID, f"Presence metadata is at most {max_bytes} bytes of JSON, not {len(text)}.")
    try:
        value = model.model_validate_json(text, strict=True)
    except ValidationError as exc:
        raise HubError(
            ErrorCode.INVALID, f"Invalid presence metadata for '{spec.namespace}:*'.", validation_details(exc)
        ) from None
    checked = orjson.loads(value.model_dump_json())
    if len(orjson.dumps(checked)) > max_bytes:  # the model's defaults made it bigger: still bounded
        raise HubError(ErrorCode.INVALID, f"Presence metadata is at most {max_bytes} bytes of JSON with its defaults.")
    return checked


class RoomPresence:
    """Announces joins and leaves (one by one, or as a coalesced count) and lists members in pages."""

    def __init__(self, presence: Presence, publish: Publish, *, limit: int, interval: float) -> None:
        self._presence = presence
        self._publish = publish
        self.limit = limit
        self.interval = interval
        self._changed: set[str] = set()  # big rooms whose count this node has not announced since they changed
        self._flusher: asyncio.Task[None] | None = None
        self.counts_announced = 0

    async def join(self, channel: str, member: PresenceMember) -> PresenceChange:
        """Add ``member``; announce it to the room while the room is small. Returns the room's member count and
        the member as added (with its display)."""
        change = await self._presence.join(channel, member)
        if change.count <= self.limit:
            joined = change.member or member
            await self._publish(channel, f"{_namespace(channel)}.joined", PresenceChanged(**joined.as_dict()))
        else:
            self._count_changed(channel)
        return change

    async def leave(self, channel: str, member: PresenceMember) -> None:
        """Remove ``member``; announce it while the room was small (counted before the leave)."""
        change = await self._presence.leave(channel, member.client)
        await self._announce_leave(channel, change.member or member, change.count)

    async def update(self, channel: str, client: str, meta: JSON) -> PresenceChange:
        """Set the metadata of ``client``'s member (this node's); announce it while the room is small. ``member``
        None in the result: ``client`` is not a member here (nothing announced)."""
        change = await self._presence.update(channel, client, meta)
        if change.member is None:
            return change
        if change.count <= self.limit:
            data = PresenceChanged(**change.member.as_dict())
            await self._publish(channel, f"{_namespace(channel)}.presence_updated", data)
        else:
            self._count_changed(channel)
        return change

    async def expired(self, channel: str, member: PresenceMember) -> None:
        """``member``'s node died and the broker dropped it: announce it as its own node would have."""
        await self._announce_leave(channel, member, await self._presence.count(channel))

    async def _announce_leave(self, channel: str, member: PresenceMember, count: int) -> None:
        if count + 1 <= self.limit:
            await self._publish(channel, f"{_namespace(channel)}.left", PresenceChanged(**member.as_dict()))
        else:  # a big room, or one that just became small again (its clients then fetch the whole list)
            self._count_changed(channel)

    async def listing(
        self, channel: str, *, cursor: str = "", limit: int | None = None
    ) -> tuple[list[PresenceMember], str | None]:
        """One page of the room's members (``limit``: at most ``presence_list_limit``) and the next cursor."""
        return await self._presence.page(channel, cursor, min(limit or self.limit, self.limit))

    async def reply_list(self, channel: str, member: PresenceMember, count: int) -> list[PresenceMember]:
        """A ``sub`` reply's members: the whole room while it is small, else a first page; ``member`` (the joiner)
        always included."""
        listed: dict[str, PresenceMember] = {}
        cursor: str | None = ""
        while cursor is not None and len(listed) < self.limit:
            page, cursor = await self._presence.page(channel, cursor, self.limit)
            listed.update((m.client, m) for m in page)
            if count > self.limit:
                break  # a big room: one page is the sample
        members = [member, *(m for client, m in listed.items() if client != member.client)]
        return members[: self.limit]

    async def count(self, channel: str) -> int:
        return await self._presence.count(channel)

    # ---- coalesced counts --------------------------------------------------------------------------------

    def _count_changed(self, channel: str) -> None:
        self._changed.add(channel)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_while_changed(), name="hub-presence-counts")

    async def _flush_while_changed(self) -> None:
        while self._changed:
            await asyncio.sleep(self.interval)
            channels, self._changed = self._changed, set()
            for channel in channels:
                try:
                    count = await self._presence.count(channel)
                    await self._publish(channel, f"{_namespace(channel)}.presence", PresenceCount(count=count))
                    self.counts_announced += 1
                except BrokerUnavailable:
                    log.warning("presence count of %s not announced: broker unavailable", channel)
                except Exception:  # a background task (task boundary): the next change announces again
                    log.exception("announcing the presence count of %s failed", channel)

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
