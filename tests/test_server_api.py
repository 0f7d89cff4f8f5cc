"""The server API (/api/v1) on one real hub: publishing through a plugin's model, policies and handler,
credentials before the body, bounded bodies, idempotency, presence, history, channels, clients, disconnect, and
the OpenAPI page. Cluster-wide behaviour (two nodes on Redis) is in test_server_api_cluster.py."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, Field

import hub_realtime_plugins.chat
import hub_realtime_plugins.notifications
from hub import Channel, Context, Disconnect, Hub, HubError, Identity, Plugin, hookimpl
from hub.testing import HubServer, ReplyError

KEY = "server-api-key-0123456789"
AUTH = {"X-API-Key": KEY}


class Echo(BaseModel):
    text: str = Field(max_length=100)


class Said(BaseModel):
    text: str
    client: str
    user: str


class Nothing(BaseModel):
    pass


class Probe(Plugin):
    """``probe:<room>``: a handler that replies to its caller and returns data, one that refuses with its own code,
    one with a bug, one that disconnects; a hook that refuses "mallory"."""

    def __init__(self, hub: Hub) -> None:
        super().__init__(hub)
        self.channel = probe = Channel("probe")
        probe.event("probe.said", Said)
        probe.on("probe.echo", Echo)(self.echo)
        probe.on("probe.refuse", Nothing)(self.refuse)
        probe.on("probe.crash", Nothing)(self.crash)
        probe.on("probe.kick", Nothing)(self.kick)

    @hookimpl
    def hub_channels(self) -> list[Channel]:
        return [self.channel]

    @hookimpl
    def hub_authorize(self, identity: Identity, action: str, channel: str, message_type: str | None) -> bool | None:
        return False if identity.user == "mallory" and channel.startswith("probe:") else None

    async def echo(self, ctx: Context, msg: Echo) -> Said:
        said = Said(text=msg.text, client=ctx.client_id, user=ctx.identity.user)
        ctx.reply("probe.said", said)
        await ctx.publish("probe.said", said)
        return said

    async def refuse(self, ctx: Context, msg: Nothing) -> None:
        raise HubError("out_of_stock", "None left.")

    async def crash(self, ctx: Context, msg: Nothing) -> None:
        raise RuntimeError("a bug in the probe")

    async def kick(self, ctx: Context, msg: Nothing) -> None:
        raise Disconnect(4501, "Go away.")


@pytest.fixture
def server(hub_server: Callable[..., HubServer]) -> HubServer:
    plugins = {
        "chat": hub_realtime_plugins.chat.Chat,
        "notifications": hub_realtime_plugins.notifications.Notifications,
        "probe": Probe,
    }
    return hub_server(plugins=plugins, api_keys=[KEY], presence_list_limit=10)


@pytest.fixture
async def http(server: HubServer) -> Any:
    async with httpx.AsyncClient(base_url=server.url + "/api/v1", timeout=10) as client:
        yield client


def send(channel: str, message_type: str, data: Any) -> dict[str, Any]:
    return {"channel": channel, "type": message_type, "data": data}


# ---- publishing -------------------------------------------------------------------------------------------


async def test_a_publish_reaches_subscribers_and_answers_the_handlers_reply(
    server: HubServer, http: httpx.AsyncClient, hub_client: Any
) -> None:
    alice = await hub_client(server, user="alice")
    await alice.sub("chat:lobby")
    reply = await http.post("/publish", json=send("chat:lobby", "chat.send", {"text": "Deploy done"}), headers=AUTH)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["data"]["text"] == "Deploy done"
    assert answer["data"]["author"] == {"user": "api-key", "name": "API key"}
    event = await alice.next_event("chat:lobby", "chat.posted")
    assert event["data"] == answer["data"]

    # a token's user publishes as that user; replies (ctx.reply) come back in the answer
    token = server.token("backend", name="Backend", scopes=("publish",))
    reply = await http.post(
        "/publish", json=send("probe:x", "probe.echo", {"text": "hi"}), headers={"Authorization": f"Bearer {token}"}
    )
    assert reply.status_code == 200, reply.text
    said = reply.json()["data"]
    assert said["user"] == "backend"
    assert said["client"].startswith("api-")
    assert reply.json()["replies"] == [{"type": "probe.said", "data": said}]


async def test_refused_publishes_are_4xx_with_a_code_and_reach_nobody(
    server: HubServer, http: httpx.AsyncClient, hub_client: Any, server_logs: Any
) -> None:
    logs = server_logs(logging.WARNING)
    alice = await hub_client(server, user="alice")
    await alice.sub("chat:lobby")
    mallory = {"Authorization": f"Bearer {server.token('mallory', scopes=('publish',))}"}
    refused = [
        (send("chat:lobby", "chat.send", {"text": 5}), AUTH, 422, "invalid"),
        (send("chat:lobby", "chat.send", {"text": "x", "extra": 1}), AUTH, 422, "invalid"),
        (send("chat:lobby", "chat.shout", {"text": "x"}), AUTH, 404, "unknown_type"),
        (send("nowhere:lobby", "nowhere.send", {}), AUTH, 404, "unknown_channel"),
        (send("chat:two words", "chat.send", {"text": "x"}), AUTH, 400, "bad_channel"),
        (send("notifications:alice", "notifications.read_all", {}), AUTH, 403, "forbidden"),  # the channel's policy
        (send("probe:x", "probe.echo", {"text": "x"}), mallory, 403, "forbidden"),  # a hub_authorize hook
        (send("probe:x", "probe.refuse", {}), AUTH, 400, "out_of_stock"),  # the handler's own code
        (send("probe:x", "probe.kick", {}), AUTH, 400, "refused"),
        ({"channel": "chat:lobby"}, AUTH, 422, "invalid"),  # no type
        ({"channel": "chat:lobby", "type": "chat.send", "data": {}, "more": 1}, AUTH, 422, "invalid"),
    ]
    for body, headers, status, code in refused:
        reply = await http.post("/publish", json=body, headers=headers)
        assert (reply.status_code, reply.json()["code"]) == (status, code), (body, reply.text)
        assert reply.json()["msg"]
    invalid = (await http.post("/publish", json=refused[0][0], headers=AUTH)).json()
    assert invalid["details"] == [{"loc": ["text"], "msg": "Input should be a valid string", "type": "string_type"}]
    for text in (b'{"channel": NaN}', b"[", b'{"channel": "chat:lobby", "type": "chat.send", "data": 1e400}'):
        reply = await http.post("/publish", content=text, headers=AUTH | {"Content-Type": "application/json"})
        assert (reply.status_code, reply.json()["code"]) == (422, "invalid"), reply.text
    await alice.no_event("chat:lobby", "chat.posted")
    assert "Traceback" not in logs.text

    # a plugin's bug: 500 with a sentence, logged with its traceback; the hub goes on
    reply = await http.post("/publish", json=send("probe:x", "probe.crash", {}), headers=AUTH)
    assert (reply.status_code, reply.json()) == (
        500,
        {"code": "internal", "msg": "Internal error; it has been logged."},
    )
    assert "a bug in the probe" in logs.text
    reply = await http.post("/publish", json=send("chat:lobby", "chat.send", {"text": "still here"}), headers=AUTH)
    assert reply.status_code == 200
    assert (await alice.next_event("chat:lobby", "chat.posted"))["data"]["text"] == "still here"


async def test_the_same_idempotency_key_publishes_once(
    server: HubServer, http: httpx.AsyncClient, hub_client: Any
) -> None:
    alice = await hub_client(server, user="alice")
    await alice.sub("chat:lobby")
    body = send("chat:lobby", "chat.send", {"text": "once"})
    first = await http.post("/publish", json=body, headers=AUTH | {"Idempotency-Key": "deploy-42"})
    again = await http.post("/publish", json=body, headers=AUTH | {"Idempotency-Key": "deploy-42"})
    assert first.status_code == again.status_code == 200
    assert first.json()["data"]["text"] == "once"
    assert again.json() == {"data": {"duplicate": True}, "replies": []}
    await alice.next_event("chat:lobby", "chat.posted")
    await alice.no_event("chat:lobby", "chat.posted")
    # like a socket mid: per user and channel, and the same key on a socket pub of that user is the same publish
    other = await http.post(
        "/publish", json=send("chat:other", "chat.send", {"text": "x"}), headers=AUTH | {"Idempotency-Key": "deploy-42"}
    )
    assert other.json()["data"] != {"duplicate": True}
    for bad in (b"has space", b"x" * 65, "é".encode()):
        reply = await http.post(
            "/publish", json=body, headers=[(b"X-API-Key", KEY.encode()), (b"Idempotency-Key", bad)]
        )
        assert (reply.status_code, reply.json()["code"]) == (422, "invalid"), bad


async def test_the_token_path_shares_mids_with_the_socket(
    server: HubServer, http: httpx.AsyncClient, hub_client: Any
) -> None:
    token = server.token("bob", scopes=("publish",))
    bob = await hub_client(server, token=token)
    await bob.sub("chat:lobby")
    await bob.pub("chat:lobby", "chat.send", {"text": "from the socket"}, mid="m-1")
    reply = await http.post(
        "/publish",
        json=send("chat:lobby", "chat.send", {"text": "from the API"}),
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "m-1"},
    )
    assert reply.json()["data"] == {"duplicate": True}


# ---- credentials and bodies -------------------------------------------------------------------------------


async def test_every_endpoint_wants_credentials_and_the_right_scope(server: HubServer, http: httpx.AsyncClient) -> None:
    calls = [
        ("POST", "/publish", send("chat:lobby", "chat.send", {"text": "x"})),
        ("GET", "/channels", None),
        ("GET", "/channels/chat:lobby/presence", None),
        ("GET", "/channels/chat:lobby/presence/count", None),
        ("GET", "/channels/chat:lobby/history", None),
        ("GET", "/clients", None),
        ("POST", "/disconnect", {"user": "nobody"}),
        ("GET", "/info", None),
    ]
    publisher = {"Authorization": f"Bearer {server.token('svc', scopes=('publish',))}"}
    admin = {"Authorization": f"Bearer {server.token('ops', scopes=('admin',))}"}
    user = {"Authorization": f"Bearer {server.token('alice')}"}
    for method, path, body in calls:
        for headers, status in (
            ({}, 401),
            ({"X-API-Key": "wrong"}, 401),
            ({"Authorization": "Bearer wrong"}, 401),
            ({"Authorization": "Bearer a.b.c"}, 401),
            (user, 403),
            (publisher, 200 if path == "/publish" else 403),
            (admin, 200),
            (AUTH, 200),
            ({"Authorization": f"Bearer {KEY}"}, 200),
        ):
            reply = await http.request(method, path, json=body, headers=headers)
            assert reply.status_code == status, (method, path, headers, reply.text)
            if status == 401:
                assert reply.json()["code"] == "unauthorized"
                assert reply.headers["www-authenticate"] == "Bearer"
            if status == 403:
                assert reply.json()["code"] == "forbidden"


def status_before_the_body(port: int, head: str) -> str:
    """Send only a request's head on a plain socket and read the answer's status line: it can only come if the
    hub answered without the body (else the read times out)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head.encode())
        answer = sock.recv(65536).decode("latin-1")
    return answer.split("\r\n", 1)[0]


