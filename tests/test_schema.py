"""hub.schema: what the hub sends is described as it is sent — every serialized field present, excluded ones left out —
and a snapshot provider's whole return annotation (a union of models, or a model or None) is its snapshot's schema."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from hub import Channel, Context
from hub.plugin_catalog import PluginCatalog
from hub.plugin_manager import PluginManager
from hub.router import Router
from hub.schema import channel_schema, hub_schema


class Posted(BaseModel):
    text: str
    edited: float | None = None
    tags: list[str] = Field(default_factory=list)
    secret: str = Field(default="", exclude=True)


class Board(BaseModel):
    shapes: list[str]


class Index(BaseModel):
    boards: list[str]


def schema_of(channel: Channel) -> dict[str, Any]:
    return channel_schema("test", channel)


def test_an_event_lists_every_field_the_hub_sends_as_required_and_leaves_out_excluded_ones() -> None:
    channel = Channel("notes")
    channel.event("notes.posted", Posted)
    posted = schema_of(channel)["events"]["notes.posted"]
    assert sorted(posted["properties"]) == ["edited", "tags", "text"]
    assert sorted(posted["required"]) == ["edited", "tags", "text"]
    # what the hub writes for the event has exactly those keys
    assert sorted(Posted(text="hi", secret="x").model_dump(mode="json")) == ["edited", "tags", "text"]


def test_a_snapshot_of_one_model_is_that_model() -> None:
    channel = Channel("notes")

    @channel.snapshot
    async def board(ctx: Context) -> Board:
        return Board(shapes=[])

    snapshot = schema_of(channel)["snapshot"]
    assert snapshot["title"] == "Board"
    assert snapshot["required"] == ["shapes"]


def test_a_snapshot_that_may_be_none_says_null() -> None:
    channel = Channel("notes")

    @channel.snapshot
    async def board(ctx: Context) -> Board | None:
        return None

    snapshot = schema_of(channel)["snapshot"]
    assert snapshot["anyOf"] == [{"$ref": "#/$defs/Board"}, {"type": "null"}]
    assert snapshot["$defs"]["Board"]["required"] == ["shapes"]


def test_a_snapshot_of_either_model_is_a_union_of_both() -> None:
    channel = Channel("notes")

    @channel.snapshot
    async def board(ctx: Context) -> Board | Index:
        return Index(boards=[])

    snapshot = schema_of(channel)["snapshot"]
    assert snapshot["anyOf"] == [{"$ref": "#/$defs/Board"}, {"$ref": "#/$defs/Index"}]


def test_the_installed_plugins_snapshots_name_every_model_they_return() -> None:
    router = Router(PluginManager(PluginCatalog.from_entry_points(None)).channels(), max_channel_length=1024)
    channels = hub_schema(router)["channels"]
    docedit = channels["docedit"]["snapshot"]  # a document's state, or the @index room's list
    assert {ref["$ref"] for ref in docedit["anyOf"]} == {"#/$defs/DocSnapshot", "#/$defs/DocList"}
    inbox = channels["notifications"]["snapshot"]  # the broadcast room has none: null
    assert {"type": "null"} in inbox["anyOf"]
    assert channels["chat"]["snapshot"]["title"] == "ChatSnapshot"
