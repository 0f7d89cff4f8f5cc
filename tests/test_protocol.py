"""protocol.py: decoding every op, every error path, the encoders, channel naming, and a decode fuzzer."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.errors import HubError
from hub.protocol import (
    CLIENT_OPS,
    AuthRequest,
    ClientFrame,
    ErrorCode,
    FrameError,
    PingRequest,
    PongReply,
    PresenceRequest,
    PresenceSetRequest,
    PubRequest,
    Since,
    SubRequest,
    UnsubRequest,
    decode_frame,
    encode_err,
    encode_event,
    encode_hello,
    encode_ok,
    encode_pong,
    event_fragment,
    split_channel,
)
from hub.types import StreamPosition


def decode_error(frame: str | bytes) -> FrameError:
    with pytest.raises(FrameError) as caught:
        decode_frame(frame)
    return caught.value


def nested_list(depth: int) -> str:
    return "[" * depth + "]" * depth


# ---- valid frames -----------------------------------------------------------------------------------------


def test_auth_frame_parses() -> None:
    frame = decode_frame('{"op":"auth","id":1,"token":"abc.def.ghi"}')
    assert frame == AuthRequest(op="auth", id=1, token="abc.def.ghi")


def test_sub_frame_parses_with_since() -> None:
    frame = decode_frame('{"op":"sub","ch":"chat:lobby","id":"r1","since":{"epoch":"e1","offset":41}}')
    assert isinstance(frame, SubRequest)
    assert (frame.ch, frame.id) == ("chat:lobby", "r1")
    assert frame.since == Since(epoch="e1", offset=41)
    assert frame.since.position() == StreamPosition("e1", 41)


def test_sub_frame_parses_without_since() -> None:
    frame = decode_frame(b'{"op":"sub","ch":"chat:lobby"}')
    assert frame == SubRequest(op="sub", ch="chat:lobby")
    assert frame.id is None
    assert frame.since is None


def test_unsub_frame_parses() -> None:
    assert decode_frame('{"op":"unsub","ch":"chat:lobby","id":2}') == UnsubRequest(op="unsub", ch="chat:lobby", id=2)


def test_pub_frame_parses() -> None:
    frame = decode_frame('{"op":"pub","ch":"chat:lobby","type":"chat.send","data":{"text":"hi"},"id":3,"mid":"m-1"}')
    assert frame == PubRequest(op="pub", ch="chat:lobby", type="chat.send", data={"text": "hi"}, id=3, mid="m-1")


def test_pub_frame_data_defaults_to_none() -> None:
    frame = decode_frame('{"op":"pub","ch":"chat:lobby","type":"chat.send"}')
    assert isinstance(frame, PubRequest)
    assert frame.data is None
    assert frame.mid is None


def test_presence_frame_parses() -> None:
    frame = decode_frame('{"op":"presence","ch":"chat:lobby","id":9}')
    assert frame == PresenceRequest(op="presence", ch="chat:lobby", id=9)


def test_ping_and_pong_frames_parse() -> None:
    assert decode_frame('{"op":"ping"}') == PingRequest(op="ping")
    assert decode_frame('{"op":"pong","id":5}') == PongReply(op="pong", id=5)


def test_every_client_op_has_a_parsing_test() -> None:
    # When an op is added, this reminds whoever adds it to add its test above.
    assert {"auth", "sub", "unsub", "pub", "presence", "presence_set", "ping", "pong"} == CLIENT_OPS


def test_decoded_frames_are_immutable() -> None:
    frame = decode_frame('{"op":"sub","ch":"chat:lobby"}')
    with pytest.raises(ValueError, match="frozen"):
        frame.ch = "chat:other"  # type: ignore[misc]


# ---- errors -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "not json", "{", '{"op":"ping"', b"\xff\xfe", '{"op":"ping"} trailing'])
def test_non_json_is_bad_request(text: str | bytes) -> None:
    error = decode_error(text)
    assert error.code == ErrorCode.BAD_REQUEST
    assert error.request_id is None


@pytest.mark.parametrize("text", ["[]", '[{"op":"ping"}]', '"ping"', "1", "null", "true"])
def test_non_object_is_bad_request(text: str) -> None:
    error = decode_error(text)
    assert error.code == ErrorCode.BAD_REQUEST
    assert "object" in error.msg


@pytest.mark.parametrize("text", ['{"id":7}', '{"op":null,"id":7}', '{"op":5,"id":7}', '{"op":["sub"],"id":7}'])
def test_missing_or_non_string_op_is_bad_request_with_id(text: str) -> None:
    error = decode_error(text)
    assert error.code == ErrorCode.BAD_REQUEST
    assert "'op'" in error.msg
    assert error.request_id == 7


def test_unknown_op_is_unknown_op_with_id() -> None:
    error = decode_error('{"op":"subscribe","id":"abc"}')
    assert error.code == ErrorCode.UNKNOWN_OP
    assert error.request_id == "abc"
    assert "'subscribe'" in error.msg
    assert "sub" in error.msg  # the sentence lists what is expected


def test_unknown_op_message_is_bounded() -> None:
    error = decode_error(orjson.dumps({"op": "x" * 10_000}))
    assert error.code == ErrorCode.UNKNOWN_OP
    assert len(error.msg) < 300


@pytest.mark.parametrize(
    ("frame", "loc", "error_type"),
    [
        ({"op": "sub"}, ["ch"], "missing"),
        ({"op": "sub", "ch": 5}, ["ch"], "string_type"),
        ({"op": "sub", "ch": "chat:a", "since": {"epoch": "e"}}, ["since", "offset"], "missing"),
        ({"op": "sub", "ch": "chat:a", "since": {"epoch": "e", "offset": -1}}, ["since", "offset"], None),
        ({"op": "pub", "ch": "chat:a"}, ["type"], "missing"),
        ({"op": "pub", "ch": "chat:a", "type": "chat.send", "mid": ""}, ["mid"], "string_too_short"),
        ({"op": "pub", "ch": "chat:a", "type": "chat.send", "mid": "m" * 65}, ["mid"], "string_too_long"),
        ({"op": "auth"}, ["token"], "missing"),
        ({"op": "ping", "extra": 1}, ["extra"], "extra_forbidden"),
        ({"op": "unsub", "ch": "c" * 1025}, ["ch"], "string_too_long"),
    ],
)
def test_malformed_fields_are_bad_request_with_details(
    frame: dict[str, Any], loc: list[str], error_type: str | None
) -> None:
    error = decode_error(orjson.dumps(frame | {"id": 11}))
    assert error.code == ErrorCode.BAD_REQUEST
    assert error.request_id == 11
    assert error.details
    assert any(detail["loc"][: len(loc)] == loc for detail in error.details), error.details
    for detail in error.details:
        assert detail["loc"][:1] != [frame["op"]], "the op tag must not lead the location"
        assert set(detail) == {"loc", "msg", "type"}
    if error_type is not None:
        assert error_type in {detail["type"] for detail in error.details}


def test_malformed_details_do_not_echo_input() -> None:
    error = decode_error('{"op":"pub","ch":"chat:a","type":"chat.send","mid":"","secret-field":"hunter2"}')
    assert "hunter2" not in json.dumps(error.details)


@pytest.mark.parametrize("bad_id", [-1, 2**53 + 1, "x" * 65])
def test_out_of_range_request_id_is_bad_request_on_id(bad_id: int | str) -> None:
    error = decode_error(orjson.dumps({"op": "ping", "id": bad_id}))
    assert error.code == ErrorCode.BAD_REQUEST
    assert {detail["loc"][0] for detail in error.details or []} == {"id"}


@pytest.mark.parametrize(("raw_id", "echoed"), [(0, 0), (42, 42), ("req-1", "req-1"), (True, None), (1.5, None)])
def test_request_id_is_echoed_only_when_readable(raw_id: Any, echoed: Any) -> None:
    error = decode_error(orjson.dumps({"op": "sub", "id": raw_id}))
    assert error.request_id == echoed


def test_request_id_of_list_or_object_is_not_echoed() -> None:
    assert decode_error('{"op":"nope","id":[1]}').request_id is None
    assert decode_error('{"op":"nope","id":{"a":1}}').request_id is None


@pytest.mark.parametrize(
    "text",
    [
        '{"op":"pub","ch":"a:b","type":"a.b","data":NaN}',
        '{"op":"pub","ch":"a:b","type":"a.b","data":Infinity}',
        '{"op":"pub","ch":"a:b","type":"a.b","data":-Infinity}',
        '{"op":"pub","ch":"a:b","type":"a.b","data":[1e400]}',
        '{"op":"sub","ch":"a:b","since":{"epoch":"e","offset":NaN}}',
    ],
)
def test_nan_and_infinity_are_rejected(text: str) -> None:
    assert decode_error(text).code == ErrorCode.BAD_REQUEST


@pytest.mark.parametrize("depth", [2_000, 100_000])
def test_deep_nesting_is_rejected_without_recursion_error(depth: int) -> None:
    text = '{"op":"pub","ch":"a:b","type":"a.b","data":' + nested_list(depth) + "}"
    assert decode_error(text).code == ErrorCode.BAD_REQUEST


def test_deep_nesting_of_the_whole_frame_is_rejected() -> None:
    assert decode_error(nested_list(50_000)).code == ErrorCode.BAD_REQUEST


def test_nesting_beyond_what_the_encoder_can_send_back_is_rejected() -> None:
    """Whatever decode accepts, the encoders must be able to send back (an ok reply, an event).

    orjson.loads allows 1024 levels of nesting but orjson.dumps only 254, so data nested 300 deep would be
    decoded and then fail in the encoder (an ``internal`` error for plain client input).
    """
    text = '{"op":"pub","ch":"a:b","type":"a.b","id":1,"data":' + nested_list(300) + "}"
    assert decode_error(text).code == ErrorCode.BAD_REQUEST


def test_moderate_nesting_is_accepted_and_encodes_back() -> None:
    frame = decode_frame('{"op":"pub","ch":"a:b","type":"a.b","id":1,"data":' + nested_list(32) + "}")
    assert isinstance(frame, PubRequest)
    assert orjson.loads(encode_ok(frame.id, frame.data))["data"] == orjson.loads(nested_list(32))


@pytest.mark.parametrize(
    ("data", "accepted"),
    [
        (nested_list(63), True),  # the frame object is level 1: 63 more make 64
        (nested_list(64), False),
        ("[" + ",".join([nested_list(2)] * 200) + "]", True),  # many brackets, shallow: read from the text
        ('["' + "[" * 100 + '"]', True),  # brackets inside a string do not nest
        ('["\\"' + "[" * 100 + '"]', True),  # an escaped quote: walked as parsed instead
        ('["\\\\", ' + nested_list(70) + "]", False),  # an escaped backslash before the closing quote
        ('{"a":' * 63 + "1" + "}" * 63, True),
        ('{"a":' * 64 + "1" + "}" * 64, False),
        ('[{"k":"]]]]"},' + nested_list(70) + "]", False),
    ],
)
def test_nesting_limit_on_text_and_on_values(data: str, accepted: bool) -> None:
    """The depth check reads a deep-looking frame's nesting from its text; both ways agree with the walk."""
    text = '{"op":"pub","ch":"a:b","type":"a.b","data":' + data + "}"
    if accepted:
        assert isinstance(decode_frame(text), PubRequest)
        assert isinstance(decode_frame(text.encode()), PubRequest)
    else:
        assert decode_error(text).code == ErrorCode.BAD_REQUEST
        assert "64 deep" in decode_error(text.encode()).msg


