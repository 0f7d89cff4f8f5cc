"""The admin channel's messages (what an admin sends on ``admin:overview``) and the replies their ``ok`` carries
(docs/protocol.md §16). Every field is bounded; ``Router.validate`` checks them strictly, as for any plugin."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.api_models import HistoryEvent, Member, Reply
from hub.control import DISCONNECT_CODE


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Kick(_Message):
    """``admin.kick``: close one connection (``client``), or every connection of a user (``user``), on whichever
    node holds it, with ``code`` and ``reason`` (the client's close frame)."""

    client: str | None = Field(default=None, min_length=1, max_length=64)
    user: str | None = Field(default=None, min_length=1, max_length=128)
    code: int = Field(default=DISCONNECT_CODE, ge=4000, le=4999)
    reason: str = Field(default="Disconnected by an operator.", max_length=120)

    @model_validator(mode="after")
    def _one_target(self) -> Kick:
        if (self.client is None) == (self.user is None):
            raise ValueError("name exactly one of 'client' and 'user'")
        return self


class Publish(_Message):
    """``admin.publish``: a message to a plugin's channel, handled as the admin's own ``pub`` would be (the
    plugin's model, its policies, its handler)."""

    channel: str = Field(min_length=3, max_length=1024)
    type: str = Field(min_length=3, max_length=65)
    data: dict[str, Any] = Field(default_factory=dict)
    mid: str | None = Field(default=None, min_length=1, max_length=64)


class ChannelQuery(_Message):
    """``admin.channel``: one channel's details, from every node."""

    channel: str = Field(min_length=3, max_length=1024)
    events: int = Field(default=20, ge=0, le=100)
    """How many of its last events to include (recoverable channels keep them)."""


class Kicked(BaseModel):
    closed: int
    """Connections closed, on the nodes that answered."""
    missing_nodes: list[str]
    """Live nodes that did not answer in time."""


class Published(BaseModel):
    channel: str
    type: str
    data: Any
    """The handler's reply (what a ``pub``'s ``ok`` carries), ``{"duplicate": true}`` for a repeated ``mid``."""
    replies: list[Reply]
    """Events the handler sent its caller (``ctx.reply``)."""


class ChannelDetails(BaseModel):
    channel: str
    plugin: str
    subscribers: int
    """Connections following it, on the nodes that answered."""
    nodes: int
    """Nodes with at least one of them."""
    missing_nodes: list[str]
    recoverable: bool
    presence: list[Member] | None
    """Its members (channels with presence), up to ``HUB_ADMIN_LIST_LIMIT``; None without presence."""
    presence_count: int | None
    events: list[HistoryEvent] | None
    """Its last events, oldest first (recoverable channels); None when it keeps no history."""
    epoch: str | None
    offset: int | None
