"""Authentication and the Origin allow-list over real sockets: JWTs by subprotocol, query and auth frame; the
close codes for bad, missing and expiring tokens; guests; and refusal of sockets opened by other sites."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import jwt
import pytest
import websockets
from websockets.typing import Origin, Subprotocol

from hub.testing import TEST_SECRET, HubClient, HubServer, ReplyError

LOBBY = "chat:lobby"
OTHER_SECRET = "another-secret-0123456789abcdef-0123456789"  # as long as a real one, but not the hub's


def make_token(secret: str = TEST_SECRET, **claims: Any) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def soon_expiring_token(user: str, seconds: float = 0.6) -> tuple[str, int]:
    """A valid token whose (integer) exp lies between ``seconds`` and ``seconds + 1`` from now."""
    exp = math.ceil(time.time() + seconds)
    return make_token(sub=user, name=user, iat=int(time.time()), exp=exp), exp


async def close_code_on_connect(server: HubServer, *, token: str, via: str) -> tuple[int | None, list[Any]]:
    """Open a socket with ``token`` and return (close code, frames received before the close)."""
    url = server.ws_url
    subprotocols = [Subprotocol("hub.v1")]
    if via == "subprotocol":
        subprotocols.append(Subprotocol("bearer." + token))
    else:
        url += "?token=" + token
    frames: list[Any] = []
    async with websockets.connect(url, subprotocols=subprotocols, compression=None) as ws:
        try:
            while True:
                frames.append(await asyncio.wait_for(ws.recv(), 5))
        except websockets.ConnectionClosed:
            return ws.close_code, frames


# ---- valid tokens ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["subprotocol", "query"])
async def test_valid_token_in_the_handshake(hub_server, hub_client, via):
    server = hub_server(anonymous=False)
    alice = await hub_client(server, token=server.token("alice", name="Alice Liddell"), token_via=via)
    assert alice.hello["user"] == {"user": "alice", "name": "Alice Liddell", "anonymous": False}
    assert alice.ws.subprotocol == "hub.v1"  # the token itself is never echoed as the chosen subprotocol
    await alice.sub(LOBBY)
    posted = await alice.pub(LOBBY, "chat.send", {"text": "hi"})
    assert posted["author"] == {"user": "alice", "name": "Alice Liddell"}


async def test_valid_token_in_the_first_auth_frame(hub_server, hub_client):
    server = hub_server(anonymous=False)
    bob = await hub_client(server, user="bob")
    await bob.sub(LOBBY)
    alice = await hub_client(server)
    assert alice.hello["user"] is None
    reply = await alice.call({"op": "auth", "token": server.token("alice", name="Alice")})
    assert reply == {"user": {"user": "alice", "name": "Alice", "anonymous": False}}
    await alice.sub(LOBBY)
    posted = await alice.pub(LOBBY, "chat.send", {"text": "authenticated by frame"})
    event = await bob.next_event(LOBBY, "chat.posted")
    assert event["data"] == posted
    assert event["data"]["author"] == {"user": "alice", "name": "Alice"}  # identity reached the handler


async def test_subprotocol_token_wins_over_the_query_string(hub_server, hub_client):
    server = hub_server()
    url = f"{server.ws_url}?token={make_token(OTHER_SECRET, sub='mallory', exp=int(time.time()) + 60)}"
    client = await HubClient.connect(url, token=server.token("alice"))
    try:
        assert client.hello["user"]["user"] == "alice"
    finally:
        await client.close()


async def test_identity_from_the_token_reaches_the_handler_and_presence(hub_server, hub_client):
    server = hub_server()
    alice = await hub_client(server, token=server.token("u-42", name="Alice"))
    bob = await hub_client(server, user="bob")
    await bob.sub(LOBBY)
    data = await alice.sub(LOBBY)
    assert {"user": "u-42", "name": "Alice"} in [{"user": m["user"], "name": m["name"]} for m in data["presence"]]
    # the client cannot claim another author: extra fields in data are refused, the token decides
    with pytest.raises(ReplyError) as refused:
        await alice.pub(LOBBY, "chat.send", {"text": "x", "author": {"user": "bob", "name": "bob"}})
    assert refused.value.code == "invalid"
    posted = await alice.pub(LOBBY, "chat.send", {"text": "from alice"})
    assert (await bob.next_event(LOBBY, "chat.posted"))["data"]["author"] == {"user": "u-42", "name": "Alice"}
    assert posted["author"] == {"user": "u-42", "name": "Alice"}


async def test_anonymous_mode_gives_a_generated_guest(hub_server, hub_client):
    server = hub_server()  # anonymous=True by default
    guest = await hub_client(server)
    user = guest.hello["user"]
    assert user["anonymous"] is True
    assert user["user"].startswith("guest-")
    assert len(user["name"].split()) == 3  # "Adjective Animal 42" (hub/guest_names.py)
    other = await hub_client(server)
    assert other.hello["user"]["user"] != user["user"]
    await other.sub(LOBBY)
    await guest.pub(LOBBY, "chat.send", {"text": "hello from a guest"})
    event = await other.next_event(LOBBY, "chat.posted")
    assert event["data"]["author"] == {"user": user["user"], "name": user["name"]}


async def test_a_guest_resumes_the_same_identity_with_its_resume_token(hub_server, hub_client):
    server = hub_server()
    first = await hub_client(server)
    user = first.hello["user"]
    resume = first.hello["resume"]
    posted = await first.pub(LOBBY, "chat.send", {"text": "mine"})
    await first.close()

    again = await hub_client(server, token=resume)  # a reconnect presents it like any token
    assert again.hello["user"] == user
    assert again.hello["resume"]
    edited = await again.pub(LOBBY, "chat.edit", {"id": posted["id"], "text": "still mine"})
    assert edited["text"] == "still mine"  # the author check passes: the same guest
    late = await hub_client(server)
    await late.call({"op": "auth", "token": resume})  # also through an auth frame
    assert (await late.pub(LOBBY, "chat.send", {"text": "x"}))["author"]["user"] == user["user"]


async def test_signed_in_users_get_no_resume_token_and_guest_tokens_grant_no_scopes(hub_server, hub_client):
    server = hub_server()
    alice = await hub_client(server, user="alice")
    assert "resume" not in alice.hello
    guest = await hub_client(server)
    claims = jwt.decode(guest.hello["resume"], TEST_SECRET, algorithms=["HS256"])
    assert claims["guest"] is True
    assert claims["sub"] == guest.hello["user"]["user"]


async def test_a_guest_resume_token_is_refused_when_guests_are_not_allowed(hub_server, hub_client):
    open_hub = hub_server()
    resume = (await hub_client(open_hub)).hello["resume"]
    closed_hub = hub_server(anonymous=False)
    code, frames = await close_code_on_connect(closed_hub, token=resume, via="subprotocol")
    assert code == 4001
    assert frames == []


async def test_guest_can_upgrade_with_an_auth_frame(hub_server, hub_client):
    server = hub_server()
    guest = await hub_client(server)
    assert guest.hello["user"]["anonymous"] is True
    await guest.call({"op": "auth", "token": server.token("carol")})
    posted = await guest.pub(LOBBY, "chat.send", {"text": "now carol"})
    assert posted["author"] == {"user": "carol", "name": "carol"}


async def test_switching_user_while_subscribed_is_forbidden(hub_server, hub_client):
    server = hub_server()
    alice = await hub_client(server, user="alice")
    await alice.sub(LOBBY)
    with pytest.raises(ReplyError) as refused:
        await alice.call({"op": "auth", "token": server.token("bob")})
    assert refused.value.code == "forbidden"
    assert (await alice.pub(LOBBY, "chat.send", {"text": "still alice"}))["author"]["user"] == "alice"


# ---- bad tokens: 4001 ----------------------------------------------------------------------------------------

BAD_TOKENS = {
    "expired": lambda: make_token(sub="alice", exp=int(time.time()) - 30),
    "forged": lambda: make_token(OTHER_SECRET, sub="alice", exp=int(time.time()) + 3600),
    "without exp": lambda: make_token(sub="alice"),
    "without sub": lambda: make_token(exp=int(time.time()) + 3600),
    "empty sub": lambda: make_token(sub="", exp=int(time.time()) + 3600),
    "alg none": lambda: jwt.encode({"sub": "alice", "exp": int(time.time()) + 3600}, None, algorithm="none"),
    "garbage": lambda: "not-a-jwt",
}


@pytest.mark.parametrize("make", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
async def test_bad_token_in_the_handshake_closes_4001(hub_server, hub_client, make):
    server = hub_server()  # even with guests allowed, a bad token is not silently downgraded to a guest
    observer = await hub_client(server, user="observer")
    await observer.sub(LOBBY)
    for via in ("subprotocol", "query"):
        code, frames = await close_code_on_connect(server, token=make(), via=via)
        assert code == 4001, via
        assert frames == [], via  # no hello: the connection never got a session
    assert len(server.app.state.hub.sessions) == 1  # only the observer
    poster = await hub_client(server, user="poster")
    posted = await poster.pub(LOBBY, "chat.send", {"text": "unaffected"})
    assert (await observer.next_event(LOBBY, "chat.posted"))["data"] == posted


@pytest.mark.parametrize("make", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
async def test_bad_token_in_an_auth_frame_closes_4001(hub_server, hub_client, make):
    server = hub_server(anonymous=False)
    client = await hub_client(server)
    await client.send_raw(f'{{"op":"auth","id":1,"token":"{make()}"}}')
    code, _reason = await client.closed()
    assert code == 4001


# ---- no token with guests off ------------------------------------------------------------------------------


async def test_without_token_requests_are_unauthorized_until_auth(hub_server, hub_client):
    server = hub_server(anonymous=False)
    client = await hub_client(server)
    assert client.hello["user"] is None
    for frame in (
        {"op": "sub", "ch": LOBBY},
        {"op": "pub", "ch": LOBBY, "type": "chat.send", "data": {"text": "x"}},
        {"op": "presence", "ch": LOBBY},
        {"op": "unsub", "ch": LOBBY},
    ):
        reply = await client.request(frame)
        assert (reply["op"], reply["code"]) == ("err", "unauthorized"), frame
    assert (await client.request({"op": "ping"}))["op"] == "pong"  # ping needs no identity
    await client.call({"op": "auth", "token": server.token("dave")})
    await client.sub(LOBBY)


async def test_no_auth_within_auth_timeout_closes_4002(hub_server, hub_client):
    server = hub_server(anonymous=False, auth_timeout=0.5)
    idle = await hub_client(server)
    assert idle.hello["user"] is None
    code, _reason = await idle.closed()
    assert code == 4002


async def test_auth_in_time_cancels_the_auth_timeout(hub_server, hub_client):
    server = hub_server(anonymous=False, auth_timeout=0.5, heartbeat_interval=0.1, heartbeat_timeout=5.0)
    client = await hub_client(server)
    await client.call({"op": "auth", "token": server.token("erin")})
    # past the auth timeout (10 heartbeat pings = 1 s) the socket is still open and working
    for _ in range(10):
        while (await client.next_unsolicited())["op"] != "ping":
            pass
    assert (await client.request({"op": "ping"}))["op"] == "pong"
    assert client.ws.close_code is None


# ---- token expiring during the session: 4003 ----------------------------------------------------------------


@pytest.mark.parametrize("via", ["subprotocol", "auth frame"])
async def test_token_expiring_during_the_session_closes_4003(hub_server, hub_client, via):
    server = hub_server()
    token, exp = soon_expiring_token("frank")
    if via == "subprotocol":
        client = await hub_client(server, token=token)
    else:
        client = await hub_client(server)
        await client.call({"op": "auth", "token": token})
    assert (await client.pub(LOBBY, "chat.send", {"text": "before expiry"}))["author"]["user"] == "frank"
    code, _reason = await client.closed(timeout=5)
    assert code == 4003
    assert time.time() >= exp - 0.05  # not before the token's exp (give or take the timer's resolution)


async def test_refreshing_the_token_keeps_the_session(hub_server, hub_client):
    server = hub_server()
    token, exp = soon_expiring_token("gina")
    client = await hub_client(server, token=token)
    await client.call({"op": "auth", "token": server.token("gina", ttl=3600)})
    await asyncio.sleep(max(0.0, exp - time.time()) + 0.5)  # time must pass the first token's exp
    assert client.ws.close_code is None
    assert (await client.pub(LOBBY, "chat.send", {"text": "refreshed"}))["author"]["user"] == "gina"


# ---- Origin allow-list ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:1"])
async def test_socket_from_another_origin_is_refused_with_403(hub_server, hub_client, origin):
    server = hub_server(allowed_origins=["https://app.example"])
    observer = await hub_client(server, user="observer")
    await observer.sub(LOBBY)
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(server.ws_url, origin=Origin(origin), subprotocols=[Subprotocol("hub.v1")])
    assert refused.value.response.status_code == 403
    assert len(server.app.state.hub.sessions) == 1  # only the observer
    posted = await observer.pub(LOBBY, "chat.send", {"text": "unaffected"})
    assert (await observer.next_event(LOBBY, "chat.posted"))["data"] == posted


async def test_same_origin_allowed_origin_and_no_origin_are_accepted(hub_server, hub_client):
    server = hub_server(allowed_origins=["https://app.example"])
    same = await hub_client(server, user="same", origin=f"http://127.0.0.1:{server.port}")
    allowed = await hub_client(server, user="allowed", origin="https://app.example")
    allowed_slash = await hub_client(server, user="slash", origin="https://APP.example/")
    no_origin = await hub_client(server, user="none")
    for client in (same, allowed, allowed_slash, no_origin):
        await client.sub(LOBBY)
    posted = await same.pub(LOBBY, "chat.send", {"text": "all here"})
    for client in (same, allowed, allowed_slash, no_origin):
        assert (await client.next_event(LOBBY, "chat.posted"))["data"] == posted
