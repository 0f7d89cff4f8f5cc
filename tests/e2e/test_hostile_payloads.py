"""Hostile payloads over a real socket to a real hub with every installed plugin.

First the coercions issue 15 reported (item 8) and non-JSON numbers in ``data``, each refused as documented.
Then, for every inbound message type, payloads generated from the JSON Schema that ``hub schema`` publishes:
valid instances (``instances``, below) and hostile ones (a field of another JSON type, extreme numbers, huge
strings, deep nesting, unicode edge cases, missing and extra fields, no object at all). Each is sent as a
``pub`` frame, and:

- the reply is ``ok`` or an ``err`` whose code docs/protocol.md §12 documents, never ``internal``;
- an instance the schema refuses is never ``ok`` (the server accepts exactly what its schema says), and an
  instance the schema accepts is never refused for a field's type;
- the socket stays open, but for the documented closes (1009 for a frame over ``max_frame_bytes``);
- a bystander on the same hub, on the channels the payloads reach, gets only events that match the events'
  published schemas, no error, and keeps chatting;
- the hub logs no traceback and no error.

Examples per message type and kind: ``HUB_FUZZ_EXAMPLES`` (default 12, about 40 s for all of them); a longer
run, as in docs/operations.md: ``HUB_FUZZ_EXAMPLES=500 .venv/bin/pytest tests/e2e/test_hostile_payloads.py``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from hub.plugin_catalog import PluginCatalog
from hub.plugin_manager import PluginManager
from hub.protocol import MAX_DEPTH, SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX
from hub.router import Router
from hub.schema import hub_schema
from hub.testing import HubServer, test_settings

EXAMPLES = int(os.environ.get("HUB_FUZZ_EXAMPLES", "12"))
USER = "fuzz"
DOC = "docedit:fuzzdoc"
ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED_CLOSES = {1009}  # a frame over max_frame_bytes (a huge string can make one)
SERVER_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "hub", "hub.access")


def documented_codes() -> set[str]:
    """The error codes of docs/protocol.md §12, less ``internal`` (a bug on the server's side)."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    table = text[text.index("## 12. Error codes") : text.index("## 13. Close codes")]
    return set(re.findall(r"^\| `([a-z_]+)` \|", table, re.MULTILINE)) - {"internal"}


CODES = documented_codes()
SCHEMA = hub_schema(Router(PluginManager(PluginCatalog.from_entry_points(None)).channels(), max_channel_length=1024))
MESSAGES = {
    message_type: (namespace, message)
    for namespace, channel in SCHEMA["channels"].items()
    for message_type, message in channel["messages"].items()
}
# JSON Schema counts 2.0 (and -0.0) as an integer; the hub, like protocol.md (§3, §5.4), takes only an integer
# literal where it says integer, so the schema is read that way here.
Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    ),
)
EVENTS = {
    event_type: Validator(event)
    for channel in SCHEMA["channels"].values()
    for event_type, event in channel["events"].items()
}


def channel_for(message_type: str) -> str:
    namespace = message_type.partition(".")[0]
    if message_type == "docedit.list":
        return "docedit:@index"
    return {"chat": "chat:fuzz", "draw": "draw:fuzz", "docedit": DOC, "notifications": f"notifications:{USER}"}.get(
        namespace, f"{namespace}:fuzz"
    )


# ---- schemas and strategies -----------------------------------------------------------------------------------


