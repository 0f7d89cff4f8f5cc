"""Compactor: folds an open document's stored updates into its snapshot once there are more than
``compact_every`` of them — in the background, one node at a time per document (a cluster-wide lease)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from hub import Hub
from hub_realtime_plugins.docedit.opendoc import OpenDoc
from hub_realtime_plugins.docedit.settings import DoceditSettings
from hub_realtime_plugins.docedit.store import DocStore

log = logging.getLogger("hub.docedit")

Spawn = Callable[[Coroutine[Any, Any, None], str], None]


class Compactor:
    """Decides when a document is compacted and does it; ``spawn`` runs the work as a task its owner tracks."""

    def __init__(self, hub: Hub, settings: DoceditSettings, spawn: Spawn) -> None:
        self.hub = hub
        self.settings = settings
        self._spawn = spawn
        self.compactions = 0  # done by this node

    def maybe_compact(self, od: OpenDoc, store: DocStore) -> None:
        if od.stored_updates > self.settings.compact_every and not od.compacting and not od.deleted:
            od.compacting = True
            self._spawn(self._compact(od, store), f"docedit-compact-{od.doc_id}")

    async def _compact(self, od: OpenDoc, store: DocStore) -> None:
        lease = self.hub.lease(f"docedit:compact:{od.doc_id}", ttl=self.settings.compact_lease_ttl)
        again = False
        try:
            if not await lease.acquire():
                od.stored_updates = 0  # another node is compacting; count afresh from here
                return
            closed = od.close_segment()
            await od.writes_done(closed)  # so every record under the closed segments is in the scan
            result = await store.compact(od.doc_id, od.ydoc, known_snapshot=od.snapshot, closed_segments=closed)
            if result is not None:
                od.closed_segments = [segment for segment in od.closed_segments if segment not in closed]
                od.snapshot = result.snapshot
                self.compactions += 1
                od.stored_updates = max(0, od.stored_updates - result.merged)
                again = od.stored_updates > self.settings.compact_every
        except Exception:  # a background task (task boundary): the next append tries again
            log.exception("docedit %s: compaction failed", od.doc_id)
        finally:
            od.compacting = False
            with contextlib.suppress(Exception):  # the lease expires by itself anyway
                await lease.release()
        if again:
            self.maybe_compact(od, store)
