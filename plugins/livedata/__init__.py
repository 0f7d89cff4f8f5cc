"""livedata: live prices on ``livedata:<symbol>`` — one feed per symbol in the cluster (a lease picks the
node), a snapshot with recent history on subscribe, conflation for slow readers, a simulated market built in,
and a panel for the demo. See docs/livedata.md.

The hub loads this package (entry point ``livedata``); its hooks belong to one :class:`Livedata` built from
``HUB_LIVEDATA_*`` when first used. Another plugin can give it a data source with :func:`use_source` before
the hub starts; tests build their own with ``Livedata(settings, source=...)``.
"""

from __future__ import annotations

from functools import cache

from fastapi import APIRouter

from hub import Channel, Hub, hookimpl
from plugins.livedata.messages import LivedataSnapshot, Point, Quote
from plugins.livedata.plugin import Livedata
from plugins.livedata.settings import LivedataSettings
from plugins.livedata.source import DataSource, SimulatedMarket, Tick

__all__ = [
    "DataSource",
    "Livedata",
    "LivedataSettings",
    "LivedataSnapshot",
    "Point",
    "Quote",
    "SimulatedMarket",
    "Tick",
    "default_plugin",
    "hub_channels",
    "hub_http_routes",
    "hub_shutdown",
    "hub_startup",
    "use_source",
]


@cache
def default_plugin() -> Livedata:
    """The plugin the installed package stands for, configured from the environment."""
    return Livedata(LivedataSettings())


def use_source(source: DataSource) -> None:
    """Feed the installed plugin from ``source`` instead of ``HUB_LIVEDATA_SOURCE`` (call before start-up)."""
    default_plugin().use_source(source)


@hookimpl
def hub_channels() -> list[Channel]:
    return default_plugin().hub_channels()


@hookimpl
async def hub_startup(hub: Hub) -> None:
    await default_plugin().hub_startup(hub)


@hookimpl
async def hub_shutdown(hub: Hub) -> None:
    await default_plugin().hub_shutdown(hub)


@hookimpl
def hub_http_routes(hub: Hub) -> APIRouter:
    return default_plugin().hub_http_routes(hub)
