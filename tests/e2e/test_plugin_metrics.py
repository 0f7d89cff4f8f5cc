"""A plugin's metrics through its Hub (counter, gauge, histogram), scraped from a real server's /metrics."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel

from hub import Channel, Context, Hub, Plugin, hookimpl


class Work(BaseModel):
    seconds: float


class Timed(Plugin):
    """Counts and times the work its clients report: state on the object, metrics registered at start-up."""

    def __init__(self, hub: Hub) -> None:
        super().__init__(hub)
        self.done = 0
        self.channel = Channel("timed")
        self.channel.on("timed.work", Work)(self.work)
        self.latency = None

    @hookimpl
    def hub_channels(self) -> list[Channel]:
        return [self.channel]

    @hookimpl
    def hub_startup(self) -> None:
        self.hub.metrics.counter("hub_timed_work_total", "Work reported.", lambda: self.done)
        self.hub.metrics.gauge("hub_timed_busy", "Always one.", lambda: 1)
        self.latency = self.hub.metrics.histogram("hub_timed_work_seconds", "Work duration.", (0.1, 1.0))

    async def work(self, ctx: Context, msg: Work) -> None:
        assert self.latency is not None
        self.done += 1
        self.latency.observe(msg.seconds)


async def test_a_plugins_metrics_are_scraped(hub_server: Any, hub_client: Any) -> None:
    server = hub_server(plugins={"timed": Timed})
    alice = await hub_client(server, user="alice")
    for seconds in (0.05, 0.5, 2.0):
        await alice.pub("timed:room", "timed.work", {"seconds": seconds})
    async with httpx.AsyncClient(base_url=server.url) as http:
        lines = (await http.get("/metrics")).text.splitlines()
    assert "hub_timed_work_total 3.0" in lines
    assert "hub_timed_busy 1.0" in lines
    assert 'hub_timed_work_seconds_bucket{le="0.1"} 1.0' in lines
    assert 'hub_timed_work_seconds_bucket{le="1.0"} 2.0' in lines
    assert 'hub_timed_work_seconds_bucket{le="+Inf"} 3.0' in lines
    assert "hub_timed_work_seconds_count 3.0" in lines
