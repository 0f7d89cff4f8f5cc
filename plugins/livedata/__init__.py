"""livedata: live prices on ``livedata:<symbol>`` — one feed per symbol in the cluster (a lease picks the
node), a snapshot with recent history on subscribe, conflation for slow readers, a simulated market built in,
and a panel for the demo. See docs/livedata.md.

The entry point names :class:`Livedata`, which each hub builds for itself with ``HUB_LIVEDATA_*`` settings.
Its data source is the one ``HUB_LIVEDATA_SOURCE`` names (``package.module:factory``); tests and apps that
build their own hub pass one: ``lambda hub: Livedata(hub, source=...)``.
"""

from __future__ import annotations

from hub_realtime_plugins.livedata.messages import LivedataSnapshot, Point, Quote
from hub_realtime_plugins.livedata.plugin import Livedata
from hub_realtime_plugins.livedata.settings import LivedataSettings
from hub_realtime_plugins.livedata.source import DataSource, SimulatedMarket, Tick

__all__ = [
    "DataSource",
    "Livedata",
    "LivedataSettings",
    "LivedataSnapshot",
    "Point",
    "Quote",
    "SimulatedMarket",
    "Tick",
]