@pytest.mark.parametrize("path", ["/api/v1/publish", "/api/v1/disconnect"])
async def test_credentials_are_checked_before_the_body_is_read(server: HubServer, path: str) -> None:
    """A request announcing a 900 KB body, of which not one byte is sent: the hub answers 401 at once, so it never
    waited for (read) the body. With a valid key, the same request gets 413 (past max_frame_bytes) just as soon."""
    for key, status in (("wrong", "401"), (None, "401"), (KEY, "413")):
        head = (
            f"POST {path} HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\nContent-Length: 900000\r\n"
            + (f"X-API-Key: {key}\r\n" if key else "")
            + "\r\n"
        )
        status_line = await asyncio.to_thread(status_before_the_body, server.port, head)
        assert status_line.split(" ")[1] == status, (key, status_line)


async def test_bodies_are_bounded(server: HubServer, http: httpx.AsyncClient) -> None:
    big = send("chat:lobby", "chat.send", {"text": "x" * (server.settings.max_frame_bytes + 10)})
    reply = await http.post("/publish", json=big, headers=AUTH)
    assert (reply.status_code, reply.json()["code"]) == (413, "too_large")

    async def chunks() -> Any:  # no Content-Length (chunked): the limit holds while reading
        yield b'{"user": "' + b"x" * 5000 + b'"}'

    reply = await http.post("/disconnect", content=chunks(), headers=AUTH | {"Content-Type": "application/json"})
    assert (reply.status_code, reply.json()["code"]) == (413, "too_large")


