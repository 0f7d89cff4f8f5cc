"""docedit: collaborative documents on a CRDT — Yjs documents held with pycrdt, synced with the Yjs protocols
inside the hub's envelope (``docedit:<doc>``) and over plain y-websocket (``/yjs/{document}``), listed on
``docedit:@index``, shared per document, versioned, persisted with compaction. See docs/docedit.md.

The hooks here use HUB_DOCEDIT_* settings; ``make_plugin(settings)`` builds the plugin with others.
"""

from __future__ import annotations

from plugins.docedit.plugin import make_plugin
from plugins.docedit.settings import DoceditSettings

_plugin = make_plugin()
hub_channels = _plugin.hub_channels
hub_http_routes = _plugin.hub_http_routes
hub_startup = _plugin.hub_startup
hub_shutdown = _plugin.hub_shutdown

__all__ = ["DoceditSettings", "hub_channels", "hub_http_routes", "hub_shutdown", "hub_startup", "make_plugin"]
