"""AwarenessStates: the awareness states (cursors, names) this node knows for one document, each remembered
with the hub client that sent it, so a late joiner's snapshot shows everyone and a leaver's states go."""

from __future__ import annotations

from dataclasses import dataclass

from hub_realtime_plugins.docedit.yprotocol import AwarenessEntry, encode_awareness


@dataclass(slots=True)
class _Known:
    clock: int
    state: str | None  # JSON text; None: the client went away (the clock is kept to refuse stale states)
    owner: str  # the hub client id (or "yjs:<n>") that sent it
    seen: float  # monotonic time of the last update


class AwarenessStates:
    """The y-protocols awareness rules: a state replaces a known one when its clock is newer, or when it is a
    removal at the same clock."""

    __slots__ = ("_known",)

    def __init__(self) -> None:
        self._known: dict[int, _Known] = {}

    def __len__(self) -> int:
        return sum(1 for known in self._known.values() if known.state is not None)

    def apply(self, entries: list[AwarenessEntry], owner: str, now: float) -> bool:
        """Take the entries that are news; True if any was."""
        changed = False
        for entry in entries:
            known = self._known.get(entry.client_id)
            if (
                known is None
                or known.clock < entry.clock
                or (known.clock == entry.clock and entry.state is None and known.state is not None)
            ):
                self._known[entry.client_id] = _Known(entry.clock, entry.state, owner, now)
                changed = True
        return changed

    def encode(self) -> bytes | None:
        """An awareness update of every present state, or None when there is none."""
        entries = [
            AwarenessEntry(client_id, known.clock, known.state)
            for client_id, known in self._known.items()
            if known.state is not None
        ]
        return encode_awareness(entries) if entries else None

    def owners(self) -> dict[str, list[int]]:
        """The hub client (or "yjs:<n>") behind every present state: client -> its Yjs clientIDs, so a late
        joiner can drop a leaver's cursors on its ``docedit.left``."""
        found: dict[str, list[int]] = {}
        for client_id, known in self._known.items():
            if known.state is not None:
                found.setdefault(known.owner, []).append(client_id)
        return found

    def forget(self, owner: str, now: float) -> list[AwarenessEntry]:
        """Remove every state ``owner`` sent; returns the removals (clock + 1, state None) to tell others."""
        removed: list[AwarenessEntry] = []
        for client_id, known in self._known.items():
            if known.owner == owner and known.state is not None:
                known.clock += 1
                known.state = None
                known.seen = now
                removed.append(AwarenessEntry(client_id, known.clock, None))
        return removed

    def prune(self, now: float, timeout: float) -> None:
        """Forget states not renewed within ``timeout`` (clients renew theirs every 15 s) and old removals."""
        for client_id in [cid for cid, known in self._known.items() if now - known.seen > timeout]:
            del self._known[client_id]
