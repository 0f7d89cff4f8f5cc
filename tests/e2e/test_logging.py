"""The server's logs never show a token: uvicorn logs every socket's path with its query string, and a token may
travel there (browsers cannot set headers on a WebSocket). hub_server runs uvicorn in a thread of this process,
so its log records are captured here."""

from __future__ import annotations

import logging

import httpx
import pytest
import websockets
from websockets.typing import Origin, Subprotocol


def assert_not_logged(caplog: pytest.LogCaptureFixture, token: str) -> None:
    signature = token.rsplit(".", 1)[-1]  # the secret-bearing part, in case the rest were cut or escaped
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        assert token not in text, f"token in log record {record.name}: {text!r}"
        assert signature not in text, f"token signature in log record {record.name}: {text!r}"
    assert signature not in caplog.text


def messages(caplog: pytest.LogCaptureFixture, needle: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if needle in r.getMessage()]


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG], ids=["info", "debug"])
async def test_query_string_token_never_appears_in_the_logs(hub_server, hub_client, server_logs, level):
    server = hub_server()
    logs = server_logs(level)
    token = server.token("alice")
    client = await hub_client(server, token=token, token_via="query")
    assert client.hello["user"]["user"] == "alice"
    await client.sub("chat:lobby")
    await client.pub("chat:lobby", "chat.send", {"text": "hello"})
    await client.close()

    accepted = messages(logs, "[accepted]")
    assert accepted, "uvicorn's accepted-line was not captured; the test would prove nothing"
    assert any('"WebSocket /ws' in line for line in accepted), accepted
    assert_not_logged(logs, token)


async def test_rejected_query_token_never_appears_in_the_logs(hub_server, server_logs):
    server = hub_server()
    logs = server_logs(logging.INFO)
    token = server.token("alice", ttl=-60)  # expired: the hub closes with 4001 right after accepting
    async with websockets.connect(f"{server.ws_url}?token={token}", subprotocols=[Subprotocol("hub.v1")]) as ws:
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4001
    assert messages(logs, "[accepted]")
    assert_not_logged(logs, token)


async def test_refused_origin_with_a_query_token_never_logs_it(hub_server, server_logs):
    server = hub_server()
    logs = server_logs(logging.INFO)
    token = server.token("alice")
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(f"{server.ws_url}?token={token}", origin=Origin("http://evil.example"))
    refused = messages(logs, '"WebSocket /ws')
    assert any(line.endswith(" 403") for line in refused), refused
    assert_not_logged(logs, token)


async def test_http_request_with_a_query_token_logs_the_path_only(hub_server, server_logs):
    server = hub_server()
    logs = server_logs(logging.INFO)
    token = server.token("alice")
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/healthz", params={"token": token})).status_code == 200
        assert (await http.get("/api/info", params={"x": "1", "token": token})).status_code == 200
    lines = [r.getMessage() for r in logs.records if r.name == "hub.access"]
    assert any('"GET /healthz"' in line and " 200 " in line for line in lines), lines
    assert any('"GET /api/info"' in line for line in lines), lines
    assert_not_logged(logs, token)


async def test_subprotocol_token_never_appears_in_the_logs_even_at_debug(hub_server, hub_client, server_logs):
    server = hub_server()
    logs = server_logs(logging.DEBUG)
    token = server.token("alice")
    client = await hub_client(server, token=token)  # "bearer.<token>" next to "hub.v1"
    assert client.hello["user"]["user"] == "alice"
    await client.close()
    assert messages(logs, "[accepted]")
    assert_not_logged(logs, token)
