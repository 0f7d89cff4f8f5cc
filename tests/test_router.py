"""router.py and channel.py: resolving channels, finding handlers, validating data, declaration errors."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from hub.channel import Channel, PresenceChanged, PresenceCount
from hub.context import Context
from hub.errors import HubError
from hub.limits import RateLimit
from hub.protocol import ErrorCode
from hub.router import DuplicateNamespace, Router
from hub.types import HistoryPolicy


class Say(BaseModel):
    text: str = Field(min_length=1, max_length=10)
    loud: bool = False


class Said(BaseModel):
    text: str


async def say(ctx: Context, msg: Say) -> None:
    """A handler that is never called here: the router only finds it."""


def echo_channel(namespace: str = "echo") -> Channel:
    channel = Channel(namespace)
    channel.on(f"{namespace}.say", Say, rate_limit=RateLimit(rate=1, burst=2))(say)
    channel.event(f"{namespace}.said", Said)
    return channel


@pytest.fixture
def router() -> Router:
    return Router([("echo", echo_channel()), ("other", Channel("other"))], max_channel_length=64)


# ---- resolve ----------------------------------------------------------------------------------------------


def test_resolve_finds_the_channel_and_room(router: Router) -> None:
    channel, room = router.resolve("echo:room-1")
    assert channel is router.channels["echo"]
    assert room == "room-1"
    assert router.owner("echo") == "echo"


def test_resolve_unknown_namespace(router: Router) -> None:
    with pytest.raises(HubError) as caught:
        router.resolve("nope:room")
    assert caught.value.code == ErrorCode.UNKNOWN_CHANNEL
    assert "nope" in caught.value.msg
    assert "echo, other" in caught.value.msg  # lists what is enabled


def test_resolve_with_no_channels_says_none() -> None:
    with pytest.raises(HubError) as caught:
        Router([], max_channel_length=64).resolve("nope:room")
    assert caught.value.code == ErrorCode.UNKNOWN_CHANNEL
    assert "none" in caught.value.msg


@pytest.mark.parametrize("name", ["echo", "Echo:room", "echo:bad room", "echo:" + "r" * 60])
def test_resolve_bad_channel_names(router: Router, name: str) -> None:
    with pytest.raises(HubError) as caught:
        router.resolve(name)
    assert caught.value.code == ErrorCode.BAD_CHANNEL


def test_channels_property_is_a_copy(router: Router) -> None:
    router.channels.pop("echo")
    assert "echo" in router.channels


# ---- inbound / validate -----------------------------------------------------------------------------------


def test_inbound_finds_the_handler(router: Router) -> None:
    inbound = router.inbound(router.channels["echo"], "echo.say")
    assert inbound.message_type == "echo.say"
    assert inbound.model is Say
    assert inbound.handler is say
    assert inbound.rate_limit == RateLimit(rate=1, burst=2)


@pytest.mark.parametrize("message_type", ["echo.shout", "echo.said", "other.say", "x" * 500])
def test_inbound_unknown_type(router: Router, message_type: str) -> None:
    with pytest.raises(HubError) as caught:
        router.inbound(router.channels["echo"], message_type)
    assert caught.value.code == ErrorCode.UNKNOWN_TYPE
    assert "echo.say" in caught.value.msg  # lists what the channel accepts
    assert len(caught.value.msg) < 300


def test_inbound_unknown_type_on_a_channel_without_handlers(router: Router) -> None:
    with pytest.raises(HubError) as caught:
        router.inbound(router.channels["other"], "other.say")
    assert caught.value.code == ErrorCode.UNKNOWN_TYPE
    assert "none" in caught.value.msg


def test_validate_returns_the_model(router: Router) -> None:
    inbound = router.inbound(router.channels["echo"], "echo.say")
    assert router.validate(inbound, {"text": "hi", "loud": True}) == Say(text="hi", loud=True)


@pytest.mark.parametrize(
    ("data", "loc", "error_type"),
    [
        ({}, ["text"], "missing"),
        ({"text": ""}, ["text"], "string_too_short"),
        ({"text": "x" * 11}, ["text"], "string_too_long"),
        ({"text": "hi", "loud": "very"}, ["loud"], "bool_type"),  # strict: a string is never a boolean
        (None, [], "model_type"),
        ([1, 2], [], "model_type"),
    ],
)
def test_validate_invalid_carries_pydantic_details(
    router: Router, data: object, loc: list[str], error_type: str
) -> None:
    inbound = router.inbound(router.channels["echo"], "echo.say")
    with pytest.raises(HubError) as caught:
        router.validate(inbound, data)
    error = caught.value
    assert error.code == ErrorCode.INVALID
    assert "echo.say" in error.msg
    assert error.details == [{"loc": loc, "msg": error.details[0]["msg"], "type": error_type}]


def test_validate_details_do_not_echo_the_input(router: Router) -> None:
    inbound = router.inbound(router.channels["echo"], "echo.say")
    with pytest.raises(HubError) as caught:
        router.validate(inbound, {"text": "password123-too-long"})
    assert "password123" not in repr(caught.value.details)


# ---- namespaces -------------------------------------------------------------------------------------------


def test_duplicate_namespace_between_plugins() -> None:
    with pytest.raises(DuplicateNamespace, match=r"'echo'.*'first'.*'second'"):
        Router([("first", echo_channel()), ("second", echo_channel())], max_channel_length=64)


def test_one_plugin_may_own_several_namespaces() -> None:
    router = Router([("multi", echo_channel("a")), ("multi", echo_channel("b"))], max_channel_length=64)
    assert router.owner("a") == router.owner("b") == "multi"


# ---- channel declarations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "namespace",
    ["", "Chat", "1chat", "_chat", "chat-x", "chat.x", "chat:x", "n" * 33, "caf\u00e9", "chat\n"],
)
def test_channel_rejects_bad_namespace(namespace: str) -> None:
    with pytest.raises(ValueError, match="namespace"):
        Channel(namespace)


@pytest.mark.parametrize(
    "message_type", ["other.say", "echo", "echo.", "echo.Say", "echo.say.more", "echox.say", "say", "echo.say\n"]
)
def test_message_type_must_be_prefixed_by_namespace(message_type: str) -> None:
    channel = Channel("echo")
    with pytest.raises(ValueError, match=r"echo\.<verb>"):
        channel.on(message_type, Say)
    with pytest.raises(ValueError, match=r"echo\.<verb>"):
        channel.event(message_type, Said)


def test_duplicate_handler_is_an_error() -> None:
    channel = echo_channel()
    with pytest.raises(ValueError, match="already has a handler"):
        channel.on("echo.say", Say)


def test_duplicate_event_is_an_error() -> None:
    channel = echo_channel()
    with pytest.raises(ValueError, match="already declared"):
        channel.event("echo.said", Said)


@pytest.mark.parametrize("history_size", [0, -1])
def test_recoverable_needs_history_size(history_size: int) -> None:
    with pytest.raises(ValueError, match="history_size"):
        Channel("echo", recoverable=True, history_size=history_size)


def test_history_policy() -> None:
    assert Channel("plain").history_policy(60.0) is None
    assert Channel("rec", recoverable=True, history_size=5).history_policy(60.0) == HistoryPolicy(5, 60.0)
    assert Channel("ttl", recoverable=True, history_size=5, history_ttl=2.0).history_policy(60.0) == HistoryPolicy(
        5, 2.0
    )


def test_presence_channels_declare_joined_and_left() -> None:
    channel = Channel("room", presence=True)
    assert channel.events == {
        "room.joined": PresenceChanged,
        "room.left": PresenceChanged,
        "room.presence": PresenceCount,  # a big room's coalesced member count
    }
    with pytest.raises(ValueError, match="already declared"):
        channel.event("room.joined", Said)


def test_channels_without_presence_declare_no_presence_events() -> None:
    assert dict(Channel("room").events) == {}


def test_snapshot_provider_is_registered() -> None:
    channel = Channel("echo")
    assert channel.snapshot_provider is None

    @channel.snapshot
    async def snapshot(ctx: Context) -> Said:
        return Said(text="hello")

    assert channel.snapshot_provider is snapshot
