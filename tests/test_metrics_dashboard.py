"""docs/grafana-dashboard.json: valid JSON with the panels operations.md promises, and every metric (and grouping
label) its queries use is on a running hub's /metrics after some traffic."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

import hub_realtime_plugins.chat

DASHBOARD = Path(__file__).parent.parent / "docs" / "grafana-dashboard.json"
METRIC = re.compile(r"\b((?:hub|process|python)_[a-z_]+)\b")
GROUPING = re.compile(r"\bby \(([^)]*)\)")
ADDED_BY_PROMETHEUS = {"instance", "job"}
PER_WORKER = {"worker"}  # only under hub serve --workers (tests/test_metrics_serve_workers.py)


def queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", ())]
    found += [variable["definition"] for variable in dashboard["templating"]["list"]]
    return found


def test_the_dashboard_has_a_panel_for_each_promised_view() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = " | ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for view in ("connections", "messages in per plugin", "events out per plugin", "publish latency p50 / p99",
                 "broker publish", "fan-out", "err frames", "closes", "cpu", "memory"):  # fmt: skip
        assert view in titles, view
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for expr in queries():
        assert expr.count("(") == expr.count(")"), expr


async def test_every_metric_the_dashboard_queries_is_on_a_running_hubs_metrics(
    hub_server: Any, hub_client: Any
) -> None:
    server = hub_server(
        plugins={"chat": hub_realtime_plugins.chat.Chat},
        rate_limit=0.01,
        rate_burst=5,
        abuse_strikes=1,
        heartbeat_interval=60,  # no pongs spending the burst
        heartbeat_timeout=120,
    )
    alice = await hub_client(server, user="alice")
    await alice.sub("chat:lobby")
    await alice.pub("chat:lobby", "chat.send", {"text": "hi"})
    invalid = await alice.request({"op": "pub", "ch": "chat:lobby", "type": "chat.send", "data": {"text": 5}})
    assert invalid["code"] == "invalid"
    for n in range(5):  # past the burst: closed for rate abuse, so hub_closes_total has a series
        await alice.ws.send(json.dumps({"op": "ping", "id": 100 + n}))
    assert (await alice.closed())[0] == 4008
    async with httpx.AsyncClient(base_url=server.url) as http:
        text = (await http.get("/metrics")).text

    labels: dict[str, set[str]] = {}  # sample name -> its label names
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    # closes are counted when the connection has ended: the scrape may come first
    async with httpx.AsyncClient(base_url=server.url) as http:
        for _ in range(100):
            if "hub_closes_total" in labels:
                break
            for family in text_string_to_metric_families((await http.get("/metrics")).text):
                for sample in family.samples:
                    labels.setdefault(sample.name, set()).update(sample.labels)

    for expr in queries():
        names = METRIC.findall(expr)
        assert names, expr
        for name in names:
            assert name in labels, f"{name} (in {expr!r}) is not on /metrics"
        for group in GROUPING.findall(expr):
            wanted = {label.strip() for label in group.split(",")} - ADDED_BY_PROMETHEUS - PER_WORKER - {"le"}
            for name in names:
                assert wanted <= labels[name], f"{expr!r} groups by {wanted - labels[name]}, which {name} lacks"
