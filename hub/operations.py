"""What each client op does once a frame is decoded and the client identified: sub, unsub, pub, presence,
presence_set; and
the server's own ``unsub``, which ends subscriptions whose access was withdrawn (revoke)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from pydantic import BaseModel

from hub.broker import BrokerUnavailable
from hub.channel import RETURN_CONTRACT, Action, Channel, describe
from hub.context import Caller, Context
from hub.errors import HubError
from hub.node import Node
from hub.presence import presence_meta
from hub.protocol import (
    ErrorCode,
    PresenceRequest,
    PresenceSetRequest,
    PubRequest,
    SubRequest,
    encode_unsub,
    event_fragment,
)
from hub.session import Session
from hub.types import JSON, Identity, PresenceMember

if TYPE_CHECKING:
    from hub.broker import Broker, MidDone
    from hub.fanout import Fanout
    from hub.limits import RateLimit
    from hub.plugin_api import Hub
    from hub.plugin_manager import PluginManager
    from hub.presence import RoomPresence
    from hub.router import Router


class Core(Node, Protocol):
    """What the client ops need of the node (:class:`hub.runtime.Runtime` is it): the plugin-facing
    :class:`hub.node.Node`, and the node's own parts."""

    router: Router
    broker: Broker
    fanout: Fanout
    plugins: PluginManager
    revocations: Revocations
    sessions: dict[str, Session]
    plugin_apis: dict[str, Hub]
    room_presence: RoomPresence


class TypeLimiter(Protocol):
    def allow_type(self, message_type: str, limit: RateLimit, now: float) -> bool: ...


class Publisher(Caller, Protocol):
    """Who sends a ``pub``: a socket's session, or a server API request (whose limiter allows every type)."""

    @property
    def limiter(self) -> TypeLimiter: ...


log = logging.getLogger("hub.operations")


def _authorize(hub: Core, spec: Channel, identity: Identity, channel: str, room: str, message_type: str | None) -> None:
    """The channel's own policy first, then every plugin's hub_authorize; any refusal is ``forbidden``."""
    if message_type is None:
        allowed = spec.can_subscribe(identity, room) and hub.plugins.authorize(identity, "subscribe", channel, None)
        verb = "subscribe to"
    else:
        allowed = spec.can_publish(identity, room) and hub.plugins.authorize(identity, "publish", channel, message_type)
        verb = f"publish {message_type!r} on"
    if not allowed:
        raise HubError(ErrorCode.FORBIDDEN, f"{identity.name} may not {verb} {channel!r}.")


def _context(
    hub: Core, session: Caller, identity: Identity, channel: str, room: str, spec: Channel, mid: MidDone | None = None
) -> Context:
    return Context(hub, hub.plugin_apis[spec.namespace], session, identity, channel, room, spec, mid=mid)


async def _check_access(hub: Core, spec: Channel, ctx: Context, action: Action, message_type: str | None) -> None:
    """The synchronous policies and hooks, then the channel's async rule (which raises its own refusal)."""
    _authorize(hub, spec, ctx.identity, ctx.channel, ctx.room, message_type)
    authorizer = spec.authorizer
    if authorizer is not None:
        await authorizer(ctx, action, message_type)


