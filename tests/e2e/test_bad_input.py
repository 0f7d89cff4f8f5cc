"""Bad input over real sockets: every malformed or refused request gets its documented ``err`` frame (or close
code) and the socket stays usable, while a bystander in chat:lobby keeps chatting as if nothing happened."""

from __future__ import annotations

from typing import Any

import pytest

from hub.testing import HubClient, HubServer, ReplyError

LOBBY = "chat:lobby"


# ---- helpers ---------------------------------------------------------------------------------------------


async def next_frame(client: HubClient, timeout: float = 5.0) -> dict[str, Any]:
    """The next frame that answers no request made with ``request()``: skips the server's heartbeat pings."""
    while True:
        frame = await client.next_unsolicited(timeout)
        if frame.get("op") != "ping":
            return frame


async def assert_chat_goes_on(sender: HubClient, observer: HubClient, text: str) -> None:
    """``sender`` posts in chat:lobby and ``observer`` (subscribed there) gets exactly that message."""
    posted = await sender.pub(LOBBY, "chat.send", {"text": text})
    event = await observer.next_event(LOBBY, "chat.posted")
    assert event["data"] == posted
    assert event["data"]["text"] == text


@pytest.fixture
def lobby(hub_server, hub_client):
    """``await lobby(**settings)`` -> (server, observer subscribed to chat:lobby, bad client, not subscribed)."""

    async def start(**overrides: Any) -> tuple[HubServer, HubClient, HubClient]:
        server = hub_server(**overrides)
        observer = await hub_client(server, user="observer")
        await observer.sub(LOBBY)
        bad = await hub_client(server, user="mallory")
        return server, observer, bad

    return start


# ---- frames that cannot be decoded: err without id ----------------------------------------------------------

NESTED = "[" * 5000 + "]" * 5000

UNDECODABLE = {
    "not json": "hello there",
    "truncated json": '{"op":"sub","ch":',
    "json array": '[{"op":"ping","id":1}]',
    "json string": '"ping"',
    "json number": "42",
    "json null": "null",
    "deep nesting": NESTED,  # 10 kB, far under max_frame_bytes, but 5000 levels deep
    "deep nesting in data": '{"op":"pub","ch":"chat:lobby","type":"chat.send","id":1,"data":' + NESTED + "}",
    "NaN": '{"op":"ping","id":1,"x":NaN}',
    "Infinity": '{"op":"pub","ch":"chat:lobby","type":"chat.send","id":1,"data":{"text":Infinity}}',
    "binary frame": b'{"op":"ping","id":1}',
}


@pytest.mark.parametrize("raw", UNDECODABLE.values(), ids=UNDECODABLE.keys())
async def test_undecodable_frame_gets_bad_request_and_the_socket_stays_open(lobby, raw):
    _server, observer, bad = await lobby()
    await bad.send_raw(raw)
    frame = await next_frame(bad)
    assert frame["op"] == "err"
    assert frame["code"] == "bad_request"
    assert frame["msg"]
    assert "id" not in frame  # nothing trustworthy to echo
    # the same socket still works, and the bystander sees the next message
    assert (await bad.request({"op": "ping"}))["op"] == "pong"
    await assert_chat_goes_on(bad, observer, "after bad input")


async def test_text_frame_with_invalid_utf8_closes_with_1007_and_others_chat_on(lobby, hub_client):
    server, observer, bad = await lobby()
    await bad.ws.send(b'{"op":"ping","x":"\xff\xfe"}', text=True)  # a text frame that is not UTF-8
    code, _reason = await bad.closed()
    assert code == 1007  # RFC 6455: inconsistent data
    poster = await hub_client(server, user="poster")
    await assert_chat_goes_on(poster, observer, "still here")


# ---- decodable envelopes that are wrong: err echoing the id ---------------------------------------------------

ENVELOPES = {
    "no op": ({"ch": LOBBY}, "bad_request"),
    "op not a string": ({"op": 5}, "bad_request"),
    "unknown op": ({"op": "subscribe", "ch": LOBBY}, "unknown_op"),
    "sub without ch": ({"op": "sub"}, "bad_request"),
    "unknown envelope field": ({"op": "sub", "ch": LOBBY, "extra": 1}, "bad_request"),
    "empty mid": ({"op": "pub", "ch": LOBBY, "type": "chat.send", "data": {"text": "x"}, "mid": ""}, "bad_request"),
    "unknown plugin on sub": ({"op": "sub", "ch": "nope:room"}, "unknown_channel"),
    "unknown plugin on pub": (
        {"op": "pub", "ch": "nope:room", "type": "nope.send", "data": {"text": "x"}},
        "unknown_channel",
    ),
    "unknown message type": ({"op": "pub", "ch": LOBBY, "type": "chat.shout", "data": {"text": "x"}}, "unknown_type"),
    "another plugin's type": ({"op": "pub", "ch": LOBBY, "type": "draw.line", "data": {}}, "unknown_type"),
    "outbound event type": ({"op": "pub", "ch": LOBBY, "type": "chat.posted", "data": {}}, "unknown_type"),
    "unsub not subscribed": ({"op": "unsub", "ch": LOBBY}, "not_subscribed"),
}


