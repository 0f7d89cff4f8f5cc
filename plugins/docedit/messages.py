"""docedit's wire models: inbound imperatives, replies, outbound events, snapshots and the stored meta.

Binary payloads (y-protocols messages, updates, awareness updates) travel as standard base64 with padding.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from hub_realtime_plugins.docedit.ids import VERSION_ID_PATTERN
from hub_realtime_plugins.docedit.settings import Access

PART_CHARS = 32768  # base64 characters in one part of a chunked docedit.sync
MAX_PARTS = 256
MAX_AWARENESS_BYTES = 8192  # a decoded awareness update
MAX_SHARED_USERS = 500  # entries in editors / readers

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
VersionName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
VersionId = Annotated[str, StringConstraints(pattern=VERSION_ID_PATTERN)]
Base64 = Annotated[str, StringConstraints(min_length=1)]


class _Inbound(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Part(_Inbound):
    id: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    index: int = Field(ge=0, lt=MAX_PARTS)
    count: int = Field(ge=1, le=MAX_PARTS)

    @model_validator(mode="after")
    def _index_in_range(self) -> Part:
        if self.index >= self.count:
            raise ValueError("part.index must be below part.count")
        return self


class SyncDocument(_Inbound):
    """``docedit.sync``: one y-protocols SYNC sub-message (step 1, step 2 or update), possibly in parts."""

    m: Base64
    part: Part | None = None

    @model_validator(mode="after")
    def _part_size(self) -> SyncDocument:
        if self.part is not None and len(self.m) > PART_CHARS:
            raise ValueError(f"a part carries at most {PART_CHARS} base64 characters")
        return self


class ShareAwareness(_Inbound):
    """``docedit.awareness``: an awareness update (cursors, selections, names)."""

    m: Annotated[str, StringConstraints(min_length=1, max_length=(MAX_AWARENESS_BYTES + 2) // 3 * 4)]


class CreateDocument(_Inbound):
    title: Title
    public: Access | None = None


class RenameDocument(_Inbound):
    title: Title


class ShareDocument(_Inbound):
    editors: list[UserId] = Field(max_length=MAX_SHARED_USERS)
    readers: list[UserId] = Field(max_length=MAX_SHARED_USERS)
    public: Access


class DeleteDocument(_Inbound):
    """``docedit.delete {}``: no fields; the document is the channel's."""


class SaveVersion(_Inbound):
    name: VersionName


class ListVersions(_Inbound):
    """``docedit.versions {}``: no fields."""


class GetVersion(_Inbound):
    id: VersionId


class RestoreVersion(_Inbound):
    id: VersionId


class ListDocuments(_Inbound):
    """``docedit.list {}`` on ``docedit:@index``: no fields."""


# ---- stored and outbound ------------------------------------------------------------------------------------


class Person(BaseModel):
    user: str
    name: str


class DocMeta(BaseModel):
    """A document's meta, as stored (``d/<doc>/meta``) and as sent in snapshots, replies and events."""

    id: str
    title: str
    owner: Person
    editors: list[str] = []
    readers: list[str] = []
    public: Access = "none"
    created: float
    updated: float
    size: int = 0  # bytes of the encoded full state


class Version(BaseModel):
    id: str
    name: str
    created: float
    author: Person
    size: int


class DocSnapshot(BaseModel):
    """The ``sub`` reply's snapshot on ``docedit:<doc>``."""

    doc: DocMeta
    role: Literal["owner", "editor", "reader"]
    step1: str
    awareness: str | None
    awareness_owners: dict[str, list[int]] = Field(
        default_factory=dict, description="hub client id -> the Yjs clientIDs of its states in `awareness`"
    )


class DocList(BaseModel):
    """The @index snapshot and the ``docedit.list`` reply."""

    docs: list[DocMeta]


class SyncStep2(BaseModel):
    m: str


class Applied(BaseModel):
    applied: Literal[True] = True


class Partial(BaseModel):
    partial: Literal[True] = True


class Empty(BaseModel):
    """A reply with nothing to say (``{}``)."""


class VersionList(BaseModel):
    versions: list[Version]


class VersionState(BaseModel):
    version: Version
    update: str


class UpdateApplied(BaseModel):
    """``docedit.update``: a SYNC sub-message of type 2 (update)."""

    m: str
    client: str | None
    node: str


class AwarenessChanged(BaseModel):
    m: str
    client: str


class MetaChanged(BaseModel):
    doc: DocMeta


class DocumentDeleted(BaseModel):
    id: str


class VersionSaved(BaseModel):
    version: Version


class VersionRestored(BaseModel):
    version: Version
    by: Person


class IndexChanged(BaseModel):
    """``docedit.index_changed {}``: no content (titles of documents a subscriber may not see stay private)."""