async def subscribe(
    hub: Core, session: Session, identity: Identity, req: SubRequest
) -> tuple[dict[str, JSON], int | None]:
    """Join a channel. Returns the ``ok`` data and the offset the reply covers (events up to it are in it).

    The session holds the channel's live events until the caller has queued the reply, then releases them
    with :meth:`Session.finish_join`, so the client always sees ``ok`` before the first ``ev``.
    """
    spec, room = hub.router.resolve(req.ch)
    await hub.revocations.settled(session, req.ch)  # a subscription the server is ending is over first
    if req.ch in session.subscriptions:
        raise HubError(ErrorCode.ALREADY_SUBSCRIBED, f"Already subscribed to {req.ch!r}.")
    if len(session.subscriptions) >= hub.settings.max_channels_per_connection:
        raise HubError(
            ErrorCode.TOO_MANY_CHANNELS,
            f"A connection may follow at most {hub.settings.max_channels_per_connection} channels.",
        )
    ctx = _context(hub, session, identity, req.ch, room, spec)
    # Before anything of the channel is written or read for this client: a refused one leaves no trace.
    await _check_access(hub, spec, ctx, "subscribe", None)
    meta = None
    if req.meta is not None:
        if not spec.presence:
            raise HubError(ErrorCode.BAD_REQUEST, f"Channel {req.ch!r} keeps no presence, so no presence metadata.")
        meta = presence_meta(spec, req.meta, hub.settings.presence_meta_max_bytes)
    member = PresenceMember(session.client_id, identity.user, identity.name, meta=meta)
    session.begin_join(req.ch)
    try:
        count = 0
        if spec.presence:  # announced before the joiner is added, so it sees the others' joins but not its own
            joined = await hub.room_presence.join(req.ch, member)
            count, member = joined.count, joined.member or member
        await hub.fanout.add(req.ch, session, conflate=spec.conflate)
        data: dict[str, JSON] = {}
        start_offset: int | None = None
        recovered = False
        history = spec.history_policy(hub.settings.history_ttl)
        if history is not None:
            if req.since is not None:
                recovery = await hub.broker.pubsub.recover(req.ch, req.since.position(), history)
                position, recovered = recovery.position, recovery.recovered
                if recovered:
                    data["missed"] = [event_fragment(frame) for frame in recovery.frames]
            else:
                position = await hub.broker.pubsub.position(req.ch, history)
            data["epoch"], data["offset"], data["recovered"] = position.epoch, position.offset, recovered
            start_offset = position.offset
        provider = spec.snapshot_provider
        if provider is not None and not recovered:
            snapshot = _returned(hub, spec, provider, await provider(ctx), "snapshot provider")
            data["snapshot"] = snapshot.model_dump(mode="json") if snapshot is not None else None
        if spec.presence:
            listed = await hub.room_presence.reply_list(req.ch, member, count)
            data["presence"] = [m.as_dict() for m in listed]
            data["presence_count"] = max(count, len(listed))
        hub.revocations.check_join(session, req.ch)  # access withdrawn while the reply was prepared
    except BaseException:
        hub.revocations.forget_join(session, req.ch)
        session.subscriptions[req.ch] = None  # so leave() finds and undoes everything done so far
        await leave(hub, session, req.ch)
        raise
    return data, start_offset


async def unsubscribe(hub: Core, session: Session, channel: str) -> None:
    await hub.revocations.settled(session, channel)  # the server's unsub came first: not subscribed any more
    if channel not in session.subscriptions:
        raise HubError(ErrorCode.NOT_SUBSCRIBED, f"Not subscribed to {channel!r}.")
    await leave(hub, session, channel)


async def leave(hub: Core, session: Session, channel: str) -> None:
    """Drop one subscription; on a presence channel, tell the others. Once per subscription: a second call
    (the socket closing while the server ends the subscription) does nothing."""
    if channel not in session.subscriptions:
        return
    session.subscriptions.pop(channel)
    session.forget_floor(channel)
    await hub.fanout.remove(channel, session)
    spec, _room = hub.router.resolve(channel)
    identity = session.identity
    if spec.presence and identity is not None:
        try:
            await hub.room_presence.leave(channel, PresenceMember(session.client_id, identity.user, identity.name))
        except BrokerUnavailable:
            # The subscription is gone either way; the node no longer refreshes this member, so it expires
            # within the presence TTL and a surviving node announces the departure.
            log.warning("presence leave of %s on %s deferred to expiry: broker unavailable", session, channel)


