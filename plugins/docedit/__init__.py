"""docedit: collaborative documents on a CRDT — Yjs documents held with pycrdt, synced with the Yjs protocols
inside the hub's envelope (``docedit:<doc>``) and over plain y-websocket (``/yjs/{document}``), listed on
``docedit:@index``, shared per document, versioned, persisted with compaction. See docs/docedit.md.

The entry point names :class:`Docedit`, which each hub builds for itself with ``HUB_DOCEDIT_*`` settings.
"""

from __future__ import annotations

from hub_realtime_plugins.docedit.plugin import Docedit
from hub_realtime_plugins.docedit.settings import DoceditSettings

__all__ = ["Docedit", "DoceditSettings"]
