"""Parts: reassembly of chunked ``docedit.sync`` messages, per connection and document, bounded in size and time."""

from __future__ import annotations

from dataclasses import dataclass, field

from hub import HubError


@dataclass(slots=True)
class _Pending:
    part_id: str
    count: int
    started: float
    chunks: list[str] = field(default_factory=list)
    chars: int = 0


class Parts:
    """One message in progress per (connection, document): parts arrive in order, index 0 .. count-1; a new
    id at index 0 replaces an unfinished message. The total is bounded by ``max_chars``."""

    def __init__(self, max_chars: int, ttl: float) -> None:
        self._max_chars = max_chars
        self._ttl = ttl
        self._pending: dict[tuple[str, str], _Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, client: str, doc_id: str, part_id: str, index: int, count: int, chunk: str, now: float) -> str | None:
        """Keep one part; returns the whole base64 string with the last one, else None."""
        key = (client, doc_id)
        pending = self._pending.get(key)
        if index == 0:
            pending = self._pending[key] = _Pending(part_id, count, now)
        elif pending is None or pending.part_id != part_id:
            raise HubError("invalid", f"Part {index} of {part_id!r} came without the parts before it.")
        elif pending.count != count or index != len(pending.chunks):
            del self._pending[key]
            raise HubError("invalid", f"Parts of {part_id!r} must come in order with one count; start again.")
        pending.chunks.append(chunk)
        pending.chars += len(chunk)
        if pending.chars > self._max_chars:
            del self._pending[key]
            raise HubError("too_large", "This message is larger than a document may be.")
        if len(pending.chunks) < pending.count:
            return None
        del self._pending[key]
        return "".join(pending.chunks)

    def drop(self, client: str, doc_id: str) -> None:
        self._pending.pop((client, doc_id), None)

    def prune(self, now: float) -> None:
        for key in [key for key, pending in self._pending.items() if now - pending.started > self._ttl]:
            del self._pending[key]