async def publish(
    hub: Core, session: Publisher, identity: Identity, req: PubRequest, frame: str | bytes | None = None
) -> orjson.Fragment | None:
    """Validate and run the handler of one inbound message; returns the handler's reply data, encoded. ``frame``:
    the request's text, to validate ``data`` from."""
    spec, room = hub.router.resolve(req.ch)
    inbound = hub.router.inbound(spec, req.type)
    hub.metrics.messages_in[req.type] += 1  # a type the channel takes (so the counter's keys stay bounded)
    if inbound.rate_limit is not None and not session.limiter.allow_type(
        req.type, inbound.rate_limit, time.monotonic()
    ):
        raise HubError(ErrorCode.RATE_LIMITED, f"Too many {req.type!r} messages; slow down.")
    mid_key = f"{req.ch}\x00{identity.user}\x00{req.mid}" if req.mid is not None else None
    ctx = _context(
        hub, session, identity, req.ch, room, spec, mid=(mid_key, hub.settings.dedup_window) if mid_key else None
    )
    # _check_access inline: most channels have no async rule, and this path runs once per message
    _authorize(hub, spec, identity, req.ch, room, req.type)
    if spec.authorizer is not None:
        await spec.authorizer(ctx, "publish", req.type)
    if frame is None:
        message = hub.router.validate(inbound, req.data)
    else:
        message = hub.router.validate_frame(inbound, frame, req.data)
    if mid_key is not None:
        # Claimed for mid_pending_ttl only: if this node dies before the handler is done, the claim expires and
        # a retry runs, rather than being told "duplicate" for a message that was never published.
        claim = await hub.broker.coordination.claim_mid(mid_key, hub.settings.mid_pending_ttl)
        if claim == "done":
            return _DUPLICATE
        if claim == "pending":
            raise HubError(ErrorCode.UNAVAILABLE, "A publish with this mid is still running; retry shortly.")
    try:
        result = await inbound.handler(ctx, message)
    except BaseException:
        if mid_key is not None and not ctx.mid_done:  # nothing went out, so a retry with this mid must run
            await hub.broker.coordination.release_mid(mid_key)
        raise
    if mid_key is not None and not ctx.mid_done:  # a handler that published nothing: done now
        await hub.broker.coordination.confirm_mid(mid_key, hub.settings.dedup_window)
    if result is None:
        return None
    result = _returned(hub, spec, inbound.handler, result, f"handler of {req.type!r}")
    # pydantic's JSON straight into the ok frame: no dict of it in between
    return orjson.Fragment(result.model_dump_json()) if result is not None else None


_DUPLICATE = orjson.Fragment(b'{"duplicate":true}')


def _returned(hub: Core, spec: Channel, function: object, result: object, what: str) -> BaseModel | None:
    """A handler's or snapshot provider's result, checked: anything but a model or None is the plugin's bug,
    logged with what to fix, and the client gets ``internal``."""
    if result is None or isinstance(result, BaseModel):
        return result
    log.error(
        "plugin %r: the %s (%s) returned %s; %s",
        hub.router.owner(spec.namespace), what, describe(function), type(result).__name__, RETURN_CONTRACT,
    )  # fmt: skip
    raise HubError(ErrorCode.INTERNAL, "The server failed to handle this message.")


async def presence(hub: Core, session: Session, identity: Identity, req: PresenceRequest) -> JSON:
    """One page of a presence channel's members (the first without a cursor), the room's count, the next cursor;
    or (``count_only``) the count alone."""
    channel = req.ch
    spec, room = hub.router.resolve(channel)
    if not spec.presence:
        raise HubError(ErrorCode.BAD_REQUEST, f"Channel {channel!r} keeps no presence.")
    await _check_access(hub, spec, _context(hub, session, identity, channel, room, spec), "presence", None)
    if req.count_only:
        return {"count": await hub.room_presence.count(channel)}
    try:
        members, cursor = await hub.room_presence.listing(channel, cursor=req.cursor or "", limit=req.limit)
    except ValueError:
        raise HubError(ErrorCode.BAD_REQUEST, "Unknown presence cursor; start again without one.") from None
    count = await hub.room_presence.count(channel)
    return {"presence": [m.as_dict() for m in members], "count": count, "cursor": cursor}


async def presence_set(hub: Core, session: Session, identity: Identity, req: PresenceSetRequest) -> JSON:
    """Set (or clear, with null) this connection's presence metadata on a channel it follows; the others see
    ``<namespace>.presence_updated`` (a count in a big room). Returns the member as the room now lists it."""
    spec, _room = hub.router.resolve(req.ch)
    if not spec.presence:
        raise HubError(ErrorCode.BAD_REQUEST, f"Channel {req.ch!r} keeps no presence.")
    if spec.presence_meta is None:
        presence_meta(spec, req.meta, hub.settings.presence_meta_max_bytes)  # raises: no metadata here
    await hub.revocations.settled(session, req.ch)
    if req.ch not in session.subscriptions or session.subscriptions[req.ch] is not None:
        raise HubError(ErrorCode.NOT_SUBSCRIBED, f"Subscribe to {req.ch!r} before setting presence metadata there.")
    if not session.limiter.allow_type(f"{spec.namespace}.presence_set", spec.presence_rate_limit, time.monotonic()):
        raise HubError(ErrorCode.RATE_LIMITED, f"Too many presence changes on '{spec.namespace}:*'; slow down.")
    meta = presence_meta(spec, req.meta, hub.settings.presence_meta_max_bytes)
    change = await hub.room_presence.update(req.ch, session.client_id, meta)
    if change.member is None:  # its entry expired (a broker outage): the next refresh brings it back
        raise HubError(ErrorCode.UNAVAILABLE, "Your presence entry is being restored; retry shortly.")
    return {"member": change.member.as_dict()}


