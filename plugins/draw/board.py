"""The board's rules, without I/O: which of two edits of an object wins, what a board may hold, and how a copy
of a board (the server's store, every browser) applies edits so that all copies end up the same.

A board is a generation number and, per object id, the record that won: a live object or a tombstone. The
rule (docs/draw.md, "The conflict rule") is Excalidraw's: an edit wins iff its ``(version, nonce)`` is greater
than the stored one's. A clear moves the board to the next generation, which drops every record of older
generations at once; an edit made on an older generation loses. :class:`Replica` is the whole algorithm in a
dozen lines; the server applies the same functions to its store (plugins/draw/store.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import Enum


@dataclass(frozen=True, slots=True, order=True)
class Stamp:
    """An edit's position in the total order of edits of one object: version first, then the random nonce."""

    version: int
    nonce: int


def wins(incoming: Stamp, stored: Stamp | None, *, floor: int = 0) -> bool:
    """Whether an edit replaces what a board holds for its object id.

    With a record (live or tombstone): iff ``(version, nonce)`` is greater. Equal stamps lose: they are the
    same edit seen twice. With no record: the edit wins, unless tombstones were pruned (``floor`` > 0) and its
    version is from 2 to ``floor`` — it might be a late edit of a pruned object, which must not come back.
    A version-1 edit is a creation and always wins on an unknown id (ids are random and never reused).
    """
    if stored is None:
        return incoming.version == 1 or incoming.version > floor
    return incoming > stored


@dataclass(frozen=True, slots=True)
class Entry:
    """One record as the rules see it: its stamp, whether it is a tombstone, its encoded size if live."""

    stamp: Stamp
    deleted: bool = False
    size: int = 0


class Verdict(Enum):
    APPLY = "apply"  # the edit wins: store it and broadcast it
    REPEAT = "repeat"  # the board holds exactly this edit already (a retry): broadcast it again, store nothing
    LOSE = "lose"  # answer the sender with what the board holds


def judge(stored: Entry | None, incoming: Entry, *, floor: int, same: bool) -> Verdict:
    """The verdict on one edit; ``same``: the stored record is this very edit (same stamp and content)."""
    if stored is not None and same:
        return Verdict.REPEAT
    return Verdict.APPLY if wins(incoming.stamp, stored.stamp if stored else None, floor=floor) else Verdict.LOSE


# ---- who may change what ----------------------------------------------------------------------------------------


class EditPolicy(Enum):
    """Who may change or delete an object (docs/draw.md, "Who may change what"; setting ``HUB_DRAW_EDIT``)."""

    ANYONE = "anyone"  # everyone who may publish on the board: a shared surface, as on Excalidraw or Miro
    OWNER = "owner"  # an object's creator, and moderators; clearing needs a board without others' objects


@dataclass(frozen=True, slots=True)
class Editor:
    """Who makes an edit, and what the hub's policy lets them change."""

    user: str
    policy: EditPolicy = EditPolicy.ANYONE
    moderator: bool = False

    def may_change(self, owner: str | None) -> bool:
        """Whether this editor may replace a stored record (an object or its tombstone) created by ``owner``.

        ``owner`` None: the record was stored before owners were recorded; under ``owner`` only a moderator may
        change it, since nobody can prove it is theirs.
        """
        return self.policy is EditPolicy.ANYONE or self.moderator or (owner is not None and owner == self.user)

    def owner_after(self, stored: bool, owner: str | None) -> str | None:
        """The owner an edit is stored with: the stored record's (its creator stays its owner), or this editor
        when the board holds nothing for the id (a creation)."""
        return owner if stored else self.user


class Forbidden(Exception):
    """The policy does not let this editor do this; ``details`` in pydantic's shape, one per refused object."""

    def __init__(self, msg: str, details: list[dict[str, object]]) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details


def check_may_change(editor: Editor, stored: Iterable[tuple[int, str, str | None]]) -> None:
    """Refuse a whole message if one of its edits replaces a record the editor may not change.

    ``stored``: ``(index in the message, id, owner)`` of each record the board holds for an edit of the message.
    """
    refused: list[dict[str, object]] = [
        {"loc": ["objects", index], "msg": _whose(object_id, owner), "type": "not_owner"}
        for index, object_id, owner in stored
        if not editor.may_change(owner)
    ]
    if refused:
        raise Forbidden(
            f"On this hub only an object's creator (or a moderator) may change or delete it; {len(refused)} of "
            f"these objects are not {editor.user}'s. Nothing was changed.",
            refused,
        )