# ---- reading ----------------------------------------------------------------------------------------------


async def test_presence_pages_and_counts(server: HubServer, http: httpx.AsyncClient, hub_client: Any) -> None:
    clients = [await hub_client(server, user=name) for name in ("alice", "bob", "carol")]
    for client in clients:
        await client.sub("chat:lobby")
    first = (await http.get("/channels/chat:lobby/presence", params={"limit": 2}, headers=AUTH)).json()
    assert first["count"] == 3
    assert len(first["members"]) == 2
    assert first["cursor"]
    rest = await http.get("/channels/chat:lobby/presence", params={"cursor": first["cursor"]}, headers=AUTH)
    assert rest.json()["cursor"] is None
    users = {member["user"] for member in first["members"] + rest.json()["members"]}
    assert users == {"alice", "bob", "carol"}
    count = await http.get("/channels/chat:lobby/presence/count", headers=AUTH)
    assert count.json() == {"channel": "chat:lobby", "count": 3}
    empty = await http.get("/channels/chat:empty/presence", headers=AUTH)
    assert empty.json() == {"channel": "chat:empty", "members": [], "count": 0, "cursor": None}
    for path, status, code in (
        ("/channels/probe:x/presence", 400, "bad_request"),  # a channel without presence
        ("/channels/nowhere:x/presence/count", 404, "unknown_channel"),
        ("/channels/chat:lobby/presence?limit=0", 422, "invalid"),
        ("/channels/chat:lobby/presence?limit=11", 200, None),  # capped at presence_list_limit
    ):
        reply = await http.get(path, headers=AUTH)
        assert reply.status_code == status, (path, reply.text)
        assert code is None or reply.json()["code"] == code


