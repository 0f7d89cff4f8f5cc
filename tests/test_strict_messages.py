"""The router accepts exactly what ``hub schema`` publishes, for every message type of every installed plugin:
a JSON number where the schema says number (integers included), a JSON boolean where it says boolean, a JSON
integer (not 1.0) where it says integer, a JSON string where it says string; arrays for tuples and strings for
enums, as JSON clients send them. No coercion from one JSON type to another."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from hub.errors import HubError
from hub.plugin_catalog import PluginCatalog
from hub.plugin_manager import PluginManager
from hub.protocol import ErrorCode
from hub.router import Router
from hub.schema import WIRE_INT_MAX, WIRE_INT_MIN, hub_schema

MESSAGE_ID = "0123456789ab-01234567"
VERSION_ID = "0123456789abcdef-01234567"

# One valid data object per message type, with every field given: floats where the schema says number,
# ints where it says integer (so the walk below knows which is which).
VALID: dict[str, dict[str, Any]] = {
    "chat.send": {"text": "hello"},
    "chat.edit": {"id": MESSAGE_ID, "text": "hello again"},
    "chat.delete": {"id": MESSAGE_ID},
    "chat.typing": {"active": False},
    "draw.put": {
        "gen": 3,
        "objects": [
            {
                "kind": "rect",
                "id": "r-1",
                "version": 2,
                "nonce": 7,
                "left": 10.5,
                "top": 20.5,
                "width": 30.5,
                "height": 40.5,
                "angle": 15.5,
                "scale_x": 1.5,
                "scale_y": 0.5,
                "z": 2.5,
                "stroke": "#000000",
                "stroke_width": 2.5,
                "fill": "#ffd54f",
                "opacity": 0.5,
            },
            {"kind": "path", "id": "p-1", "version": 1, "nonce": 0, "left": 0.5, "top": 0.5, "points": [[1.5, 2.5]]},
            {
                "kind": "line",
                "id": "l-1",
                "version": 1,
                "nonce": 0,
                "left": 0.5,
                "top": 0.5,
                "x1": 1.5,
                "y1": 2.5,
                "x2": 3.5,
                "y2": 4.5,
            },
            {
                "kind": "text",
                "id": "t-1",
                "version": 1,
                "nonce": 0,
                "left": 0.5,
                "top": 0.5,
                "text": "hi",
                "font_size": 24.5,
            },
        ],
    },
    "draw.delete": {"gen": 0, "objects": [{"id": "r-1", "version": 3, "nonce": 9}]},
    "draw.clear": {"gen": 0},
    "draw.cursor": {"x": 312.5, "y": 88.5},
    "draw.stroke": {
        "id": "p-2",
        "points": [[10.5, 10.5], [12.5, 14.5]],
        "stroke": "#1e88e5",
        "stroke_width": 3.5,
        "opacity": 0.5,
    },
    "docedit.sync": {"m": "AAEC", "part": {"id": "part-1", "index": 0, "count": 2}},
    "docedit.awareness": {"m": "AAEC"},
    "docedit.create": {"title": "Plans", "public": "read"},
    "docedit.rename": {"title": "Plans"},
    "docedit.share": {"editors": ["bob"], "readers": ["carol"], "public": "none"},
    "docedit.delete": {},
    "docedit.save_version": {"name": "v1"},
    "docedit.versions": {},
    "docedit.get_version": {"id": VERSION_ID},
    "docedit.restore": {"id": VERSION_ID},
    "docedit.list": {},
    "notifications.read": {"ids": [MESSAGE_ID]},
    "notifications.read_all": {"up_to": MESSAGE_ID},
    "notifications.send": {
        "title": "Build finished",
        "body": "all green",
        "url": "https://example.com/build/1",
        "level": "success",
        "data": {"build": 1},
        "ttl": 3600.5,
        "everyone": False,
        "users": ["bob"],
    },
}

# What a lax validator would turn into each kind of value; none of them is that JSON type.
WRONG: dict[type, list[Any]] = {
    bool: ["true", "yes", "1", 1, 0, 1.0],
    int: ["1", "1.0", 1.5, 1.0, True],  # 1.0 is integral, but a float: refused for an integer
    float: ["1", "1.5", "1e3", True, False],
    str: [1, 1.5, True],
}


@pytest.fixture(scope="module")
def router() -> Router:
    """Every installed plugin's channels, as ``hub serve`` loads them."""
    return Router(PluginManager(PluginCatalog.from_entry_points(None)).channels(), max_channel_length=1024)


def validate(router: Router, message_type: str, data: Any) -> Any:
    """router.validate's verdict, checked to be exactly validate_frame's (data read from a pub frame's text)."""
    channel = router.channels[message_type.partition(".")[0]]
    inbound = router.inbound(channel, message_type)
    try:
        frame = orjson.dumps({"op": "pub", "id": 1, "ch": f"{channel.namespace}:r", "type": message_type, "data": data})
    except orjson.JSONEncodeError:
        frame = None
    outcomes = [outcome(router.validate, inbound, data)]
    if frame is not None:
        outcomes.append(outcome(router.validate_frame, inbound, frame, data))
    assert all(later == outcomes[0] for later in outcomes[1:])
    verdict = outcomes[0]
    if isinstance(verdict, tuple):
        raise HubError(*verdict)
    return verdict


def outcome(method: Any, *args: Any) -> Any:
    """A validation's model, or its error as (code, msg, details)."""
    try:
        return method(*args)
    except HubError as error:
        return (error.code, error.msg, error.details)


def leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every scalar in a JSON value, with its path, except inside free-form objects (notifications' data)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key != "data":
                yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    elif value is not None:
        yield path, value


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replaced(value[head], rest, new)}
    return [replaced(item, rest, new) if index == head else item for index, item in enumerate(value)]


def test_every_message_type_has_a_valid_example(router: Router) -> None:
    registered = {t for channel in router.channels.values() for t in channel.inbound}
    assert registered == set(VALID), "add an example to VALID for every new message type"


@pytest.mark.parametrize("message_type", sorted(VALID))
def test_the_valid_example_is_accepted(router: Router, message_type: str) -> None:
    validate(router, message_type, VALID[message_type])


@pytest.mark.parametrize("message_type", sorted(VALID))
def test_json_integers_are_accepted_where_the_schema_says_number(router: Router, message_type: str) -> None:
    """JSON Schema's number includes the integers: 312 for 312.5 stays accepted (and comes back as 312.0)."""
    data = VALID[message_type]
    for path, value in leaves(data):
        if isinstance(value, float):
            data = replaced(data, path, math.floor(value))
    validate(router, message_type, data)


def wrong_types() -> Iterator[Any]:
    for message_type, data in sorted(VALID.items()):
        for path, value in leaves(data):
            for wrong in WRONG[type(value)]:
                label = f"{message_type}:{'.'.join(map(str, path))}={wrong!r}"
                yield pytest.param(message_type, path, wrong, id=label)


@pytest.mark.parametrize(("message_type", "path", "wrong"), list(wrong_types()))
def test_a_value_of_another_json_type_is_refused(router: Router, message_type: str, path: tuple[Any, ...], wrong: Any):
    with pytest.raises(HubError) as caught:
        validate(router, message_type, replaced(VALID[message_type], path, wrong))
    assert caught.value.code == ErrorCode.INVALID
    assert caught.value.details, "the refusal says which field"


@pytest.mark.parametrize(
    ("message_type", "data"),
    [
        ("chat.typing", {"active": "yes"}),
        ("draw.cursor", {"x": "1", "y": True}),
        (
            "draw.put",
            {"gen": 0, "objects": [{"kind": "rect", "id": "a", "version": 1, "nonce": 0, "left": "0", "top": 0}]},
        ),
        ("notifications.send", {"title": "hi", "ttl": "3600"}),
    ],
    ids=["typing-active-yes", "cursor-string-and-bool", "put-left-string", "send-ttl-string"],
)
def test_the_reported_coercions_are_refused(router: Router, message_type: str, data: dict[str, Any]) -> None:
    """Issue 15, item 8: these were accepted although the schema publishes number/boolean."""
    with pytest.raises(HubError) as caught:
        validate(router, message_type, data)
    assert caught.value.code == ErrorCode.INVALID


def test_tuples_take_arrays_and_enums_take_strings(router: Router) -> None:
    """What a per-model strict mode in Python would wrongly refuse: JSON has no tuples and no enums."""
    stroke = validate(router, "draw.stroke", {"id": "p", "points": [[1, 2], [3.5, 4]]})
    assert stroke.points == [(1.0, 2.0), (3.5, 4.0)]
    assert validate(router, "docedit.create", {"title": "T", "public": "edit"}).public == "edit"
    assert validate(router, "notifications.send", {"title": "T", "level": "warning"}).level == "warning"


def test_data_that_is_not_json_is_invalid_not_an_exception(router: Router) -> None:
    """Python callers (tests, in-process publishers) may hand the router values JSON cannot carry."""
    with pytest.raises(HubError) as caught:
        validate(router, "chat.send", {"text": object()})
    assert caught.value.code == ErrorCode.INVALID


def integer_schemas(schema: Any) -> Iterator[dict[str, Any]]:
    if isinstance(schema, dict):
        if schema.get("type") == "integer":
            yield schema
        for value in schema.values():
            yield from integer_schemas(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from integer_schemas(value)


def test_every_published_integer_is_bounded_to_what_the_socket_reads_as_an_integer(router: Router) -> None:
    """orjson reads an integer literal beyond 64 bits as a float, which an integer field refuses: the schema says
    so with bounds, instead of promising any integer (found by tests/e2e/test_hostile_payloads.py)."""
    messages = hub_schema(router)["channels"]
    for namespace in messages.values():
        for message_type, schema in namespace["messages"].items():
            for integer in integer_schemas(schema):
                low = integer.get("minimum", integer.get("exclusiveMinimum"))
                high = integer.get("maximum", integer.get("exclusiveMaximum"))
                assert low is not None, (message_type, integer)
                assert high is not None, (message_type, integer)
                assert low >= WIRE_INT_MIN, (message_type, integer)
                assert high <= WIRE_INT_MAX, (message_type, integer)
    sync = messages["docedit"]["messages"]["docedit.sync"]["$defs"]["Part"]["properties"]["index"]
    assert (sync["minimum"], sync["exclusiveMaximum"]) == (0, 256)  # its own bound: below MAX_PARTS
    with pytest.raises(HubError) as caught:  # what orjson makes of 18446744073709551616
        validate(
            router, "docedit.sync", {"m": "AAEC", "part": {"id": "p", "index": orjson.loads(str(2**64)), "count": 1}}
        )
    assert caught.value.code == ErrorCode.INVALID