def check_may_clear(editor: Editor, owners: Iterable[str | None]) -> None:
    """Refuse a clear that would delete objects the editor may not change (their tombstones do not count)."""
    others = sum(1 for owner in owners if not editor.may_change(owner))
    if others:
        raise Forbidden(
            f"On this hub only a moderator may clear a board that holds other users' objects; this one holds "
            f"{others}. Delete your own objects instead.",
            [{"loc": ["gen"], "msg": f"{others} objects of other users", "type": "not_owner"}],
        )


def _whose(object_id: str, owner: str | None) -> str:
    return f"object {object_id!r} is {owner}'s" if owner is not None else f"object {object_id!r} has no recorded owner"


# ---- generations ---------------------------------------------------------------------------------------------


class UnknownGeneration(Exception):
    """An edit names a generation the board has not reached: the client's copy is not from this board."""


def is_current(edit_gen: int, board_gen: int) -> bool:
    """True: the edit is on the board's generation. False: it was made before a clear, and loses."""
    if edit_gen > board_gen:
        raise UnknownGeneration(
            f"This board is at generation {board_gen}, not {edit_gen}; subscribe again to get the current board."
        )
    return edit_gen == board_gen


# ---- the board's bookkeeping ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Meta:
    """The board's own record: generation, counts for the limits, and the pruning floor (see :func:`wins`)."""

    gen: int = 0
    live: int = 0  # live objects
    size: int = 0  # their encoded bytes
    tombstones: int = 0
    floor: int = 0  # the highest version of a tombstone pruned on this generation

    def encode(self) -> bytes:
        return json.dumps([self.gen, self.live, self.size, self.tombstones, self.floor]).encode()

    @classmethod
    def decode(cls, raw: bytes | None) -> Meta:
        if raw is None:
            return cls()
        gen, live, size, tombstones, floor = json.loads(raw)
        return cls(gen, live, size, tombstones, floor)

    def next_generation(self) -> Meta:
        """The board after a clear: nothing on it, and nothing pruned yet."""
        return Meta(gen=self.gen + 1)


def account(meta: Meta, before: Entry | None, after: Entry | None) -> Meta:
    """The counts once the record ``before`` (None: none) of one id is replaced by ``after`` (None: removed)."""
    live, size, tombstones = meta.live, meta.size, meta.tombstones
    for entry, sign in ((before, -1), (after, 1)):
        if entry is None:
            continue
        if entry.deleted:
            tombstones += sign
        else:
            live += sign
            size += sign * entry.size
    return replace(meta, live=live, size=size, tombstones=tombstones)


# ---- limits --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits of docs/draw.md §8; the values come from DrawSettings (plugins/draw/handlers.py)."""

    max_objects: int
    max_object_bytes: int
    max_board_bytes: int
    max_points: int
    max_put_objects: int
    max_tombstones: int


