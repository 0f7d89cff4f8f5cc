"""docedit access over real sockets: a non-member learns nothing of a private document (no presence, no
joined/left, the same answer as for a missing one); withdrawn access ends live /ws subscriptions (an ``unsub``
notice, then nothing) and closes /yjs sockets (4003), on one node and across two nodes on one Redis; a
deleted document ends them too; who may create documents (HUB_DOCEDIT_CREATE); and /yjs checks tokens as /ws
does (a key the JWKS published after start is fetched)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import pytest
import websockets
from cryptography.hazmat.primitives.asymmetric import rsa
from pycrdt import Doc, Text

from hub import Identity
from hub.testing import HubClient, HubServer, ReplyError
from hub_realtime_plugins.docedit import Docedit, DoceditSettings
from hub_realtime_plugins.docedit.documents import Documents
from hub_realtime_plugins.docedit.yprotocol import SyncKind, parse_frame
from tests.e2e.docedit_provider import DocProvider, wait_until
from tests.e2e.test_tokens import JwksServer, jwk
from tests.e2e.test_tokens import token as signed_token

FAST = {"rate_limit": 5000.0, "rate_burst": 5000}
NO_DOC = "There is no document {!r} open to you."


def plugin(**overrides: Any) -> Any:
    values: dict[str, Any] = {"idle_check_interval": 0.1, "idle_timeout": 0.3, "meta_touch_interval": 0.05}
    values.update(overrides)
    return lambda hub: Docedit(hub, settings=DoceditSettings(**values))


@pytest.fixture
def server(hub_server):
    return hub_server(plugins={"docedit": plugin()}, **FAST)


async def provider(hub_client, server, user: str, doc_id: str) -> DocProvider:
    replica = DocProvider(doc_id)
    await replica.attach(await hub_client(server, user=user))
    return replica


def running_documents(server: HubServer) -> Documents:
    """The documents of the docedit object ``server``'s hub built."""
    plugin = server.app.state.hub.plugins.objects["docedit"]
    assert isinstance(plugin, Docedit)
    return plugin.documents


async def refusal(call: Any) -> ReplyError:
    with pytest.raises(ReplyError) as refused:
        await call
    return refused.value


async def next_unsub(client: HubClient, timeout: float = 5.0) -> dict[str, Any]:
    """The next server-sent ``unsub`` notice (pings and other unsolicited frames are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            frame = await client.unsolicited.get()
            if frame.get("op") == "unsub":
                return frame


def unsub_frames(client: HubClient) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while not client.unsolicited.empty():
        frame = client.unsolicited.get_nowait()
        if frame.get("op") == "unsub":
            frames.append(frame)
    return frames


class SilentYjs:
    """A y-websocket socket that never sends a byte: it applies the updates it is sent and records the close."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ydoc: Doc[Any] = Doc()
        self.frames = 0
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, server, doc_id: str, user: str | None = None, *, token: str | None = None) -> SilentYjs:
        token = server.token(user) if user else token
        query = f"?token={token}" if token else ""
        return cls(await websockets.connect(f"ws://127.0.0.1:{server.port}/yjs/{doc_id}{query}"))

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):  # closed() reports the code
            async for data in self.ws:
                self.frames += 1
                frame = parse_frame(data)
                if frame.sync is not None and frame.sync.kind is not SyncKind.STEP1:
                    self.ydoc.apply_update(frame.sync.payload)

    @property
    def content(self) -> str:
        return str(self.ydoc.get("content", type=Text))

    async def closed(self) -> tuple[int | None, str]:
        await asyncio.wait_for(self.ws.wait_closed(), 5)
        return self.ws.close_code, self.ws.close_reason or ""


# ---- a non-member learns nothing ----------------------------------------------------------------------------


async def test_a_non_member_sees_no_members_and_no_member_sees_the_attempt(hub_server, hub_client):
    server = hub_server(plugins={"docedit": plugin(auto_create=False)}, **FAST)
    owner = await hub_client(server, user="olga")
    await owner.pub("docedit:private", "docedit.create", {"title": "Plans", "public": "none"})
    await owner.sub("docedit:private")
    await owner.pub("docedit:private", "docedit.share", {"editors": [], "readers": ["rita"], "public": "none"})
    reader = await hub_client(server, user="rita")
    await reader.sub("docedit:private")
    await owner.next_event("docedit:private", "docedit.joined")

    mallory = await hub_client(server, user="mallory")
    answers = [
        await refusal(mallory.call({"op": "presence", "ch": "docedit:private"})),
        await refusal(mallory.sub("docedit:private")),
        await refusal(mallory.pub("docedit:private", "docedit.sync", {"m": "AAEA"})),
        await refusal(mallory.pub("docedit:private", "docedit.versions", {})),
    ]
    missing = [
        await refusal(mallory.call({"op": "presence", "ch": "docedit:nothing"})),
        await refusal(mallory.sub("docedit:nothing")),
        await refusal(mallory.pub("docedit:nothing", "docedit.sync", {"m": "AAEA"})),
        await refusal(mallory.pub("docedit:nothing", "docedit.versions", {})),
    ]
    # The same code and sentence as for a document that does not exist: nothing tells the two apart.
    assert [(a.code, a.msg) for a in answers] == [("not_found", NO_DOC.format("private"))] * 4
    assert [(a.code, a.msg) for a in missing] == [("not_found", NO_DOC.format("nothing"))] * 4
    await owner.no_event("docedit:private", "docedit.joined")
    await reader.no_event("docedit:private", "docedit.left", wait=0.1)
    assert {m["user"] for m in (await owner.call({"op": "presence", "ch": "docedit:private"}))["presence"]} == {
        "olga",
        "rita",
    }
    # a member who may not do something is told so: it knows the document anyway
    assert (await refusal(reader.pub("docedit:private", "docedit.rename", {"title": "x"}))).code == "forbidden"


