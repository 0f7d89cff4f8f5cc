"""What the nodes of a cluster ask each other for :class:`hub.control.Control` (a survey over the broker,
:meth:`hub.broker.Nodes.survey`), and what each answers about itself."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter

from hub.api_models import ClientInfo


class AskNode(BaseModel):
    op: Literal["node"] = "node"


class AskChannels(BaseModel):
    op: Literal["channels"] = "channels"
    prefix: str
    after: str | None
    limit: int


class AskClients(BaseModel):
    op: Literal["clients"] = "clients"
    user: str | None
    limit: int


class AskDisconnect(BaseModel):
    op: Literal["disconnect"] = "disconnect"
    user: str | None
    client: str | None
    code: int
    reason: str


Ask = Annotated[AskNode | AskChannels | AskClients | AskDisconnect, Field(discriminator="op")]
ASK: TypeAdapter[AskNode | AskChannels | AskClients | AskDisconnect] = TypeAdapter(Ask)


class ChannelCounts(BaseModel):
    channels: list[tuple[str, int]]
    more: bool


class Clients(BaseModel):
    clients: list[ClientInfo]
    total: int


class Closed(BaseModel):
    closed: int
