"""draw: collaborative whiteboards ``draw:<board>`` — objects with versions kept in the store, live strokes,
cursors and presence — and a JSON export at ``GET /api/draw/<board>.json``. See docs/draw.md."""

from __future__ import annotations

from hub import Channel, hookimpl
from plugins.draw.export import hub_http_routes
from plugins.draw.handlers import draw

__all__ = ["hub_channels", "hub_http_routes"]


@hookimpl
def hub_channels() -> list[Channel]:
    return [draw]