async def test_a_stranger_on_yjs_gets_the_same_close_for_a_private_and_a_missing_document(hub_server, hub_client):
    server = hub_server(plugins={"docedit": plugin(auto_create=False)}, **FAST)
    owner = await hub_client(server, user="olga")
    await owner.pub("docedit:private", "docedit.create", {"title": "Plans", "public": "none"})
    private = await SilentYjs.connect(server, "private", "mallory")
    missing = await SilentYjs.connect(server, "nothing", "mallory")
    assert await private.closed() == (4003, NO_DOC.format("private"))
    assert await missing.closed() == (4003, NO_DOC.format("nothing"))


# ---- withdrawn access ends live subscriptions ----------------------------------------------------------------


async def test_removing_a_reader_ends_its_subscription_and_closes_its_yjs_socket(server, hub_client):
    owner = await provider(hub_client, server, "olga", "plans")
    await owner.call("docedit.share", {"editors": ["ed"], "readers": ["bob"], "public": "none"})
    bob = await provider(hub_client, server, "bob", "plans")
    editor = await provider(hub_client, server, "ed", "plans")
    silent = await SilentYjs.connect(server, "plans", "bob")
    await owner.edit(lambda text: text.insert(0, "before."))
    await wait_until(lambda: bob.content == editor.content == silent.content == "before.")

    shared = await owner.call("docedit.share", {"editors": ["ed"], "readers": [], "public": "none"})
    assert shared["readers"] == []
    notice = await next_unsub(bob.client)
    assert notice == {
        "op": "unsub",
        "ch": "docedit:plans",
        "code": "forbidden",
        "msg": "Access to document 'plans' was withdrawn.",
    }
    code, reason = await silent.closed()
    assert (code, reason) == (4003, "Access to document 'plans' was withdrawn.")
    left = await owner.next_event("docedit.left")
    assert left["data"]["user"] == "bob"

    seen, frames = bob.updates_received, silent.frames
    await owner.edit(lambda text: text.insert(len(text), " after."))
    await wait_until(lambda: editor.content == "before. after.")  # everyone else still gets it
    await bob.client.no_event("docedit:plans", wait=0.3)
    assert bob.updates_received == seen
    assert bob.content == "before."
    assert "docedit.meta" not in [e["type"] for e in bob.events]  # not even the new member list
    assert silent.frames == frames
    assert silent.content == "before."
    assert (await refusal(bob.client.unsub("docedit:plans"))).code == "not_subscribed"
    assert (await refusal(bob.client.sub("docedit:plans"))).code == "not_found"
    present = await owner.client.call({"op": "presence", "ch": "docedit:plans"})
    assert sorted(m["user"] for m in present["presence"]) == ["ed", "olga"]

    # given back, it subscribes again
    await owner.call("docedit.share", {"editors": ["ed"], "readers": ["bob"], "public": "none"})
    assert (await bob.client.sub("docedit:plans"))["snapshot"]["role"] == "reader"


async def test_public_read_going_to_none_ends_every_outsider_but_not_the_members(server, hub_client):
    owner = await provider(hub_client, server, "olga", "open")
    await owner.call("docedit.share", {"editors": ["ed"], "readers": [], "public": "read"})
    passer = await provider(hub_client, server, "pat", "open")
    assert passer.snapshot["role"] == "reader"
    editor = await provider(hub_client, server, "ed", "open")
    guest_yjs = await SilentYjs.connect(server, "open", None)  # a guest: public read let it in

    await owner.call("docedit.share", {"editors": ["ed"], "readers": [], "public": "none"})
    assert (await next_unsub(passer.client))["code"] == "forbidden"
    assert (await guest_yjs.closed())[0] == 4003
    await owner.edit(lambda text: text.insert(0, "members only"))
    await wait_until(lambda: editor.content == "members only")
    await passer.client.no_event("docedit:open", "docedit.update", wait=0.2)
    assert unsub_frames(editor.client) == []
    assert unsub_frames(owner.client) == []


async def test_a_deleted_document_ends_every_subscription_after_its_deleted_event(server, hub_client):
    owner = await provider(hub_client, server, "olga", "gone")
    bob = await provider(hub_client, server, "bob", "gone")
    await owner.call("docedit.delete", {})
    for replica in (owner, bob):
        assert (await replica.next_event("docedit.deleted"))["data"] == {"id": "gone"}
        notice = await next_unsub(replica.client)
        assert (notice["code"], notice["msg"]) == ("not_found", "Document 'gone' was deleted.")
    assert (await refusal(bob.client.unsub("docedit:gone"))).code == "not_subscribed"


