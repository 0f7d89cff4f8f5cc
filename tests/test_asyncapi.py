"""AsyncAPI 3 (issue 18, item 6): ``hub schema --format asyncapi`` and ``GET /asyncapi.json`` describe the wire
protocol, and the official parser (@asyncapi/parser, run by tests/asyncapi_validate.mjs) finds them valid, while
it refuses documents broken on purpose. Frames a real hub sends and accepts match the document's schemas
(checked with jsonschema), and frames that do not are refused by them.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft7Validator  # type: ignore[import-untyped]
from referencing import Registry
from referencing.jsonschema import DRAFT7

import hub_realtime_plugins.chat
from hub.asyncapi import CLOSE_CODES, ERROR_CODES, server_host
from hub.protocol import CLIENT_OPS, CloseCode, ErrorCode
from hub.testing import HubClient, HubServer, test_settings

ROOT = Path(__file__).resolve().parents[1]
HUB = Path(sys.executable).with_name("hub")
VALIDATOR = ROOT / "tests" / "asyncapi_validate.mjs"
DOC_URI = "urn:hub:asyncapi"


def parse_with_asyncapi(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """The official parser's verdict on each file, by file name."""
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "@asyncapi" / "parser").is_dir():
        pytest.fail("these tests need Node.js and `npm ci` (the @asyncapi/parser devDependency)")
    result = subprocess.run(
        [node, str(VALIDATOR), *map(str, paths)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    verdicts = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(verdicts) == len(paths), result.stderr[-3000:]
    by_name = {Path(verdict["file"]).name: verdict for verdict in verdicts}
    assert result.returncode == (0 if all(v["valid"] for v in verdicts) else 1), result.stderr[-3000:]
    return by_name


def problems(verdict: dict[str, Any], *severities: str) -> list[dict[str, Any]]:
    return [d for d in verdict["diagnostics"] if d["severity"] in severities]


@pytest.fixture(scope="module")
def cli_document() -> dict[str, Any]:
    """``hub schema --format asyncapi`` for every installed plugin, as an operator runs it."""
    result = subprocess.run(
        [str(HUB), "schema", "--format", "asyncapi"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def broken_documents(document: dict[str, Any]) -> dict[str, tuple[dict[str, Any], str]]:
    """Copies of ``document``, each broken in one way, with the parser's rule that must catch it."""

    def copied() -> dict[str, Any]:
        return copy.deepcopy(document)

    other_channel = copied()  # an operation takes a message of another channel
    other_channel["operations"]["chat.subscribe"]["messages"] = [{"$ref": "#/channels/draw/messages/sub"}]
    dangling = copied()  # a reference to nothing
    dangling["components"]["messages"]["chat.sub"]["payload"] = {"$ref": "#/components/schemas/chat.nothing"}
    no_version = copied()
    del no_version["info"]["version"]
    parameter = copied()  # the address's {room} left undescribed
    parameter["channels"]["chat"]["parameters"] = {"rooms": {"description": "a typo"}}
    discriminator = copied()  # pydantic's OpenAPI-style discriminator, as hub/asyncapi.py must not leave it
    schemas = discriminator["components"]["schemas"]
    name = next(key for key, schema in schemas.items() if "discriminator" in json.dumps(schema))
    schemas[name] = json.loads(
        json.dumps(schemas[name]).replace('"discriminator": "kind"', '"discriminator": {"propertyName": "kind"}')
    )
    assert "propertyName" in json.dumps(schemas[name]), "no discriminator to break"
    return {
        "other_channel": (other_channel, "asyncapi3-operation-messages-from-referred-channel"),
        "dangling": (dangling, "invalid-ref"),
        "no_version": (no_version, "asyncapi-document-resolved"),
        "parameter": (parameter, "asyncapi3-channel-parameters"),
        "discriminator": (discriminator, "asyncapi-document-resolved"),
    }


@pytest.fixture(scope="module")
def served_document(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HubServer, dict[str, Any]]]:
    """A real node with the chat plugin, and the document it serves at /asyncapi.json."""
    settings = test_settings(tmp_path_factory.mktemp("hub"))
    with HubServer(settings, plugins={"chat": hub_realtime_plugins.chat.Chat}) as server:
        document = httpx.get(f"{server.url}/asyncapi.json", timeout=10).json()
        yield server, document


@pytest.fixture(scope="module")
def verdicts(
    tmp_path_factory: pytest.TempPathFactory,
    cli_document: dict[str, Any],
    served_document: tuple[HubServer, dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """One run of the parser (it takes seconds to load) over every document these tests look at."""
    directory = tmp_path_factory.mktemp("asyncapi")
    files = {"cli.json": cli_document, "served.json": served_document[1]}
    files |= {f"broken_{name}.json": doc for name, (doc, _rule) in broken_documents(cli_document).items()}
    for name, document in files.items():
        (directory / name).write_text(json.dumps(document))
    return parse_with_asyncapi([directory / name for name in files])


def test_hub_schema_format_asyncapi_is_valid_asyncapi_3(verdicts: dict[str, dict[str, Any]]) -> None:
    verdict = verdicts["cli.json"]
    assert verdict["valid"], problems(verdict, "error")
    assert verdict["version"] == "3.0.0"
    assert problems(verdict, "error", "warning") == []


def test_the_running_node_serves_a_valid_document_of_its_own_channels(
    verdicts: dict[str, dict[str, Any]], served_document: tuple[HubServer, dict[str, Any]]
) -> None:
    verdict = verdicts["served.json"]
    assert verdict["valid"], problems(verdict, "error")
    assert problems(verdict, "error", "warning") == []
    server, document = served_document
    assert document["servers"]["hub"] | {"security": None, "description": None} == {
        "host": f"127.0.0.1:{server.port}",  # the Host the client used
        "protocol": "ws",
        "pathname": "/ws",
        "title": "The hub's socket",
        "security": None,
        "description": None,
    }
    assert set(document["channels"]) == {"socket", "chat", "admin"}  # the node's plugins and the core's admin


@pytest.mark.parametrize("name", ["other_channel", "dangling", "no_version", "parameter", "discriminator"])
def test_a_broken_document_is_refused(
    verdicts: dict[str, dict[str, Any]], cli_document: dict[str, Any], name: str
) -> None:
    verdict = verdicts[f"broken_{name}.json"]
    rule = broken_documents(cli_document)[name][1]
    assert not verdict["valid"]
    assert rule in {d["code"] for d in problems(verdict, "error")}, verdict["diagnostics"]


# ---- what the document says ----------------------------------------------------------------------------------


def resolve(document: dict[str, Any], node: Any) -> Any:
    """What a ``{"$ref": "#/..."}`` points at (followed until it is not a reference), else ``node``."""
    while isinstance(node, dict) and set(node) == {"$ref"}:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def ops_in(document: dict[str, Any], schema: Any) -> set[str]:
    """Every ``op`` const a payload schema allows (through references and allOf/anyOf/oneOf)."""
    schema = resolve(document, schema)
    if not isinstance(schema, dict):
        return set()
    found = set()
    op = schema.get("properties", {}).get("op", {})
    if "const" in op:
        found.add(op["const"])
    for key in ("allOf", "anyOf", "oneOf"):
        for part in schema.get(key, []):
            found |= ops_in(document, part)
    return found


def test_every_op_each_way_is_described(cli_document: dict[str, Any]) -> None:
    received: set[str] = set()
    sent: set[str] = set()
    for operation in cli_document["operations"].values():
        payloads = [resolve(cli_document, ref)["payload"] for ref in operation["messages"]]
        replies = [resolve(cli_document, ref)["payload"] for ref in operation.get("reply", {}).get("messages", [])]
        target = received if operation["action"] == "receive" else sent
        for payload in payloads:
            target |= ops_in(cli_document, payload)
        for payload in replies:
            sent |= ops_in(cli_document, payload)
    assert received == set(CLIENT_OPS)
    assert sent == {"hello", "ok", "err", "ev", "ping", "pong", "unsub"}


def test_every_error_code_and_close_code_is_in_the_document(cli_document: dict[str, Any]) -> None:
    schemas = cli_document["components"]["schemas"]
    assert [entry["const"] for entry in schemas["ErrorCode"]["oneOf"]] == [str(code) for code in ErrorCode]
    assert all(entry["description"] for entry in schemas["ErrorCode"]["oneOf"])
    assert set(ERROR_CODES) == set(ErrorCode)
    closes = {entry.get("const"): entry for entry in schemas["CloseCode"]["oneOf"]}
    assert set(CloseCode) <= set(closes)
    assert 1012 in closes  # a proxy's, described so that clients know it
    assert set(CLOSE_CODES) >= set(CloseCode)
    assert (closes[None]["minimum"], closes[None]["maximum"]) == (4500, 4999)  # the plugins' range
    assert cli_document["channels"]["socket"]["x-close-codes"] == {"$ref": "#/components/schemas/CloseCode"}


def test_every_channel_family_has_its_messages_events_and_snapshot(cli_document: dict[str, Any]) -> None:
    from hub.plugin_catalog import PluginCatalog
    from hub.plugin_manager import PluginManager
    from hub.router import Router

    router = Router(PluginManager(PluginCatalog.installed()).channels(), max_channel_length=1024)
    assert set(cli_document["channels"]) == {"socket", *router.channels}
    for namespace, channel in router.channels.items():
        described = cli_document["channels"][namespace]
        assert described["address"] == f"{namespace}:{{room}}"
        assert set(described["parameters"]) == {"room"}
        keys = set(described["messages"])
        assert {f"pub.{t}" for t in channel.inbound} | {f"published.{t}" for t in channel.inbound} <= keys
        assert {f"ev.{t}" for t in channel.events} <= keys
        assert ("presence" in keys) == channel.presence
        subscribed = resolve(cli_document, resolve(cli_document, described["messages"]["subscribed"])["payload"])
        data = subscribed["properties"]["data"]["properties"]
        assert ("snapshot" in data) == (channel.snapshot_provider is not None), namespace
        assert ("missed" in data) == channel.recoverable, namespace


def test_server_host_takes_a_plain_host_header_only() -> None:
    assert server_host("hub.example.com:8443", "127.0.0.1:8000") == "hub.example.com:8443"
    assert server_host("[::1]:8000", "x") == "[::1]:8000"
    for bad in (None, "", "a b", "evil.com/path", "x:99999999", "a" * 300, "<script>"):
        assert server_host(bad, "127.0.0.1:8000") == "127.0.0.1:8000"


# ---- real frames against the document ---------------------------------------------------------------------------


class Frames:
    """Checks frames against the document's message payloads (jsonschema, draft 7: AsyncAPI's schema dialect)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.registry: Registry[Any] = Registry().with_resource(DOC_URI, DRAFT7.create_resource(document))

    def errors(self, channel: str, message: str, frame: dict[str, Any]) -> list[str]:
        payload = resolve(self.document, self.document["channels"][channel]["messages"][message])["payload"]
        validator = Draft7Validator({"$ref": DOC_URI + payload["$ref"]}, registry=self.registry)
        return [error.message for error in validator.iter_errors(frame)]

    def check(self, channel: str, message: str, frame: dict[str, Any]) -> None:
        assert self.errors(channel, message, frame) == [], (channel, message, frame)


async def test_frames_of_a_real_session_match_the_served_document(
    served_document: tuple[HubServer, dict[str, Any]],
) -> None:
    server, document = served_document
    frames = Frames(document)
    alice = await HubClient.connect(server.ws_url, token=server.token("alice"))
    bob = await HubClient.connect(server.ws_url)
    try:
        frames.check("socket", "hello", {"op": "hello", "data": alice.hello})
        frames.check("socket", "hello", {"op": "hello", "data": bob.hello})  # a guest, with its resume token
        auth = {"op": "auth", "id": 1, "token": server.token("alice")}
        frames.check("socket", "auth", auth)
        frames.check("socket", "authenticated", await alice.request(auth))
        frames.check("socket", "pong", await alice.request({"op": "ping"}))

        sub = {"op": "sub", "ch": "chat:room"}
        frames.check("chat", "sub", sub)
        frames.check("chat", "subscribed", await alice.request(sub))
        joined = bob_sub = await bob.request(sub)
        frames.check("chat", "subscribed", bob_sub)
        frames.check("chat", "ev.chat.joined", await alice.next_event("chat:room", "chat.joined"))
        send = {"op": "pub", "ch": "chat:room", "type": "chat.send", "data": {"text": "hello"}, "mid": "m-1"}
        frames.check("chat", "pub.chat.send", send)
        frames.check("chat", "published.chat.send", await alice.request(send))
        frames.check("chat", "published.chat.send", await alice.request(send))  # the duplicate
        posted = await bob.next_event("chat:room", "chat.posted")
        frames.check("chat", "ev.chat.posted", posted)
        presence = {"op": "presence", "ch": "chat:room"}
        frames.check("chat", "presence", presence)
        frames.check("chat", "presencePage", await alice.request(presence))
        invalid = await alice.request({"op": "pub", "ch": "chat:room", "type": "chat.send", "data": {"text": ""}})
        frames.check("chat", "err", invalid)
        frames.check("chat", "unsubscribed", await bob.request({"op": "unsub", "ch": "chat:room"}))
        again = await bob.request({"op": "sub", "ch": "chat:room", "since": {"epoch": joined["data"]["epoch"],
                                                                               "offset": 0}})  # fmt: skip
        frames.check("chat", "subscribed", again)
        assert again["data"]["missed"], "the recovery should carry the post"

        # The schemas say no to what the hub would refuse or never send.
        assert frames.errors("chat", "pub.chat.send", {**send, "data": {"text": 5}})
        assert frames.errors("chat", "pub.chat.send", {**send, "ch": "draw:room"})
        assert frames.errors("chat", "pub.chat.send", {**send, "extra": 1})
        assert frames.errors("chat", "ev.chat.typing", posted)
        assert frames.errors("chat", "err", {**invalid, "code": "Not A Code"})
    finally:
        await alice.close()
        await bob.close()
