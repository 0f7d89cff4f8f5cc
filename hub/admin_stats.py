"""What one node tells the admin page about itself in an ``admin.stats`` event: its connections (and a bounded
list of its clients), its channels with their subscribers, its message and event counts by type, its errors and
closes. Counts are totals since the node started: the page turns two consecutive reports into rates."""

from __future__ import annotations

import heapq
import itertools
import operator
import os
import socket
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel

if TYPE_CHECKING:
    from hub.metrics import Metrics
    from hub.session import Session
    from hub.settings import HubSettings

_HOST = socket.gethostname()


class ClientInfo(BaseModel):
    """One connection of the node."""

    client: str
    user: str | None
    name: str | None
    anonymous: bool
    node: str
    channels: list[str]
    since: float
    """When it connected (Unix time)."""
    address: str | None
    """The peer's host:port as the node saw it (a proxy's, behind one)."""


class ChannelInfo(BaseModel):
    """One channel with subscribers on the node."""

    channel: str
    subscribers: int


class ErrorEntry(BaseModel):
    """An ``err`` frame the node sent (``Metrics.recent_errors``)."""

    at: float
    code: str
    client: str
    user: str | None
    channel: str | None
    msg: str


class CloseEntry(BaseModel):
    """A connection the node closed (``Metrics.recent_closes``): a slow consumer (4009), rate abuse, a kick, ..."""

    at: float
    code: int
    client: str
    user: str | None
    reason: str


class NodeStats(BaseModel):
    """The ``admin.stats`` event: one node's report about itself (also the ``admin:overview`` snapshot)."""

    node: str
    host: str
    pid: int
    at: float
    """Unix time of this report."""
    started_at: float
    interval: float
    """Seconds between two reports of this node (``HUB_ADMIN_INTERVAL``)."""
    connections: int
    clients: list[ClientInfo]
    """Up to ``HUB_ADMIN_LIST_LIMIT`` clients, the oldest first."""
    channel_count: int
    channels: list[ChannelInfo]
    """Up to ``HUB_ADMIN_LIST_LIMIT`` channels, the most followed first."""
    messages_in: dict[str, int]
    """``pub`` messages received, by message type, since the node started."""
    events_out: dict[str, int]
    """Events published from this node, by event type, since it started."""
    errors: dict[str, int]
    """``err`` frames sent, by code."""
    closes: dict[str, int]
    """Connections the server closed, by close code."""
    recent_errors: list[ErrorEntry]
    """The newest first, up to ``HUB_ADMIN_LIST_LIMIT``."""
    recent_closes: list[CloseEntry]
    """The newest first (slow consumers are code 4009), up to ``HUB_ADMIN_LIST_LIMIT``."""


class StatsSource(Protocol):
    """What a node offers the stats (:class:`hub.runtime.Runtime` is one)."""

    node_id: str
    settings: HubSettings
    metrics: Metrics
    sessions: dict[str, Session]


def _counts(counter: Mapping[str, int] | Mapping[int, int]) -> dict[str, int]:
    return {str(key): value for key, value in counter.items() if value}


def _newest(entries: Iterable[Mapping[str, object]], limit: int) -> list[Mapping[str, object]]:
    newest = list(entries)[-limit:]
    newest.reverse()
    return newest


def _live_channels(session: Session) -> list[str]:
    """The channels a session follows (a ``sub`` still being answered is not one yet)."""
    return [channel for channel, held in session.subscriptions.items() if held is None]


def node_stats(node: StatsSource, started_at: float) -> NodeStats:
    """The node's stats now: one pass over its sessions, the lists cut to ``admin_list_limit``."""
    limit = node.settings.admin_list_limit
    channels: dict[str, int] = {}
    for session in node.sessions.values():
        for channel, held in session.subscriptions.items():
            if held is None:
                channels[channel] = channels.get(channel, 0) + 1
    clients = []
    # The node adds a session when it connects and never moves it: the dict is in connection order already.
    for session in itertools.islice(node.sessions.values(), limit):
        identity = session.identity
        clients.append(
            ClientInfo(
                client=session.client_id,
                user=identity.user if identity else None,
                name=identity.name if identity else None,
                anonymous=identity.anonymous if identity else False,
                node=node.node_id,
                channels=sorted(_live_channels(session)),
                since=session.connected_at,
                address=session.address,
            )
        )
    metrics = node.metrics
    return NodeStats(
        node=node.node_id,
        host=_HOST,
        pid=os.getpid(),
        at=time.time(),
        started_at=started_at,
        interval=node.settings.admin_interval,
        connections=len(node.sessions),
        clients=clients,
        channel_count=len(channels),
        channels=[
            ChannelInfo(channel=name, subscribers=count)
            for name, count in heapq.nlargest(limit, channels.items(), key=operator.itemgetter(1))
        ],
        messages_in=_counts(metrics.messages_in),
        events_out=_counts(metrics.events_out),
        errors=_counts(metrics.errors),
        closes=_counts(metrics.closes),
        recent_errors=[ErrorEntry.model_validate(entry) for entry in _newest(metrics.recent_errors, limit)],
        recent_closes=[CloseEntry.model_validate(entry) for entry in _newest(metrics.recent_closes, limit)],
    )