@pytest.mark.parametrize(("frame", "code"), ENVELOPES.values(), ids=ENVELOPES.keys())
async def test_wrong_envelope_gets_its_code_with_the_request_id(lobby, frame, code):
    _server, observer, bad = await lobby()
    reply = await bad.request(frame)  # request() adds a fresh id and waits for the reply that echoes it
    assert reply["op"] == "err"
    assert reply["code"] == code
    assert reply["msg"]
    assert isinstance(reply["id"], int)
    await assert_chat_goes_on(bad, observer, f"after {code}")


async def test_malformed_envelope_details_name_the_field(lobby):
    _server, _observer, bad = await lobby()
    reply = await bad.request({"op": "sub"})
    assert reply["code"] == "bad_request"
    assert {"loc": ["ch"], "msg": "Field required", "type": "missing"} in reply["details"]


@pytest.mark.parametrize(
    ("data", "error_type"),
    [({}, "missing"), ({"text": "   "}, "string_too_short"), ({"text": 5}, "string_type")],
    ids=["missing text", "blank text", "text not a string"],
)
async def test_invalid_payload_gets_invalid_with_pydantic_field_errors(lobby, data, error_type):
    _server, observer, bad = await lobby()
    with pytest.raises(ReplyError) as refused:
        await bad.pub(LOBBY, "chat.send", data)
    assert refused.value.code == "invalid"
    details = refused.value.details
    assert details, "invalid must carry pydantic's field errors"
    assert [d["loc"] for d in details] == [["text"]]
    assert details[0]["type"] == error_type
    assert set(details[0]) == {"loc", "msg", "type"}  # no echo of the input, no URL
    await assert_chat_goes_on(bad, observer, "valid this time")


async def test_invalid_payload_never_reaches_subscribers(lobby):
    _server, observer, bad = await lobby()
    with pytest.raises(ReplyError):
        await bad.pub(LOBBY, "chat.send", {"text": ""})
    await assert_chat_goes_on(bad, observer, "the first event the observer sees")


# ---- channel names -----------------------------------------------------------------------------------------

MAX_CHANNEL_LENGTH = 32

BAD_CHANNELS = {
    "no colon": "lobby",
    "uppercase namespace": "Chat:lobby",
    "space in room": "chat:lob by",
    "empty room": "chat:",
    "empty namespace": ":lobby",
    "wildcard": "chat:*",
    "slash in room": "chat:a/b",
    "non-ascii room": "chat:caf\u00e9",
    "trailing newline": "chat:lobby\n",
    "over max_channel_length": "chat:" + "a" * (MAX_CHANNEL_LENGTH - len("chat:") + 1),
}


@pytest.mark.parametrize("channel", BAD_CHANNELS.values(), ids=BAD_CHANNELS.keys())
async def test_bad_channel_name_is_refused_on_sub_and_pub(lobby, channel):
    _server, observer, bad = await lobby(max_channel_length=MAX_CHANNEL_LENGTH)
    with pytest.raises(ReplyError) as refused:
        await bad.sub(channel)
    assert refused.value.code == "bad_channel"
    with pytest.raises(ReplyError) as refused:
        await bad.pub(channel, "chat.send", {"text": "hi"})
    assert refused.value.code == "bad_channel"
    await assert_chat_goes_on(bad, observer, "after a bad channel")


async def test_channel_of_exactly_max_length_is_fine(lobby):
    _server, _observer, bad = await lobby(max_channel_length=MAX_CHANNEL_LENGTH)
    channel = "chat:" + "a" * (MAX_CHANNEL_LENGTH - len("chat:"))
    assert len(channel) == MAX_CHANNEL_LENGTH
    await bad.sub(channel)
    posted = await bad.pub(channel, "chat.send", {"text": "edge"})
    assert (await bad.next_event(channel, "chat.posted"))["data"] == posted


# ---- subscription bookkeeping ---------------------------------------------------------------------------------


