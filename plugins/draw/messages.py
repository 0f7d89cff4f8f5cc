"""draw's wire models: the object schema, inbound imperatives, outbound past-tense events, replies, snapshot.

Numbers are finite and bounded, colours are CSS hex strings, ids are short and URL-safe. Limits that are
settings (objects per board, bytes per object, points per path, objects per message) are checked by the
handlers with ``hub_realtime_plugins.draw.board``; the bounds here are fixed ones that no setting relaxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, Self

import orjson
from pydantic import BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, StringConstraints, Tag, model_validator

MAX_SAFE_INTEGER = 2**53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER: every integer here round-trips in a browser
MAX_COORDINATE = 1_000_000.0
MAX_TEXT = 10_000
MAX_ITEMS = 100_000  # a fixed ceiling for every list; the settings (max_points, max_put_objects) are the limits

ObjectId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Version = Annotated[int, Field(strict=True, ge=1, le=MAX_SAFE_INTEGER)]
Nonce = Annotated[int, Field(strict=True, ge=0, le=MAX_SAFE_INTEGER)]
Generation = Annotated[int, Field(strict=True, ge=0, le=MAX_SAFE_INTEGER)]
Coordinate = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_COORDINATE, le=MAX_COORDINATE)]
Length = Annotated[float, Field(allow_inf_nan=False, ge=0, le=MAX_COORDINATE)]
Colour = Annotated[str, StringConstraints(pattern=r"^#(?:[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")]
Point = tuple[Coordinate, Coordinate]
Owner = Annotated[
    str | None,
    Field(
        max_length=128,
        description="the user who created the object, set by the server (a value sent in draw.put is ignored); "
        "null: stored before owners were recorded",
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# ---- the object schema --------------------------------------------------------------------------------------


class _Shape(_Model):
    """What every kind of object has: identity, edit stamp, placement and style (docs/draw.md, "Objects")."""

    kind: str  # each kind narrows it to its own literal; declared here so that it comes first in the JSON
    id: ObjectId
    version: Version = Field(description="1 when created; +1 on every edit, delete included")
    nonce: Nonce = Field(description="random per edit; breaks ties between edits of the same version")
    left: Coordinate
    top: Coordinate
    width: Length = 0.0
    height: Length = 0.0
    angle: Annotated[float, Field(allow_inf_nan=False, ge=-360, le=360)] = 0.0
    scale_x: Annotated[float, Field(allow_inf_nan=False, ge=-1000, le=1000)] = 1.0
    scale_y: Annotated[float, Field(allow_inf_nan=False, ge=-1000, le=1000)] = 1.0
    z: Annotated[float, Field(allow_inf_nan=False, ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)] = 0.0
    stroke: Colour | None = "#000000"
    stroke_width: Annotated[float, Field(allow_inf_nan=False, ge=0, le=1000)] = 2.0
    fill: Colour | None = None
    opacity: Annotated[float, Field(allow_inf_nan=False, ge=0, le=1)] = 1.0
    owner: Owner = None


class PathObject(_Shape):
    """A freehand stroke: its points as drawn; left/top/... place it."""

    kind: Literal["path"]
    points: list[Point] = Field(min_length=1, max_length=MAX_ITEMS)


class RectObject(_Shape):
    kind: Literal["rect"]


class EllipseObject(_Shape):
    kind: Literal["ellipse"]


class _Segment(_Shape):
    x1: Coordinate
    y1: Coordinate
    x2: Coordinate
    y2: Coordinate


class LineObject(_Segment):
    kind: Literal["line"]


class ArrowObject(_Segment):
    """A line with an arrow head at (x2, y2)."""

    kind: Literal["arrow"]


class TextObject(_Shape):
    """A text box; ``fill`` is the colour of the letters."""

    kind: Literal["text"]
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT)]
    font_size: Annotated[float, Field(allow_inf_nan=False, ge=1, le=1000)] = 24.0


DrawObject = Annotated[
    PathObject | RectObject | EllipseObject | LineObject | ArrowObject | TextObject, Field(discriminator="kind")
]
"""A live object on a board, as sent in ``draw.put``, stored, broadcast and exported."""


def encode_record(record: BaseModel) -> bytes:
    """A record's JSON as stored and broadcast: the bytes ``model_dump_json`` makes (fields in declaration order,
    the same number and string formats), by orjson, which writes a 200-point path in about half the time."""
    try:
        return orjson.dumps({name: getattr(record, name) for name in type(record).model_fields})
    except orjson.JSONEncodeError:  # (a string orjson refuses, e.g. a lone surrogate): pydantic's own way
        return record.model_dump_json().encode()


class Tombstone(_Model):
    """A deleted object: kept (without its body) so that an older edit cannot bring it back."""

    id: ObjectId
    version: Version
    nonce: Nonce
    deleted: Literal[True] = True
    ts: float = Field(default=0.0, description="server time of the delete (seconds since the epoch)")
    owner: Owner = None


def _record_tag(value: Any) -> str:
    if isinstance(value, dict):
        return "deleted" if value.get("deleted") else str(value.get("kind"))
    return "deleted" if isinstance(value, Tombstone) else str(getattr(value, "kind", ""))


StoredRecord = Annotated[
    Annotated[PathObject, Tag("path")]
    | Annotated[RectObject, Tag("rect")]
    | Annotated[EllipseObject, Tag("ellipse")]
    | Annotated[LineObject, Tag("line")]
    | Annotated[ArrowObject, Tag("arrow")]
    | Annotated[TextObject, Tag("text")]
    | Annotated[Tombstone, Tag("deleted")],
    Discriminator(_record_tag),
]
"""What the store holds under an object's id: the object, or its tombstone."""