def instances(schema: Any, defs: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """Valid instances of a JSON Schema, for the keywords pydantic writes (``$ref``, ``anyOf``/``oneOf``,
    ``const``/``enum``, objects, arrays and ``prefixItems``, strings with lengths and ``pattern``, bounded
    numbers). hypothesis-jsonschema would do this, but its release (0.23.1) uses private Hypothesis internals
    that Hypothesis 6.16x changed (``'many' object has no attribute 'more'``), so it cannot run here."""
    defs = schema.get("$defs", {}) if defs is None else defs
    if "$ref" in schema:
        return instances(defs[schema["$ref"].rpartition("/")[2]], defs)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([instances(branch, defs) for branch in schema[key]])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        return _objects(schema, defs)
    if kind == "array":
        low = schema.get("minItems", 0)
        if "prefixItems" in schema:
            return st.tuples(*(instances(item, defs) for item in schema["prefixItems"])).map(list)
        return st.lists(
            instances(schema.get("items", {}), defs), min_size=low, max_size=min(schema.get("maxItems", 8), low + 8)
        )
    if kind == "string":
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        if "pattern" in schema:
            text = st.from_regex(schema["pattern"], fullmatch=True)
            return text.filter(lambda t: low <= len(t) and (high is None or len(t) <= high))
        return st.text(min_size=low, max_size=min(high if high is not None else 40, low + 40))
    if kind in ("integer", "number"):
        return _numbers(schema, integral=kind == "integer")
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return json_values()  # no type: any JSON value


def _objects(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    properties = schema.get("properties", {})
    required = set(schema.get("required", ()))
    fields = {name: instances(sub, defs) for name, sub in properties.items() if name in required}
    optional = {name: instances(sub, defs) for name, sub in properties.items() if name not in required}
    base = st.fixed_dictionaries(fields, optional=optional)
    if schema.get("additionalProperties") is True or ("additionalProperties" not in schema and not properties):
        extra = st.dictionaries(st.text(max_size=8).filter(lambda k: k not in properties), json_values(), max_size=3)
        return st.tuples(base, extra).map(lambda pair: {**pair[1], **pair[0]})
    return base


def _numbers(schema: dict[str, Any], *, integral: bool) -> st.SearchStrategy[Any]:
    low, high = schema.get("minimum"), schema.get("maximum")
    above, below = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if integral:
        first = low if low is not None else (math.floor(above) + 1 if above is not None else None)
        last = high if high is not None else (math.ceil(below) - 1 if below is not None else None)
        return st.integers(min_value=first, max_value=last)
    floats = st.floats(
        min_value=low if low is not None else above,
        max_value=high if high is not None else below,
        exclude_min=low is None and above is not None,
        exclude_max=high is None and below is not None,
        allow_nan=False,
        allow_infinity=False,
    )
    whole = st.integers(
        min_value=math.ceil(low) if low is not None else (math.floor(above) + 1 if above is not None else None),
        max_value=math.floor(high) if high is not None else (math.ceil(below) - 1 if below is not None else None),
    )
    return floats | whole  # JSON Schema's number includes the integers, and clients send them


def json_values() -> st.SearchStrategy[Any]:
    """Small well-formed JSON values of any type."""
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=8,
    )


# fmt: off
NUMBERS = [0, -0.0, 1, -1, 0.5, 1.0, 2.0, 2**31, 2**53 - 1, 2**53, 2**53 + 1, 2**63 - 1, -(2**63), 2**64 - 1,
           2**64, 10**30, -(10**30), 1e308, -1e308, 5e-324, 1e-300, 1_000_000.0, 1_000_000.5]
STRINGS = ["", " ", "1", "1.0", "-0", "true", "false", "null", "NaN", "Infinity", "\u0000", "\u202e", "\ufeff",
           "\uffff", "\U0010ffff", "😀", "e\u0301", "\n", "\\", "../../etc/passwd", "<script>", "%s%n", "@all",
           "#fff", "0123456789ab-01234567", "0123456789abcdef-01234567", "AAEC", "AA==", "\u0130\u0131"]
# fmt: on


def scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.sampled_from(NUMBERS),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(STRINGS),
        st.text(max_size=40),
        st.integers(min_value=1, max_value=70_000).map(lambda n: "x" * n),  # past 65536: a frame too large
    )


def values() -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=12,
    )


