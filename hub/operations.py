"""What each client op does once a frame is decoded and the client identified: sub, unsub, pub, presence."""

from __future__ import annotations

import logging
import time

from hub.broker import BrokerUnavailable
from hub.channel import Channel, PresenceChanged
from hub.context import Context
from hub.errors import HubError
from hub.protocol import ErrorCode, PubRequest, SubRequest, event_fragment
from hub.runtime import Hub
from hub.session import Session
from hub.types import JSON, Identity, PresenceMember

log = logging.getLogger("hub.operations")


def _authorize(hub: Hub, spec: Channel, identity: Identity, channel: str, room: str, message_type: str | None) -> None:
    """The channel's own policy first, then every plugin's hub_authorize; any refusal is ``forbidden``."""
    if message_type is None:
        allowed = spec.can_subscribe(identity, room) and hub.plugins.authorize(identity, "subscribe", channel, None)
        verb = "subscribe to"
    else:
        allowed = spec.can_publish(identity, room) and hub.plugins.authorize(identity, "publish", channel, message_type)
        verb = f"publish {message_type!r} on"
    if not allowed:
        raise HubError(ErrorCode.FORBIDDEN, f"{identity.name} may not {verb} {channel!r}.")


async def subscribe(
    hub: Hub, session: Session, identity: Identity, req: SubRequest
) -> tuple[dict[str, JSON], int | None]:
    """Join a channel. Returns the ``ok`` data and the offset the reply covers (events up to it are in it).

    The session holds the channel's live events until the caller has queued the reply, then releases them
    with :meth:`Session.finish_join`, so the client always sees ``ok`` before the first ``ev``.
    """
    spec, room = hub.router.resolve(req.ch)
    if req.ch in session.subscriptions:
        raise HubError(ErrorCode.ALREADY_SUBSCRIBED, f"Already subscribed to {req.ch!r}.")
    if len(session.subscriptions) >= hub.settings.max_channels_per_connection:
        raise HubError(
            ErrorCode.TOO_MANY_CHANNELS,
            f"A connection may follow at most {hub.settings.max_channels_per_connection} channels.",
        )
    _authorize(hub, spec, identity, req.ch, room, None)
    member = PresenceMember(session.client_id, identity.user, identity.name)
    session.begin_join(req.ch)
    try:
        if spec.presence:  # announced before the joiner is added, so it sees the others' joins but not its own
            await hub.broker.presence_join(req.ch, member)
            await hub.publish(req.ch, f"{spec.namespace}.joined", PresenceChanged(**member.as_dict()), ephemeral=True)
        await hub.fanout.add(req.ch, session, conflate=spec.conflate)
        data: dict[str, JSON] = {}
        start_offset: int | None = None
        recovered = False
        history = spec.history_policy(hub.settings.history_ttl)
        if history is not None:
            if req.since is not None:
                recovery = await hub.broker.recover(req.ch, req.since.position(), history)
                position, recovered = recovery.position, recovery.recovered
                if recovered:
                    data["missed"] = [event_fragment(frame) for frame in recovery.frames]
            else:
                position = await hub.broker.position(req.ch, history)
            data["epoch"], data["offset"], data["recovered"] = position.epoch, position.offset, recovered
            start_offset = position.offset
        provider = spec.snapshot_provider
        if provider is not None and not recovered:
            snapshot = await provider(Context(hub, session, identity, req.ch, room, spec))
            data["snapshot"] = snapshot.model_dump(mode="json") if snapshot is not None else None
        if spec.presence:
            data["presence"] = [m.as_dict() for m in await hub.broker.presence_members(req.ch)]
    except BaseException:
        session.subscriptions[req.ch] = None  # so leave() finds and undoes everything done so far
        await leave(hub, session, req.ch)
        raise
    return data, start_offset


async def unsubscribe(hub: Hub, session: Session, channel: str) -> None:
    if channel not in session.subscriptions:
        raise HubError(ErrorCode.NOT_SUBSCRIBED, f"Not subscribed to {channel!r}.")
    await leave(hub, session, channel)


async def leave(hub: Hub, session: Session, channel: str) -> None:
    """Drop one subscription; on a presence channel, tell the others."""
    session.subscriptions.pop(channel, None)
    await hub.fanout.remove(channel, session)
    spec, _room = hub.router.resolve(channel)
    identity = session.identity
    if spec.presence and identity is not None:
        try:
            await hub.broker.presence_leave(channel, session.client_id)
            left = PresenceChanged(client=session.client_id, user=identity.user, name=identity.name)
            await hub.publish(channel, f"{spec.namespace}.left", left, ephemeral=True)
        except BrokerUnavailable:
            # The subscription is gone either way; the node no longer refreshes this member, so it expires
            # within the presence TTL and a surviving node announces the departure.
            log.warning("presence leave of %s on %s deferred to expiry: broker unavailable", session, channel)


async def publish(hub: Hub, session: Session, identity: Identity, req: PubRequest) -> JSON:
    """Validate and run the handler of one inbound message; returns the handler's reply data."""
    spec, room = hub.router.resolve(req.ch)
    inbound = hub.router.inbound(spec, req.type)
    if inbound.rate_limit is not None and not session.limiter.allow_type(
        req.type, inbound.rate_limit, time.monotonic()
    ):
        raise HubError(ErrorCode.RATE_LIMITED, f"Too many {req.type!r} messages; slow down.")
    _authorize(hub, spec, identity, req.ch, room, req.type)
    message = hub.router.validate(inbound, req.data)
    mid_key = f"{req.ch}\x00{identity.user}\x00{req.mid}" if req.mid is not None else None
    if mid_key is not None and not await hub.broker.claim_mid(mid_key, hub.settings.dedup_window):
        return {"duplicate": True}
    try:
        result = await inbound.handler(Context(hub, session, identity, req.ch, room, spec), message)
    except BaseException:
        if mid_key is not None:  # nothing was done, so a retry with this mid must run
            await hub.broker.release_mid(mid_key)
        raise
    return result.model_dump(mode="json") if result is not None else None


async def presence(hub: Hub, identity: Identity, channel: str) -> JSON:
    spec, room = hub.router.resolve(channel)
    if not spec.presence:
        raise HubError(ErrorCode.BAD_REQUEST, f"Channel {channel!r} keeps no presence.")
    _authorize(hub, spec, identity, channel, room, None)
    return {"presence": [m.as_dict() for m in await hub.broker.presence_members(channel)]}