@settings(
    max_examples=300, derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    st.fixed_dictionaries(
        {"op": st.sampled_from(["pub", "ping", "pong"])},
        optional={
            "id": st.none() | st.booleans() | st.integers(min_value=-2, max_value=2**53 + 2) | st.text(max_size=66),
            "ch": st.none() | st.integers() | st.text(max_size=3) | st.just("chat:" + "r" * 1020),
            "type": st.none() | st.just("chat.send") | st.just("a" * 66),
            "data": st.none() | st.integers() | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
            "mid": st.none() | st.integers() | st.text(max_size=65),
            "extra": st.integers(),
        },
    )
)
def test_fast_frames_match_the_frame_union(value: dict[str, Any]) -> None:
    """pub/ping/pong frames built without the union are exactly what the union makes, and what it refuses, the
    fast path refuses with the union's own error."""
    from hub.protocol import _CLIENT_FRAME

    text = json.dumps(value)
    outcome = decode_outcome(text)
    try:
        expected: ClientFrame | None = _CLIENT_FRAME.validate_python(value)
    except ValueError:
        expected = None
    if expected is None:
        assert isinstance(outcome, FrameError)
        assert outcome.code == ErrorCode.BAD_REQUEST
        assert outcome.details
    else:
        assert outcome == expected
        assert type(outcome) is type(expected)
        assert outcome.model_fields_set == expected.model_fields_set
        assert outcome.model_dump() == expected.model_dump()