async def test_revoking_across_two_nodes_ends_the_subscriptions_on_the_other_node(hub_server, hub_client, redis_url):
    prefix = f"t{uuid.uuid4().hex[:10]}"
    settings = {"redis_url": redis_url, "redis_prefix": prefix, "probe_interval": 0.1, **FAST}
    node_a = hub_server(plugins={"docedit": plugin()}, **settings)
    node_b = hub_server(plugins={"docedit": plugin()}, **settings)
    owner = await provider(hub_client, node_a, "olga", "far")
    await owner.call("docedit.share", {"editors": [], "readers": ["bob", "carl"], "public": "none"})
    bob = await provider(hub_client, node_b, "bob", "far")
    carl = await provider(hub_client, node_b, "carl", "far")
    silent = await SilentYjs.connect(node_b, "far", "bob")
    await owner.edit(lambda text: text.insert(0, "one."))
    await wait_until(lambda: bob.content == carl.content == silent.content == "one.")

    await owner.call("docedit.share", {"editors": [], "readers": ["carl"], "public": "none"})
    assert (await next_unsub(bob.client))["ch"] == "docedit:far"
    assert (await silent.closed())[0] == 4003
    assert (await owner.next_event("docedit.left"))["data"]["user"] == "bob"
    seen = bob.updates_received
    await owner.edit(lambda text: text.insert(len(text), " two."))
    await wait_until(lambda: carl.content == "one. two.")
    await bob.client.no_event("docedit:far", "docedit.update", wait=0.3)
    assert bob.updates_received == seen
    assert silent.content == "one."
    assert unsub_frames(carl.client) == []


# ---- who may create documents --------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["anyone", "users", "scope", "none"])
async def test_the_create_policy_decides_who_may_claim_a_name(hub_server, hub_client, policy):
    server = hub_server(plugins={"docedit": plugin(create=policy)}, **FAST)
    documents = running_documents(server)
    await server.call(documents.create("kept", Identity(user="admin", name="Admin"), "Kept", "edit"))
    tokens = {"guest": None, "user": server.token("ursula"), "scoped": server.token("sam", scopes=("docedit.create",))}
    allowed = {
        "anyone": {"guest", "user", "scoped"},
        "users": {"user", "scoped"},
        "scope": {"scoped"},
        "none": set(),
    }[policy]
    for who, token in tokens.items():
        client = await hub_client(server, token=token)
        # an existing document opens under every policy
        assert (await client.sub("docedit:kept"))["snapshot"]["role"] == "editor"
        auto = f"auto-{who}"
        if who in allowed:
            assert (await client.sub(f"docedit:{auto}"))["snapshot"]["role"] == "owner"
            assert (await client.pub(f"docedit:made-{who}", "docedit.create", {"title": "Mine"}))["title"] == "Mine"
        else:
            refused = await refusal(client.sub(f"docedit:{auto}"))
            assert (refused.code, refused.msg) == ("not_found", NO_DOC.format(auto))
            made = await refusal(client.pub(f"docedit:made-{who}", "docedit.create", {"title": "Mine"}))
            assert made.code == "forbidden"
            # /yjs as well: the same close as for a private document
            yjs = await SilentYjs.connect(server, f"yjs-{who}", token=token)
            assert await yjs.closed() == (4003, NO_DOC.format(f"yjs-{who}"))
    metas = {meta.id for meta in await server.call(documents.store.metas())}
    assert metas == {"kept"} | {f"{kind}-{who}" for who in allowed for kind in ("auto", "made")}


# ---- who a /yjs socket is ------------------------------------------------------------------------------------


async def test_a_yjs_token_signed_with_a_key_published_after_start_is_fetched_and_accepted(hub_server, hub_client):
    """/yjs checks a token as /ws does: a key id the hub does not know yet makes it fetch the JWKS once more
    (before, it refused such a token until the background refresh)."""
    first, rotated = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    keys = JwksServer()
    try:
        keys.keys = [jwk(first, "k1")]
        server = hub_server(
            plugins={"docedit": plugin()},
            jwt_algorithms=["RS256"],
            jwks_url=keys.url,
            jwks_min_refresh_interval=0,
            jwks_refresh_interval=3600,
            **FAST,
        )
        keys.keys = [jwk(first, "k1"), jwk(rotated, "k2")]  # published after the hub read the key set
        fetched = keys.requests
        nina = signed_token(rotated, "RS256", kid="k2", sub="nina", name="Nina")
        socket = await SilentYjs.connect(server, "rotated", token=nina)
        await wait_until(lambda: socket.frames > 0 or socket.ws.close_code is not None)
        assert socket.ws.close_code is None, (socket.ws.close_code, socket.ws.close_reason)
        assert keys.requests == fetched + 1
        client = await hub_client(server, token=nina)
        assert (await client.sub("docedit:rotated"))["snapshot"]["role"] == "owner"  # the socket created it for nina
        await socket.ws.close()
    finally:
        keys.close()
