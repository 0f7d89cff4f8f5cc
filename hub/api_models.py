"""The server API's JSON, both ways: what :class:`hub.control.Control` returns (and the API answers), the bodies the
API takes, and its error body. Pydantic models, shared by the server (hub/server_api.py) and the Python client
(hub/api_client.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from hub.types import JSON


class NodeInfo(BaseModel):
    """One node of the cluster."""

    node: str = Field(description="The node's id (new at every start).")
    host: str = Field(description="The machine's host name.")
    pid: int = Field(description="The node's process id.")
    started_at: float = Field(description="When the node started, in seconds since the epoch.")
    last_seen: float = Field(description="When the node last answered or refreshed its record (epoch seconds).")
    connections: int = Field(description="Open WebSocket connections.")
    subscriptions: int = Field(description="Channel subscriptions of those connections.")
    channels: int = Field(description="Channels with a subscriber on this node.")
    reachable: bool = Field(
        default=True, description="False: it did not answer in time; its numbers are from its last record."
    )


class ChannelInfo(BaseModel):
    channel: str
    subscribers: int = Field(description="Connections subscribed to it, on every node that answered.")
    nodes: int = Field(description="How many nodes have at least one of them.")


class ChannelPage(BaseModel):
    channels: list[ChannelInfo]
    cursor: str | None = Field(description="Pass as `cursor` for the next page; null when this is the last one.")
    missing_nodes: list[str] = Field(
        description="Live nodes that did not answer in time (their channels are left out)."
    )


class Member(BaseModel):
    """One connection in a presence list: ``display`` is its name as the room shows it (unique in the room, e.g.
    "Alice (2)"), ``meta`` its presence metadata or null (protocol.md §9)."""

    client: str
    user: str
    name: str
    display: str
    meta: Any = None


class PresencePage(BaseModel):
    channel: str
    members: list[Member]
    count: int = Field(description="Members of the channel on every node.")
    cursor: str | None = Field(description="Pass as `cursor` for the next page; null when this is the last one.")


class HistoryEvent(BaseModel):
    offset: int
    type: str
    data: JSON


class HistoryPage(BaseModel):
    channel: str
    epoch: str = Field(description="The stream's epoch: offsets of another epoch mean nothing in this one.")
    offset: int = Field(description="The stream's last offset (0: no event yet).")
    events: list[HistoryEvent] = Field(description="In offset order.")
    truncated: bool = Field(
        description="Events after `since` are missing: they fell out of the history window, or `since` is past "
        "the stream's end (an offset of another epoch)."
    )


class Reply(BaseModel):
    type: str
    data: JSON


class PublishResult(BaseModel):
    data: JSON = Field(description='The handler\'s reply data (null if none); {"duplicate": true} for a repeat.')
    replies: list[Reply] = Field(default=[], description="Events the handler sent its caller (ctx.reply).")

    @property
    def duplicate(self) -> bool:
        return isinstance(self.data, dict) and self.data == {"duplicate": True}


class DisconnectResult(BaseModel):
    closed: int = Field(description="Connections closed, on every node that answered.")
    missing_nodes: list[str] = Field(description="Live nodes that did not answer in time.")


class ClientInfo(BaseModel):
    client: str
    user: str | None = Field(description="null: the connection has not authenticated yet.")
    name: str | None
    anonymous: bool
    node: str
    channels: list[str]
    connected_at: float = Field(description="Seconds since the epoch.")
    address: str | None = Field(description="The peer's host:port as the node saw it (a proxy's, behind one).")


class ClientPage(BaseModel):
    clients: list[ClientInfo] = Field(description="Oldest connection first.")
    total: int = Field(description="Matching connections on every node that answered.")
    missing_nodes: list[str]


class PresenceCount(BaseModel):
    channel: str
    count: int = Field(description="Members of the channel on every node.")


class ClusterInfo(BaseModel):
    node: str = Field(description="The id of the node that answered this request.")
    version: str
    plugins: list[str] = Field(description="The plugins this node runs.")
    namespaces: list[str] = Field(description="The channel namespaces they serve (`<namespace>:<room>`).")
    nodes: list[NodeInfo] = Field(description="Every live node of the cluster, oldest first.")


# ---- bodies the API takes ------------------------------------------------------------------------------


class PublishRequest(BaseModel):
    """A message for a channel, handled as a socket's ``pub`` of it would be."""

    model_config = {"extra": "forbid"}

    channel: str = Field(max_length=1024, description="`<namespace>:<room>`, e.g. `chat:lobby`.")
    type: str = Field(max_length=65, description="The message type, e.g. `chat.send` (`hub schema` lists them).")
    data: JSON = Field(default=None, description="The message, as the type's model takes it.")


class DisconnectRequest(BaseModel):
    """Whom to disconnect: every connection of ``user``, or the connection ``client`` (both: that one, if it is
    the user's)."""

    model_config = {"extra": "forbid"}

    user: str | None = Field(default=None, min_length=1, max_length=256)
    client: str | None = Field(default=None, min_length=1, max_length=64)
    code: int = Field(default=4011, ge=4000, le=4999, description="The close code (4011: disconnected by the server).")
    reason: str = Field(
        default="Disconnected by the server.",
        max_length=1000,
        description="The close reason, an English sentence (cut to 123 bytes of UTF-8).",
    )


# ---- errors --------------------------------------------------------------------------------------------


class ApiError(BaseModel):
    """Every error of the server API: the socket's ``err`` codes (``unauthorized``, ``forbidden``, ``invalid``,
    ``bad_channel``, ``unknown_channel``, ``unknown_type``, ``bad_request``, ``too_large``, ``unavailable``,
    ``internal``, or a plugin's own) and one sentence; ``details`` lists the fields of an ``invalid`` request."""

    code: str
    msg: str
    details: list[JSON] | None = None