# ---- encoders ---------------------------------------------------------------------------------------------


def test_encode_ok_fields() -> None:
    assert orjson.loads(encode_ok(1, {"epoch": "e", "offset": 3})) == {
        "op": "ok",
        "id": 1,
        "data": {"epoch": "e", "offset": 3},
    }
    assert orjson.loads(encode_ok("r", [])) == {"op": "ok", "id": "r", "data": []}


def test_encode_ok_omits_absent_id_and_data() -> None:
    assert orjson.loads(encode_ok(None)) == {"op": "ok"}
    assert orjson.loads(encode_ok(0)) == {"op": "ok", "id": 0}


def test_encode_err_fields() -> None:
    details = [{"loc": ["text"], "msg": "Field required", "type": "missing"}]
    assert orjson.loads(encode_err(3, "invalid", "Invalid data.", details)) == {
        "op": "err",
        "id": 3,
        "code": "invalid",
        "msg": "Invalid data.",
        "details": details,
    }


def test_encode_err_omits_absent_id_and_empty_details() -> None:
    assert orjson.loads(encode_err(None, "bad_request", "No.")) == {"op": "err", "code": "bad_request", "msg": "No."}
    assert "details" not in orjson.loads(encode_err(1, "bad_request", "No.", []))


def test_encode_err_escapes_the_message() -> None:
    msg = 'quote " backslash \\ newline \n unicode \u2603'
    assert orjson.loads(encode_err(1, "bad_request", msg))["msg"] == msg