class LimitExceeded(Exception):
    """A request breaks a limit. ``code``: ``invalid`` for the request itself, ``conflict`` for a full board.

    ``loc`` and ``kind`` make one ``details`` entry in pydantic's shape (``{"loc", "msg", "type"}``).
    """

    def __init__(self, code: str, msg: str, loc: tuple[str | int, ...], kind: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.loc = loc
        self.kind = kind

    def detail(self) -> dict[str, object]:
        return {"loc": list(self.loc), "msg": self.msg, "type": self.kind}


def check_message(count: int, limits: Limits, *, field_name: str = "objects") -> None:
    if count > limits.max_put_objects:
        raise LimitExceeded(
            "invalid",
            f"A message may carry at most {limits.max_put_objects} objects (max_put_objects); this one has {count}.",
            (field_name,),
            "too_many_objects",
        )


def check_object(index: int, size: int, points: int, limits: Limits) -> None:
    """One object of a ``draw.put``: its encoded size and its number of points."""
    if points > limits.max_points:
        raise LimitExceeded(
            "invalid",
            f"A path may have at most {limits.max_points} points (max_points); object {index} has {points}.",
            ("objects", index, "points"),
            "too_many_points",
        )
    if size > limits.max_object_bytes:
        raise LimitExceeded(
            "invalid",
            f"An object may take at most {limits.max_object_bytes} bytes of JSON (max_object_bytes); "
            f"object {index} takes {size}.",
            ("objects", index),
            "object_too_large",
        )


def check_points(points: int, limits: Limits) -> None:
    """One ``draw.stroke`` message."""
    if points > limits.max_points:
        raise LimitExceeded(
            "invalid",
            f"A stroke message may carry at most {limits.max_points} points (max_points); this one has {points}.",
            ("points",),
            "too_many_points",
        )


def check_capacity(before: Meta, after: Meta, limits: Limits) -> None:
    """Whether the board may grow from ``before`` to ``after``; shrinking is always allowed."""
    if after.live > limits.max_objects and after.live > before.live:
        raise LimitExceeded(
            "conflict",
            f"The board is full: it may hold at most {limits.max_objects} objects (max_objects), and this "
            f"would make {after.live}. Delete some first.",
            ("objects",),
            "board_full",
        )
    if after.size > limits.max_board_bytes and after.size > before.size:
        raise LimitExceeded(
            "conflict",
            f"The board is full: its objects may take at most {limits.max_board_bytes} bytes (max_board_bytes), "
            f"and this would make {after.size}. Delete some first.",
            ("objects",),
            "board_full",
        )


# ---- tombstone pruning ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Buried:
    """A tombstone as pruning sees it."""

    id: str
    version: int
    ts: float


def needs_pruning(meta: Meta, limits: Limits) -> bool:
    return meta.tombstones > limits.max_tombstones


def choose_pruned(tombstones: Iterable[Buried], limits: Limits) -> list[Buried]:
    """The oldest tombstones, enough to leave three quarters of ``max_tombstones`` (so pruning, which reads
    the whole board, runs once per quarter of the limit in deletes, not after every delete)."""
    ordered = sorted(tombstones, key=lambda t: (t.ts, t.id))
    keep = limits.max_tombstones * 3 // 4
    return ordered[: max(len(ordered) - keep, 0)]


def after_pruning(meta: Meta, pruned: list[Buried]) -> Meta:
    """The board once ``pruned`` are gone: fewer tombstones, and the floor raised above their versions."""
    floor = max([meta.floor, *(t.version for t in pruned)])
    return replace(meta, tombstones=meta.tombstones - len(pruned), floor=floor)


# ---- a copy of a board ---------------------------------------------------------------------------------------


@dataclass
class Replica:
    """A board as every client must hold it, and as the server's store does: apply edits and clears in any
    order, each any number of times, and every copy that has seen the same ones is the same.

    Start from the ``sub`` reply's snapshot (``gen``, ``floor``, objects and tombstones), then apply every
    ``draw.updated`` / ``draw.deleted`` record with :meth:`apply` and every ``draw.cleared`` with :meth:`clear`.
    """

    gen: int = 0
    floor: int = 0
    records: dict[str, Entry] = field(default_factory=dict)
    # Edits of unknown ids that the floor kept back (clients only: ``hold``). Two edits of a new object can be
    # published out of order (judged on one node, published first on another), so an update can arrive before
    # its object's creation. Kept back rather than dropped, it competes with the creation when that comes, as
    # it did on the server; if no creation comes (a stale edit of a pruned object), it stays invisible.
    held: dict[str, Entry] = field(default_factory=dict, compare=False)
    hold: bool = field(default=True, compare=False)

    def apply(self, gen: int, object_id: str, entry: Entry) -> bool:
        """Apply one record of an event on generation ``gen``; returns whether it changed the board."""
        if gen < self.gen:
            return False  # made before a clear this copy has seen
        if gen > self.gen:
            self.clear(gen)  # the clear's own event is still on its way
        stored = self.records.get(object_id)
        if stored is None and self.hold:
            held = self.held.get(object_id)
            if not wins(entry.stamp, None, floor=self.floor):
                if held is None or entry.stamp > held.stamp:
                    self.held[object_id] = entry
                return False
            if held is not None:
                del self.held[object_id]
                entry = max(entry, held, key=lambda candidate: candidate.stamp)
            self.records[object_id] = entry
            return True
        if not wins(entry.stamp, stored.stamp if stored else None, floor=self.floor):
            return False
        self.records[object_id] = entry
        return True

    def clear(self, gen: int) -> bool:
        """Move to generation ``gen`` (a ``draw.cleared``); returns whether it changed the board."""
        if gen <= self.gen:
            return False
        self.gen, self.floor = gen, 0
        self.records.clear()
        self.held.clear()
        return True

    def live(self) -> dict[str, Entry]:
        return {object_id: entry for object_id, entry in self.records.items() if not entry.deleted}
