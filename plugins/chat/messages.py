"""chat's wire models: inbound imperatives, outbound past-tense events, the late-joiner snapshot."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MAX_TEXT = 2000

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT)]
MessageId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{12}-[0-9a-f]{8}$")]


class _Inbound(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SendMessage(_Inbound):
    text: Text


class EditMessage(_Inbound):
    id: MessageId
    text: Text


class DeleteMessage(_Inbound):
    id: MessageId


class Typing(_Inbound):
    active: bool = True


class ChatPresence(_Inbound):
    """A member's presence metadata in a room: away while its tab is hidden (protocol.md §9, "Metadata")."""

    away: bool = False


class Author(BaseModel):
    user: str
    name: str


class MessagePosted(BaseModel):
    """A chat message as stored and as sent in ``chat.posted`` / ``chat.edited`` and in the snapshot."""

    id: str
    author: Author
    text: str
    ts: float = Field(description="server time of posting, seconds since the epoch")
    edited_ts: float | None = None


class MessageDeleted(BaseModel):
    id: str


class UserTyping(BaseModel):
    user: str
    name: str
    active: bool


class ChatSnapshot(BaseModel):
    messages: list[MessagePosted]
