"""draw's encoding: a record is encoded once (plugins/draw/messages.py encode_record), into the bytes pydantic's own
encoder makes, and the draw.updated event carries those bytes as they are."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import TypeAdapter

from hub_realtime_plugins.draw.messages import DrawObject, ObjectsUpdated, Tombstone, encode_record

SHAPE = {"version": 3, "nonce": 2**53 - 1, "left": -12.5, "top": 1e-7, "z": 1e15, "owner": "alice"}
OBJECTS: list[dict[str, Any]] = [
    {"kind": "path", "id": "p", "points": [[0.1, 2], [999999.9, -1000000], [5e-324, 1e-5]], **SHAPE},
    {"kind": "rect", "id": "r", "width": 3, "height": 4.25, "fill": "#ABCDEF80", **SHAPE},
    {"kind": "ellipse", "id": "e", "stroke": None, "opacity": 0.333, **SHAPE},
    {"kind": "line", "id": "l", "x1": 1, "y1": 2, "x2": 3.5, "y2": -4, **SHAPE},
    {"kind": "arrow", "id": "a", "x1": 0, "y1": 0, "x2": 1e6, "y2": 1e-6, "angle": -359.99, **SHAPE},
    {"kind": "text", "id": "t", "text": 'é "q" \\ \n\t\x01 \u2028 😀 </script>', "font_size": 1, **SHAPE},
]
objects: TypeAdapter[DrawObject] = TypeAdapter(DrawObject)


@pytest.mark.parametrize("fields", OBJECTS, ids=[o["kind"] for o in OBJECTS])
def test_a_record_is_encoded_as_pydantic_encodes_it(fields: dict[str, Any]) -> None:
    record = objects.validate_python(fields)
    assert encode_record(record) == record.model_dump_json().encode()
    assert objects.validate_json(encode_record(record)) == record


def test_a_tombstone_is_encoded_as_pydantic_encodes_it() -> None:
    tombstone = Tombstone(id="x", version=2, nonce=7, ts=1733000000.123456, owner=None)
    assert encode_record(tombstone) == tombstone.model_dump_json().encode()


def test_the_updated_event_carries_the_stored_json_as_it_is() -> None:
    records = [objects.validate_python(fields) for fields in OBJECTS]
    event = ObjectsUpdated.of_stored(4, "c1", "alice", records, [encode_record(r) for r in records])
    assert (
        event.model_dump_json() == ObjectsUpdated(gen=4, client="c1", user="alice", objects=records).model_dump_json()
    )
    assert orjson.loads(event.model_dump_json(indent=2)) == orjson.loads(event.model_dump_json())
    assert event.objects == records