async def test_too_many_channels(lobby):
    _server, observer, bad = await lobby(max_channels_per_connection=2)
    await bad.sub("chat:a")
    await bad.sub("chat:b")
    with pytest.raises(ReplyError) as refused:
        await bad.sub("chat:c")
    assert refused.value.code == "too_many_channels"
    # the refused channel was not half-joined: freeing a slot makes room for it
    await bad.unsub("chat:a")
    await bad.sub("chat:c")
    posted = await observer.pub("chat:c", "chat.send", {"text": "in c"})
    assert (await bad.next_event("chat:c", "chat.posted"))["data"] == posted
    await assert_chat_goes_on(bad, observer, "after too many channels")


async def test_already_subscribed_and_not_subscribed(lobby):
    _server, observer, bad = await lobby()
    await bad.sub("chat:room")
    with pytest.raises(ReplyError) as refused:
        await bad.sub("chat:room")
    assert refused.value.code == "already_subscribed"
    # still subscribed exactly once: one message, one event
    posted = await observer.pub("chat:room", "chat.send", {"text": "once"})
    assert (await bad.next_event("chat:room", "chat.posted"))["data"] == posted
    await bad.unsub("chat:room")
    with pytest.raises(ReplyError) as refused:
        await bad.unsub("chat:room")
    assert refused.value.code == "not_subscribed"
    await assert_chat_goes_on(bad, observer, "after already/not subscribed")


# ---- identity and per-type limits -----------------------------------------------------------------------------


async def test_publish_before_auth_is_unauthorized(hub_server, hub_client):
    server = hub_server(anonymous=False)
    observer = await hub_client(server, user="observer")
    await observer.sub(LOBBY)
    stranger = await hub_client(server)  # no token, and guests are off
    assert stranger.hello["user"] is None
    with pytest.raises(ReplyError) as refused:
        await stranger.pub(LOBBY, "chat.send", {"text": "let me in"})
    assert refused.value.code == "unauthorized"
    # the socket stays open: authenticate on it and publish
    assert (await stranger.call({"op": "auth", "token": server.token("late")}))["user"]["user"] == "late"
    await assert_chat_goes_on(stranger, observer, "authenticated now")


async def test_typing_has_its_own_rate_limit(lobby):
    _server, observer, bad = await lobby()
    for _ in range(3):  # chat.typing: RateLimit(rate=1, burst=3)
        assert await bad.pub(LOBBY, "chat.typing", {"active": True}) is None
    with pytest.raises(ReplyError) as refused:
        await bad.pub(LOBBY, "chat.typing", {"active": True})
    assert refused.value.code == "rate_limited"
    assert isinstance(refused.value.frame["id"], int)
    # other types are not limited by typing's bucket
    posted = await bad.pub(LOBBY, "chat.send", {"text": "done typing"})
    # the observer saw exactly the three allowed typing events, then the message, in that order
    seen = [await observer.next_event(LOBBY) for _ in range(4)]
    assert [e["type"] for e in seen] == ["chat.typing"] * 3 + ["chat.posted"]
    assert seen[3]["data"] == posted


# ---- idempotent publish --------------------------------------------------------------------------------------


async def test_publish_with_the_same_mid_twice_is_delivered_once(lobby, hub_client):
    server, observer, bad = await lobby()
    first = await bad.pub(LOBBY, "chat.send", {"text": "only once"}, mid="client-msg-1")
    assert first["text"] == "only once"
    second = await bad.pub(LOBBY, "chat.send", {"text": "only once"}, mid="client-msg-1")
    assert second == {"duplicate": True}
    third = await bad.pub(LOBBY, "chat.send", {"text": "next"}, mid="client-msg-2")
    assert third["text"] == "next"
    # in-order delivery: the event after the first one is the third message, not a repeat
    assert (await observer.next_event(LOBBY, "chat.posted"))["data"] == first
    assert (await observer.next_event(LOBBY, "chat.posted"))["data"] == third
    # and the stored log has it once
    carol = await hub_client(server, user="carol")
    snapshot = (await carol.sub(LOBBY))["snapshot"]
    assert [m["text"] for m in snapshot["messages"]] == ["only once", "next"]


async def test_mid_is_per_user(lobby, hub_client):
    server, observer, bad = await lobby()
    other = await hub_client(server, user="other")
    mine = await bad.pub(LOBBY, "chat.send", {"text": "mine"}, mid="same-id")
    theirs = await other.pub(LOBBY, "chat.send", {"text": "theirs"}, mid="same-id")
    assert "duplicate" not in theirs
    assert (await observer.next_event(LOBBY, "chat.posted"))["data"] == mine
    assert (await observer.next_event(LOBBY, "chat.posted"))["data"] == theirs