def nested(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


def paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON value, the value itself included (the empty path)."""
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*path, index))


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replaced(value[head], rest, new)}
    return [replaced(item, rest, new) if index == head else item for index, item in enumerate(value)]


def removed(value: Any, path: tuple[Any, ...]) -> Any:
    head, rest = path[0], path[1:]
    if not rest:
        return {k: v for k, v in value.items() if k != head} if isinstance(value, dict) else value
    if isinstance(value, dict):
        return {**value, head: removed(value[head], rest)}
    return [removed(item, rest) if index == head else item for index, item in enumerate(value)]


@st.composite
def hostile(draw: st.DrawFn, schema: dict[str, Any]) -> Any:
    """A valid instance with one thing made wrong, or something that is not an instance at all."""
    base = draw(instances(schema))
    places = list(paths(base))
    kind = draw(st.sampled_from(["retype", "retype", "retype", "drop", "extra", "deep", "whole"]))
    if kind == "retype":  # one field, element or the whole object takes another value of any JSON type
        return replaced(base, draw(st.sampled_from(places)), draw(values()))
    if kind == "drop":
        keyed = [p for p in places if p and isinstance(p[-1], str)]
        return removed(base, draw(st.sampled_from(keyed))) if keyed else {}
    if kind == "extra":
        containers = [p for p in places if isinstance(_at(base, p), dict)]
        where = draw(st.sampled_from(containers)) if containers else ()
        extra = {**_at(base, where), draw(st.text(min_size=1, max_size=8)): draw(values())}
        return replaced(base, where, extra) if containers else extra
    if kind == "deep":  # around the frame's depth limit (the pub frame and data take two levels)
        return replaced(base, draw(st.sampled_from(places)), nested(draw(st.integers(MAX_DEPTH - 6, MAX_DEPTH + 4))))
    return draw(values())


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


# ---- the wire ---------------------------------------------------------------------------------------------------


def dumps(frame: dict[str, Any]) -> str:
    """Python's json, not orjson: it writes integers of any size (orjson stops at 64 bits); never NaN."""
    return json.dumps(frame, allow_nan=False, ensure_ascii=False, separators=(",", ":"))


class Wire:
    """A blocking client on its own socket (Hypothesis runs examples synchronously; the hub has its thread)."""

    def __init__(self, server: HubServer, user: str, scopes: tuple[str, ...] = ()) -> None:
        token = server.token(user, scopes=scopes)
        self.stack = contextlib.ExitStack()
        self.ws: ClientConnection = self.stack.enter_context(
            connect(
                server.ws_url,
                subprotocols=[Subprotocol(SUBPROTOCOL), Subprotocol(TOKEN_SUBPROTOCOL_PREFIX + token)],
                compression=None,
                max_size=None,
                open_timeout=10,
                ping_interval=None,  # its keepalive draws from the global random, which Hypothesis watches
            )
        )
        hello = json.loads(self.ws.recv(timeout=10))
        assert hello["op"] == "hello", hello
        self.ids = iter(range(1, 1 << 40))

    def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        request_id = next(self.ids)
        self.ws.send(dumps({**frame, "id": request_id}))
        while True:
            reply = json.loads(self.ws.recv(timeout=15))
            if reply["op"] == "ping":
                self.ws.send('{"op":"pong"}')
            elif reply["op"] in ("ok", "err") and reply.get("id") == request_id:
                return reply
            elif reply["op"] == "err" and "id" not in reply:
                # The hub could not read the id (protocol.md §3): a frame nested too deep. One request at a time,
                # so it answers ours.
                assert reply["code"] == "bad_request", reply
                return reply

    def close(self) -> None:
        self.stack.close()


class Bystander:
    """Another user on the channels the payloads reach, reading everything in a thread."""

    def __init__(self, server: HubServer, channels: list[str]) -> None:
        self.wire = Wire(server, "bystander")
        for channel in channels:
            assert self.wire.request({"op": "sub", "ch": channel})["op"] == "ok"
        self.frames: list[dict[str, Any]] = []
        self.closed: ConnectionClosed | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self.stopping.is_set():
            try:
                frame = json.loads(self.wire.ws.recv(timeout=0.2))
            except TimeoutError:
                continue
            except ConnectionClosed as exc:
                self.closed = exc
                return
            if frame["op"] == "ping":
                self.wire.ws.send('{"op":"pong"}')
            self.frames.append(frame)

    def check(self) -> int:
        """Everything received so far was right; returns how many events were checked."""
        assert self.closed is None, f"the bystander was closed: {self.closed}"
        frames, self.frames = self.frames, []
        events = 0
        for frame in frames:
            assert frame["op"] in ("ev", "ping"), f"the bystander got {frame}"
            if frame["op"] == "ev":
                errors = [e.message for e in EVENTS[frame["type"]].iter_errors(frame["data"])]
                assert not errors, f"{frame['type']} does not match its published schema: {errors[:3]} in {frame}"
                events += 1
        return events

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.wire.close()


class LogRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def problems(self) -> list[str]:
        return [
            f"{r.levelname} {r.name}: {r.getMessage()}"
            for r in self.records
            if r.exc_info or r.exc_text or r.levelno >= logging.ERROR or "Traceback" in r.getMessage()
        ]


class Fuzzer:
    """The hostile client: sends payloads, checks replies, and replaces its socket when the hub closes it as
    documented or when a per-type rate limit answers (a fresh socket has a full burst again)."""

    def __init__(self, server: HubServer) -> None:
        self.server = server
        self.wire = self._connect()
        self.stats: Counter[str] = Counter()
        self.doc_missing = True

    def _connect(self) -> Wire:
        return Wire(self.server, USER, scopes=("publish",))

    def _reconnect(self) -> None:
        try:
            self.wire.close()
        finally:
            self.wire = self._connect()

    def publish(self, message_type: str, data: Any) -> dict[str, Any]:
        if message_type.startswith("docedit.") and self.doc_missing:
            self._send(DOC, "docedit.create", {"title": "fuzz"})  # ok, or conflict if it exists
            self.doc_missing = False
        reply = self._send(channel_for(message_type), message_type, data)
        if message_type == "docedit.delete" and reply["op"] == "ok":
            self.doc_missing = True
        return reply

    def _send(self, channel: str, message_type: str, data: Any) -> dict[str, Any]:
        frame = {"op": "pub", "ch": channel, "type": message_type, "data": data}
        for _ in range(3):
            try:
                reply = self.wire.request(frame)
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                self._reconnect()
                return {"op": "closed", "code": code, "reason": str(exc)}
            if reply.get("code") != "rate_limited":
                return reply
            self.stats["rate_limited (retried on a new socket)"] += 1
            self._reconnect()
        return reply


# ---- fixtures ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HubServer, Fuzzer, Bystander, LogRecords]]:
    settings_ = test_settings(
        tmp_path_factory.mktemp("fuzz"),
        rate_limit=100_000.0,  # the frame rate limit is tested elsewhere; here it would only slow the examples
        rate_burst=100_000,
        heartbeat_interval=1.0,
        heartbeat_timeout=120.0,  # Hypothesis may think for a while between two examples
        log_level="info",
    )
    server = HubServer(settings_, plugins=None).start()  # every installed plugin, as `hub serve` loads them
    logs = LogRecords()
    loggers = [logging.getLogger(name) for name in SERVER_LOGGERS]
    for logger in loggers:
        logger.addHandler(logs)
    fuzzer = Fuzzer(server)
    bystander = Bystander(server, ["chat:fuzz", "draw:fuzz", "notifications:@all"])
    try:
        yield server, fuzzer, bystander, logs
    finally:
        bystander.stop()
        fuzzer.wire.close()
        for logger in loggers:
            logger.removeHandler(logs)
        server.stop()


def check_hub_is_well(fuzzer: Fuzzer, bystander: Bystander, logs: LogRecords) -> None:
    """The bystander saw nothing wrong and still chats with the fuzzer; the log holds no traceback."""
    text = f"still here {fuzzer.stats.total()}"
    assert fuzzer.publish("chat.send", {"text": text})["op"] == "ok"
    for _ in range(100):
        if any(f.get("type") == "chat.posted" and f["data"]["text"] == text for f in bystander.frames):
            break
        threading.Event().wait(0.05)
    else:
        raise AssertionError("the bystander did not get the fuzzer's chat message")
    fuzzer.stats["bystander events checked"] += bystander.check()
    assert not logs.problems(), logs.problems()[:5]


def check_reply(
    message_type: str, data: Any, reply: dict[str, Any], *, schema_valid: bool, stats: Counter[str]
) -> None:
    if reply["op"] == "closed":
        assert reply["code"] in DOCUMENTED_CLOSES, f"{message_type}: the socket closed: {reply['reason']}"
        stats[f"closed {reply['code']}"] += 1
        return
    assert reply["op"] in ("ok", "err"), reply
    outcome = "ok" if reply["op"] == "ok" else reply["code"]
    if outcome == "invalid" and schema_valid:  # what the schema cannot say (a model's own checks): which ones
        kinds = sorted({str(detail.get("type", "plugin")) for detail in reply.get("details", [])})
        outcome += f" ({message_type}: {', '.join(kinds)})"
    stats[f"{'valid' if schema_valid else 'hostile'} {outcome}"] += 1
    if reply["op"] == "err":
        assert reply["code"] in CODES, f"{message_type}: undocumented code in {reply} for {data!r:.300}"
        assert reply["msg"], reply
    if not schema_valid:
        assert reply["op"] == "err", f"{message_type}: the schema refuses {data!r:.300}, the hub accepted it"
    elif reply["op"] == "err" and reply["code"] == "invalid":
        typed = [d for d in reply.get("details", []) if str(d.get("type", "")).endswith("_type")]
        assert not typed, f"{message_type}: the schema accepts {data!r:.300}, the hub refused its types: {typed}"


def schema_accepts(schema: dict[str, Any], data: Any) -> bool:
    return bool(Validator(schema).is_valid(data))


# ---- the reported coercions and non-JSON numbers ------------------------------------------------------------------


REPORTED = {
    "chat.typing": {"active": "yes"},
    "draw.cursor": {"x": "1", "y": True},
    "draw.put": {"gen": 0, "objects": [{"kind": "rect", "id": "a", "version": 1, "nonce": 0, "left": "0", "top": 0}]},
    "notifications.send": {"title": "hi", "ttl": "3600"},
}


@pytest.mark.parametrize(("message_type", "data"), REPORTED.items(), ids=REPORTED.keys())
def test_the_reported_coercions_are_invalid_on_the_socket(hub, message_type: str, data: dict[str, Any]) -> None:
    _server, fuzzer, bystander, logs = hub
    reply = fuzzer.publish(message_type, data)
    assert (reply["op"], reply["code"]) == ("err", "invalid"), reply
    assert reply["details"][0]["type"] in ("bool_type", "float_type"), reply
    check_hub_is_well(fuzzer, bystander, logs)


@pytest.mark.parametrize(
    "number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"], ids=["nan", "inf", "-inf", "1e400", "-1e400"]
)
def test_numbers_json_cannot_carry_are_refused_in_data(hub, number: str) -> None:
    """The socket parses strictly (orjson): NaN and infinities, spelled or overflowing, are not JSON."""
    _server, fuzzer, bystander, logs = hub
    for data in (f'{{"title":"hi","data":{{"x":{number}}}}}', f'{{"title":"hi","ttl":{number}}}'):
        fuzzer.wire.ws.send(
            f'{{"op":"pub","ch":"notifications:{USER}","type":"notifications.send","id":1,"data":{data}}}'
        )
        reply = json.loads(fuzzer.wire.ws.recv(timeout=10))
        assert (reply["op"], reply["code"]) == ("err", "bad_request"), reply
        assert "not valid JSON" in reply["msg"]
    check_hub_is_well(fuzzer, bystander, logs)