def test_encode_event_with_offset() -> None:
    frame = encode_event("chat:lobby", "chat.posted", '{"text":"hi"}', 42)
    assert orjson.loads(frame) == {
        "op": "ev",
        "ch": "chat:lobby",
        "type": "chat.posted",
        "data": {"text": "hi"},
        "offset": 42,
    }


@pytest.mark.parametrize("data", ['{"text":"hi"}', "null", "[]", '"s"', "0"])
def test_encode_event_without_offset(data: str) -> None:
    frame = orjson.loads(encode_event("chat:lobby", "chat.typing", data, None))
    assert frame == {"op": "ev", "ch": "chat:lobby", "type": "chat.typing", "data": orjson.loads(data)}


def test_encode_event_offset_zero_is_kept() -> None:
    assert orjson.loads(encode_event("a:b", "a.b", "1", 0))["offset"] == 0


def test_encode_event_escapes_channel_and_type() -> None:
    frame = orjson.loads(encode_event('a:"b"', 'a."c"', "1", None))
    assert (frame["ch"], frame["type"]) == ('a:"b"', 'a."c"')


def test_encode_pong_and_hello() -> None:
    assert orjson.loads(encode_pong(None)) == {"op": "pong"}
    assert orjson.loads(encode_pong(4)) == {"op": "pong", "id": 4}
    assert orjson.loads(encode_hello({"client": "c1"})) == {"op": "hello", "data": {"client": "c1"}}


def test_event_fragment_embeds_an_encoded_event() -> None:
    event = encode_event("a:b", "a.b", '{"x":1}', 7)
    wrapped = orjson.loads(encode_ok(1, {"events": [event_fragment(event)]}))
    assert wrapped["data"]["events"] == [orjson.loads(event)]


# ---- channel names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "parts"),
    [
        ("chat:lobby", ("chat", "lobby")),
        ("a:b", ("a", "b")),
        ("live_data2:Room-1.x@y=z+w_", ("live_data2", "Room-1.x@y=z+w_")),
        ("notifications:alice@example.com", ("notifications", "alice@example.com")),
        ("n" * 32 + ":r", ("n" * 32, "r")),
    ],
)
def test_split_channel_accepts_valid_names(channel: str, parts: tuple[str, str]) -> None:
    assert split_channel(channel, 128) == parts