def _unique_ids(records: list[Any]) -> None:
    seen: set[str] = set()
    for record in records:
        if record.id in seen:
            raise ValueError(f"object {record.id!r} appears twice; send each object once per message")
        seen.add(record.id)


# ---- inbound -----------------------------------------------------------------------------------------------


class PutObjects(_Model):
    """``draw.put``: create or update objects, each at a new version, on the board generation ``gen``."""

    gen: Generation
    objects: list[DrawObject] = Field(min_length=1, max_length=MAX_ITEMS)

    @model_validator(mode="after")
    def _check_unique(self) -> Self:
        _unique_ids(self.objects)
        return self


class Deletion(_Model):
    id: ObjectId
    version: Version
    nonce: Nonce


class DeleteObjects(_Model):
    """``draw.delete``: delete objects, each at a new version (one above the version the client has)."""

    gen: Generation
    objects: list[Deletion] = Field(min_length=1, max_length=MAX_ITEMS)

    @model_validator(mode="after")
    def _check_unique(self) -> Self:
        _unique_ids(self.objects)
        return self


class ClearBoard(_Model):
    """``draw.clear``: delete everything on generation ``gen``; the board moves to ``gen + 1``."""

    gen: Generation


class MoveCursor(_Model):
    """``draw.cursor``: where this user's pointer is; both null when it left the board."""

    x: Coordinate | None = None
    y: Coordinate | None = None

    @model_validator(mode="after")
    def _check_pair(self) -> Self:
        if (self.x is None) != (self.y is None):
            raise ValueError("give both x and y, or neither (the pointer left the board)")
        return self


class ExtendStroke(_Model):
    """``draw.stroke``: points appended to a freehand stroke still being drawn (not stored)."""

    id: ObjectId
    points: list[Point] = Field(min_length=1, max_length=MAX_ITEMS)
    stroke: Colour | None = "#000000"
    stroke_width: Annotated[float, Field(allow_inf_nan=False, ge=0, le=1000)] = 2.0
    opacity: Annotated[float, Field(allow_inf_nan=False, ge=0, le=1)] = 1.0


# ---- outbound ----------------------------------------------------------------------------------------------


class ObjectsUpdated(BaseModel):
    """``draw.updated``: objects whose edit won, at generation ``gen``, and who made it."""

    gen: int
    client: str
    user: str
    objects: list[DrawObject]
    _json: str | None = PrivateAttr(default=None)

    @classmethod
    def of_stored(
        cls, gen: int, client: str, user: str, objects: list[DrawObject], stored: Sequence[bytes]
    ) -> ObjectsUpdated:
        """The event for ``objects`` whose JSON, as stored, is ``stored``: that JSON goes into the event as it is,
        so a 200-point path is not encoded a second time when the hub publishes the event."""
        event = cls.model_construct(gen=gen, client=client, user=user, objects=objects)
        fields = {"gen": gen, "client": client, "user": user, "objects": [orjson.Fragment(data) for data in stored]}
        event._json = orjson.dumps(fields).decode()
        return event

    def model_dump_json(self, **kwargs: Any) -> str:  # (pydantic's keywords pass through)
        if self._json is not None and not kwargs:
            return self._json
        return super().model_dump_json(**kwargs)


class ObjectsDeleted(BaseModel):
    """``draw.deleted``: tombstones whose delete won."""

    gen: int
    client: str
    user: str
    deleted: list[Tombstone]


class BoardCleared(BaseModel):
    """``draw.cleared``: the board moved to generation ``gen``; every object of an older generation is gone."""

    gen: int
    client: str
    user: str


class CursorMoved(BaseModel):
    """``draw.cursor_moved``: ephemeral."""

    client: str
    user: str
    name: str
    x: float | None
    y: float | None


class StrokeExtended(BaseModel):
    """``draw.stroked``: ephemeral; the points of an in-progress stroke, appended in order."""

    client: str
    user: str
    name: str
    id: str
    points: list[Point]
    stroke: str | None
    stroke_width: float
    opacity: float


class Conflict(BaseModel):
    """One edit that lost: what the board holds for that id now (null: nothing)."""

    id: str
    current: StoredRecord | None


class EditResult(BaseModel):
    """The ``ok`` data of ``draw.put`` and ``draw.delete``."""

    gen: int = Field(description="the board's generation now")
    applied: list[str] = Field(description="ids whose edit is on the board (and was broadcast)")
    conflicts: list[Conflict] = Field(description="ids whose edit lost, with what the board holds instead")


class ClearResult(BaseModel):
    """The ``ok`` data of ``draw.clear``."""

    gen: int
    cleared: bool = Field(description="false: the board had already moved past the given generation")


class BoardLimits(BaseModel):
    """The hub's limits a client must stay within (docs/draw.md §8), so it can fit its edits to them."""

    max_objects: int
    max_object_bytes: int
    max_board_bytes: int
    max_points: int
    max_put_objects: int


class BoardSnapshot(BaseModel):
    """The late joiner's ``snapshot``: the whole board, and the limits its edits must respect."""

    gen: int
    floor: int = Field(description="edits of unknown ids with a version from 2 to floor are refused")
    edit: Literal["anyone", "owner"] = Field(
        description="who may change or delete an object: anyone, or its owner (and moderators) only"
    )
    objects: list[DrawObject] = Field(description="every live object, in drawing order (z, then id)")
    deleted: list[Tombstone]
    limits: BoardLimits


class BoardExport(BaseModel):
    """``GET /api/draw/{board}.json``."""

    board: str
    gen: int
    objects: list[DrawObject]
