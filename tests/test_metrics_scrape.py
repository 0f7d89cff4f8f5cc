"""/metrics of a real hub after real socket traffic, parsed with prometheus_client's parser: counts per plugin
and type, histograms observed, process metrics; recent errors and closes as the admin page reads them."""

from __future__ import annotations

import json
from typing import Any

import httpx

import hub_realtime_plugins.chat
from hub.testing import HubServer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(server: HubServer) -> tuple[Samples, dict[str, str], httpx.Response]:
    from prometheus_client.parser import text_string_to_metric_families

    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/metrics")
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(response.text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, types, response


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


async def test_traffic_shows_in_the_metrics_per_plugin_and_type(hub_server: Any, hub_client: Any) -> None:
    # no heartbeat pings (and pongs) within the test, so every frame is counted below
    server = hub_server(plugins={"chat": hub_realtime_plugins.chat.Chat}, heartbeat_interval=60, heartbeat_timeout=120)
    alice = await hub_client(server, user="alice")
    bob = await hub_client(server, user="bob")
    await alice.sub("chat:lobby")
    await bob.sub("chat:lobby")
    for n in range(3):
        await alice.pub("chat:lobby", "chat.send", {"text": f"hello {n}"})
    for _ in range(3):
        await bob.next_event("chat:lobby", "chat.posted")
    invalid = await alice.request({"op": "pub", "ch": "chat:lobby", "type": "chat.send", "data": {"text": 5}})
    assert invalid["code"] == "invalid"
    unknown = await alice.request({"op": "pub", "ch": "chat:lobby", "type": "chat.shout", "data": {}})
    assert unknown["op"] == "err"

    found, types, response = await scrape(server)
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    chat_send = labels(plugin="chat", type="chat.send")
    assert found[("hub_messages_in_total", chat_send)] == 4  # the invalid one too; the unknown type is not a type
    assert not any(name == "hub_messages_in_total" and ("type", "chat.shout") in key for name, key in found)
    assert found[("hub_events_out_total", labels(plugin="chat", type="chat.posted"))] == 3
    assert found[("hub_events_out_total", labels(plugin="chat", type="chat.joined"))] == 2
    assert found[("hub_errors_total", labels(code="invalid"))] == 1
    assert found[("hub_connections_opened_total", frozenset())] == 2
    assert found[("hub_connections", frozenset())] == 2

    # histograms, observed: each succeeded pub once, each event published once, each event delivered once
    assert types["hub_publish_latency_seconds"] == "histogram"
    assert found[("hub_publish_latency_seconds_count", labels(plugin="chat"))] == 3
    assert 0 < found[("hub_publish_latency_seconds_sum", labels(plugin="chat"))] < 5
    published = found[("hub_events_published_total", frozenset())]
    assert published == 5  # 2 joins, 3 posts
    assert found[("hub_broker_publish_seconds_count", frozenset())] == published
    # alice's own join went to nobody (not delivered); bob's to alice only; the posts to both: 1 + 2 + 2 + 2
    assert found[("hub_fanout_subscribers_count", frozenset())] == published - 1
    assert found[("hub_fanout_subscribers_sum", frozenset())] == 7
    frames = found[("hub_frames_received_total", frozenset())]
    assert found[("hub_frame_received_chars_count", frozenset())] == frames == 2 + 5
    assert found[("hub_frame_received_chars_bucket", labels(le="+Inf"))] == frames
    # sent: 2 hellos, 2 sub oks, 3 pub oks, 2 errs, and 7 event deliveries
    assert found[("hub_frame_sent_chars_count", frozenset())] == 2 + 2 + 3 + 2 + 7

    assert found[("process_cpu_seconds_total", frozenset())] > 0
    assert found[("process_resident_memory_bytes", frozenset())] > 0
    assert found[("process_open_fds", frozenset())] > 0
    assert any(name == "python_info" for name, _ in found)
    assert found[("hub_workers", frozenset())] == 1  # one process


async def test_recent_errors_and_closes_record_what_the_hub_did(hub_server: Any, hub_client: Any) -> None:
    server = hub_server(
        plugins={"chat": hub_realtime_plugins.chat.Chat},
        rate_limit=0.01,
        rate_burst=2,
        abuse_strikes=1,
        heartbeat_interval=60,  # no pongs spending the burst
        heartbeat_timeout=120,
    )
    alice = await hub_client(server, user="alice")
    refused = await alice.request({"op": "pub", "ch": "chat:lobby", "type": "chat.send", "data": {"text": 5}})
    assert refused["code"] == "invalid"
    for n in range(5):  # past the burst: rate_limited, strikes, then closed
        await alice.ws.send(json.dumps({"op": "ping", "id": 100 + n}))
    code, _reason = await alice.closed()
    assert code == 4008

    metrics = server.app.state.hub.metrics
    errors = list(metrics.recent_errors)
    assert (errors[0]["code"], errors[0]["channel"], errors[0]["user"]) == ("invalid", "chat:lobby", "alice")
    assert {(e["code"], e["channel"]) for e in errors[1:]} == {("rate_limited", None)}
    assert errors[0]["client"] == alice.hello["client"]
    assert errors[0]["at"] > 1.7e9
    closes = list(metrics.recent_closes)
    assert [(c["code"], c["client"], c["user"]) for c in closes] == [(4008, alice.hello["client"], "alice")]
    assert closes[0]["reason"] == "Kept sending past the rate limit."
    found, _types, _response = await scrape(server)
    assert found[("hub_closes_total", labels(code="4008"))] == 1