async def test_history_from_an_offset(server: HubServer, http: httpx.AsyncClient) -> None:
    for n in range(5):
        await http.post("/publish", json=send("chat:log", "chat.send", {"text": f"m{n}"}), headers=AUTH)
    latest = (await http.get("/channels/chat:log/history", params={"limit": 2}, headers=AUTH)).json()
    assert [event["offset"] for event in latest["events"]] == [4, 5]
    assert latest["offset"] == 5
    assert latest["epoch"]
    assert latest["truncated"] is False
    page = (await http.get("/channels/chat:log/history", params={"since": 1, "limit": 2}, headers=AUTH)).json()
    assert [(e["offset"], e["type"], e["data"]["text"]) for e in page["events"]] == [
        (2, "chat.posted", "m1"),
        (3, "chat.posted", "m2"),
    ]
    assert page["epoch"] == latest["epoch"]
    for path, status, code in (
        ("/channels/probe:x/history", 400, "bad_request"),  # not recoverable
        ("/channels/chat:log/history?since=-1", 422, "invalid"),
        ("/channels/chat:log/history?limit=1001", 422, "invalid"),
    ):
        reply = await http.get(path, headers=AUTH)
        assert (reply.status_code, reply.json()["code"]) == (status, code), path


async def test_channels_clients_and_disconnect(server: HubServer, http: httpx.AsyncClient, hub_client: Any) -> None:
    alice_one = await hub_client(server, user="alice")
    alice_two = await hub_client(server, user="alice")
    bob = await hub_client(server, user="bob")
    for client, channels in ((alice_one, ["chat:a", "chat:b"]), (alice_two, ["chat:a"]), (bob, ["chat:a", "probe:z"])):
        for channel in channels:
            await client.sub(channel)
    listed = (await http.get("/channels", headers=AUTH)).json()
    assert [(c["channel"], c["subscribers"], c["nodes"]) for c in listed["channels"]] == [
        ("chat:a", 3, 1),
        ("chat:b", 1, 1),
        ("probe:z", 1, 1),
    ]
    assert listed["cursor"] is None
    assert listed["missing_nodes"] == []
    first = (await http.get("/channels", params={"limit": 2}, headers=AUTH)).json()
    assert [c["channel"] for c in first["channels"]] == ["chat:a", "chat:b"]
    assert first["cursor"] == "chat:b"
    rest = (await http.get("/channels", params={"limit": 2, "cursor": first["cursor"]}, headers=AUTH)).json()
    assert [c["channel"] for c in rest["channels"]] == ["probe:z"]
    assert rest["cursor"] is None
    only = (await http.get("/channels", params={"prefix": "probe:"}, headers=AUTH)).json()
    assert [c["channel"] for c in only["channels"]] == ["probe:z"]

    everyone = (await http.get("/clients", headers=AUTH)).json()
    assert everyone["total"] == 3
    assert [c["user"] for c in everyone["clients"]] == ["alice", "alice", "bob"]  # oldest first
    alices = (await http.get("/clients", params={"user": "alice"}, headers=AUTH)).json()
    assert alices["total"] == 2
    first_alice = alices["clients"][0]
    assert first_alice["channels"] == ["chat:a", "chat:b"]
    assert first_alice["address"].startswith("127.0.0.1:")
    assert first_alice["node"] == (await http.get("/info", headers=AUTH)).json()["node"]

    closed = await http.post("/disconnect", json={"client": first_alice["client"]}, headers=AUTH)
    assert closed.json() == {"closed": 1, "missing_nodes": []}
    assert await alice_one.closed() == (4011, "Disconnected by the server.")
    closed = await http.post("/disconnect", json={"user": "alice", "code": 4500, "reason": "Banned."}, headers=AUTH)
    assert closed.json()["closed"] == 1
    assert await alice_two.closed() == (4500, "Banned.")
    await bob.sub("chat:c")  # bob's connection is still open
    for body, status, code in (
        ({}, 400, "bad_request"),
        ({"user": "x", "code": 1000}, 422, "invalid"),
        ({"user": "x", "code": 5000}, 422, "invalid"),
        ({"user": ""}, 422, "invalid"),
        ({"user": "x", "ban": True}, 422, "invalid"),
    ):
        reply = await http.post("/disconnect", json=body, headers=AUTH)
        assert (reply.status_code, reply.json()["code"]) == (status, code), body


