"""Control: what an operator or a backend may see and steer on a running hub, on every node of its cluster.

Reachable as ``runtime.control``; the server API (hub/server_api.py) and the admin page call it. Methods that
cover the cluster ask every live node at once through the broker (:meth:`hub.broker.Nodes.survey`: a request on
Redis pub/sub, answered by each node about itself); presence and history are read from the broker directly.
A node that does not answer within ``survey_timeout`` is named in the result's ``missing_nodes`` instead of
holding the call up.

Methods and what they return (the models of hub/api_models.py: the server API's JSON as they are):

- ``nodes() -> list[NodeInfo]``: every live node (registry), with its counts as it answers now; a node that did
  not answer is listed from its last registry record with ``reachable: false``.
- ``channels(prefix="", limit=100, cursor=None) -> ChannelPage``: channels with at least one client subscribed
  on some node, in name order, each with its subscriber count summed over the nodes; ``cursor`` for the next page.
- ``presence(channel, cursor=None, limit=None) -> PresencePage``: one page of a presence channel's members, the
  member count, the next cursor. ``presence_count(channel) -> int``: the count alone.
- ``history(channel, since_offset=None, limit=100) -> HistoryPage``: a recoverable channel's kept events after
  an offset (or the latest), its epoch and offset.
- ``publish(identity, channel, type, data, idempotency_key=None) -> PublishResult``: a message handled as a
  socket's ``pub`` would be (model, channel policies, ``hub_authorize``, the channel's authorize rule, the
  handler), as ``identity``; ``data`` is the handler's reply (``{"duplicate": true}`` for a repeated key).
- ``disconnect(*, user=None, client=None, code=4011, reason=...) -> DisconnectResult``: close the matching
  connections on every node; ``closed`` counts them on the nodes that answered.
- ``clients(limit=100, user=None) -> ClientPage``: live connections, oldest first, and how many there are.

Errors are :class:`hub.HubError` with the socket's codes (``bad_channel``, ``unknown_channel``, ``unknown_type``,
``invalid``, ``forbidden``, ``bad_request``, ``unavailable``, or a plugin's own), and
:class:`hub.BrokerUnavailable` / :class:`hub.StoreUnavailable` when a backend is down.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from typing import TYPE_CHECKING, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from hub import operations
from hub.api_models import (
    ChannelInfo,
    ChannelPage,
    ClientInfo,
    ClientPage,
    DisconnectResult,
    HistoryEvent,
    HistoryPage,
    Member,
    NodeInfo,
    PresencePage,
    PublishResult,
    Reply,
)
from hub.control_messages import (
    ASK,
    AskChannels,
    AskClients,
    AskDisconnect,
    AskNode,
    ChannelCounts,
    Clients,
    Closed,
)
from hub.errors import HubError
from hub.protocol import CloseCode, ErrorCode, PubRequest, close_reason
from hub.types import JSON, Identity

if TYPE_CHECKING:
    from hub.limits import RateLimit
    from hub.operations import Core

log = logging.getLogger("hub.control")
_M = TypeVar("_M", bound=BaseModel)

DISCONNECT_CODE = int(CloseCode.DISCONNECTED)
MAX_PAGE = 1000  # the most channels, clients, members or events one call returns
MAX_REPLIES = 100  # events a handler sends its API caller with ctx.reply, kept for the answer


# ---- the API caller of a publish -----------------------------------------------------------------------


class _NoTypeLimits:
    """The server API is for trusted backends: the per-connection limits of message types do not apply."""

    def allow_type(self, message_type: str, limit: RateLimit, now: float) -> bool:
        return True


class _ApiCaller:
    """The caller of one publish through the API, as its handler's context sees it: ``ctx.client_id`` is
    ``api-<random>``, and ``ctx.reply`` events are kept (up to MAX_REPLIES) for the answer."""

    limiter = _NoTypeLimits()

    def __init__(self) -> None:
        self.client_id = f"api-{secrets.token_hex(6)}"
        self.frames: list[str] = []

    def push_event(self, channel: str, frame: str, offset: int | None, conflate: bool = False) -> None:
        if len(self.frames) < MAX_REPLIES:
            self.frames.append(frame)


def _event_parts(frame: str) -> tuple[str, JSON]:
    event = orjson.loads(frame)
    return event["type"], event.get("data")


# ---- Control -------------------------------------------------------------------------------------------


class Control:
    def __init__(self, node: Core) -> None:
        self._node = node
        self.started_at = time.time()
        self._host = socket.gethostname()

    async def start(self) -> None:
        """Join the cluster's registry and answer other nodes' surveys (after the broker started)."""
        self.started_at = time.time()
        await self._node.broker.nodes.start(self._describe, self._answer)

    async def stop(self) -> None:
        """Leave the registry (before the broker closes)."""
        await self._node.broker.nodes.close()

    @property
    def _timeout(self) -> float:
        return self._node.settings.survey_timeout

    # ---- the cluster -------------------------------------------------------------------------------------

    async def nodes(self) -> list[NodeInfo]:
        records = await self._node.broker.nodes.live()
        survey = await self._node.broker.nodes.survey(ASK.dump_json(AskNode()), self._timeout)
        found: dict[str, NodeInfo] = {}
        for node_id, answer in survey.answers.items():
            info = self._parse(NodeInfo, node_id, answer)
            if info is not None:
                found[node_id] = info
        for record in records:
            if record.node_id not in found:
                try:
                    info = NodeInfo.model_validate_json(record.info)
                except ValidationError:
                    continue  # a record of another version of the hub: nothing to show of it
                found[record.node_id] = info.model_copy(update={"reachable": False, "last_seen": record.last_seen})
        return sorted(found.values(), key=lambda info: info.started_at)

    async def channels(self, prefix: str = "", limit: int = 100, cursor: str | None = None) -> ChannelPage:
        limit = _bounded(limit)
        ask = AskChannels(prefix=prefix, after=cursor, limit=limit)
        survey = await self._node.broker.nodes.survey(ASK.dump_json(ask), self._timeout)
        totals: dict[str, list[int]] = {}
        more = False
        missing = list(survey.missing)
        for node_id, answer in survey.answers.items():
            counts = self._parse(ChannelCounts, node_id, answer)
            if counts is None:
                missing.append(node_id)
                continue
            more = more or counts.more
            for channel, subscribers in counts.channels:
                total = totals.setdefault(channel, [0, 0])
                total[0] += subscribers
                total[1] += 1
        # Each node sent its first `limit` names after the cursor: the first `limit` of their union are exact.
        names = sorted(totals)
        page = names[:limit]
        more = more or len(names) > limit
        return ChannelPage(
            channels=[ChannelInfo(channel=name, subscribers=totals[name][0], nodes=totals[name][1]) for name in page],
            cursor=page[-1] if more and page else None,
            missing_nodes=sorted(missing),
        )

    async def clients(self, limit: int = 100, user: str | None = None) -> ClientPage:
        limit = _bounded(limit)
        survey = await self._node.broker.nodes.survey(ASK.dump_json(AskClients(user=user, limit=limit)), self._timeout)
        found: list[ClientInfo] = []
        total = 0
        missing = list(survey.missing)
        for node_id, answer in survey.answers.items():
            clients = self._parse(Clients, node_id, answer)
            if clients is None:
                missing.append(node_id)
                continue
            found += clients.clients
            total += clients.total
        found.sort(key=lambda client: (client.connected_at, client.client))
        return ClientPage(clients=found[:limit], total=total, missing_nodes=sorted(missing))

    async def disconnect(
        self,
        *,
        user: str | None = None,
        client: str | None = None,
        code: int = DISCONNECT_CODE,
        reason: str = "Disconnected by the server.",
    ) -> DisconnectResult:
        """Close every connection of ``user`` (or the one connection ``client``; both: that one, if it is the
        user's) with ``code`` (4000-4999) and ``reason`` (cut to 123 bytes), on every node."""
        if user is None and client is None:
            raise HubError(ErrorCode.BAD_REQUEST, "Name a user or a client to disconnect.")
        if not 4000 <= code <= 4999:
            raise HubError(ErrorCode.BAD_REQUEST, f"A close code is 4000-4999, not {code}.")
        ask = AskDisconnect(user=user, client=client, code=code, reason=close_reason(reason))
        survey = await self._node.broker.nodes.survey(ASK.dump_json(ask), self._timeout)
        closed = 0
        missing = list(survey.missing)
        for node_id, answer in survey.answers.items():
            result = self._parse(Closed, node_id, answer)
            if result is None:
                missing.append(node_id)
            else:
                closed += result.closed
        return DisconnectResult(closed=closed, missing_nodes=sorted(missing))

    # ---- channels ----------------------------------------------------------------------------------------

    async def presence(self, channel: str, cursor: str | None = None, limit: int | None = None) -> PresencePage:
        """``limit``: at most (and by default) the hub's ``presence_list_limit``."""
        self._presence_channel(channel)
        presence = self._node.room_presence
        try:
            members, next_cursor = await presence.listing(channel, cursor=cursor or "", limit=limit)
        except ValueError:
            raise HubError(ErrorCode.BAD_REQUEST, "Unknown presence cursor; start again without one.") from None
        count = await presence.count(channel)
        return PresencePage(
            channel=channel,
            members=[
                Member(client=m.client, user=m.user, name=m.name, display=m.display or m.name, meta=m.meta)
                for m in members
            ],
            count=count,
            cursor=next_cursor,
        )

    async def presence_count(self, channel: str) -> int:
        self._presence_channel(channel)
        return await self._node.room_presence.count(channel)

    def _presence_channel(self, channel: str) -> None:
        spec, _room = self._node.router.resolve(channel)
        if not spec.presence:
            raise HubError(ErrorCode.BAD_REQUEST, f"Channel {channel!r} keeps no presence.")

    async def history(self, channel: str, since_offset: int | None = None, limit: int = 100) -> HistoryPage:
        spec, _room = self._node.router.resolve(channel)
        policy = spec.history_policy(self._node.settings.history_ttl)
        if policy is None:
            raise HubError(ErrorCode.BAD_REQUEST, f"Channel {channel!r} keeps no history (it is not recoverable).")
        if since_offset is not None and since_offset < 0:
            raise HubError(ErrorCode.BAD_REQUEST, "An offset is 0 or more.")
        page = await self._node.broker.pubsub.history(channel, policy, since=since_offset, limit=_bounded(limit))
        events = []
        for offset, frame in page.frames:
            event_type, data = _event_parts(frame)
            events.append(HistoryEvent(offset=offset, type=event_type, data=data))
        return HistoryPage(
            channel=channel,
            epoch=page.position.epoch,
            offset=max(page.position.offset, page.frames[-1][0] if page.frames else 0),
            events=events,
            truncated=page.truncated,
        )

    async def publish(
        self, identity: Identity, channel: str, type: str, data: JSON, idempotency_key: str | None = None
    ) -> PublishResult:
        """Handle ``data`` as a ``pub`` of ``type`` on ``channel`` from ``identity``. ``idempotency_key`` is the
        socket's ``mid`` (1..64 characters): within the dedup window a repeat runs nothing and answers
        ``{"duplicate": true}``, on any node."""
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= 64:
            raise HubError(ErrorCode.BAD_REQUEST, "An idempotency key is 1..64 characters.")
        caller = _ApiCaller()
        request = PubRequest.model_construct(op="pub", id=None, ch=channel, type=type, data=data, mid=idempotency_key)
        result = await operations.publish(self._node, caller, identity, request)
        replies = [Reply(type=t, data=d) for t, d in map(_event_parts, caller.frames)]
        return PublishResult(data=None if result is None else orjson.loads(orjson.dumps(result)), replies=replies)

    # ---- this node's answers -------------------------------------------------------------------------------

    def _this_node(self) -> NodeInfo:
        sessions = self._node.sessions
        return NodeInfo(
            node=self._node.node_id,
            host=self._host,
            pid=os.getpid(),
            started_at=self.started_at,
            last_seen=time.time(),
            connections=len(sessions),
            subscriptions=sum(len(session.subscriptions) for session in sessions.values()),
            channels=self._node.fanout.channel_count,
        )

    def _describe(self) -> bytes:
        return self._this_node().model_dump_json().encode()

    async def _answer(self, request: bytes) -> bytes:
        ask = ASK.validate_json(request)
        if isinstance(ask, AskNode):
            return self._describe()
        if isinstance(ask, AskChannels):
            return self._local_channels(ask).model_dump_json().encode()
        if isinstance(ask, AskClients):
            return self._local_clients(ask).model_dump_json().encode()
        return Closed(closed=self._close_local(ask)).model_dump_json().encode()

    def _local_channels(self, ask: AskChannels) -> ChannelCounts:
        counts: dict[str, int] = {}
        for session in self._node.sessions.values():
            for channel in session.subscriptions:
                if channel.startswith(ask.prefix) and (ask.after is None or channel > ask.after):
                    counts[channel] = counts.get(channel, 0) + 1
        names = sorted(counts)
        return ChannelCounts(
            channels=[(name, counts[name]) for name in names[: ask.limit]], more=len(names) > ask.limit
        )

    def _local_clients(self, ask: AskClients) -> Clients:
        matching = [
            session
            for session in self._node.sessions.values()
            if ask.user is None or (session.identity is not None and session.identity.user == ask.user)
        ]
        matching.sort(key=lambda session: session.connected_at)
        clients = []
        for session in matching[: ask.limit]:
            identity = session.identity
            clients.append(
                ClientInfo(
                    client=session.client_id,
                    user=identity.user if identity else None,
                    name=identity.name if identity else None,
                    anonymous=identity.anonymous if identity else False,
                    node=self._node.node_id,
                    channels=sorted(session.subscriptions),
                    connected_at=session.connected_at,
                    address=session.address,
                )
            )
        return Clients(clients=clients, total=len(matching))

    def _close_local(self, ask: AskDisconnect) -> int:
        closed = 0
        for session in tuple(self._node.sessions.values()):
            if ask.client is not None and session.client_id != ask.client:
                continue
            if ask.user is not None and (session.identity is None or session.identity.user != ask.user):
                continue
            if session.close_code is None:
                session.close(ask.code, ask.reason)
                closed += 1
        if closed:
            log.info("closed %d connection(s) of user=%r client=%r with %d", closed, ask.user, ask.client, ask.code)
        return closed

    @staticmethod
    def _parse(model: type[_M], node_id: str, answer: bytes) -> _M | None:
        try:
            return model.model_validate_json(answer)
        except ValidationError:
            log.warning("node %s answered a survey with something this node cannot read (another version?)", node_id)
            return None


def _bounded(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise HubError(ErrorCode.BAD_REQUEST, f"A limit is 1..{MAX_PAGE}, not {limit}.")
    return limit
