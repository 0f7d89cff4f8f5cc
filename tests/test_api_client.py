"""hub.api_client.HubAPI against a real hub: answers as models, every failure a HubAPIError with the hub's code
(the API's own, the HTTP edge's, none at all when nobody answers). Cluster-wide calls are in
test_server_api_cluster.py."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

import hub_realtime_plugins.chat
from hub.api_client import HubAPI, HubAPIError
from hub.testing import HubServer

KEY = "client-api-key-0123456789"


@pytest.fixture
def server(hub_server: Callable[..., HubServer]) -> HubServer:
    return hub_server(plugins={"chat": hub_realtime_plugins.chat.Chat}, api_keys=[KEY], max_body_bytes=4096)


async def test_calls_answer_models(server: HubServer, hub_client: Any) -> None:
    alice = await hub_client(server, user="alice")
    await alice.sub("chat:lobby")
    async with HubAPI(server.url + "/", api_key=KEY) as api:
        result = await api.publish("chat:lobby", "chat.send", {"text": "hi"})
        assert result.data["text"] == "hi"
        assert not result.duplicate
        assert (await alice.next_event("chat:lobby", "chat.posted"))["data"] == result.data
        history = await api.history("chat:lobby", since=0, limit=10)
        assert [event.data for event in history.events] == [result.data]
        presence = await api.presence("chat:lobby", limit=1)
        assert [member.user for member in presence.members] == ["alice"]
        assert presence.cursor is None
        assert (await api.clients(user="alice")).clients[0].channels == ["chat:lobby"]
        assert (await api.disconnect(user="nobody")).closed == 0
    token = server.token("ops", scopes=("admin",))
    async with HubAPI(server.url, token=token) as api:
        assert [channel.channel for channel in (await api.channels()).channels] == ["chat:lobby"]
        assert (await api.publish("chat:lobby", "chat.send", {"text": "ops"})).data["author"]["user"] == "ops"


async def test_refusals_carry_the_hubs_code(server: HubServer) -> None:
    async with HubAPI(server.url, api_key=KEY) as api:
        with pytest.raises(HubAPIError) as invalid:
            await api.publish("chat:lobby", "chat.send", {"text": 7})
        assert (invalid.value.status, invalid.value.code) == (422, "invalid")
        assert (
            str(invalid.value)
            == "Invalid data for 'chat.send'. (HTTP 422, invalid): text: Input should be a valid string"
        )
        with pytest.raises(HubAPIError) as unknown:
            await api.history("nowhere:x")
        assert (unknown.value.status, unknown.value.code) == (404, "unknown_channel")
        with pytest.raises(HubAPIError) as edge:  # past max_body_bytes: the HTTP edge refuses before the API
            await api.publish("chat:lobby", "chat.send", {"text": "x" * 5000})
        assert (edge.value.status, edge.value.code) == (413, "too_large")
        assert "4096" in edge.value.msg
    async with HubAPI(server.url, api_key="wrong") as api:
        with pytest.raises(HubAPIError) as refused:
            await api.info()
        assert (refused.value.status, refused.value.code, refused.value.msg) == (
            401,
            "unauthorized",
            "Unknown API key.",
        )
    async with HubAPI(server.url, token=server.token("svc", scopes=("publish",))) as api:
        with pytest.raises(HubAPIError) as scope:
            await api.clients()
        assert (scope.value.status, scope.value.code) == (403, "forbidden")


async def test_a_hub_that_does_not_answer_is_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens on it
    async with HubAPI(f"http://127.0.0.1:{port}", api_key=KEY, timeout=2) as api:
        with pytest.raises(HubAPIError) as unreachable:
            await api.info()
    assert (unreachable.value.status, unreachable.value.code) == (0, "unreachable")
    assert str(unreachable.value).startswith(f"Cannot reach the hub at http://127.0.0.1:{port}")


def test_one_credential_is_needed() -> None:
    with pytest.raises(ValueError, match="api_key or a token"):
        HubAPI("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="api_key or a token"):
        HubAPI("http://127.0.0.1:1", api_key="k", token="t")
