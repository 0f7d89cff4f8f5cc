"""draw: collaborative whiteboards ``draw:<board>`` — objects with versions kept in the store, live strokes,
cursors and presence — and a JSON export at ``GET /api/draw/<board>.json``. See docs/draw.md.

The entry point names :class:`Draw`, which each hub builds for itself with ``HUB_DRAW_*`` settings.
"""

from __future__ import annotations

from hub_realtime_plugins.draw.plugin import Draw
from hub_realtime_plugins.draw.settings import DrawSettings

__all__ = ["Draw", "DrawSettings"]
