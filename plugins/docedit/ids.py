"""Names and roles: document ids, the @index room, store keys, sortable record ids, and who may do what."""

from __future__ import annotations

import random
import re
import time
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hub import Identity
    from hub_realtime_plugins.docedit.messages import DocMeta
    from hub_realtime_plugins.docedit.settings import CreatePolicy

NAMESPACE = "docedit"
CREATE_SCOPE = "docedit.create"  # the token scope HUB_DOCEDIT_CREATE=scope asks for
INDEX_ROOM = "@index"
DOC_ID_RE = re.compile(r"[A-Za-z0-9_.=+-]{1,64}")
VERSION_ID_PATTERN = r"^[0-9a-f]{16}-[0-9a-f]{8}$"


class Role(IntEnum):
    """Ordered: each role may do everything the ones below it may."""

    NONE = 0
    READER = 1
    EDITOR = 2
    OWNER = 3

    @property
    def label(self) -> str:
        return self.name.lower()


def is_doc_id(room: str) -> bool:
    return DOC_ID_RE.fullmatch(room) is not None


def channel_of(doc_id: str) -> str:
    return f"{NAMESPACE}:{doc_id}"


def role_of(meta: DocMeta, user: str) -> Role:
    """owner > editor (listed, or public "edit") > reader (listed, or public "read") > none."""
    if meta.owner.user == user:
        return Role.OWNER
    if user in meta.editors or meta.public == "edit":
        return Role.EDITOR
    if user in meta.readers or meta.public == "read":
        return Role.READER
    return Role.NONE


def may_create(policy: CreatePolicy, identity: Identity) -> bool:
    """Whether ``identity`` may create a document under HUB_DOCEDIT_CREATE."""
    if policy == "anyone":
        return True
    if policy == "users":
        return not identity.anonymous
    if policy == "scope":
        return not identity.anonymous and CREATE_SCOPE in identity.scopes
    return False


def no_document(doc_id: str) -> str:
    """The one answer to a caller without a role, whether or not the document exists: nothing tells them apart."""
    return f"There is no document {doc_id!r} open to you."


def access_withdrawn(doc_id: str) -> str:
    return f"Access to document {doc_id!r} was withdrawn."


_last_ns = 0
# Record ids must be unique and sort by time, not be secret: a PRNG seeded from os.urandom is enough.
_random = random.Random()


def sortable_id() -> str:
    """16 hex digits of nanoseconds (strictly increasing in this process), a dash, 8 random hex digits."""
    global _last_ns
    _last_ns = max(time.time_ns(), _last_ns + 1)
    return f"{_last_ns:016x}-{_random.getrandbits(32):08x}"


# ---- store keys (plugin store, namespace "docedit") ----------------------------------------------------------


def doc_prefix(doc_id: str) -> str:
    return f"d/{doc_id}/"


def meta_key(doc_id: str) -> str:
    return f"d/{doc_id}/meta"


def snap_key(doc_id: str) -> str:
    return f"d/{doc_id}/snap"


def updates_prefix(doc_id: str) -> str:
    return f"d/{doc_id}/u/"


def segment_prefix(doc_id: str, segment: str) -> str:
    """Updates one node appended in one stretch between compactions (a sortable id; deleted as a whole)."""
    return f"d/{doc_id}/u/{segment}/"


def versions_prefix(doc_id: str) -> str:
    return f"d/{doc_id}/v/"


INDEX_PREFIX = "i/"


def index_key(doc_id: str) -> str:
    """A copy of the meta under one prefix, so listing documents never scans their updates."""
    return f"{INDEX_PREFIX}{doc_id}"