# ---- the server's unsub ----------------------------------------------------------------------------------


class Revocations:
    """This node's subscriptions the server is ending (:meth:`hub.Hub.revoke`): the cleanup of each, and the
    refusal that a ``sub`` still being prepared when its access went away ends with."""

    def __init__(self) -> None:
        self._ending: dict[tuple[str, str], asyncio.Task[None]] = {}  # (client id, channel) -> its cleanup
        self._joins: dict[tuple[str, str], tuple[str, str]] = {}  # (client id, channel) -> (code, msg)
        self.count = 0  # subscriptions ended (or sub requests refused) so far

    def ending(self, session: Session, channel: str) -> bool:
        return (session.client_id, channel) in self._ending

    def start(self, session: Session, channel: str, cleanup: Coroutine[Any, Any, None]) -> None:
        key = (session.client_id, channel)
        task = asyncio.create_task(cleanup, name=f"hub-revoke-{session.client_id}")
        self._ending[key] = task
        task.add_done_callback(lambda done: self._ending.pop(key) if self._ending.get(key) is done else None)

    async def settled(self, session: Session, channel: str) -> None:
        """Until the server has finished ending this session's subscription of ``channel`` (at once if it is
        not ending one), so a request that follows the ``unsub`` notice sees the subscription gone."""
        task = self._ending.get((session.client_id, channel))
        if task is not None:
            await asyncio.wait([task])  # never raises: the task logs its own failure

    def refuse_join(self, session: Session, channel: str, code: str, msg: str) -> None:
        self._joins[(session.client_id, channel)] = (code, msg)

    def check_join(self, session: Session, channel: str) -> None:
        refused = self._joins.pop((session.client_id, channel), None)
        if refused is not None:
            raise HubError(*refused)

    def forget_join(self, session: Session, channel: str) -> None:
        self._joins.pop((session.client_id, channel), None)

    async def drain(self, timeout: float) -> None:
        """Let the cleanups under way finish (at shutdown, before the broker closes)."""
        if self._ending:
            await asyncio.wait(tuple(self._ending.values()), timeout=timeout)


def revoke(hub: Core, channel: str, who: Callable[[Identity], bool], code: str, msg: str) -> int:
    """End the subscriptions of ``channel`` held by this node's sessions whose identity ``who`` selects.

    Synchronous, so a plugin may call it from a listener callback: when it returns, no further event of the
    channel reaches those sessions. Each gets ``{"op":"unsub","ch":...,"code":...,"msg":...}``; leaving the
    fan-out and presence (the others see ``<namespace>.left``) follows in a task. A session whose ``sub`` is
    still being prepared gets an ``err`` with ``code`` and ``msg`` as the reply instead. Returns how many.
    """
    hub.router.resolve(channel)
    HubError(code, msg)  # a malformed code is the caller's bug: ValueError here, not at the client
    frame = encode_unsub(channel, code, msg)
    revocations = hub.revocations
    ended = 0
    for session in tuple(hub.sessions.values()):
        identity = session.identity
        if identity is None or channel not in session.subscriptions or revocations.ending(session, channel):
            continue
        if not who(identity):
            continue
        ended += 1
        if session.subscriptions[channel] is not None:  # its sub reply is being prepared: that sub fails
            revocations.refuse_join(session, channel, code, msg)
            continue
        # Hold the channel's events from now on (the fan-out may still hand some over before the task runs);
        # leave() drops them with the subscription.
        session.begin_join(channel)
        session.push(frame)
        held = session.subscriptions[channel]
        revocations.start(session, channel, _end_subscription(hub, session, channel, held))
    revocations.count += ended
    return ended


async def _end_subscription(hub: Core, session: Session, channel: str, held: object) -> None:
    if session.subscriptions.get(channel) is not held:
        return  # the socket closed meanwhile, and its leave() did this
    try:
        await leave(hub, session, channel)
    except Exception:  # a background task (task boundary): the session no longer gets the channel's events
        log.exception("ending %r's subscription of %s failed", session, channel)