async def test_info_lists_this_node(server: HubServer, http: httpx.AsyncClient, hub_client: Any) -> None:
    client = await hub_client(server, user="alice")
    await client.sub("chat:lobby")
    info = (await http.get("/info", headers=AUTH)).json()
    assert info["plugins"] == ["chat", "notifications", "probe"]
    assert set(info["namespaces"]) >= {"chat", "notifications", "probe"}
    [node] = info["nodes"]
    assert node["node"] == info["node"]
    assert node["reachable"] is True
    assert (node["connections"], node["subscriptions"], node["channels"]) == (1, 1, 1)


async def test_the_openapi_page_describes_the_server_api(server: HubServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/api/docs")).status_code == 200
        spec = (await http.get("/openapi.json")).json()
    paths = {path for path in spec["paths"] if path.startswith("/api/v1/")}
    assert paths == {
        "/api/v1/publish",
        "/api/v1/channels",
        "/api/v1/channels/{channel}/presence",
        "/api/v1/channels/{channel}/presence/count",
        "/api/v1/channels/{channel}/history",
        "/api/v1/clients",
        "/api/v1/disconnect",
        "/api/v1/info",
    }
    assert set(spec["components"]["securitySchemes"]) == {"apiKey", "bearer"}
    publish = spec["paths"]["/api/v1/publish"]["post"]
    assert publish["requestBody"]["content"]["application/json"]["schema"]["required"] == ["channel", "type"]
    assert {"apiKey": []} in publish["security"]
    assert {"bearer": []} in publish["security"]
    assert publish["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith("/ApiError")
    assert "idempotency-key" in [p["name"].lower() for p in publish["parameters"]]
    assert "authorization" not in [p["name"].lower() for p in publish["parameters"]]  # the security scheme says it
    for name in ("ChannelPage", "PresencePage", "HistoryPage", "ClientPage", "DisconnectResult", "ClusterInfo"):
        assert name in spec["components"]["schemas"]


async def test_a_socket_client_cannot_tell_an_api_publish_apart(server: HubServer, hub_client: Any) -> None:
    """The event an API publish makes is the one a socket pub makes: same frame shape, same offsets."""
    alice = await hub_client(server, user="alice")
    await alice.sub("chat:mixed")
    await alice.pub("chat:mixed", "chat.send", {"text": "socket"})
    async with httpx.AsyncClient(base_url=server.url) as http:
        await http.post("/api/v1/publish", json=send("chat:mixed", "chat.send", {"text": "api"}), headers=AUTH)
    socket_event = await alice.next_event("chat:mixed", "chat.posted")
    api_event = await alice.next_event("chat:mixed", "chat.posted")
    assert set(socket_event) == set(api_event)
    assert api_event["offset"] == socket_event["offset"] + 1
    with pytest.raises(ReplyError):
        await alice.pub("chat:mixed", "chat.send", {"text": 1})


async def test_presence_members_carry_their_display_name_and_metadata(
    server: HubServer, http: httpx.AsyncClient, hub_client: Any
) -> None:
    first = await hub_client(server, token=server.token("a-1", name="Alice"))
    second = await hub_client(server, token=server.token("a-2", name="Alice"))
    await first.call({"op": "sub", "ch": "chat:named", "meta": {"away": True}})
    await second.call({"op": "sub", "ch": "chat:named"})
    page = (await http.get("/channels/chat:named/presence", headers=AUTH)).json()
    members = {member["user"]: member for member in page["members"]}
    assert (members["a-1"]["display"], members["a-1"]["meta"]) == ("Alice", {"away": True})
    assert (members["a-2"]["display"], members["a-2"]["meta"]) == ("Alice (2)", None)
    assert members["a-2"]["name"] == "Alice"
