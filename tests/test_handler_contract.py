"""The handler contract: a handler or snapshot provider is async and returns a pydantic model or None. Checked at
registration from the annotations, and at run time, where a plugin that breaks it gets ``internal`` for its
client and a log line naming the plugin, the handler and the contract (never an AttributeError)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pydantic import BaseModel

from hub import Channel, Context, Hub, Plugin, hookimpl
from hub.testing import ReplyError


class Text(BaseModel):
    text: str


def test_a_handler_annotated_to_return_a_dict_is_refused_at_registration() -> None:
    channel = Channel("contract")

    async def handler(ctx: Context, msg: Text) -> dict[str, Any]:
        return {"text": msg.text}

    with pytest.raises(TypeError, match=r"handler of 'contract.say'.*test_handler_contract.*handler.*dict"):
        channel.on("contract.say", Text)(handler)


def test_a_snapshot_provider_annotated_to_return_a_str_is_refused() -> None:
    channel = Channel("contract")

    async def provider(ctx: Context) -> str:
        return "state"

    expected = r"snapshot provider of 'contract:\*'.*return a pydantic model \(a BaseModel instance\) or None"
    with pytest.raises(TypeError, match=expected):
        channel.snapshot(provider)


def test_a_synchronous_handler_is_refused() -> None:
    channel = Channel("contract")

    def handler(ctx: Context, msg: Text) -> None:
        return None

    with pytest.raises(TypeError, match="must be an async function"):
        channel.on("contract.say", Text)(handler)  # type: ignore[arg-type]


@pytest.mark.parametrize("annotation", ["Text", "Text | None", "None", "BaseModel"])
def test_models_and_none_are_accepted(annotation: str) -> None:
    namespace: dict[str, Any] = {}
    exec(  # a handler with each annotation, resolved in this module's names
        f"async def handler(ctx, msg) -> {annotation}:\n    return None", globals(), namespace
    )
    Channel("contract").on("contract.say", Text)(namespace["handler"])


def test_an_unannotated_handler_is_checked_at_run_time_only() -> None:
    async def handler(ctx, msg):  # type: ignore[no-untyped-def]
        return None

    Channel("contract").on("contract.say", Text)(handler)


class Careless(Plugin):
    """Its handler and snapshot provider hide their return type and return dicts."""

    def __init__(self, hub: Hub) -> None:
        super().__init__(hub)
        self.channel = Channel("careless")
        self.channel.on("careless.say", Text)(self.say)
        self.channel.snapshot(self.state)

    @hookimpl
    def hub_channels(self) -> list[Channel]:
        return [self.channel]

    async def say(self, ctx, msg):  # type: ignore[no-untyped-def]
        return {"text": msg.text}

    async def state(self, ctx):  # type: ignore[no-untyped-def]
        return {"count": 1}


async def test_a_dict_returned_at_run_time_is_internal_and_logged_by_name(
    hub_server: Any, hub_client: Any, server_logs: Any
) -> None:
    server = hub_server(plugins={"careless": Careless})
    logs = server_logs(logging.ERROR)
    alice = await hub_client(server, user="alice")
    with pytest.raises(ReplyError) as caught:
        await alice.pub("careless:room", "careless.say", {"text": "hi"})
    assert caught.value.code == "internal"
    with pytest.raises(ReplyError) as caught:
        await alice.sub("careless:room")
    assert caught.value.code == "internal"
    lines = [record.getMessage() for record in logs.records if record.levelno >= logging.ERROR]
    said = [line for line in lines if "handler of 'careless.say'" in line]
    assert len(said) == 1, lines
    assert said[0].startswith("plugin 'careless':")
    assert "Careless.say" in said[0]
    assert "returned dict" in said[0]
    assert "return a pydantic model (a BaseModel instance) or None" in said[0]
    assert any("snapshot provider" in line and "Careless.state" in line for line in lines)
    assert not any("AttributeError" in (record.exc_text or "") for record in logs.records)
    with pytest.raises(ReplyError, match="internal"):  # the connection carries on
        await alice.pub("careless:room", "careless.say", {"text": "again"})