@pytest.mark.parametrize(
    "channel",
    [
        "chatlobby",  # no colon
        "Chat:lobby",  # upper-case namespace
        "CHAT:lobby",
        "1chat:lobby",  # namespace starts with a digit
        "_chat:lobby",
        "ch-at:lobby",
        "n" * 33 + ":r",  # namespace too long
        ":lobby",  # empty namespace
        "chat:",  # empty room
        "chat:lob by",  # bad room characters
        "chat:lobby/1",
        "chat:a:b",
        "chat:*",
        "chat:lobby#",
        "chat:caf\u00e9",
        "chat:lobby\x00",
        "chat:lobby\n",  # `$` in a regex also matches before a trailing newline
        "chat\n:lobby",
    ],
)
def test_split_channel_rejects_bad_names(channel: str) -> None:
    with pytest.raises(HubError) as caught:
        split_channel(channel, 128)
    assert caught.value.code == ErrorCode.BAD_CHANNEL


def test_split_channel_length_limit() -> None:
    at_limit = "chat:" + "r" * 15
    assert split_channel(at_limit, 20) == ("chat", "r" * 15)
    with pytest.raises(HubError) as caught:
        split_channel(at_limit + "r", 20)
    assert caught.value.code == ErrorCode.BAD_CHANNEL
    assert "20" in caught.value.msg


# ---- fuzz -------------------------------------------------------------------------------------------------

ERROR_CODES = {code.value for code in ErrorCode}
FRAME_TYPES = (
    AuthRequest,
    SubRequest,
    UnsubRequest,
    PubRequest,
    PresenceRequest,
    PresenceSetRequest,
    PingRequest,
    PongReply,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
field_names = st.sampled_from(
    ["id", "ch", "type", "data", "mid", "since", "token", "epoch", "offset", "op", "meta", "count_only"]
)
frame_like_objects = st.builds(
    lambda op, fields: {**fields, "op": op},
    st.sampled_from(sorted(CLIENT_OPS)) | st.text(max_size=8) | json_values,
    st.dictionaries(field_names, json_values | st.sampled_from(["chat:lobby", "chat.send", 1, "e"]), max_size=5),
)

fuzz_settings = settings(
    max_examples=300, derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def decode_outcome(payload: str | bytes) -> ClientFrame | FrameError:
    try:
        return decode_frame(payload)
    except FrameError as exc:
        return exc


def check_decode(payload: str | bytes) -> ClientFrame | None:
    """decode_frame returns a frame model or raises FrameError with a core code, and its error is encodable."""
    outcome = decode_outcome(payload)  # any other exception fails the test
    if isinstance(outcome, FrameError):
        assert outcome.code in ERROR_CODES
        assert outcome.request_id is None or isinstance(outcome.request_id, int | str)
        orjson.loads(encode_err(outcome.request_id, outcome.code, outcome.msg, outcome.details))
        return None
    assert isinstance(outcome, FRAME_TYPES)
    return outcome


@fuzz_settings
@given(st.text())
def test_fuzz_decode_arbitrary_text(text: str) -> None:
    check_decode(text)


@fuzz_settings
@given(st.binary())
def test_fuzz_decode_arbitrary_bytes(data: bytes) -> None:
    check_decode(data)


@fuzz_settings
@given(json_values)
def test_fuzz_decode_arbitrary_json(value: Any) -> None:
    check_decode(json.dumps(value))


@fuzz_settings
@given(frame_like_objects)
def test_fuzz_decode_frame_like_objects(value: dict[str, Any]) -> None:
    frame = check_decode(json.dumps(value))
    if isinstance(frame, PubRequest):
        orjson.loads(encode_ok(frame.id, frame.data))


@pytest.mark.parametrize("bad_id", ["true", "false", "2.0", "-1", "null"])
def test_request_ids_are_strict_non_negative_integers_or_strings(bad_id: str) -> None:
    if bad_id == "null":
        assert decode_frame('{"op":"ping","id":null}').id is None
        return
    with pytest.raises(FrameError) as error:
        decode_frame('{"op":"ping","id":' + bad_id + "}")
    assert error.value.code == "bad_request"