# ---- generated payloads -----------------------------------------------------------------------------------------

RUN = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize("message_type", sorted(MESSAGES))
def test_valid_instances_get_ok_or_a_documented_error(hub, message_type: str) -> None:
    _server, fuzzer, bystander, logs = hub
    _namespace, schema = MESSAGES[message_type]

    @RUN
    @given(data=instances(schema))
    def send(data: Any) -> None:
        assert schema_accepts(schema, data), f"the generator made an invalid instance: {data!r:.300}"
        reply = fuzzer.publish(message_type, data)
        check_reply(message_type, data, reply, schema_valid=True, stats=fuzzer.stats)

    send()
    check_hub_is_well(fuzzer, bystander, logs)


@pytest.mark.parametrize("message_type", sorted(MESSAGES))
def test_hostile_payloads_get_a_documented_error(hub, message_type: str) -> None:
    _server, fuzzer, bystander, logs = hub
    _namespace, schema = MESSAGES[message_type]

    @RUN
    @given(data=hostile(schema))
    def send(data: Any) -> None:
        reply = fuzzer.publish(message_type, data)
        check_reply(message_type, data, reply, schema_valid=schema_accepts(schema, data), stats=fuzzer.stats)

    send()
    check_hub_is_well(fuzzer, bystander, logs)


def test_zz_report(hub, capsys) -> None:
    """What the generated runs did (shown with ``-s``; the lead's report quotes it)."""
    _server, fuzzer, _bystander, _logs = hub
    with capsys.disabled():
        print(f"\nhostile payloads: {EXAMPLES} examples per message type and kind, {len(MESSAGES)} message types")
        for key, count in sorted(fuzzer.stats.items()):
            print(f"  {key}: {count}")
    assert fuzzer.stats["bystander events checked"] > 0
