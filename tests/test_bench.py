"""bench/: ``hub bench --spawn --json`` run tiny against a real hub, its report checked; and its pure parts."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hub.bench.adapters import HubAdapter, Kind, SocketIOAdapter, adapter_for
from hub.bench.client import MARKER, message_text
from hub.bench.command import is_loopback
from hub.bench.report import FanoutReport, IdleReport, problems
from hub.bench.runner import expected_deliveries, room_sizes
from hub.bench.server import LIFTED_LIMITS, hub_command
from hub.cli import cli
from hub.settings import HubSettings
from hub.testing import HubServer

pytestmark = pytest.mark.usefixtures("clean_hub_environment")


def run_bench(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [*hub_command(), "bench", "--spawn", "--json", "--clients", "2", "--timeout", "20", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_a_tiny_flood_over_two_rooms_delivers_everything_once_and_in_order() -> None:
    report = run_bench("--subscribers", "4", "--rooms", "2", "--publishers", "2", "--messages", "10")

    assert report["mode"] == "fanout"
    assert report["sent"] == 20
    assert report["replies"] == 20
    # each message reaches the 2 subscribers of its room
    assert report["expected"] == report["deliveries"] == 4 * 10
    assert (report["loss"], report["duplicates"], report["order_violations"]) == (0, 0, 0)
    assert report["errors"] == {}
    assert report["closes"] == {}
    assert report["p50_ms"] <= report["p99_ms"] <= report["max_ms"]
    server = report["server"]
    assert server["pids"]
    assert server["cpu_s"] >= 0
    assert server["rss_before"] > 0
    assert server["rss_peak"] >= server["rss_after"] > 0
    assert report["server_cpu_us_per_delivery"] is not None
    assert report["server_command"].startswith("hub serve --plugins chat")
    for name, value in LIFTED_LIMITS.items():
        assert report["settings_changed"][name] == value


def test_publishing_to_a_room_nobody_follows_with_idle_connections_reports_cpu_per_publish() -> None:
    report = run_bench("--subscribers", "0", "--idle-extra", "6", "--messages", "10")

    assert report["mode"] == "fanout"
    assert report["idle"] == 6
    assert report["sent"] == report["replies"] == 10
    assert report["expected"] == report["deliveries"] == 0
    assert report["loss"] == 0
    assert report["closes"] == {}
    assert report["server_cpu_us_per_delivery"] is None
    assert report["server_cpu_us_per_publish"] is not None


def fanout_report(**changes: Any) -> FanoutReport:
    values: dict[str, Any] = {
        "protocol": "hub",
        "url": "ws://127.0.0.1:1/ws",
        "subscribers": 2,
        "rooms": 1,
        "publishers": 1,
        "size": 64,
        "rate": 0.0,
        "messages": 3,
        "duration": 0.0,
        "clients": 1,
        "sent": 3,
        "replies": 3,
        "deliveries": 6,
        "expected": 6,
        "elapsed_s": 0.1,
        "send_s": 0.1,
        "deliveries_per_s": 60.0,
        "p50_ms": 1.0,
        "p99_ms": 2.0,
        "max_ms": 3.0,
        "loss": 0,
        "duplicates": 0,
        "order_violations": 0,
        "errors": {},
        "closes": {},
        "client_cpu_s": 0.0,
        "server": None,
        "server_cpu_us_per_delivery": None,
    }
    values.update(changes)
    return FanoutReport(**values)


def test_problems_name_loss_duplicates_order_errors_closes_and_failed_connections() -> None:
    assert problems(fanout_report()) == []
    found = problems(
        fanout_report(loss=2, duplicates=1, order_violations=1, errors={"rate_limited": 1}, closes={"4009": 1})
    )
    assert found == [
        "2 deliveries lost",
        "1 duplicates",
        "1 order violations",
        "error replies: rate_limited: 1",
        "closed by the server: 4009: 1",
    ]
    idle = IdleReport("hub", "ws://127.0.0.1:1/ws", 10, 8, 7, 1, 1.0, 8.0, 1.0, 0, {}, None, None, None)
    assert problems(idle) == ["2 of 10 connections failed", "1 connections did not stay open"]


def test_the_command_prints_the_report_and_exits_1_when_a_hub_on_its_default_limits_refuses_the_flood(
    tmp_path: Path,
) -> None:
    # A real hub on its defaults: chat.send is limited to a few messages per second per user, so a flood of 30
    # gets rate_limited replies, which the report lists as a problem.
    with HubServer(HubSettings(data_dir=tmp_path, plugins=["chat"], log_level="warning")) as hub:
        done = subprocess.run(
            [
                *hub_command(),
                "bench",
                "--url",
                hub.ws_url,
                "--subscribers",
                "2",
                "--messages",
                "30",
                "--timeout",
                "20",
                "--drain-idle",
                "0.5",
            ],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )

    assert done.returncode == 1, done.stdout + done.stderr
    assert "deliveries / expected" in done.stdout  # the table is still printed
    assert "rate_limited" in done.stdout


def test_idle_mode_opens_holds_and_measures_rss_per_connection() -> None:
    report = run_bench("--idle", "20", "--hold", "0.3")

    assert report["mode"] == "idle"
    assert report["opened"] == report["still_open"] == 20
    assert report["connects_per_s"] > 0
    assert report["rss_with_open"] > 0
    assert report["rss_per_connection"] is not None
    assert "HUB_RATE_LIMIT" in report["settings_changed"]


def test_a_remote_server_is_refused_without_allow_remote() -> None:
    result = CliRunner().invoke(cli, ["bench", "--url", "ws://192.0.2.1:8000/ws"])

    assert result.exit_code == 2
    assert "--allow-remote" in result.output
    assert is_loopback("ws://127.0.0.1:1/ws")
    assert is_loopback("ws://[::1]:1/ws")
    assert is_loopback("ws://localhost/")


def test_subscribers_and_round_robin_publishers_give_the_expected_deliveries() -> None:
    assert room_sizes(5, 2) == [3, 2]
    # publisher 0 sends to rooms 0, 1, 0; publisher 1 to rooms 1, 0 -> room 0 three times, room 1 twice
    assert expected_deliveries({0: 3, 1: 2}, subscribers=5, rooms=2) == 3 * 3 + 2 * 2


def test_message_text_has_the_marker_and_the_requested_size() -> None:
    text = message_text(3, 7, 100)

    assert len(text) == 100
    assert text.encode().startswith(MARKER)
    assert text.split()[1:3] == ["3", "7"]


def test_adapters_classify_replies_pings_and_errors() -> None:
    hub = HubAdapter()
    assert hub.classify(b'{"op":"ping"}').reply == '{"op":"pong"}'
    assert hub.classify(b'{"op":"err","id":5,"code":"rate_limited","msg":"x"}').code == "rate_limited"
    assert hub.classify(b'{"op":"ok","id":1,"data":{}}').kind is Kind.JOINED
    sio = SocketIOAdapter()
    assert sio.url("ws://127.0.0.1:9/ws") == "ws://127.0.0.1:9/socket.io/?EIO=4&transport=websocket"
    assert sio.url("ws://127.0.0.1:9/socket.io/") == "ws://127.0.0.1:9/socket.io/?EIO=4&transport=websocket"
    assert sio.classify(b'0{"sid":"a"}').reply == "40"
    assert sio.classify(b"2").reply == "3"
    assert sio.classify(b'431[{"ok":true}]').kind is Kind.JOINED
    assert sio.classify(b"4312[]").kind is Kind.ACK
    assert adapter_for("plain").classify(b'{"type":"ack"}').kind is Kind.ACK
