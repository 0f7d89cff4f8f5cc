"""The Store protocol for durable plugin state, its error, and the key arithmetic its backends share."""

from __future__ import annotations

from typing import Protocol


def prefix_successor(prefix: str) -> str | None:
    """The smallest string above every string that starts with ``prefix`` (None: there is none).

    The prefix with its last character incremented, dropping trailing U+10FFFF first; an empty prefix, or
    one of only U+10FFFF characters, has no upper bound.
    """
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code <= 0x10FFFF:
            if 0xD800 <= code <= 0xDFFF:  # surrogates cannot be stored; the next character is U+E000
                code = 0xE000
            return "".join(chars) + chr(code)
    return None


class StoreUnavailable(Exception):
    """The store cannot be reached; callers turn this into an ``unavailable`` error."""


class Store(Protocol):
    """Ordered key/value records grouped in namespaces (one per plugin). Keys sort as strings.

    That one shape covers chat logs (``room/<sortable id>``), inboxes, canvases (objects keyed by id) and
    documents (update logs plus snapshots), on SQLite and on Redis alike.
    """

    async def start(self) -> None:
        """Open the store; raises StoreUnavailable, with a sentence saying why, when it cannot be used."""
        ...

    async def close(self) -> None: ...

    @property
    def problem(self) -> str | None:
        """Why the store cannot be used, as last seen (None: usable as far as is known); :meth:`check` looks
        again. SQLite's is permanent once set (its files changed under it: only a restart recovers)."""
        ...

    async def check(self) -> str | None:
        """Look again now, cheaply enough for every readiness probe: None when the store is usable, else why not."""
        ...

    async def get(self, ns: str, key: str) -> bytes | None: ...

    async def put(self, ns: str, key: str, value: bytes) -> None: ...

    async def delete(self, ns: str, key: str) -> bool: ...

    async def scan(
        self, ns: str, prefix: str = "", *, limit: int | None = None, reverse: bool = False
    ) -> list[tuple[str, bytes]]:
        """Records whose key starts with ``prefix``, in key order (or reverse), at most ``limit`` of them."""
        ...

    async def delete_prefix(self, ns: str, prefix: str) -> int: ...

    async def trim(self, ns: str, prefix: str, keep: int) -> int:
        """Delete all but the last ``keep`` records (in key order) under ``prefix``; returns how many went."""
        ...

    async def compare_and_set(self, ns: str, key: str, expected: bytes | None, value: bytes | None) -> bool:
        """Atomically: if the record holds ``expected`` (None: there is no record), make it ``value`` (None:
        delete it) and return True; otherwise change nothing and return False.

        Atomic against every other call on the same store, from this process or another one sharing the
        backend, so a read-decide-write loop around it never loses a concurrent write.
        """
        ...
